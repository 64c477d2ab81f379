//! Attacks on a gateway's protocol state, in the simulator or on the state machine
//! directly: storage for strangers, inbox floods, huge inboxes, frame floods, too
//! many connections, too many identities. Each is pushed past its bound; the
//! gateway must stay within it and keep serving its honest clients.

mod common;

use std::time::Duration;

use wasm_bindgen_test::wasm_bindgen_test;

use common::gateway::{connect, connect_with, outputs, setup};
use common::*;
use mixnet_core::address::Recipient;
use mixnet_core::client::ClientEvent;
use mixnet_core::gateway::{GatewayAction, GatewayConfig, Storage};
use mixnet_core::message::RouteMode;
use mixnet_core::session::{SessionEvent, code};
use mixnet_core::sim::mixnet::SimMixnet;
use mixnet_core::sphinx::NodeSecret;
use mixnet_core::time::Instant;

fn send(net: &mut SimMixnet, from: &Recipient, to: Recipient, data: &[u8]) {
    let now = net.net.now();
    net.client_mut(from).client.send(now, to, data, 0).unwrap();
}

fn failed(net: &SimMixnet, who: &Recipient) -> usize {
    net.client(who).events.iter().filter(|e| matches!(e, ClientEvent::Failed { .. })).count()
}

/// On 117647c a gateway stored a delivery for any 32-byte destination.
#[wasm_bindgen_test(unsupported = test)]
fn a_gateway_stores_only_for_identities_that_authenticated_there() {
    let mut net = SimMixnet::new(90, link(), 1, 2);
    let a = net.add_client(0, config(RouteMode::Fast));
    net.run_until(Duration::from_millis(500), |_| false);
    // an address at gateway 1 whose identity never connected there
    let gw1 = net.topology.gateways[1].identity.0;
    let stranger =
        Recipient { identity: [0x77; 32], encryption: NodeSecret::from_bytes([5; 32]).public_key(), gateway: gw1 };
    for i in 0..20u8 {
        send(&mut net, &a, stranger, &payload(i, 1000));
    }
    net.run_until(Duration::from_secs(300), |_| false);
    let g = net.gateway_mut(gw1);
    assert_eq!(g.stored(), 0, "nothing stored for a stranger");
    assert!(g.gateway.stats().unknown_destination >= 20);
    assert_eq!(g.gateway.inbox_usage(), (0, 0));
    assert_eq!(failed(&net, &a), 20, "the sender is told, loudly, instead of silently losing them");
}

/// On 117647c the only bound was a per-destination count: many destinations, or
/// large deliveries, filled the disk.
#[wasm_bindgen_test(unsupported = test)]
fn inbox_floods_stop_at_the_client_and_total_bounds() {
    // each delivery's payload is one packet's data (2048 B)
    let per_client_bytes = 10 * 2048;
    let total_bytes = 25 * 2048;
    let small = GatewayConfig {
        inbox_bytes_per_client: per_client_bytes,
        inbox_total_bytes: total_bytes,
        ..GatewayConfig::default()
    };
    // only the victims' gateway is small (the attacker's acks come through its own)
    let mut net = SimMixnet::new_with_gateways(91, link(), 1, vec![GatewayConfig::default(), small]);
    let gw1 = net.topology.gateways[1].identity.0;
    let attacker = net.add_client(0, config(RouteMode::Fast));
    let victims: Vec<Recipient> = (0..3).map(|_| net.add_client(1, config(RouteMode::Fast))).collect();
    net.run_until(Duration::from_millis(500), |_| false);
    for v in &victims {
        net.set_client_online(v, false);
    }
    for v in &victims {
        for i in 0..15u8 {
            send(&mut net, &attacker, *v, &payload(i, 100));
        }
    }
    net.run_until(Duration::from_secs(20), |_| false);
    let g = net.gateway_mut(gw1);
    let (_, bytes) = g.gateway.inbox_usage();
    assert!(bytes <= total_bytes, "{bytes} B stored");
    assert_eq!(g.stored(), 25, "10 + 10 + 5: per client, then the total, bites");
    let s = g.gateway.stats();
    assert!(s.inbox_full_client > 0 && s.inbox_full_total > 0, "{s:?}");
    // what was refused was never acknowledged: the sender gave up on it, loudly
    assert_eq!(failed(&net, &attacker), 3 * 15 - 25);
    // and what was stored arrives when its owner comes back
    net.set_client_online(&victims[0], true);
    assert!(run_until_received(&mut net, &victims[0], 10));
}

