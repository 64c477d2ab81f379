//! SURB parsing and use, and reply recovery, on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixnet_core::message::{ack_packet, split_data};
use mixnet_core::sphinx::{PacketSize, Surb, SurbRecovery};

fuzz_target!(|data: &[u8]| {
    let split = data.len().min(Surb::encoded_len(5));
    let (surb_bytes, rest) = data.split_at(split.min(data.len() / 2 + 1).min(data.len()));
    if let Ok(surb) = Surb::from_bytes(surb_bytes) {
        assert_eq!(Surb::from_bytes(&surb.to_bytes()).as_ref(), Ok(&surb));
        for size in [PacketSize::Regular, PacketSize::Ack] {
            if let Ok((packet, _)) = surb.use_surb(rest, size.payload_len()) {
                assert_eq!(packet.len(), size.packet_len());
            }
            let _ = ack_packet(&surb, size);
        }
    }
    let _ = split_data(data);
    let (rec, payload) = data.split_at(data.len().min(16 + 16 * (1 + data.first().copied().unwrap_or(0) as usize % 6)));
    if let Ok(recovery) = SurbRecovery::from_bytes(rec) {
        let _ = recovery.recover_plaintext(payload.to_vec());
    }
});
