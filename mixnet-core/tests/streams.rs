//! Streams through an exit over the simulated mixnet (with loss and reordering): the
//! exit answers only through SURBs, data arrives in order, and closing works both ways.
//! The exit's "server" here is an in-process echo.

mod common;

use std::time::Duration;

use wasm_bindgen_test::wasm_bindgen_test;

use common::*;
use mixnet_core::address::Recipient;
use mixnet_core::message::{Event, RouteMode};
use mixnet_core::sim::mixnet::SimMixnet;
use mixnet_core::stream::{ExitAction, ExitStreams, StreamEvent, Streams};

struct Harness {
    net: SimMixnet,
    client: Recipient,
    exit: Recipient,
    streams: Streams,
    exit_streams: ExitStreams,
    seen: (usize, usize),
    events: Vec<StreamEvent>,
}

impl Harness {
    fn new(seed: u64, loss: f64, mode: RouteMode) -> Self {
        let mut net = SimMixnet::new(seed, lossy(loss), 2, 2);
        let client = net.add_client(0, config(mode));
        let exit = net.add_client(1, config(mode));
        Self { net, client, exit, streams: Streams::default(), exit_streams: ExitStreams::default(), seen: (0, 0), events: vec![] }
    }

    /// Moves events between the messengers and the stream state machines; the exit echoes.
    fn pump(&mut self) {
        let now = self.net.net.now();
        let new: Vec<Event> = self.net.client(&self.client).events[self.seen.0..].to_vec();
        self.seen.0 += new.len();
        for e in new {
            if let Event::Received(m) = e {
                assert!(self.streams.handle_message(&m), "client got a non-stream message");
            }
        }
        while let Some(e) = self.streams.poll_event() {
            self.events.push(e);
        }
        let new: Vec<Event> = self.net.client(&self.exit).events[self.seen.1..].to_vec();
        self.seen.1 += new.len();
        let m = &mut self.net.client_mut(&self.exit).messenger;
        for e in new {
            self.exit_streams.handle_messenger_event(&e);
            if let Event::Received(msg) = e {
                assert!(msg.reply_from.is_none() && msg.sender_tag.is_some());
                self.exit_streams.handle_message(msg);
            }
        }
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
                ExitAction::Abort { .. } | ExitAction::ReadReady { .. } => {}
            }
        }
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
        let now = h.net.net.now();
        let exit = h.exit;
        let m = &mut h.net.client_mut(&h.client).messenger;
        let id = h.streams.open(m, now, exit, "echo", 7, 42).unwrap();
        let data = payload(3, 200_000);
        h.streams.write(m, now, id, &data).unwrap();
        h.streams.close(m, now, id).unwrap();
        let ok = h.run_until(|ev| ev.contains(&StreamEvent::Closed(42, None)));
        assert!(
            ok,
            "{mode:?}: stream never closed; got {} bytes, events {:?}\nclient {:?}\nexit {:?}\nexit events {:?}",
            echoed(&h.events, 42).len(),
            h.events.iter().filter(|e| !matches!(e, StreamEvent::Data(..))).collect::<Vec<_>>(),
            h.net.client(&h.client).messenger.stats(),
            h.net.client(&h.exit).messenger.stats(),
            h.net.client(&h.exit).events.iter().filter(|e| !matches!(e, Event::Received(_) | Event::Delivered(_))).collect::<Vec<_>>(),
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
    let now = h.net.net.now();
    let exit = h.exit;
    let m = &mut h.net.client_mut(&h.client).messenger;
    h.streams.open(m, now, exit, "nowhere", 1, 7).unwrap();
    assert!(h.run_until(|ev| !ev.is_empty()));
    assert_eq!(h.events, vec![StreamEvent::OpenFailed(7, "connection refused".into())]);
}
