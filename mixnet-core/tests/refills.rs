//! Under Loopix a client sends one packet per tick; during a download it also sends
//! SURB refills as replies arrive. Those refills must not delay the next request: on
//! 117647c they queued ahead of it, and the first request after a 2 MiB download
//! waited 8–22 s for its head.

mod common;

use std::time::Duration;

use wasm_bindgen_test::wasm_bindgen_test;

use common::*;
use mixnet_core::address::Recipient;
use mixnet_core::client::LoopixConfig;
use mixnet_core::exit::{ExitConfig, ExitLimits};
use mixnet_core::message::RouteMode;
use mixnet_core::policy::ExitPolicy;
use mixnet_core::sim::mixnet::{SimMixnet, SimServer};
use mixnet_core::stream::StreamEvent;
use mixnet_core::time::Instant;

struct H {
    net: SimMixnet,
    exit: Recipient,
    cs: ClientStreams,
    events: Vec<(Instant, StreamEvent)>,
}

impl H {
    fn pump(&mut self) {
        let now = self.net.net.now();
        let (events, _) = self.cs.pump(&mut self.net);
        self.events.extend(events.into_iter().map(|e| (now, e)));
    }

    fn open(&mut self, port: u16, id: u64) -> Instant {
        let (now, exit) = (self.net.net.now(), self.exit);
        self.cs.with(&mut self.net, |s| s.open(exit, "127.0.0.1", port, id)).unwrap();
        now
    }

    /// Steps until `id` reports `want`; returns when.
    fn until(&mut self, id: u64, want: fn(&StreamEvent, u64) -> bool) -> Instant {
        let limit = self.net.net.now() + Duration::from_secs(300);
        while self.net.net.now() < limit {
            self.pump();
            if let Some((t, _)) = self.events.iter().find(|(_, e)| want(e, id)) {
                return *t;
            }
            self.net.net.step();
        }
        panic!(
            "stream {id} did not get there; events {:?}",
            self.events.iter().filter(|(_, e)| !matches!(e, StreamEvent::Data(..))).collect::<Vec<_>>()
        );
    }
}

fn opened(e: &StreamEvent, id: u64) -> bool {
    matches!(e, StreamEvent::Opened(i) if *i == id)
}

fn closed(e: &StreamEvent, id: u64) -> bool {
    matches!(e, StreamEvent::Closed(i, _) if *i == id)
}

#[wasm_bindgen_test(unsupported = test)]
fn the_first_request_after_a_download_does_not_wait_behind_refills() {
    let mut net = SimMixnet::new(70, link(), 2, 2);
    let client = net.add_client_with(0, config(RouteMode::Mixnet), LoopixConfig::default());
    let exit = net.add_exit(
        1,
        ExitConfig {
            messenger: config(RouteMode::Mixnet),
            policy: ExitPolicy::localnet(),
            limits: ExitLimits::default(),
        },
    );
    let x = net.exit_mut(exit.gateway);
    x.servers.insert(([127, 0, 0, 1], 7).into(), SimServer::Sink);
    x.servers.insert(([127, 0, 0, 1], 12).into(), SimServer::Source(2 << 20));
    let mut h = H { net, exit, cs: ClientStreams::new(client), events: vec![] };
    // a small request on an idle client: the reference
    let asked = h.open(7, 1);
    let idle = h.until(1, opened).saturating_duration_since(asked);
    // a 2 MiB download, to its end
    h.open(12, 2);
    h.until(2, closed);
    // the next small request
    let asked = h.open(7, 3);
    let after = h.until(3, opened).saturating_duration_since(asked);
    assert!(
        after <= idle * 3 + Duration::from_millis(500),
        "after the download: {after:?}; on an idle client: {idle:?}"
    );
}
