//! Attacks anonymous senders can mount on the exit, in the simulator (the exit is
//! the core's `Exit`, as the gateway runs it, with simulated servers). Each attack
//! is pushed past its bound; then an honest client's stream must still work, and
//! what the exit holds must be within the bound.

mod common;

use std::time::Duration;

use wasm_bindgen_test::wasm_bindgen_test;

use common::*;
use mixnet_core::address::Recipient;
use mixnet_core::exit::{ExitConfig, ExitLimits};
use mixnet_core::message::{MessengerConfig, RouteMode};
use mixnet_core::policy::ExitPolicy;
use mixnet_core::sim::mixnet::{SimExit, SimMixnet, SimServer};
use mixnet_core::stream::{OpenError, OpenFailure, StreamEvent, StreamMessage};
use mixnet_core::wire::Repr;

struct Net {
    net: SimMixnet,
    exit: Recipient,
}

impl Net {
    fn new(seed: u64, limits: ExitLimits, messenger: MessengerConfig) -> Self {
        let mut net = SimMixnet::new(seed, link(), 1, 2);
        let exit = net.add_exit(1, ExitConfig { messenger, policy: ExitPolicy::localnet(), limits });
        let x = net.exit_mut(exit.gateway);
        x.dns.insert("echo".into(), vec![[127, 0, 0, 1].into()]);
        x.dns.insert("intranet.example".into(), vec![[10, 0, 0, 5].into()]);
        x.servers.insert(([127, 0, 0, 1], 7).into(), SimServer::Echo);
        x.servers.insert(([127, 0, 0, 1], 9).into(), SimServer::Sink);
        x.servers.insert(([127, 0, 0, 1], 10).into(), SimServer::Stalled);
        x.servers.insert(([127, 0, 0, 1], 11).into(), SimServer::Unresponsive);
        Self { net, exit }
    }

    fn exit(&mut self) -> &mut SimExit {
        self.net.exit_mut(self.exit.gateway)
    }

    fn client(&mut self) -> Recipient {
        self.net.add_client(0, config(RouteMode::Fast))
    }

    /// Sends raw stream messages from `who` (with one SURB each, as a client does).
    fn raw(&mut self, who: &Recipient, msgs: &[StreamMessage]) {
        let now = self.net.net.now();
        let exit = self.exit;
        let c = &mut self.net.client_mut(who).client;
        for m in msgs {
            c.messenger_mut().send(now, exit, &m.to_bytes(), 1).unwrap();
        }
        c.flush(now);
    }

    fn run(&mut self, d: Duration) {
        self.net.net.run_for(d);
    }
}

/// An honest client's stream: open, echo 100 kB, close.
struct Honest {
    cs: ClientStreams,
    events: Vec<StreamEvent>,
}

impl Honest {
    fn start(n: &mut Net, host: &str, port: u16, data: &[u8]) -> Self {
        let who = n.client();
        let mut h = Self { cs: ClientStreams::new(who), events: vec![] };
        let exit = n.exit;
        h.cs.with(&mut n.net, |s| {
            s.open(exit, host, port, 1).unwrap();
            s.write(1, data).unwrap();
            s.close(1).unwrap();
        });
        h
    }

    fn pump(&mut self, n: &mut Net) {
        let (events, _) = self.cs.pump(&mut n.net);
        self.events.extend(events);
    }

    fn run_until_closed(&mut self, n: &mut Net, limit: Duration) -> Option<StreamEvent> {
        let until = n.net.net.now() + limit;
        while n.net.net.now() < until {
            self.pump(n);
            if let Some(e) =
                self.events.iter().find(|e| matches!(e, StreamEvent::Closed(..) | StreamEvent::OpenFailed(..)))
            {
                return Some(e.clone());
            }
            if !n.net.net.step() {
                break;
            }
        }
        self.pump(n);
        None
    }

    fn echoed(&self) -> Vec<u8> {
        self.events
            .iter()
            .filter_map(|e| if let StreamEvent::Data(_, d) = e { Some(d.clone()) } else { None })
            .flatten()
            .collect()
    }
}

fn echo_works(n: &mut Net) {
    let data = payload(9, 100_000);
    let mut h = Honest::start(n, "echo", 7, &data);
    assert_eq!(h.run_until_closed(n, Duration::from_secs(60)), Some(StreamEvent::Closed(1, None)));
    assert_eq!(h.echoed(), data, "the honest stream's echo");
}

