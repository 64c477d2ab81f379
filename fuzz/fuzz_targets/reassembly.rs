//! Fragment decoding and reassembly under tight limits, then message decoding, and
//! arbitrary deliveries into a messenger.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mixnet_core::wire::Repr;
use mixnet_core::message::{
    ClientKeys, Content, Delivery, FRAGMENT_LEN, Fragment, Messenger, MessengerConfig, Reassembler, ReassemblyConfig,
};
use mixnet_core::sphinx::NodeSecret;
use mixnet_core::time::Instant;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

const RECORD: usize = 12;

fuzz_target!(|data: &[u8]| {
    let config = ReassemblyConfig {
        max_message_size: 64 * 1024,
        max_incomplete: 4,
        max_buffered_bytes: 20_000,
        stale_after: Duration::from_millis(50),
        remember_completed: 8,
    };
    let mut r = Reassembler::new(config.clone());
    let mut now = Instant::ZERO;
    // records: id (1) count (2) index (2) len (2) fill (1) dt (1) pad (3)
    for rec in data.chunks_exact(RECORD) {
        let count = u16::from_be_bytes([rec[1], rec[2]]);
        let mut bytes = [0u8; FRAGMENT_LEN];
        bytes[0] = 1;
        bytes[8] = rec[0] % 6;
        bytes[11..13].copy_from_slice(&count.to_be_bytes());
        bytes[15..17].copy_from_slice(&rec[3..5]);
        bytes[17..19].copy_from_slice(&rec[5..7]);
        bytes[19..].fill(rec[7]);
        now += Duration::from_millis(u64::from(rec[8]));
        if let Ok(Some(f)) = Fragment::decode(&bytes) {
            if let Ok(mixnet_core::message::Insert::Complete(m)) = r.insert(now, f) {
                let _ = Content::parse(&m);
            }
        }
        r.evict_stale(now);
        assert!(r.buffered_bytes() <= config.max_buffered_bytes);
        assert!(r.incomplete() <= config.max_incomplete);
    }
    let _ = Fragment::decode(data);
    let _ = Content::parse(data);

    let keys = ClientKeys { identity: [1; 32], encryption: NodeSecret::from_bytes([2; 32]) };
    let mut m = Messenger::new(MessengerConfig::default(), keys, [3; 32], ChaCha8Rng::seed_from_u64(0));
    let identifier = if data.first().is_some_and(|b| b % 2 == 0) { [0u8; 16] } else { [7u8; 16] };
    m.handle_delivery(Instant::ZERO, Delivery { identifier, payload: data.to_vec() });
    m.handle_timeout(Instant::from_millis(10_000));
    while m.poll_event().is_some() {}
});
