//! Messages cross the simulated mixnet: to self, to another client, in both modes,
//! small and large, and the sender learns they were delivered.

use wasm_bindgen_test::wasm_bindgen_test;

mod common;

use common::*;
use mixnet_core::message::RouteMode;
use mixnet_core::sim::mixnet::SimMixnet;
use mixnet_core::time::Instant;

#[wasm_bindgen_test(unsupported = test)]
fn message_to_self_arrives_and_is_acknowledged() {
    for mode in [RouteMode::Mixnet, RouteMode::Fast] {
        let mut net = SimMixnet::new(1, link(), 2, 2);
        let me = net.add_client(0, config(mode));
        let id = net.client_mut(&me).client.send(Instant::ZERO, me, b"hello me", 0).unwrap();
        assert!(run_until_received(&mut net, &me, 1));
        assert_eq!(received(&net, &me), vec![b"hello me".to_vec()]);
        assert!(run_until_delivered(&mut net, &me, id), "{mode:?}: no Delivered event");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_to_b_across_gateways_in_both_modes() {
    for (seed, mode) in [(2, RouteMode::Mixnet), (3, RouteMode::Fast)] {
        let mut net = SimMixnet::new(seed, link(), 2, 2);
        let a = net.add_client(0, config(mode));
        let b = net.add_client(1, config(mode));
        let msgs: Vec<_> = (0..5).map(|i| payload(i, 100 + 700 * usize::from(i))).collect();
        let ids: Vec<_> =
            msgs.iter().map(|m| net.client_mut(&a).client.send(Instant::ZERO, b, m, 0).unwrap()).collect();
        assert!(run_until_received(&mut net, &b, msgs.len()));
        let mut got = received(&net, &b);
        got.sort();
        let mut want = msgs.clone();
        want.sort();
        assert_eq!(got, want);
        for id in ids {
            assert!(run_until_delivered(&mut net, &a, id));
        }
        // nothing was delivered to the sender and nobody saw malformed input
        assert!(received(&net, &a).is_empty());
        assert_eq!(net.client(&b).client.stats().messenger.dropped, 0);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn one_megabyte_message_arrives_intact() {
    let mut net = SimMixnet::new(4, link(), 2, 2);
    let a = net.add_client(0, config(RouteMode::Mixnet));
    let b = net.add_client(1, config(RouteMode::Mixnet));
    let big = payload(9, 1 << 20);
    let id = net.client_mut(&a).client.send(Instant::ZERO, b, &big, 0).unwrap();
    assert!(run_until_received(&mut net, &b, 1));
    assert_eq!(received(&net, &b)[0], big);
    assert!(run_until_delivered(&mut net, &a, id));
    // every packet on the wire had the same size
    assert_eq!(net.client(&a).client.stats().messenger.retransmissions, 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn every_packet_on_the_wire_has_the_same_size() {
    let mut net = SimMixnet::new(5, link(), 1, 2);
    let a = net.add_client(0, config(RouteMode::Mixnet));
    let b = net.add_client(1, config(RouteMode::Mixnet));
    net.net.start_capture();
    let id = net.client_mut(&a).client.send(Instant::ZERO, b, &payload(1, 5000), 4).unwrap();
    let ok = run_until_delivered(&mut net, &a, id);
    assert!(
        ok,
        "a: {:?} {:?}\nb: {:?} {:?}",
        net.client(&a).events,
        net.client(&a).client.stats().messenger,
        net.client(&b).events.len(),
        net.client(&b).client.stats().messenger
    );
    let tag = net.client(&b).received().next().unwrap().sender_tag.unwrap();
    net.client_mut(&b).client.reply(Instant::ZERO, tag, b"short reply").unwrap();
    assert!(run_until_received(&mut net, &a, 1));
    // also a cover packet
    let cover = net.client_mut(&a).client.messenger_mut().cover_packet(Instant::ZERO).unwrap();
    let nodes: Vec<[u8; 32]> = net
        .topology
        .mixes
        .iter()
        .map(|m| m.identity.0)
        .chain(net.topology.gateways.iter().map(|g| g.identity.0))
        .collect();
    // between nodes: data, acks and replies alike
    let sizes: std::collections::BTreeSet<usize> = net
        .net
        .captured()
        .iter()
        .filter(|(from, to, _)| nodes.contains(&from.0) && nodes.contains(&to.0))
        .map(|(_, _, bytes)| bytes.len())
        .collect();
    assert_eq!(sizes, [2413].into_iter().collect(), "mixnet packets of other sizes seen");
    assert_eq!(cover.packet.len(), 2413);
}
