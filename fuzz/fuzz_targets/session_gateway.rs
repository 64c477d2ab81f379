//! The gateway's session layer on arbitrary input: frames as a client or a server
//! would decode them, and the gateway state machine fed arbitrary transport messages
//! (before and after a real handshake) and node packets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixnet_core::wire::Repr;
use mixnet_core::gateway::{Gateway, GatewayAction, GatewayConfig, Storage};
use mixnet_core::mix::{NodeKeys, ReplayConfig};
use mixnet_core::session::{ClientFrame, ClientSession, ServerFrame};
use mixnet_core::sphinx::{NodeAddress, NodeSecret};
use mixnet_core::time::Instant;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let _ = ClientFrame::parse(data);
    let _ = ServerFrame::parse(data);
    let noise = NodeSecret::from_bytes([1; 32]);
    let gateway_key = noise.public_key();
    let keys = NodeKeys::new(1, NodeSecret::from_bytes([2; 32]), ReplayConfig { capacity: 1000, false_positive: 1e-6 });
    let config = GatewayConfig { max_connections: 4, inbox_page: 4, ..GatewayConfig::default() };
    let mut gw = Gateway::new(config, NodeAddress([9; 32]), noise, keys, ChaCha8Rng::seed_from_u64(1));
    // one client completes a real handshake first, so later frames reach an open session
    let mut client =
        ClientSession::start(&mut ChaCha8Rng::seed_from_u64(2), &gateway_key, NodeSecret::from_bytes([5; 32]));
    gw.handle_connect(Instant::ZERO, 1);
    for _ in 0..4 {
        while let Some(m) = client.poll_send() {
            gw.handle_message(Instant::ZERO, 1, &m);
        }
        while let Some(o) = gw.poll_action() {
            match o {
                GatewayAction::ToClient { message, .. } => {
                    let _ = client.handle_message(&message);
                }
                GatewayAction::Storage(Storage::LoadInbox { conn, .. }) => gw.handle_inbox(conn, vec![]),
                _ => {}
            }
        }
    }
    // records: conn (1), kind (1), len (2), bytes
    let mut rest = data;
    let mut now = 0u64;
    while rest.len() >= 4 {
        let (conn, kind, len) = (u64::from(rest[0] % 6), rest[1], usize::from(u16::from_be_bytes([rest[2], rest[3]])));
        let body = &rest[4..(4 + len).min(rest.len())];
        rest = &rest[(4 + len).min(rest.len())..];
        now += 100;
        let t = Instant::from_millis(now);
        match kind % 5 {
            0 => gw.handle_connect(t, conn),
            1 => gw.handle_message(t, conn, body),
            2 => gw.handle_node_packet(t, body.to_vec()),
            3 => gw.handle_disconnect(conn),
            _ => gw.handle_timeout(t),
        }
        // a client with the real session sends well-formed frames too
        if kind % 7 == 6 {
            let _ = client.ping(now);
            let _ = client.ack_inbox(u64::from(body.first().copied().unwrap_or(0)));
            while let Some(m) = client.poll_send() {
                gw.handle_message(t, 1, &m);
            }
        }
        while let Some(o) = gw.poll_action() {
            if let GatewayAction::Storage(Storage::Store { token, .. }) = o {
                gw.handle_stored(token, Ok(now));
            }
        }
        while gw.poll_transmit().is_some() {}
        assert!(gw.connections() <= 4);
    }
});
