//! Shared helpers for the simulated-network tests.
#![allow(dead_code, unreachable_pub)]

pub mod gateway;

use std::time::Duration;

use mixnet_core::address::Recipient;
use mixnet_core::client::ClientEvent;
use mixnet_core::message::{MessageId, MessengerConfig, RouteMode};
use mixnet_core::sim::LinkConfig;
use mixnet_core::sim::mixnet::SimMixnet;
use mixnet_core::stream::{StreamEvent, Streams, StreamsMut};
use rand_chacha::ChaCha20Rng;

pub fn link() -> LinkConfig {
    LinkConfig::ideal(Duration::from_millis(5))
}

pub fn lossy(loss: f64) -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(20),
        loss,
        duplicate: 0.02,
        corrupt: 0.0,
    }
}

pub fn config(mode: RouteMode) -> MessengerConfig {
    MessengerConfig { mode, ack_wait_addition: Duration::from_millis(300), ..MessengerConfig::default() }
}

pub fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

pub fn received(net: &SimMixnet, who: &Recipient) -> Vec<Vec<u8>> {
    net.client(who).received().map(|m| m.data.clone()).collect()
}

pub fn delivered(net: &SimMixnet, who: &Recipient, id: MessageId) -> bool {
    net.client(who).events.contains(&ClientEvent::Delivered(id))
}

pub fn failures(net: &SimMixnet, who: &Recipient) -> Vec<ClientEvent> {
    net.client(who).events.iter().filter(|e| matches!(e, ClientEvent::Failed { .. })).cloned().collect()
}

/// Runs until `who` has received `n` messages (or a minute of simulated time).
pub fn run_until_received(net: &mut SimMixnet, who: &Recipient, n: usize) -> bool {
    let id = mixnet_core::sphinx::NodeAddress(who.identity);
    net.run_until(Duration::from_secs(60), |net| match net.node(&id) {
        Some(mixnet_core::sim::mixnet::SimNode::Client(c)) => c.received().count() >= n,
        _ => false,
    })
}

/// Runs until `who` saw `Delivered(id)`.
pub fn run_until_delivered(net: &mut SimMixnet, who: &Recipient, id: MessageId) -> bool {
    let addr = mixnet_core::sphinx::NodeAddress(who.identity);
    net.run_until(Duration::from_secs(120), |net| match net.node(&addr) {
        Some(mixnet_core::sim::mixnet::SimNode::Client(c)) => c.events.contains(&ClientEvent::Delivered(id)),
        _ => false,
    })
}

/// A simulated client's exit streams, fed with the client's messages.
pub struct ClientStreams {
    pub who: Recipient,
    pub streams: Streams,
    /// The client's events already offered.
    seen: usize,
}

impl ClientStreams {
    pub fn new(who: Recipient) -> Self {
        Self { who, streams: Streams::default(), seen: 0 }
    }

    /// Runs `f` on the streams through the client, at the network's time.
    pub fn with<T>(&mut self, net: &mut SimMixnet, f: impl FnOnce(&mut StreamsMut<'_, ChaCha20Rng>) -> T) -> T {
        let now = net.net.now();
        f(&mut self.streams.with(&mut net.client_mut(&self.who).client, now))
    }

    /// Offers the client's new messages to its streams: the stream events, and how
    /// many messages were not stream traffic.
    pub fn pump(&mut self, net: &mut SimMixnet) -> (Vec<StreamEvent>, usize) {
        let new: Vec<ClientEvent> = net.client(&self.who).events[self.seen..].to_vec();
        self.seen += new.len();
        let mut other = 0;
        self.with(net, |streams| {
            for e in new {
                if let ClientEvent::Message(m) = e
                    && !streams.handle_message(&m)
                {
                    other += 1;
                }
            }
        });
        (std::iter::from_fn(|| self.streams.poll_event()).collect(), other)
    }
}
