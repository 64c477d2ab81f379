//! When delivery is impossible the sender is told, loudly, after its retransmissions.

use wasm_bindgen_test::wasm_bindgen_test;

mod common;

use std::time::Duration;

use common::*;
use mixnet_core::client::ClientEvent;
use mixnet_core::message::{MessengerConfig, RouteMode};
use mixnet_core::sim::mixnet::SimMixnet;
use mixnet_core::sphinx::NodeAddress;
use mixnet_core::time::Instant;

#[wasm_bindgen_test(unsupported = test)]
fn message_to_a_dead_gateway_fails_after_max_retransmissions() {
    let mut net = SimMixnet::new(20, link(), 1, 2);
    let cfg = MessengerConfig { max_retransmissions: 3, ..config(RouteMode::Mixnet) };
    let a = net.add_client(0, cfg);
    let b = net.add_client(1, config(RouteMode::Mixnet));
    net.net.set_down(&NodeAddress(b.gateway), true);
    let id = net.client_mut(&a).client.send(Instant::ZERO, b, b"into the void", 0).unwrap();
    net.run_until(Duration::from_secs(120), |_| false);
    assert_eq!(
        failures(&net, &a),
        vec![ClientEvent::Failed { id, reason: "no acknowledgement after 4 transmissions".into() }]
    );
    assert_eq!(net.client(&a).client.stats().messenger.retransmissions, 3);
    assert_eq!(net.client(&a).messenger().in_flight(), 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn oversized_messages_are_refused_up_front() {
    let mut net = SimMixnet::new(21, link(), 1, 1);
    let mut cfg = config(RouteMode::Fast);
    cfg.reassembly.max_message_size = 10_000;
    let a = net.add_client(0, cfg);
    let err = net.client_mut(&a).client.send(Instant::ZERO, a, &[0u8; 10_001], 0).unwrap_err();
    assert!(err.to_string().contains("exceeds the maximum"), "{err}");
}
