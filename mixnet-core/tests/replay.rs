//! A replayed packet is dropped at every node it reaches again.

use wasm_bindgen_test::wasm_bindgen_test;

mod common;

use std::time::Duration;

use common::*;
use mixnet_core::message::RouteMode;
use mixnet_core::sim::mixnet::{SimMixnet, SimNode};
use mixnet_core::time::Instant;

#[wasm_bindgen_test(unsupported = test)]
fn replays_are_dropped_at_every_hop() {
    let mut net = SimMixnet::new(50, link(), 1, 2);
    let a = net.add_client(0, config(RouteMode::Mixnet));
    let b = net.add_client(1, config(RouteMode::Mixnet));
    net.net.start_capture();
    net.client_mut(&a).client.send(Instant::ZERO, b, b"once", 0).unwrap();
    assert!(run_until_received(&mut net, &b, 1));
    net.run_until(Duration::from_secs(5), |_| false);
    // replay every packet that was sent between nodes (mixes and gateways)
    let nodes: Vec<_> = net.net.nodes().filter(|(_, n)| !matches!(n, SimNode::Client(_))).map(|(a, _)| *a).collect();
    let replays: Vec<_> =
        net.net.captured().iter().filter(|(from, to, _)| nodes.contains(from) && nodes.contains(to)).cloned().collect();
    assert!(replays.len() >= 4, "the packet crossed 4 hops (and its ack came back)");
    for (from, to, bytes) in replays.iter().cloned() {
        net.net.inject(from, to, bytes);
    }
    net.run_until(Duration::from_secs(5), |_| false);
    let mut dropped = 0;
    for (_, n) in net.net.nodes() {
        match n {
            SimNode::Mix(m) => dropped += m.stats().replays,
            SimNode::Gateway(g) => dropped += g.gateway.stats().replays,
            SimNode::Client(_) => {}
        }
    }
    assert_eq!(dropped as usize, replays.len(), "every replayed packet dropped at its node");
    assert_eq!(received(&net, &b), vec![b"once".to_vec()]);
}
