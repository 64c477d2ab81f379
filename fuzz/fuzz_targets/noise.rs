//! The client ↔ gateway Noise handshake on arbitrary messages, both sides, and
//! transport messages after it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixnet_core::noise::{Initiator, respond};
use mixnet_core::sphinx::NodeSecret;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let server = NodeSecret::from_bytes([3; 32]);
    // the responder reading message 1
    let _ = respond(&mut rng, b"fuzz", &server, data, b"payload");
    // the initiator reading message 2
    let (initiator, m1) = Initiator::start(&mut rng, b"fuzz", &server.public_key(), b"hello");
    let _ = initiator.finish(data);
    // a real handshake, then garbage as transport messages
    if let Ok((mut t, _, m2)) = respond(&mut rng, b"fuzz", &server, &m1, b"") {
        let (initiator, _) = Initiator::start(&mut rng, b"fuzz", &server.public_key(), b"hello");
        let _ = initiator.finish(&m2);
        for chunk in data.chunks(64) {
            let _ = t.recv.decrypt(chunk);
        }
    }
});
