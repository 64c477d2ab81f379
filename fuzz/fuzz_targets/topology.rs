//! Signed topology and descriptor documents from anyone: parsing, signature checks,
//! validation, route selection and the freshness rule never panic.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use mixnet_core::topology::{Freshness, Routes, SignedDescriptor, SignedTopology, Topology};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let key = SigningKey::from_bytes(&[1; 32]);
    if let Ok(signed) = serde_json::from_str::<SignedTopology>(text) {
        let _ = signed.verify(&key.verifying_key());
    }
    if let Ok(signed) = serde_json::from_str::<SignedDescriptor>(text) {
        let _ = signed.verify();
    }
    if let Ok(t) = serde_json::from_str::<Topology>(text) {
        // as if the directory had signed it: the checks after the signature
        let signed = SignedTopology::sign(&t, &key);
        if let Ok(t) = signed.verify(&key.verifying_key()) {
            let _ = Freshness::new().check(&t, 1);
            let _ = t.exits().count();
            let gateways: Vec<[u8; 32]> = t.gateways.iter().map(|g| g.identity.0).collect();
            if let Ok(mut routes) = Routes::new(t) {
                let mut rng = ChaCha8Rng::seed_from_u64(1);
                for g in gateways.iter().take(3) {
                    let _ = routes.mixnet_route(&mut rng, g);
                    let _ = routes.fast_route(g);
                }
            }
        }
    }
});
