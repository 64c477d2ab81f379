//! Streams through an exit over the simulated mixnet (with loss and reordering): the
//! exit answers only through SURBs, data arrives in order, and closing works both ways.
//! The exit is the core's `Exit` with simulated servers (`sim::mixnet::SimExit`).

mod common;

use std::time::Duration;

use wasm_bindgen_test::wasm_bindgen_test;

use common::*;
use mixnet_core::address::Recipient;
use mixnet_core::exit::{ExitAction, ExitConfig, ExitLimits};
use mixnet_core::message::RouteMode;
use mixnet_core::policy::ExitPolicy;
use mixnet_core::sim::mixnet::{SimExit, SimMixnet, SimServer};
use mixnet_core::stream::{OpenError, OpenFailure, StreamEvent, StreamsMut};
use rand_chacha::ChaCha20Rng;

struct Harness {
    net: SimMixnet,
    client: Recipient,
    exit: Recipient,
    cs: ClientStreams,
    events: Vec<StreamEvent>,
}

impl Harness {
    fn new(seed: u64, loss: f64, mode: RouteMode) -> Self {
        Self::with_limits(seed, loss, mode, ExitLimits::default())
    }

    fn with_limits(seed: u64, loss: f64, mode: RouteMode, limits: ExitLimits) -> Self {
        let mut net = SimMixnet::new(seed, lossy(loss), 2, 2);
        let client = net.add_client(0, config(mode));
        let exit = net.add_exit(1, ExitConfig { messenger: config(mode), policy: ExitPolicy::localnet(), limits });
        let gw = exit.gateway;
        let x = net.exit_mut(gw);
        x.dns.insert("echo".into(), vec![[127, 0, 0, 1].into()]);
        x.servers.insert(([127, 0, 0, 1], 7).into(), SimServer::Echo);
        x.servers.insert(([127, 0, 0, 1], 9).into(), SimServer::Sink);
        x.servers.insert(([127, 0, 0, 1], 10).into(), SimServer::Stalled);
        Self { net, client, exit, cs: ClientStreams::new(client), events: vec![] }
    }

    fn sim_exit(&mut self) -> &mut SimExit {
        self.net.exit_mut(self.exit.gateway)
    }

    /// Runs `f` on the client's streams at the current simulated time, with the
    /// exit's address.
    fn on_client<T>(&mut self, f: impl FnOnce(&mut StreamsMut<'_, ChaCha20Rng>, Recipient) -> T) -> T {
        let exit = self.exit;
        self.cs.with(&mut self.net, |s| f(s, exit))
    }

    /// Moves the client's messages into its streams.
    fn pump(&mut self) {
        let (events, other) = self.cs.pump(&mut self.net);
        assert_eq!(other, 0, "client got a non-stream message");
        self.events.extend(events);
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&[StreamEvent]) -> bool) -> bool {
        let limit = self.net.net.now() + limit;
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
        h.on_client(|streams, exit| {
            let id = streams.open(exit, "echo", 7, 42).unwrap();
            streams.write(id, &data).unwrap();
            streams.close(id).unwrap();
        });
        let ok = h.run_until(Duration::from_secs(120), |ev| ev.contains(&StreamEvent::Closed(42, None)));
        let (exit_messenger, exit_stats) =
            (h.sim_exit().exit.messenger().stats().clone(), h.sim_exit().exit.stats().clone());
        assert!(
            ok,
            "{mode:?}: stream never closed; got {} bytes, events {:?}\nclient {:?}\nexit {:?}\nexit events {:?}",
            echoed(&h.events, 42).len(),
            h.events.iter().filter(|e| !matches!(e, StreamEvent::Data(..))).collect::<Vec<_>>(),
            h.net.client(&h.client).client.stats().messenger,
            exit_messenger,
            exit_stats,
        );
        assert_eq!(h.events[0], StreamEvent::Opened(42));
        assert_eq!(echoed(&h.events, 42), data, "{mode:?}: echo differs");
        assert_eq!(h.cs.streams.open_streams(), 0);
        // the exit answered through SURBs only, topping them up when it ran low
        assert_eq!(h.sim_exit().exit.open_streams(), 0);
        assert_eq!(h.sim_exit().connections(), 0, "the connection was released");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn refused_connections_are_reported() {
    let mut h = Harness::new(62, 0.0, RouteMode::Fast);
    h.on_client(|streams, exit| streams.open(exit, "nowhere", 1, 7)).unwrap();
    assert!(h.run_until(Duration::from_secs(60), |ev| !ev.is_empty()));
    let not_found = OpenError::new(OpenFailure::NotFound, "cannot resolve the host: no such host");
    assert_eq!(h.events, vec![StreamEvent::OpenFailed(7, not_found)]);
    h.on_client(|streams, exit| streams.open(exit, "127.0.0.1", 1, 8)).unwrap();
    assert!(h.run_until(Duration::from_secs(60), |ev| ev.len() == 2));
    assert_eq!(h.events[1], StreamEvent::OpenFailed(8, OpenError::new(OpenFailure::Refused, "connection refused")));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_reset_stream_is_aborted_at_the_exit() {
    let mut h = Harness::new(63, 0.0, RouteMode::Fast);
    h.on_client(|streams, exit| streams.open(exit, "echo", 7, 9)).unwrap();
    assert!(h.run_until(Duration::from_secs(60), |ev| ev.contains(&StreamEvent::Opened(9))));
    h.on_client(|streams, _| streams.reset(9, "aborted by the application")).unwrap();
    assert_eq!(h.cs.streams.open_streams(), 0, "forgotten at once");
    let limit = h.net.net.now() + Duration::from_secs(10);
    while h.sim_exit().connections() > 0 && h.net.net.now() < limit && h.net.net.step() {
        h.pump();
    }
    assert_eq!(h.sim_exit().connections(), 0, "the exit dropped the connection");
    assert!(h.sim_exit().actions.iter().any(|a| matches!(a, ExitAction::Abort { key } if key.1 == 9)));
    assert_eq!(h.sim_exit().exit.open_streams(), 0);
}