/// On 117647c, 1024 `Data`/`Close` messages for streams never opened filled global
/// slots that nothing freed, and every `Open` after them was ignored.
#[wasm_bindgen_test(unsupported = test)]
fn messages_for_unopened_streams_cannot_block_anyone_s_open() {
    let limits = ExitLimits::default();
    let mut n = Net::new(80, limits.clone(), config(RouteMode::Fast));
    // five attackers (five sender tags), each three times the global bound's worth
    let attackers: Vec<Recipient> = (0..5).map(|_| n.client()).collect();
    for (i, a) in attackers.iter().enumerate() {
        let msgs: Vec<StreamMessage> = (0..600u64)
            .map(|id| {
                if id % 2 == 0 {
                    StreamMessage::Data { id: id + 1000 * i as u64, seq: 0, data: vec![1; 100] }
                } else {
                    StreamMessage::Close { id: id + 1000 * i as u64, seq: 3, error: None }
                }
            })
            .collect();
        n.raw(a, &msgs);
    }
    n.run(Duration::from_secs(5));
    let stats = n.exit().exit.stats().clone();
    assert!(stats.unopened_refused > 0, "the per-sender share bites: {stats:?}");
    assert!(n.exit().exit.open_streams() <= 5 * limits.max_unopened_per_sender);
    echo_works(&mut n);
    // the early streams expire
    n.run(Duration::from_millis(limits.unopened_ttl_ms) + Duration::from_secs(2));
    assert_eq!(n.exit().exit.open_streams(), 0);
    assert!(n.exit().exit.stats().unopened_expired > 0);
}

