//! Loop cover: a packet to ourselves that no one on its path can tell from a real one.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) const MAX_COVER_ACKS: usize = 4096;

impl<R: CryptoRng> Messenger<R> {
    /// A cover packet: a loop to ourselves, sealed and with a SURB-ack like real
    /// traffic, so no node on the path can tell them apart. `None` without topology.
    pub fn cover_packet(&mut self, _now: Instant) -> Option<Transmit> {
        let (ack_surb, ack_recovery, _) = self.surb_to_self(self.config.average_ack_delay).ok()?;
        let mut data = [0u8; PacketSize::Regular.data_len()];
        data[..crate::message::ACK_SURB_LEN].copy_from_slice(&ack_surb.to_bytes());
        let encryption = self.self_address.encryption;
        let key = self.self_key.get_or_insert_with(|| NodeKey::prepared(encryption)).clone();
        let sealed = seal(&mut self.rng, &key, &Fragment::cover())?;
        data[crate::message::ACK_SURB_LEN..].copy_from_slice(&sealed);
        let gateway = self.self_address.gateway;
        let (transmit, _) = self.forward_packet(&gateway, DestinationAddress(self.keys.identity), &data).ok()?;
        let id = *ack_recovery.identifier();
        self.cover_acks.insert(id, ack_recovery);
        self.cover_ack_order.push_back(id);
        while self.cover_ack_order.len() > MAX_COVER_ACKS {
            if let Some(old) = self.cover_ack_order.pop_front() {
                self.cover_acks.remove(&old);
            }
        }
        self.stats.cover_sent += 1;
        Some(transmit)
    }
}
