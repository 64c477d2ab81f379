//! Streams through an exit over the simulated mixnet (with loss and reordering): the
//! exit answers only through SURBs, data arrives in order, and closing works both ways.
//! The exit's "server" here is an in-process echo.

mod common;

use std::time::Duration;

use wasm_bindgen_test::wasm_bindgen_test;

use common::*;
use mixnet_core::address::Recipient;
use mixnet_core::client::ClientEvent;
use mixnet_core::message::{Messenger, RouteMode};
use mixnet_core::sim::mixnet::SimMixnet;
use mixnet_core::stream::{ExitAction, ExitStreams, StreamEvent, Streams};
use mixnet_core::time::Instant;
use rand_chacha::ChaCha20Rng;

struct Harness {
    net: SimMixnet,
    client: Recipient,
    exit: Recipient,
    streams: Streams,
    exit_streams: ExitStreams,
    seen: (usize, usize),
    events: Vec<StreamEvent>,
    /// Streams the exit aborted.
    aborted: usize,
}

impl Harness {
    fn new(seed: u64, loss: f64, mode: RouteMode) -> Self {
        let mut net = SimMixnet::new(seed, lossy(loss), 2, 2);
        let client = net.add_client(0, config(mode));
        let exit = net.add_client(1, config(mode));
        Self {
            net,
            client,
            exit,
            streams: Streams::default(),
            exit_streams: ExitStreams::default(),
            seen: (0, 0),
            events: vec![],
            aborted: 0,
        }
    }

    /// Runs `f` on the client's streams and messenger at the current simulated time,
    /// with the exit's address, then flushes what it queued.
    fn on_client<T>(
        &mut self,
        f: impl FnOnce(&mut Streams, &mut Messenger<ChaCha20Rng>, Instant, Recipient) -> T,
    ) -> T {
        let now = self.net.net.now();
        let c = &mut self.net.client_mut(&self.client).client;
        let out = f(&mut self.streams, c.messenger_mut(), now, self.exit);
        c.flush(now);
        out
    }

    /// Moves events between the clients and the stream state machines; the exit echoes.
    fn pump(&mut self) {
        let now = self.net.net.now();
        let new: Vec<ClientEvent> = self.net.client(&self.client).events[self.seen.0..].to_vec();
        self.seen.0 += new.len();
        for e in new {
            if let ClientEvent::Message(m) = e {
                assert!(self.streams.handle_message(&m), "client got a non-stream message");
            }
        }
        while let Some(e) = self.streams.poll_event() {
            self.events.push(e);
        }
        let new: Vec<ClientEvent> = self.net.client(&self.exit).events[self.seen.1..].to_vec();
        self.seen.1 += new.len();
        let client = &mut self.net.client_mut(&self.exit).client;
        for e in new {
            match e {
                ClientEvent::Delivered(id) => self.exit_streams.delivered(id),
                ClientEvent::Failed { id, .. } => self.exit_streams.failed(id),
                ClientEvent::Message(msg) => {
                    assert!(msg.reply_from.is_none() && msg.sender_tag.is_some());
                    self.exit_streams.handle_message(msg);
                }
                _ => {}
            }
        }
        let m = client.messenger_mut();
        while let Some(a) = self.exit_streams.poll_action() {
            match a {
                ExitAction::Connect { key, host, port } => {
                    if host == "echo" && port == 7 {
                        self.exit_streams.connected(m, now, key);
                    } else {
                        self.exit_streams.connect_failed(m, now, key, "connection refused");
                    }
                }
                ExitAction::Write { key, data } => self.exit_streams.read(m, now, key, &data),
                ExitAction::ShutdownWrite { key } => self.exit_streams.eof(m, now, key, None),
                ExitAction::Abort { .. } => self.aborted += 1,
                ExitAction::ReadReady { .. } => {}
            }
        }
        client.flush(now);
    }

    fn run_until(&mut self, mut done: impl FnMut(&[StreamEvent]) -> bool) -> bool {
        let limit = self.net.net.now() + Duration::from_secs(120);
        while self.net.net.now() < limit {
            self.pump();
            if done(&self.events) {
                return true;
            }
            if !self.net.net.step() {
                self.pump();
                return done(&self.events);
            }
        }
        false
    }
}

fn echoed(events: &[StreamEvent], id: u64) -> Vec<u8> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Data(i, d) if *i == id => Some(d.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

#[wasm_bindgen_test(unsupported = test)]
fn echo_through_the_exit_in_order_with_loss() {
    for (seed, mode) in [(60, RouteMode::Mixnet), (61, RouteMode::Fast)] {
        let mut h = Harness::new(seed, 0.05, mode);
        let data = payload(3, 200_000);
        h.on_client(|streams, m, now, exit| {
            let id = streams.open(m, now, exit, "echo", 7, 42).unwrap();
            streams.write(m, now, id, &data).unwrap();
            streams.close(m, now, id).unwrap();
        });
        let ok = h.run_until(|ev| ev.contains(&StreamEvent::Closed(42, None)));
        assert!(
            ok,
            "{mode:?}: stream never closed; got {} bytes, events {:?}\nclient {:?}\nexit {:?}\nexit events {:?}",
            echoed(&h.events, 42).len(),
            h.events.iter().filter(|e| !matches!(e, StreamEvent::Data(..))).collect::<Vec<_>>(),
            h.net.client(&h.client).client.stats().messenger,
            h.net.client(&h.exit).client.stats().messenger,
            h.net
                .client(&h.exit)
                .events
                .iter()
                .filter(|e| !matches!(e, ClientEvent::Message(_) | ClientEvent::Delivered(_)))
                .collect::<Vec<_>>(),
        );
        assert_eq!(h.events[0], StreamEvent::Opened(42));
        assert_eq!(echoed(&h.events, 42), data, "{mode:?}: echo differs");
        assert_eq!(h.streams.open_streams(), 0);
        // the exit answered through SURBs only, topping them up when it ran low
        assert!(h.exit_streams.is_empty());
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn refused_connections_are_reported() {
    let mut h = Harness::new(62, 0.0, RouteMode::Fast);
    h.on_client(|streams, m, now, exit| streams.open(m, now, exit, "nowhere", 1, 7)).unwrap();
    assert!(h.run_until(|ev| !ev.is_empty()));
    assert_eq!(h.events, vec![StreamEvent::OpenFailed(7, "connection refused".into())]);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_reset_stream_is_aborted_at_the_exit() {
    let mut h = Harness::new(63, 0.0, RouteMode::Fast);
    h.on_client(|streams, m, now, exit| streams.open(m, now, exit, "echo", 7, 9)).unwrap();
    assert!(h.run_until(|ev| ev.contains(&StreamEvent::Opened(9))));
    h.on_client(|streams, m, now, _| streams.reset(m, now, 9, "aborted by the application")).unwrap();
    assert_eq!(h.streams.open_streams(), 0, "forgotten at once");
    let limit = h.net.net.now() + Duration::from_secs(10);
    while h.aborted == 0 && h.net.net.now() < limit && h.net.net.step() {
        h.pump();
    }
    assert_eq!(h.aborted, 1, "the exit dropped the connection");
    assert!(h.exit_streams.is_empty());
}
