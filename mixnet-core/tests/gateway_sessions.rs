//! The gateway's client sessions: handshake and authentication, inbox order and
//! deletion, and bad input (malformed, oversize, unauthenticated, over the rate
//! limit) closing the connection with a reason and being counted.

use wasm_bindgen_test::wasm_bindgen_test;

mod common;

use common::gateway::{connect, outputs, setup, transmits};
use mixnet_core::gateway::{GatewayAction, GatewayConfig, Storage};
use mixnet_core::message::{Delivery, Transmit};
use mixnet_core::session::{ClientSession, SessionError, SessionEvent, code};
use mixnet_core::sphinx::{NodeAddress, NodeSecret, PacketSize};
use mixnet_core::time::Instant;

fn delivery(i: u8) -> Delivery {
    Delivery { identifier: [i; 16], payload: vec![i; 10] }
}

#[wasm_bindgen_test(unsupported = test)]
fn authenticates_and_replays_the_inbox_in_order() {
    let mut s = setup(GatewayConfig::default());
    let key = NodeSecret::from_bytes([5; 32]);
    let inbox = vec![(3, delivery(3)), (7, delivery(7))];
    let (mut client, events) = connect(&mut s, 1, &key, inbox);
    assert_eq!(events[0], SessionEvent::HandshakeComplete);
    assert_eq!(events[1], SessionEvent::Authenticated { stored: 2 });
    assert_eq!(events[2], SessionEvent::Deliver { seq: 3, delivery: delivery(3) });
    assert_eq!(events[3], SessionEvent::Deliver { seq: 7, delivery: delivery(7) });
    assert!(s.gw.is_connected(&key.public_key()));
    client.ack_inbox(7).unwrap();
    s.gw.handle_message(Instant::ZERO, 1, &client.poll_send().unwrap());
    assert_eq!(
        outputs(&mut s.gw),
        vec![GatewayAction::Storage(Storage::DeleteInbox { client: key.public_key(), up_to: 7 })]
    );
    assert_eq!(transmits(&mut s.gw), vec![]);
    // a packet is forwarded to its first hop
    let packet = vec![0u8; PacketSize::Regular.packet_len()];
    client.send_packet(Transmit { first_hop: NodeAddress([4; 32]), packet: packet.clone() }).unwrap();
    s.gw.handle_message(Instant::ZERO, 1, &client.poll_send().unwrap());
    assert_eq!(transmits(&mut s.gw), vec![Transmit { first_hop: NodeAddress([4; 32]), packet }]);
    assert_eq!(outputs(&mut s.gw), vec![]);
}

fn closed_with(outs: &[GatewayAction]) -> Option<u16> {
    outs.iter().find_map(|o| match o {
        GatewayAction::Close { code, .. } => Some(*code),
        _ => None,
    })
}

