//! The client's Loopix streams: while idle it still sends at the configured rates
//! (real-traffic stream filled with cover, plus loop cover), real packets replace
//! cover instead of adding to it, loops come back, and fast mode sends no cover.

mod common;

use std::time::Duration;

use wasm_bindgen_test::wasm_bindgen_test;

use common::*;
use mixnet_core::client::{ClientEvent, ConnectionState, LoopixConfig, PacketKind};
use mixnet_core::message::RouteMode;
use mixnet_core::sim::mixnet::SimMixnet;

const SECONDS: u64 = 20;

fn expected_packets(l: &LoopixConfig) -> f64 {
    let rate = |m: Option<Duration>| m.map_or(0.0, |m| 1.0 / m.as_secs_f64());
    (rate(l.send_delay_mean) + rate(l.loop_cover_mean)) * SECONDS as f64
}

#[wasm_bindgen_test(unsupported = test)]
fn an_idle_client_sends_cover_at_the_configured_rate() {
    let mut net = SimMixnet::new(70, link(), 2, 1);
    let loopix = LoopixConfig::default();
    let a = net.add_client_with(0, config(RouteMode::Mixnet), loopix.clone());
    net.run_until(Duration::from_secs(1), |_| false);
    assert_eq!(net.client(&a).client.state(), ConnectionState::Connected);
    let before = net.client(&a).client.stats();
    net.net.run_for(Duration::from_secs(SECONDS));
    let after = net.client(&a).client.stats();
    let sent = (after.cover_sent + after.real_sent - before.cover_sent - before.real_sent) as f64;
    let expected = expected_packets(&loopix);
    assert!((sent - expected).abs() < expected * 0.1, "sent {sent} packets in {SECONDS} s, expected about {expected}");
    assert_eq!(after.real_sent, 0, "idle");
    // loops come back to us, and so do their acks
    let m = &after.messenger;
    assert!(m.cover_received as f64 > sent * 0.9, "{m:?}");
    assert!(m.cover_acks_received as f64 > sent * 0.9, "{m:?}");
    // the live view sees every layer
    let routes: Vec<_> = net.client(&a).client.recent_routes().cloned().collect();
    assert!(routes.iter().all(|r| r.kind == PacketKind::Cover && r.hops.len() == 4));
}

#[wasm_bindgen_test(unsupported = test)]
fn real_packets_take_the_place_of_cover() {
    let mut net = SimMixnet::new(71, link(), 2, 2);
    let loopix = LoopixConfig::default();
    let a = net.add_client_with(0, config(RouteMode::Mixnet), loopix.clone());
    let b = net.add_client_with(1, config(RouteMode::Mixnet), loopix.clone());
    net.run_until(Duration::from_secs(1), |_| false);
    let before = net.client(&a).client.stats();
    let now = net.net.now();
    let msg = payload(1, 40_000); // 26 fragments
    net.client_mut(&a).client.send(now, b, &msg, 0).unwrap();
    net.net.run_for(Duration::from_secs(SECONDS));
    let after = net.client(&a).client.stats();
    let real = after.real_sent - before.real_sent;
    let total = (after.cover_sent + after.real_sent - before.cover_sent - before.real_sent) as f64;
    let expected = expected_packets(&loopix);
    assert!(real >= 26, "{real}");
    assert!((total - expected).abs() < expected * 0.1, "the rate does not change: {total} vs {expected}");
    assert_eq!(received(&net, &b), vec![msg]);
    // long after, with hundreds of cover packets since, the live view still shows real ones
    let routes: Vec<_> = net.client(&a).client.recent_routes().cloned().collect();
    let real_routes = routes.iter().filter(|r| r.kind == PacketKind::Real).count();
    assert_eq!((real_routes, routes.len()), (16, 32));
}

#[wasm_bindgen_test(unsupported = test)]
fn fast_mode_sends_no_cover_and_reconnects_after_a_drop() {
    let mut net = SimMixnet::new(72, link(), 1, 1);
    let a = net.add_client_with(0, config(RouteMode::Fast), LoopixConfig::default());
    net.net.run_for(Duration::from_secs(5));
    let s = net.client(&a).client.stats();
    assert_eq!((s.cover_sent, s.real_sent), (0, 0));
    // the connection drops; the client reconnects by itself and works again
    net.set_client_online(&a, false);
    net.set_client_online(&a, true);
    net.net.run_for(Duration::from_secs(2));
    assert_eq!(net.client(&a).client.state(), ConnectionState::Connected);
    let states: Vec<_> = net
        .client(&a)
        .events
        .iter()
        .filter_map(|e| if let ClientEvent::State(s, _) = e { Some(*s) } else { None })
        .collect();
    assert_eq!(
        states,
        [
            ConnectionState::Connecting,
            ConnectionState::Connected,
            ConnectionState::Disconnected,
            ConnectionState::Connecting,
            ConnectionState::Connected
        ]
    );
    let now = net.net.now();
    net.client_mut(&a).client.send(now, a, b"back", 0).unwrap();
    assert!(run_until_received(&mut net, &a, 1));
}
