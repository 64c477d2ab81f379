//! Loss, duplication, reordering and corruption on every link: every message still
//! arrives exactly once, and the sender learns it was delivered.

use wasm_bindgen_test::wasm_bindgen_test;

mod common;

use std::time::Duration;

use common::*;
use mixnet_core::client::ClientEvent;
use mixnet_core::message::RouteMode;
use mixnet_core::sim::LinkConfig;
use mixnet_core::sim::mixnet::SimMixnet;
use mixnet_core::time::Instant;

fn all_arrive_once(seed: u64, link: LinkConfig, mode: RouteMode) -> u64 {
    let mut net = SimMixnet::new(seed, link, 2, 2);
    let a = net.add_client(0, config(mode));
    let b = net.add_client(1, config(mode));
    let msgs: Vec<_> = (0..8).map(|i| payload(i, 300 + 2000 * usize::from(i))).collect();
    let ids: Vec<_> = msgs.iter().map(|m| net.client_mut(&a).client.send(Instant::ZERO, b, m, 0).unwrap()).collect();
    for id in &ids {
        assert!(run_until_delivered(&mut net, &a, *id), "message {id} never acknowledged");
    }
    // let late duplicates drain, then check exactly-once
    net.net.run_for(Duration::from_secs(30));
    let mut got = received(&net, &b);
    got.sort();
    let mut want = msgs;
    want.sort();
    assert_eq!(got, want, "each message exactly once");
    assert!(failures(&net, &a).is_empty());
    net.client(&a).client.stats().messenger.retransmissions
}

#[wasm_bindgen_test(unsupported = test)]
fn five_percent_loss_on_every_link() {
    let retrans = all_arrive_once(10, lossy(0.05), RouteMode::Mixnet);
    assert!(retrans > 0, "with 5% loss some fragment must have been retransmitted");
}

#[wasm_bindgen_test(unsupported = test)]
fn heavy_loss_duplication_and_reordering() {
    all_arrive_once(11, lossy(0.12), RouteMode::Mixnet);
    all_arrive_once(12, lossy(0.12), RouteMode::Fast);
}

#[wasm_bindgen_test(unsupported = test)]
fn corrupted_packets_are_dropped_and_retransmitted() {
    let link = LinkConfig { corrupt: 0.1, ..lossy(0.0) };
    let mut net = SimMixnet::new(13, link.clone(), 2, 2);
    let a = net.add_client(0, config(RouteMode::Mixnet));
    let b = net.add_client(1, config(RouteMode::Mixnet));
    let m = payload(3, 20_000);
    let id = net.client_mut(&a).client.send(Instant::ZERO, b, &m, 0).unwrap();
    assert!(run_until_delivered(&mut net, &a, id));
    assert!(run_until_received(&mut net, &b, 1));
    assert_eq!(received(&net, &b), vec![m]);
    assert!(net.net.stats.corrupted > 0);
    // corruption was caught somewhere (a MAC at a mix, or AEAD/ack check at a client)
    let malformed_at_mixes: u64 = net
        .net
        .nodes()
        .filter_map(|(_, n)| match n {
            mixnet_core::sim::mixnet::SimNode::Mix(m) => Some(m.stats().malformed),
            mixnet_core::sim::mixnet::SimNode::Gateway(g) => Some(g.gateway.stats().bad_node_packets),
            _ => None,
        })
        .sum();
    let dropped_at_clients =
        net.client(&a).client.stats().messenger.dropped + net.client(&b).client.stats().messenger.dropped;
    assert!(malformed_at_mixes + dropped_at_clients > 0);
    assert!(net.client(&b).events.iter().all(|e| !matches!(e, ClientEvent::Failed { .. })));
}
