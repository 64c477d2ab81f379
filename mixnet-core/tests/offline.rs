//! A recipient that is offline gets its messages from its gateway's inbox when it
//! comes back; the sender is acknowledged as soon as the gateway stored them.

use wasm_bindgen_test::wasm_bindgen_test;

mod common;

use std::time::Duration;

use common::*;
use mixnet_core::message::RouteMode;
use mixnet_core::sim::mixnet::SimMixnet;
use mixnet_core::time::Instant;

#[wasm_bindgen_test(unsupported = test)]
fn gateway_stores_for_offline_client_and_delivers_in_order() {
    let mut net = SimMixnet::new(40, link(), 2, 2);
    let a = net.add_client(0, config(RouteMode::Fast));
    let b = net.add_client(1, config(RouteMode::Fast));
    // a gateway keeps an inbox only for identities that authenticated there once
    net.run_until(Duration::from_millis(500), |_| false);
    net.set_client_online(&b, false);
    let msgs: Vec<_> = (0..3).map(|i| payload(i, 50)).collect();
    let ids: Vec<_> = msgs.iter().map(|m| net.client_mut(&a).client.send(Instant::ZERO, b, m, 0).unwrap()).collect();
    for id in ids {
        assert!(run_until_delivered(&mut net, &a, id), "stored counts as delivered");
    }
    assert!(received(&net, &b).is_empty());
    assert_eq!(net.gateway_mut(b.gateway).stored(), 3);
    net.run_until(Duration::from_secs(5), |_| false);
    net.set_client_online(&b, true);
    assert!(run_until_received(&mut net, &b, 3));
    assert_eq!(received(&net, &b), msgs, "in the order they were stored");
    // deleted once the client acknowledged them
    net.run_until(Duration::from_secs(1), |_| false);
    assert_eq!(net.gateway_mut(b.gateway).stored(), 0);
}
