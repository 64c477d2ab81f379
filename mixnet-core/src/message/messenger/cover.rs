//! Loop cover: a packet to ourselves that no one on its path can tell from a real one.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) const MAX_COVER_ACKS: usize = 4096;

impl<R: CryptoRng> Messenger<R> {
    /// A cover packet: a loop to ourselves, sealed and with a SURB-ack like real
    /// traffic, so no node on the path can tell them apart. `None` without topology.
    pub fn cover_packet(&mut self, now: Instant) -> Option<Transmit> {
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
        // past MAX_COVER_ACKS the oldest are forgotten (their acks then count as unknown)
        self.cover_acks.insert(now, id, ack_recovery);
        self.stats.cover_sent += 1;
        Some(transmit)
    }
}