#[wasm_bindgen_test(unsupported = test)]
fn garbage_before_and_after_the_handshake_closes_with_a_reason() {
    let mut s = setup(GatewayConfig::default());
    s.gw.handle_connect(Instant::ZERO, 1);
    s.gw.handle_message(Instant::ZERO, 1, b"not a noise message at all, long enough to try decrypting it");
    assert_eq!(closed_with(&outputs(&mut s.gw)), Some(code::AUTH_FAILED));
    assert_eq!(s.gw.stats().auth_failures, 1);

    let key = NodeSecret::from_bytes([5; 32]);
    let (_, _) = connect(&mut s, 2, &key, vec![]);
    // a frame that decrypts under no key
    s.gw.handle_message(Instant::ZERO, 2, &[0u8; 64]);
    let outs = outputs(&mut s.gw);
    assert_eq!(closed_with(&outs), Some(code::PROTOCOL));
    assert_eq!(s.gw.stats().bad_client_messages, 1);
    assert!(!s.gw.is_connected(&key.public_key()));

    // oversize
    let (_, _) = connect(&mut s, 3, &key, vec![]);
    s.gw.handle_message(Instant::ZERO, 3, &vec![0u8; 100_000]);
    assert_eq!(closed_with(&outputs(&mut s.gw)), Some(code::TOO_LARGE));
    assert_eq!(s.gw.stats().bad_client_messages, 2);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_packet_of_the_wrong_size_is_a_protocol_violation() {
    let mut s = setup(GatewayConfig::default());
    let key = NodeSecret::from_bytes([5; 32]);
    let (mut client, _) = connect(&mut s, 1, &key, vec![]);
    client.send_packet(Transmit { first_hop: NodeAddress([4; 32]), packet: vec![0; 1000] }).unwrap();
    s.gw.handle_message(Instant::ZERO, 1, &client.poll_send().unwrap());
    let outs = outputs(&mut s.gw);
    assert_eq!(closed_with(&outs), Some(code::PROTOCOL));
    // the client is told why before the close
    let GatewayAction::ToClient { message, .. } = &outs[0] else { panic!("{outs:?}") };
    match client.handle_message(message) {
        Err(SessionError::Gateway { code, message }) => {
            assert_eq!(code, code::PROTOCOL);
            assert!(message.contains("Sphinx packet size"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn over_the_rate_limit_packets_are_dropped_and_the_client_told() {
    let config = GatewayConfig { rate_per_sec: 10, burst: 5, ..GatewayConfig::default() };
    let mut s = setup(config);
    let key = NodeSecret::from_bytes([5; 32]);
    let (mut client, _) = connect(&mut s, 1, &key, vec![]);
    let packet = vec![0u8; PacketSize::Regular.packet_len()];
    for _ in 0..8 {
        client.send_packet(Transmit { first_hop: NodeAddress([4; 32]), packet: packet.clone() }).unwrap();
        s.gw.handle_message(Instant::ZERO, 1, &client.poll_send().unwrap());
    }
    let outs = outputs(&mut s.gw);
    let forwarded = transmits(&mut s.gw).len();
    assert_eq!(forwarded, 5);
    assert_eq!(s.gw.stats().throttled, 3);
    let notices: Vec<_> = outs
        .iter()
        .filter_map(|o| match o {
            GatewayAction::ToClient { message, .. } => Some(client.handle_message(message).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(notices.len(), 1, "one notice, not one per packet");
    assert!(matches!(&notices[0], SessionEvent::Throttled(_)));
    // a second later tokens are back
    client.send_packet(Transmit { first_hop: NodeAddress([4; 32]), packet }).unwrap();
    s.gw.handle_message(Instant::from_millis(1000), 1, &client.poll_send().unwrap());
    assert!(!transmits(&mut s.gw).is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn unauthenticated_connections_time_out() {
    let mut s = setup(GatewayConfig::default());
    s.gw.handle_connect(Instant::ZERO, 1);
    assert_eq!(s.gw.poll_timeout(), Some(Instant::from_millis(10_000)));
    s.gw.handle_timeout(Instant::from_millis(10_000));
    assert_eq!(closed_with(&outputs(&mut s.gw)), Some(code::AUTH_FAILED));
    assert_eq!(s.gw.connections(), 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_second_connection_of_the_same_identity_replaces_the_first() {
    let mut s = setup(GatewayConfig::default());
    let key = NodeSecret::from_bytes([5; 32]);
    let _ = connect(&mut s, 1, &key, vec![]);
    let mut client = ClientSession::start(&mut s.rng, &s.noise_public, key.clone());
    s.gw.handle_connect(Instant::ZERO, 2);
    s.gw.handle_message(Instant::ZERO, 2, &client.poll_send().unwrap());
    let Some(GatewayAction::ToClient { message, .. }) = s.gw.poll_action() else { panic!() };
    client.handle_message(&message).unwrap();
    s.gw.handle_message(Instant::ZERO, 2, &client.poll_send().unwrap());
    let outs = outputs(&mut s.gw);
    assert!(outs.contains(&GatewayAction::Close {
        conn: 1,
        code: code::REPLACED,
        reason: "the same identity connected again".into()
    }));
    assert!(s.gw.is_connected(&key.public_key()));
}