/// On 117647c the whole inbox was pushed at once into a 4096-message queue.
#[wasm_bindgen_test(unsupported = test)]
fn a_large_inbox_is_pushed_a_page_at_a_time() {
    let page = 32;
    let paged = GatewayConfig { inbox_page: page, ..GatewayConfig::default() };
    let mut net = SimMixnet::new_with_gateways(92, link(), 1, vec![paged.clone(), paged]);
    let a = net.add_client(0, config(RouteMode::Fast));
    let b = net.add_client(1, config(RouteMode::Fast));
    net.run_until(Duration::from_millis(500), |_| false);
    net.set_client_online(&b, false);
    let n = 300;
    for i in 0..n {
        send(&mut net, &a, b, &payload(i as u8, 50));
    }
    net.run_until(Duration::from_secs(30), |_| false);
    assert_eq!(net.gateway_mut(b.gateway).stored(), n);
    net.set_client_online(&b, true);
    assert!(run_until_received(&mut net, &b, n));
    let want: Vec<Vec<u8>> = (0..n).map(|i| payload(i as u8, 50)).collect();
    assert_eq!(received(&net, &b), want, "in order");
    let (pages, largest) = net.gateway_mut(b.gateway).pages;
    assert!(pages >= n / page, "{pages} pages");
    assert!(largest <= page);
    net.run_until(Duration::from_secs(2), |_| false);
    assert_eq!(net.gateway_mut(b.gateway).stored(), 0, "all acknowledged and deleted");
}

/// On 117647c only `SendPacket` cost a token: acks and pings were free.
#[wasm_bindgen_test(unsupported = test)]
fn every_frame_kind_is_rate_limited() {
    let mut s = setup(GatewayConfig { rate_per_sec: 10, burst: 5, ..GatewayConfig::default() });
    let key = NodeSecret::from_bytes([5; 32]);
    let (mut client, _) = connect(&mut s, 1, &key, vec![]);
    for i in 0..20 {
        client.ping(i).unwrap();
        client.ack_inbox(i).unwrap();
        while let Some(m) = client.poll_send() {
            s.gw.handle_message(Instant::ZERO, 1, &m);
        }
    }
    let outs = outputs(&mut s.gw);
    let pongs = outs
        .iter()
        .filter_map(|o| match o {
            GatewayAction::ToClient { message, .. } => Some(client.handle_message(message).unwrap()),
            _ => None,
        })
        .filter(|e| matches!(e, SessionEvent::Pong(_)))
        .count();
    assert!(pongs <= 5, "{pongs} pongs for a burst of 5");
    assert_eq!(s.gw.stats().throttled, 40 - 5);
}

#[wasm_bindgen_test(unsupported = test)]
fn connections_past_the_limit_are_closed_with_a_reason() {
    let mut s = setup(GatewayConfig { max_connections: 3, ..GatewayConfig::default() });
    for conn in 1..=5 {
        s.gw.handle_connect(Instant::ZERO, conn);
    }
    let outs = outputs(&mut s.gw);
    let busy: Vec<u64> = outs
        .iter()
        .filter_map(|o| match o {
            GatewayAction::Close { conn, code: c, .. } if *c == code::BUSY => Some(*conn),
            _ => None,
        })
        .collect();
    assert_eq!(busy, vec![4, 5]);
    assert_eq!(s.gw.connections(), 3);
    assert_eq!(s.gw.stats().refused_connections, 2);
    // the unauthenticated ones time out and make room again
    s.gw.handle_timeout(Instant::from_millis(10_000));
    assert_eq!(s.gw.connections(), 0);
    outputs(&mut s.gw);
    let key = NodeSecret::from_bytes([5; 32]);
    let (_, events) = connect(&mut s, 9, &key, vec![]);
    assert!(matches!(events[1], SessionEvent::Authenticated { .. }));
}

