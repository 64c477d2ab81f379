//! Attacks an anonymous sender can mount on whoever receives its packets (a browser
//! client, the exit): each is pushed past its bound, and what the victim holds is
//! measured with a counting allocator, not taken from the victim's own accounting.

#![cfg(not(target_family = "wasm"))]

use std::alloc::System;
use std::sync::Mutex;

use mixnet_core::message::{
    ACK_SURB_LEN, ClientKeys, Content, Delivery, Event, FRAGMENT_DATA, Fragment, Messenger, MessengerConfig,
    ReassemblyConfig, seal, split_message,
};
use mixnet_core::sphinx::{NodeKey, NodeSecret, PacketSize};
use mixnet_core::time::Instant;
use mixnet_core::wire::Repr;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The allocator counts every thread: tests in this file measure one at a time.
static MEASURE: Mutex<()> = Mutex::new(());

/// Bytes live now that were not live when `region` started.
fn grown(region: &Region<'_, System>) -> isize {
    let c = region.change();
    c.bytes_allocated as isize - c.bytes_deallocated as isize + c.bytes_reallocated
}

/// A forward packet as the victim's gateway delivers it: a (junk) SURB-ack, then a
/// fragment sealed to the victim, which anyone who knows its address can build.
fn delivery(rng: &mut ChaCha20Rng, victim: &NodeKey, fragment: &Fragment) -> Delivery {
    let mut payload = vec![0u8; ACK_SURB_LEN];
    payload.extend_from_slice(&seal(rng, victim, &fragment.encode()).unwrap());
    payload.resize(PacketSize::Regular.data_len(), 0);
    Delivery { identifier: [0; 16], payload }
}

/// One fragment of each of many messages that claim the largest count allowed: the
/// victim must not size anything by the claimed count. (On 117647c each such fragment
/// allocated ~1 MB of empty slots outside the byte accounting: 256 packets, 249 MiB.)
#[test]
fn reassembly_amplification_is_bounded_by_what_arrived() {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let secret = NodeSecret::from_bytes([9; 32]);
    let victim_key = NodeKey::new(secret.public_key());
    let limit = 1 << 20;
    let config = MessengerConfig {
        reassembly: ReassemblyConfig { max_buffered_bytes: limit, ..ReassemblyConfig::default() },
        ..MessengerConfig::default()
    };
    let max_count = u32::try_from(config.reassembly.max_message_size.div_ceil(FRAGMENT_DATA)).unwrap();
    let keys = ClientKeys { identity: [1; 32], encryption: secret };
    let mut victim = Messenger::new(config, keys, [2; 32], ChaCha20Rng::seed_from_u64(1));
    // prepare the attack outside the measurement
    let packets: Vec<Delivery> = (0..2048u64)
        .map(|id| {
            let f = Fragment { message_id: id, count: max_count, index: 1, data: vec![0xAB; FRAGMENT_DATA] };
            delivery(&mut rng, &victim_key, &f)
        })
        .collect();
    let _one = MEASURE.lock().unwrap_or_else(|e| e.into_inner());
    let region = Region::new(GLOBAL);
    let mut peak = 0;
    for (i, p) in packets.into_iter().enumerate() {
        victim.handle_delivery(Instant::from_millis(i as u64), p);
        while victim.poll_event().is_some() {}
        peak = peak.max(grown(&region));
    }
    // the configured bound plus the messenger's own small tables
    let slack = 256 * 1024;
    assert!(peak <= (limit + slack) as isize, "victim grew by {peak} B for a bound of {limit} B");

    // and a real message still gets through afterwards
    let real: Vec<u8> = (0..3 * FRAGMENT_DATA).map(|i| i as u8).collect();
    let frags = split_message(99_999, &Content::Data(real.clone()).to_bytes());
    for f in &frags {
        victim.handle_delivery(Instant::from_millis(5000), delivery(&mut rng, &victim_key, f));
    }
    let mut got = None;
    while let Some(e) = victim.poll_event() {
        if let Event::Received(m) = e {
            got = Some(m.data);
        }
    }
    assert_eq!(got, Some(real), "a real message is reassembled after the attack");
}
