//! A gateway state machine driven directly, with clients speaking the session
//! protocol to it (no network).
#![allow(dead_code, unreachable_pub)]

use mixnet_core::gateway::{Gateway, GatewayAction, GatewayConfig, Storage};
use mixnet_core::message::{Delivery, Transmit};
use mixnet_core::mix::NodeKeys;
use mixnet_core::session::{ClientSession, SessionEvent};
use mixnet_core::sphinx::{NodeAddress, NodeSecret};
use mixnet_core::time::Instant;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

pub struct Setup {
    pub gw: Gateway<ChaCha20Rng>,
    pub noise_public: [u8; 32],
    pub rng: ChaCha20Rng,
}

pub fn setup(config: GatewayConfig) -> Setup {
    let noise = NodeSecret::from_bytes([1; 32]);
    let noise_public = noise.public_key();
    let gw = Gateway::new(
        config,
        NodeAddress([9; 32]),
        noise,
        NodeKeys::new(1, NodeSecret::from_bytes([2; 32]), mixnet_core::sim::mixnet::sim_replay()),
        ChaCha20Rng::seed_from_u64(1),
    );
    Setup { gw, noise_public, rng: ChaCha20Rng::seed_from_u64(2) }
}

pub fn outputs(gw: &mut Gateway<ChaCha20Rng>) -> Vec<GatewayAction> {
    std::iter::from_fn(|| gw.poll_action()).collect()
}

pub fn transmits(gw: &mut Gateway<ChaCha20Rng>) -> Vec<Transmit> {
    std::iter::from_fn(|| gw.poll_transmit()).collect()
}

/// Runs the handshake for a client on `conn`; answers LoadInbox with `inbox`.
pub fn connect(
    s: &mut Setup,
    conn: u64,
    key: &NodeSecret,
    inbox: Vec<(u64, Delivery)>,
) -> (ClientSession, Vec<SessionEvent>) {
    let (client, events, others) = connect_with(s, conn, key, inbox);
    assert!(others.is_empty(), "unexpected {others:?}");
    (client, events)
}

/// Like [`connect`], also returning the outputs that are not part of the handshake.
pub fn connect_with(
    s: &mut Setup,
    conn: u64,
    key: &NodeSecret,
    inbox: Vec<(u64, Delivery)>,
) -> (ClientSession, Vec<SessionEvent>, Vec<GatewayAction>) {
    let mut others = Vec::new();
    let mut client = ClientSession::start(&mut s.rng, &s.noise_public, key.clone());
    s.gw.handle_connect(Instant::ZERO, conn);
    let m1 = client.poll_send().unwrap();
    s.gw.handle_message(Instant::ZERO, conn, &m1);
    let mut events = vec![];
    let mut inbox = Some(inbox);
    loop {
        let mut progressed = false;
        for o in outputs(&mut s.gw) {
            progressed = true;
            match o {
                GatewayAction::ToClient { message, .. } => events.push(client.handle_message(&message).unwrap()),
                GatewayAction::Storage(Storage::LoadInbox { conn: c, .. }) => {
                    s.gw.handle_inbox(c, inbox.take().unwrap_or_default())
                }
                GatewayAction::Storage(Storage::RememberClient { .. }) => {}
                other => others.push(other),
            }
        }
        while let Some(m) = client.poll_send() {
            progressed = true;
            s.gw.handle_message(Instant::ZERO, conn, &m);
        }
        if !progressed {
            return (client, events, others);
        }
    }
}