#[wasm_bindgen_test(unsupported = test)]
fn the_identity_registry_forgets_the_least_recently_seen_offline_client() {
    let mut s = setup(GatewayConfig { max_clients: 3, ..GatewayConfig::default() });
    let keys: Vec<NodeSecret> = (10..16u8).map(|i| NodeSecret::from_bytes([i; 32])).collect();
    let mut forgotten = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let (_, _, others) = connect_with(&mut s, i as u64 + 1, k, vec![]);
        s.gw.handle_disconnect(i as u64 + 1);
        forgotten.extend(others.into_iter().filter_map(|o| match o {
            GatewayAction::Storage(Storage::ForgetClient { client }) => Some(client),
            _ => None,
        }));
    }
    assert_eq!(s.gw.registered_clients(), 3);
    let first_three: Vec<[u8; 32]> = keys[..3].iter().map(NodeSecret::public_key).collect();
    assert_eq!(forgotten, first_three, "oldest first");
    assert_eq!(s.gw.stats().clients_evicted, 3);
}

/// Acknowledgements that arrive while a page is read must not leave the rest of the
/// inbox behind (found by localnet's 1 MB message: 536 of 662 fragments pushed, then
/// nothing, 4 runs in 10).
#[wasm_bindgen_test(unsupported = test)]
fn a_page_that_comes_back_after_every_ack_still_leads_to_the_next() {
    use mixnet_core::sphinx::{
        self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, PacketSize, RouteNode,
    };
    use rand_core::SeedableRng;
    let page = 4;
    let mut s = setup(GatewayConfig { inbox_page: page, ..GatewayConfig::default() });
    let key = NodeSecret::from_bytes([5; 32]);
    let (mut client, _) = connect(&mut s, 1, &key, vec![]);
    // ten replies for the client reach the gateway (final hop) and are stored
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(3);
    let route =
        [RouteNode { address: NodeAddress([9; 32]), key: NodeKey::new(NodeSecret::from_bytes([2; 32]).public_key()) }];
    let dest = Destination { address: DestinationAddress(key.public_key()), identifier: [1; 16] };
    for i in 0..10u8 {
        let p = sphinx::build_packet(&mut rng, &route, &dest, &[Delay(0)], &[i; 64], PacketSize::Regular.payload_len())
            .unwrap();
        s.gw.handle_node_packet(Instant::ZERO, p);
    }
    let tokens: Vec<u64> = outputs(&mut s.gw)
        .into_iter()
        .filter_map(|o| if let GatewayAction::Storage(Storage::Store { token, .. }) = o { Some(token) } else { None })
        .collect();
    assert_eq!(tokens.len(), 10);
    for (seq, token) in tokens.iter().enumerate() {
        s.gw.handle_stored(*token, Ok(seq as u64 + 1));
    }
    let pushed = |outs: &[GatewayAction], client: &mut mixnet_core::session::ClientSession| -> Vec<u64> {
        outs.iter()
            .filter_map(|o| match o {
                GatewayAction::ToClient { message, .. } => match client.handle_message(message).unwrap() {
                    SessionEvent::Deliver { seq, .. } => Some(seq),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    let outs = outputs(&mut s.gw);
    assert_eq!(pushed(&outs, &mut client), vec![1, 2, 3, 4], "a window's worth");
    let ack = |s: &mut common::gateway::Setup, client: &mut mixnet_core::session::ClientSession, seq: u64| {
        client.ack_inbox(seq).unwrap();
        let m = client.poll_send().unwrap();
        s.gw.handle_message(Instant::ZERO, 1, &m);
        outputs(&mut s.gw)
    };
    let outs = ack(&mut s, &mut client, 2);
    let load = outs.iter().find_map(|o| match o {
        GatewayAction::Storage(Storage::LoadInbox { after, limit, .. }) => Some((*after, *limit)),
        _ => None,
    });
    assert_eq!(load, Some((4, 2)));
    // everything pushed is acknowledged before the page comes back
    let outs = ack(&mut s, &mut client, 4);
    assert!(!outs.iter().any(|o| matches!(o, GatewayAction::Storage(Storage::LoadInbox { .. }))), "one page at a time");
    let d = |i: u64| mixnet_core::message::Delivery { identifier: [1; 16], payload: vec![i as u8; 8] };
    s.gw.handle_inbox(1, vec![(5, d(5)), (6, d(6))]);
    let outs = outputs(&mut s.gw);
    assert_eq!(pushed(&outs, &mut client), vec![5, 6]);
    let next = outs.iter().find_map(|o| match o {
        GatewayAction::Storage(Storage::LoadInbox { after, .. }) => Some(*after),
        _ => None,
    });
    assert_eq!(next, Some(6), "the next page is asked for at once");
}
