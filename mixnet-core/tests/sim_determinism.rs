//! The simulated network is reproducible: the same seed gives the same run, event for
//! event, and a different seed gives a different one.

mod common;

use wasm_bindgen_test::wasm_bindgen_test;

use common::*;
use mixnet_core::message::RouteMode;
use mixnet_core::sim::mixnet::SimMixnet;
use mixnet_core::time::Instant;

fn run(seed: u64) -> (Vec<String>, String, Instant) {
    let mut net = SimMixnet::new(seed, lossy(0.1), 2, 2);
    let a = net.add_client(0, config(RouteMode::Mixnet));
    let b = net.add_client(1, config(RouteMode::Mixnet));
    for i in 0..3 {
        net.client_mut(&a).client.send(Instant::ZERO, b, &payload(i, 4000), 0).unwrap();
    }
    assert!(run_until_received(&mut net, &b, 3));
    let events = net.client(&a).events.iter().chain(&net.client(&b).events).map(|e| format!("{e:?}")).collect();
    (events, format!("{:?}", net.net.stats), net.net.now())
}

#[wasm_bindgen_test(unsupported = test)]
fn same_seed_same_run() {
    assert_eq!(run(7), run(7));
    assert_ne!(run(7).1, run(8).1);
}