#[wasm_bindgen_test(unsupported = test)]
fn one_sender_cannot_take_every_stream_or_connection_slot() {
    let limits = ExitLimits { max_streams_per_sender: 10, max_connecting: 20, ..ExitLimits::default() };
    let mut n = Net::new(81, limits, config(RouteMode::Fast));
    let a = n.client();
    // 30 streams to a server that holds them open: 10 are allowed for this sender
    let opens: Vec<StreamMessage> =
        (0..30).map(|id| StreamMessage::Open { id, host: "127.0.0.1".into(), port: 10 }).collect();
    n.raw(&a, &opens);
    n.run(Duration::from_secs(5));
    assert_eq!(n.exit().exit.open_streams(), 10);
    assert_eq!(n.exit().exit.stats().refused_streams_per_sender, 20);
    // 30 senders each opening one connection that never completes: 20 may be in progress
    for id in 0..30 {
        let s = n.client();
        n.raw(&s, &[StreamMessage::Open { id, host: "127.0.0.1".into(), port: 11 }]);
    }
    n.run(Duration::from_secs(5));
    assert_eq!(n.exit().exit.stats().refused_connecting, 10);
    let before = n.exit().exit.stats().refused_connecting;
    // the honest open is refused only while every slot is taken, and says why
    let mut h = Honest::start(&mut n, "echo", 7, b"x");
    assert_eq!(
        h.run_until_closed(&mut n, Duration::from_secs(30)),
        Some(StreamEvent::OpenFailed(
            1,
            OpenError::new(OpenFailure::Busy, "exit busy: too many connections in progress")
        ))
    );
    assert_eq!(n.exit().exit.stats().refused_connecting, before + 1);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_stalled_server_holds_at_most_the_stream_buffer_and_the_client_waits_for_credit() {
    let limits = ExitLimits::default();
    let mut n = Net::new(82, limits.clone(), config(RouteMode::Fast));
    // an honest client uploads 4 MiB to a server that never reads
    let data = payload(1, 4 << 20);
    let mut h = Honest::start(&mut n, "127.0.0.1", 10, &data);
    for _ in 0..20 {
        n.run(Duration::from_millis(500));
        h.pump(&mut n);
    }
    let buffered = n.exit().exit.buffered_bytes();
    assert!(buffered <= limits.stream_buffer, "exit holds {buffered} B");
    assert!(h.cs.streams.unsent_bytes(1) >= data.len() - limits.stream_buffer, "the rest waits at the client");
    assert_eq!(n.exit().exit.stats().buffer_exceeded, 0, "an honest client stays within its window");

    // a client that ignores the window is reset, and the exit lets go of its bytes
    let a = n.client();
    let mut msgs = vec![StreamMessage::Open { id: 5, host: "127.0.0.1".into(), port: 10 }];
    msgs.extend((0..64).map(|seq| StreamMessage::Data { id: 5, seq, data: vec![7; 32 * 1024] }));
    n.raw(&a, &msgs);
    n.run(Duration::from_secs(10));
    assert_eq!(n.exit().exit.stats().buffer_exceeded, 1);
    assert!(n.exit().exit.buffered_bytes() <= limits.stream_buffer, "only the honest stream's bytes remain");
    echo_works(&mut n);
}

#[wasm_bindgen_test(unsupported = test)]
fn idle_streams_are_closed_and_forgotten() {
    let limits = ExitLimits { idle_timeout_ms: 10_000, ..ExitLimits::default() };
    let mut n = Net::new(83, limits, config(RouteMode::Fast));
    let who = n.client();
    let mut h = Honest { cs: ClientStreams::new(who), events: vec![] };
    let exit = n.exit;
    h.cs.with(&mut n.net, |s| s.open(exit, "127.0.0.1", 9, 3)).unwrap();
    let end = h.run_until_closed(&mut n, Duration::from_secs(30));
    assert_eq!(end, Some(StreamEvent::Closed(3, Some("idle timeout at the exit".into()))));
    assert_eq!(n.exit().exit.stats().idle_closed, 1);
    assert_eq!(n.exit().exit.open_streams(), 0);
    assert_eq!(n.exit().connections(), 0, "the connection was dropped");
}

#[wasm_bindgen_test(unsupported = test)]
fn surbs_from_many_senders_are_bounded() {
    let messenger = MessengerConfig { max_surb_senders: 4, max_surbs_total: 600, ..config(RouteMode::Fast) };
    let mut n = Net::new(84, ExitLimits::default(), messenger);
    // eight senders each leave 200 SURBs behind (a message with SURBs, never a stream)
    for i in 0..8u8 {
        let s = n.client();
        let (now, exit) = (n.net.net.now(), n.exit);
        let c = &mut n.net.client_mut(&s).client;
        c.messenger_mut().send(now, exit, &[i; 10], 200).unwrap();
        c.flush(now);
        n.run(Duration::from_secs(2));
    }
    let m = n.exit().exit.messenger();
    assert!(m.surb_senders() <= 4, "{} senders' SURBs held", m.surb_senders());
    assert!(m.surbs_held() <= 600, "{} SURBs held", m.surbs_held());
    assert!(m.stats().surbs_dropped >= 8 * 200 - 600);
    echo_works(&mut n);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_policy_refuses_private_targets_without_revealing_what_the_exit_resolved() {
    let mut n = Net::new(85, ExitLimits::default(), config(RouteMode::Fast));
    n.exit().servers.insert(([10, 0, 0, 5], 7).into(), SimServer::Echo);
    let mut h = Honest::start(&mut n, "intranet.example", 7, b"x");
    let Some(StreamEvent::OpenFailed(_, OpenError { failure, reason })) =
        h.run_until_closed(&mut n, Duration::from_secs(30))
    else {
        panic!("refused: {:?}", h.events)
    };
    assert!(reason.contains("private") && !reason.contains("10.0.0.5"), "{reason}");
    assert_eq!(failure, OpenFailure::Policy);
    assert_eq!(n.exit().exit.stats().policy_denials, 1);
}

/// When other senders' SURBs push a stream's sender out, its replies waiting for
/// SURBs must fail (releasing the reply window) rather than wait for good: otherwise
/// each eviction would leak a share of the exit's total window until reading stopped
/// for everyone.
#[wasm_bindgen_test(unsupported = test)]
fn evicting_a_sender_s_surbs_releases_what_its_streams_held() {
    let messenger = MessengerConfig { max_surb_senders: 2, ..config(RouteMode::Fast) };
    let mut n = Net::new(86, ExitLimits::default(), messenger);
    n.exit().servers.insert(([127, 0, 0, 1], 12).into(), SimServer::Source(64 << 20));
    let who = n.client();
    let mut h = Honest { cs: ClientStreams::new(who), events: vec![] };
    let exit = n.exit;
    h.cs.with(&mut n.net, |s| s.open(exit, "127.0.0.1", 12, 4)).unwrap();
    // the download is under way
    for _ in 0..5 {
        n.run(Duration::from_millis(100));
        h.pump(&mut n);
    }
    assert!(
        n.exit().exit.replies_in_flight() > 0,
        "{} B received, events {:?}",
        h.echoed().len(),
        h.events.iter().filter(|e| !matches!(e, StreamEvent::Data(..))).collect::<Vec<_>>()
    );
    // three other senders leave SURBs: the downloader's are evicted
    for i in 0..3u8 {
        let s = n.client();
        let (now, exit) = (n.net.net.now(), n.exit);
        let c = &mut n.net.client_mut(&s).client;
        c.messenger_mut().send(now, exit, &[i; 10], 50).unwrap();
        c.flush(now);
    }
    // whatever happens to the download, nothing stays held
    for _ in 0..600 {
        n.run(Duration::from_millis(100));
        h.pump(&mut n);
    }
    assert_eq!(n.exit().exit.open_streams(), 0, "{:?}", n.exit().exit.stats());
    assert_eq!(n.exit().exit.replies_in_flight(), 0, "the reply window is released");
    assert_eq!(n.exit().exit.messenger().in_flight(), 0, "no reply waits for SURBs that will never come");
}
