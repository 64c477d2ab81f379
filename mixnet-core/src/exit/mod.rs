//! The exit: an in-process client of its gateway that opens TCP connections for
//! anonymous senders and answers only through their SURBs. Sans-IO, like every
//! state machine here: the driver resolves names, connects, reads and writes
//! sockets, and reports back; every decision (the exit policy, which address to try,
//! what to refuse, when to pause, when a stream is idle) is made here, so the
//! simulator runs exactly what the gateway deploys.
//!
//! Contract (quinn-proto's naming): `handle_*` take input from the gateway, the
//! driver's sockets and timers; `poll_transmit` yields packets for the gateway,
//! `poll_action` socket work for the driver, `poll_timeout` the next deadline.
//!
//! **Bounds.** Everything an anonymous sender can make the exit hold is bounded
//! ([`ExitLimits`]), per sender (a SURB tag) and in total, and counted when it bites
//! ([`ExitStats`]): streams; streams waiting to connect; messages that arrive before
//! their stream's `Open` (a few per sender, expiring, oldest evicted first: they can
//! never block another sender's `Open`); upload bytes buffered towards the server;
//! reply bytes in flight; idle streams; and, in the messenger, SURBs held.

mod stream;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rand_core::CryptoRng;

use crate::message::{ClientKeys, Delivery, Event, MessageId, Messenger, MessengerConfig, SenderTag, Transmit};
use crate::policy::{ExitPolicy, PolicyDenied};
use crate::stream::{MAX_CHUNK, OpenFailure, Ordered, StreamId, StreamMessage};
use crate::time::Instant;
use crate::topology::Routes;
use crate::wire::Repr;
use stream::{Phase, Stream};

/// An exit stream: the client's tag and its stream id.
pub type ExitKey = (SenderTag, StreamId);

/// Limits of an exit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExitLimits {
    /// Streams alive at once, in total.
    pub max_streams: usize,
    /// Streams alive at once per sender.
    pub max_streams_per_sender: usize,
    /// Streams resolving or connecting at once, in total (each holds a socket and a
    /// timer in the driver).
    pub max_connecting: usize,
    /// Streams whose messages arrived before their `Open`, per sender.
    pub max_unopened_per_sender: usize,
    /// Such streams in total (the oldest is evicted for a new one).
    pub max_unopened: usize,
    /// Such a stream is forgotten if its `Open` does not come within this time (ms).
    pub unopened_ttl_ms: u64,
    /// Bytes such streams hold in total (the oldest is evicted to make room).
    pub unopened_buffer: usize,
    /// Upload bytes buffered per stream (out of order, waiting for the connection,
    /// or not yet written to the server). Clients keep their window below this.
    pub stream_buffer: usize,
    /// Upload bytes buffered per sender.
    pub sender_buffer: usize,
    /// Upload bytes buffered in total.
    pub total_buffer: usize,
    /// Reply bytes unacknowledged per stream before reading from the server pauses.
    pub reply_window: usize,
    /// Reply bytes unacknowledged in total before every stream's reading pauses.
    pub total_reply_window: usize,
    /// A stream with no traffic either way for this long is closed (ms).
    pub idle_timeout_ms: u64,
}

impl Default for ExitLimits {
    fn default() -> Self {
        Self {
            max_streams: 4096,
            max_streams_per_sender: 64,
            max_connecting: 256,
            max_unopened_per_sender: 8,
            max_unopened: 1024,
            unopened_ttl_ms: 30_000,
            unopened_buffer: 32 << 20,
            stream_buffer: 1 << 20,
            sender_buffer: 8 << 20,
            total_buffer: 256 << 20,
            reply_window: 512 * 1024,
            total_reply_window: 128 << 20,
            idle_timeout_ms: 300_000,
        }
    }
}

/// Configuration of an exit.
#[derive(Debug, Clone)]
pub struct ExitConfig {
    /// Its messenger (route mode of its acks, SURB limits).
    pub messenger: MessengerConfig,
    /// What it may connect to.
    pub policy: ExitPolicy,
    /// Its bounds.
    pub limits: ExitLimits,
}

/// Why a name could not be resolved (the driver's report).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The name does not exist or has no addresses.
    #[error("no such host")]
    NotFound,
    /// The resolver did not answer in time.
    #[error("resolving timed out")]
    TimedOut,
    /// Any other resolver failure.
    #[error("resolver failure")]
    Failed,
}

impl From<&ResolveError> for OpenFailure {
    fn from(e: &ResolveError) -> Self {
        match e {
            ResolveError::NotFound => Self::NotFound,
            ResolveError::TimedOut => Self::TimedOut,
            ResolveError::Failed => Self::Other,
        }
    }
}

/// Why a connection attempt failed (the driver's report). Messages never carry the
/// exit's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The server refused the connection.
    #[error("connection refused")]
    Refused,
    /// No answer in time.
    #[error("connection timed out")]
    TimedOut,
    /// No route to the host or network.
    #[error("host unreachable")]
    Unreachable,
    /// Anything else.
    #[error("connection failed")]
    Failed,
}

impl From<ConnectError> for OpenFailure {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Refused => Self::Refused,
            ConnectError::TimedOut => Self::TimedOut,
            ConnectError::Unreachable => Self::Unreachable,
            ConnectError::Failed => Self::Other,
        }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitAction {
    /// Resolve `host` (within the connect timeout); report with
    /// [`Exit::handle_resolved`].
    Resolve {
        /// The stream: its sender's tag and the client's stream id.
        key: ExitKey,
        /// Host as the client gave it.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// Connect to `addr` (allowed by the policy); report with
    /// [`Exit::handle_connected`] or [`Exit::handle_connect_failed`].
    Connect {
        /// The stream: its sender's tag and the client's stream id.
        key: ExitKey,
        /// The address to connect to, resolved and allowed by the policy.
        addr: SocketAddr,
    },
    /// Write bytes to the server, in order; report with [`Exit::handle_written`].
    Write {
        /// The stream: its sender's tag and the client's stream id.
        key: ExitKey,
        /// The next bytes of the client's stream, in order.
        data: Vec<u8>,
    },
    /// The client finished sending: shut down our write side (after the writes).
    ShutdownWrite {
        /// The stream: its sender's tag and the client's stream id.
        key: ExitKey,
    },
    /// Reading may go on: call [`Exit::read_budget`].
    ReadReady {
        /// The stream: its sender's tag and the client's stream id.
        key: ExitKey,
    },
    /// The stream is over: drop the connection at once.
    Abort {
        /// The stream: its sender's tag and the client's stream id.
        key: ExitKey,
    },
    /// The stream finished normally: forget it once its queued writes are done.
    Release {
        /// The stream: its sender's tag and the client's stream id.
        key: ExitKey,
    },
}

/// Counters of an exit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExitStats {
    /// `Open`s accepted.
    pub streams_opened: u64,
    /// Connections made.
    pub connected: u64,
    /// Names that did not resolve.
    pub resolve_failures: u64,
    /// Connections that failed (every address tried).
    pub connect_failures: u64,
    /// Opens refused by the exit policy.
    pub policy_denials: u64,
    /// Opens refused: too many streams in total.
    pub refused_streams_total: u64,
    /// Opens refused: too many streams for this sender.
    pub refused_streams_per_sender: u64,
    /// Opens refused: too many connections in progress.
    pub refused_connecting: u64,
    /// Early messages dropped: the sender already has its share of unopened streams.
    pub unopened_refused: u64,
    /// Early messages' streams evicted for newer ones.
    pub unopened_evicted: u64,
    /// Early messages' streams whose `Open` never came.
    pub unopened_expired: u64,
    /// Streams reset because an upload exceeded a buffer bound.
    pub buffer_exceeded: u64,
    /// Streams closed for idleness.
    pub idle_closed: u64,
    /// Streams whose replies could not be sent (no SURBs, or given up).
    pub reply_failures: u64,
    /// Bytes read from servers.
    pub bytes_in: u64,
    /// Bytes written to servers.
    pub bytes_out: u64,
}

/// Why a stream is no longer held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closed {
    /// It ended (normally, by reset, by a bound): late messages are dropped.
    Ended,
    /// Messages that came before its `Open` were dropped (evicted or expired): the
    /// `Open` is refused, since the stream could never be complete.
    Lost,
}

/// Streams remembered as closed.
const MAX_CLOSED: usize = 8192;

#[derive(Default)]
struct Usage {
    streams: usize,
    unopened: usize,
    buffered: usize,
}

/// How often idle and unopened streams are looked for.
const SWEEP: Duration = Duration::from_secs(1);

/// The exit's state machine; see the module docs.
pub struct Exit<R> {
    limits: ExitLimits,
    policy: ExitPolicy,
    messenger: Messenger<R>,
    streams: HashMap<ExitKey, Stream>,
    senders: HashMap<SenderTag, Usage>,
    /// Unopened streams, oldest first (entries of streams opened or gone are skipped).
    unopened: VecDeque<(Instant, ExitKey)>,
    unopened_total: usize,
    unopened_buffered: usize,
    /// Streams recently finished, reset or evicted: late messages for them are
    /// dropped instead of opening them again (bounded, oldest forgotten first).
    closed: HashMap<ExitKey, Closed>,
    closed_order: VecDeque<ExitKey>,
    connecting: usize,
    buffered: usize,
    replies_in_flight: usize,
    replies: HashMap<MessageId, (ExitKey, usize)>,
    /// Streams whose reading is paused until their window (or the total one) opens.
    paused: HashSet<ExitKey>,
    actions: VecDeque<ExitAction>,
    next_sweep: Option<Instant>,
    stats: ExitStats,
}

impl<R: CryptoRng> Exit<R> {
    /// An exit with `keys` (its address's identity and encryption key) attached to
    /// `gateway`.
    pub fn new(config: ExitConfig, keys: ClientKeys, gateway: [u8; 32], rng: R) -> Self {
        Self {
            limits: config.limits,
            policy: config.policy,
            messenger: Messenger::new(config.messenger, keys, gateway, rng),
            streams: HashMap::new(),
            senders: HashMap::new(),
            unopened: VecDeque::new(),
            unopened_total: 0,
            unopened_buffered: 0,
            closed: HashMap::new(),
            closed_order: VecDeque::new(),
            connecting: 0,
            buffered: 0,
            replies_in_flight: 0,
            replies: HashMap::new(),
            paused: HashSet::new(),
            actions: VecDeque::new(),
            next_sweep: None,
            stats: ExitStats::default(),
        }
    }

    /// The exit's address.
    pub fn address(&self) -> crate::address::Recipient {
        self.messenger.self_address()
    }

    /// Its counters since it started.
    pub fn stats(&self) -> &ExitStats {
        &self.stats
    }

    /// The limits in force.
    pub fn limits(&self) -> &ExitLimits {
        &self.limits
    }

    /// The messenger (its counters, SURB supplies).
    pub fn messenger(&self) -> &Messenger<R> {
        &self.messenger
    }

    /// Streams alive.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Upload bytes buffered towards servers.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Reply bytes sent and not yet acknowledged.
    pub fn replies_in_flight(&self) -> usize {
        self.replies_in_flight
    }

    /// Installs a (new) topology.
    pub fn set_routes(&mut self, routes: Routes) {
        self.messenger.set_routes(routes);
    }

    /// The next packet for the gateway.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.messenger.poll_transmit(now)
    }

    /// The next thing for the driver to do.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_action(&mut self) -> Option<ExitAction> {
        self.actions.pop_front()
    }

    /// When [`Self::handle_timeout`] should next run.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.messenger.poll_timeout(), self.next_sweep].into_iter().flatten().min()
    }

    /// Timers: the messenger's, idle streams, unopened streams.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.messenger.handle_timeout(now);
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.sweep(now);
        }
        self.process(now);
    }

    /// A packet for the exit, from its gateway.
    pub fn handle_delivery(&mut self, now: Instant, delivery: Delivery) {
        self.messenger.handle_delivery(now, delivery);
        self.process(now);
    }

    /// A fragment for the exit as if already opened (`--cfg fuzzing` only; see
    /// [`Messenger::handle_opened_fragment`](crate::message::Messenger::handle_opened_fragment)).
    #[cfg(fuzzing)]
    pub fn handle_opened_fragment(&mut self, now: Instant, fragment: &[u8]) {
        self.messenger.handle_opened_fragment(now, fragment);
        self.process(now);
    }

    /// How many bytes may be read from the server for `key` now (0: wait for
    /// [`ExitAction::ReadReady`]).
    pub fn read_budget(&mut self, key: &ExitKey) -> usize {
        let total_left = self.limits.total_reply_window.saturating_sub(self.replies_in_flight);
        let Some(s) = self.streams.get(key) else { return 0 };
        if s.read_closed {
            return 0;
        }
        let budget = self.limits.reply_window.saturating_sub(s.in_flight).min(total_left).min(MAX_CHUNK);
        if budget == 0 {
            self.paused.insert(*key);
        }
        budget
    }

    fn touch(&mut self, now: Instant) {
        if self.next_sweep.is_none() && !self.streams.is_empty() {
            self.next_sweep = Some(now + SWEEP);
        }
    }

    /// The messenger's events: stream messages in, reply acknowledgements.
    fn process(&mut self, now: Instant) {
        while let Some(e) = self.messenger.poll_event() {
            match e {
                Event::Received(m) => {
                    if let (Some(tag), Some(sm)) = (m.sender_tag, StreamMessage::parse(&m.data).ok()) {
                        self.handle_stream_message(now, tag, sm);
                    }
                }
                Event::Delivered(id) => self.reply_acknowledged(id),
                Event::Failed { id, .. } => {
                    if let Some((key, len)) = self.replies.remove(&id) {
                        self.replies_in_flight -= len;
                        self.stats.reply_failures += 1;
                        self.end(key, true);
                    }
                }
                Event::Dropped(_) => {}
            }
        }
        self.touch(now);
    }

    fn handle_stream_message(&mut self, now: Instant, tag: SenderTag, sm: StreamMessage) {
        let key = (tag, sm.id());
        match self.closed.get(&key) {
            Some(Closed::Lost) if matches!(sm, StreamMessage::Open { .. }) => {
                let reason = "the exit dropped this stream's first messages under load; open it again".into();
                self.closed.insert(key, Closed::Ended);
                let failure = OpenFailure::Busy;
                self.reply_raw(now, key, StreamMessage::OpenFailed { id: key.1, failure, reason });
                return;
            }
            Some(_) => return,
            None => {}
        }
        match sm {
            StreamMessage::Open { host, port, .. } => self.open(now, key, host, port),
            StreamMessage::Data { seq, data, .. } => {
                if !self.early(now, key) {
                    return;
                }
                let len = data.len();
                self.room_for_early_data(key, len);
                if !self.streams.contains_key(&key) {
                    return;
                }
                if self.over_buffer(key, len) {
                    self.stats.buffer_exceeded += 1;
                    self.reset(now, key, "upload exceeds the exit's buffer (the client ignored its window)");
                    return;
                }
                let Some(s) = self.streams.get_mut(&key) else { return };
                s.last_activity = now;
                let before = s.inbound.bytes();
                match s.inbound.data(seq, data) {
                    Ok(ordered) => {
                        let added = s.inbound.bytes() + ordered_bytes(&ordered) - before;
                        self.account(key, added as isize);
                        self.apply(now, key, ordered);
                    }
                    Err(e) => self.reset(now, key, e),
                }
            }
            StreamMessage::Close { seq, error, .. } => {
                if !self.early(now, key) {
                    return;
                }
                let Some(s) = self.streams.get_mut(&key) else { return };
                s.last_activity = now;
                let before = s.inbound.bytes();
                let ordered = s.inbound.close(seq, error);
                let delta = (s.inbound.bytes() + ordered_bytes(&ordered)) as isize - before as isize;
                self.account(key, delta);
                self.apply(now, key, ordered);
            }
            StreamMessage::Opened { .. } | StreamMessage::OpenFailed { .. } | StreamMessage::Credit { .. } => {}
        }
    }

    /// Makes sure a stream exists for a message that may have overtaken its `Open`;
    /// false if it was refused.
    fn early(&mut self, now: Instant, key: ExitKey) -> bool {
        if self.streams.contains_key(&key) {
            return true;
        }
        let usage = self.senders.entry(key.0).or_default();
        if usage.unopened >= self.limits.max_unopened_per_sender {
            self.stats.unopened_refused += 1;
            return false;
        }
        // make room by evicting the oldest unopened stream (of anyone): old work goes
        while self.unopened_total >= self.limits.max_unopened.max(1) {
            match self.unopened.pop_front() {
                Some((_, old)) => {
                    if self.streams.get(&old).is_some_and(|s| s.phase == Phase::Unopened) {
                        self.stats.unopened_evicted += 1;
                        self.forget(old, Closed::Lost);
                    }
                }
                None => break,
            }
        }
        self.insert(key, Stream::new(now, self.limits.stream_buffer));
        self.unopened_total += 1;
        self.senders.entry(key.0).or_default().unopened += 1;
        self.unopened.push_back((now, key));
        true
    }

    /// Early data for an unopened stream: evicts the oldest unopened streams until
    /// the total they hold leaves room (possibly this one, if it alone is too much).
    fn room_for_early_data(&mut self, key: ExitKey, len: usize) {
        if self.streams.get(&key).is_none_or(|s| s.phase != Phase::Unopened) {
            return;
        }
        while self.unopened_buffered + len > self.limits.unopened_buffer {
            let Some((_, old)) = self.unopened.pop_front() else { break };
            if self.streams.get(&old).is_some_and(|s| s.phase == Phase::Unopened) {
                self.stats.unopened_evicted += 1;
                self.forget(old, Closed::Lost);
            }
        }
    }

    /// Removes a stream and remembers it as closed.
    fn forget(&mut self, key: ExitKey, why: Closed) {
        self.remove(key);
        if self.closed.insert(key, why).is_none() {
            self.closed_order.push_back(key);
            while self.closed_order.len() > MAX_CLOSED {
                if let Some(k) = self.closed_order.pop_front() {
                    self.closed.remove(&k);
                }
            }
        }
    }

    fn insert(&mut self, key: ExitKey, s: Stream) {
        self.streams.insert(key, s);
        self.senders.entry(key.0).or_default().streams += 1;
    }

    fn open(&mut self, now: Instant, key: ExitKey, host: String, port: u16) {
        let exists = self.streams.get(&key).map(|s| s.phase == Phase::Unopened);
        if exists == Some(false) {
            return; // a duplicate Open
        }
        let sender_streams = self.senders.get(&key.0).map_or(0, |u| u.streams);
        let refusal = if exists.is_none() && self.streams.len() >= self.limits.max_streams {
            self.stats.refused_streams_total += 1;
            Some("exit busy: too many streams")
        } else if exists.is_none() && sender_streams >= self.limits.max_streams_per_sender {
            self.stats.refused_streams_per_sender += 1;
            Some("too many streams from this sender")
        } else if self.connecting >= self.limits.max_connecting {
            self.stats.refused_connecting += 1;
            Some("exit busy: too many connections in progress")
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.forget(key, Closed::Ended);
            let (failure, reason) = (OpenFailure::Busy, reason.into());
            self.reply_raw(now, key, StreamMessage::OpenFailed { id: key.1, failure, reason });
            return;
        }
        if exists.is_none() {
            self.insert(key, Stream::new(now, self.limits.stream_buffer));
        } else {
            self.unopened_total -= 1;
            self.unopened_buffered -= self.streams.get(&key).map_or(0, |s| s.buffered);
            if let Some(u) = self.senders.get_mut(&key.0) {
                u.unopened -= 1;
            }
        }
        let s = self.streams.get_mut(&key).expect("inserted");
        s.phase = Phase::Resolving { port };
        s.last_activity = now;
        self.connecting += 1;
        self.stats.streams_opened += 1;
        self.actions.push_back(ExitAction::Resolve { key, host, port });
    }

    /// The driver resolved (or failed to resolve) the name of `key`.
    pub fn handle_resolved(&mut self, now: Instant, key: ExitKey, result: Result<Vec<IpAddr>, ResolveError>) {
        let Some(s) = self.streams.get_mut(&key) else { return };
        let Phase::Resolving { port } = s.phase else { return };
        let addrs = match result {
            Ok(a) => a,
            Err(e) => {
                self.stats.resolve_failures += 1;
                return self.open_failed(now, key, (&e).into(), format!("cannot resolve the host: {e}"));
            }
        };
        let mut denied: Option<PolicyDenied> = None;
        let allowed: VecDeque<SocketAddr> = addrs
            .into_iter()
            .filter(|ip| match self.policy.check(*ip, port) {
                Ok(()) => true,
                Err(d) => {
                    denied.get_or_insert(d);
                    false
                }
            })
            .map(|ip| SocketAddr::new(ip, port))
            .collect();
        let Some(first) = allowed.front().copied() else {
            let (failure, reason) = match denied {
                Some(d) => {
                    self.stats.policy_denials += 1;
                    (OpenFailure::Policy, d.client_reason())
                }
                None => {
                    self.stats.resolve_failures += 1;
                    (OpenFailure::NotFound, "cannot resolve the host: no addresses".into())
                }
            };
            return self.open_failed(now, key, failure, reason);
        };
        let s = self.streams.get_mut(&key).expect("checked");
        s.phase = Phase::Connecting { rest: allowed.into_iter().skip(1).collect() };
        s.last_activity = now;
        self.actions.push_back(ExitAction::Connect { key, addr: first });
    }

    /// The connection of `key` is up.
    pub fn handle_connected(&mut self, now: Instant, key: ExitKey) {
        let Some(s) = self.streams.get_mut(&key) else { return };
        if !matches!(s.phase, Phase::Connecting { .. }) {
            return;
        }
        s.phase = Phase::Connected;
        s.last_activity = now;
        self.connecting -= 1;
        self.stats.connected += 1;
        self.reply(now, key, StreamMessage::Opened { id: key.1 });
        self.apply(now, key, vec![]);
        self.actions.push_back(ExitAction::ReadReady { key });
        self.process(now);
    }

    /// A connection attempt of `key` failed: the next allowed address is tried, or
    /// the client is told.
    pub fn handle_connect_failed(&mut self, now: Instant, key: ExitKey, error: ConnectError) {
        let Some(s) = self.streams.get_mut(&key) else { return };
        let Phase::Connecting { rest } = &mut s.phase else { return };
        if let Some(next) = rest.pop_front() {
            self.actions.push_back(ExitAction::Connect { key, addr: next });
            return;
        }
        self.stats.connect_failures += 1;
        self.open_failed(now, key, error.into(), error.to_string());
    }

    fn open_failed(&mut self, now: Instant, key: ExitKey, failure: OpenFailure, reason: String) {
        if self.streams.get(&key).is_some_and(|s| s.phase.connecting()) {
            self.connecting -= 1;
        }
        self.forget(key, Closed::Ended);
        self.actions.push_back(ExitAction::Abort { key });
        self.reply_raw(now, key, StreamMessage::OpenFailed { id: key.1, failure, reason });
        self.process(now);
    }

    /// Bytes read from the server of `key` (at most its [`Self::read_budget`]).
    pub fn handle_read(&mut self, now: Instant, key: ExitKey, data: &[u8]) {
        self.stats.bytes_in += data.len() as u64;
        for chunk in data.chunks(MAX_CHUNK) {
            let Some(s) = self.streams.get_mut(&key) else { return };
            s.last_activity = now;
            let seq = s.sent;
            s.sent += 1;
            self.reply(now, key, StreamMessage::Data { id: key.1, seq, data: chunk.to_vec() });
        }
        self.process(now);
    }

    /// The driver wrote `n` bytes of `key`'s data to its server.
    pub fn handle_written(&mut self, now: Instant, key: ExitKey, n: usize) {
        self.stats.bytes_out += n as u64;
        let Some(s) = self.streams.get_mut(&key) else { return };
        let n = n.min(s.unwritten);
        s.unwritten -= n;
        s.written += n as u64;
        s.last_activity = now;
        // credit the client each quarter window, and when everything is written
        let due = s.written - s.credited >= (self.limits.stream_buffer / 4) as u64
            || (s.unwritten == 0 && s.written > s.credited);
        let written = s.written;
        self.account(key, -(n as isize));
        if due && !self.streams.get(&key).is_some_and(|s| s.write_closed) {
            if let Some(s) = self.streams.get_mut(&key) {
                s.credited = written;
            }
            self.reply(now, key, StreamMessage::Credit { id: key.1, written });
        }
        self.process(now);
    }

    /// The server of `key` closed its side (`error` if the connection broke).
    pub fn handle_eof(&mut self, now: Instant, key: ExitKey, error: Option<String>) {
        let Some(s) = self.streams.get_mut(&key) else { return };
        if s.read_closed {
            return;
        }
        s.read_closed = true;
        s.last_activity = now;
        let seq = s.sent;
        let abnormal = error.is_some();
        self.reply(now, key, StreamMessage::Close { id: key.1, seq, error });
        if abnormal {
            self.end(key, true);
        } else {
            self.finish_if_done(key);
        }
        self.process(now);
    }

    /// Adds `delta` buffered upload bytes to `key`, its sender and the total.
    fn account(&mut self, key: ExitKey, delta: isize) {
        if let Some(s) = self.streams.get_mut(&key) {
            s.buffered = s.buffered.saturating_add_signed(delta);
            if s.phase == Phase::Unopened {
                self.unopened_buffered = self.unopened_buffered.saturating_add_signed(delta);
            }
        }
        if let Some(u) = self.senders.get_mut(&key.0) {
            u.buffered = u.buffered.saturating_add_signed(delta);
        }
        self.buffered = self.buffered.saturating_add_signed(delta);
    }

    fn over_buffer(&self, key: ExitKey, len: usize) -> bool {
        let stream = self.streams.get(&key).map_or(0, |s| s.buffered);
        let sender = self.senders.get(&key.0).map_or(0, |u| u.buffered);
        stream + len > self.limits.stream_buffer
            || sender + len > self.limits.sender_buffer
            || self.buffered + len > self.limits.total_buffer
    }

    /// Queues in-order items, and hands them to the driver once connected.
    fn apply(&mut self, now: Instant, key: ExitKey, ordered: Vec<Ordered>) {
        let Some(s) = self.streams.get_mut(&key) else { return };
        s.ready.extend(ordered);
        if s.phase != Phase::Connected {
            return;
        }
        while let Some(o) = s.ready.pop_front() {
            match o {
                Ordered::Data(data) => {
                    s.unwritten += data.len();
                    self.actions.push_back(ExitAction::Write { key, data });
                }
                Ordered::End(None) => {
                    s.write_closed = true;
                    self.actions.push_back(ExitAction::ShutdownWrite { key });
                }
                Ordered::End(Some(_)) => {
                    // the client reset the stream: the connection goes, and so does the stream
                    self.end(key, true);
                    return;
                }
            }
        }
        let _ = now;
        self.finish_if_done(key);
    }

    fn finish_if_done(&mut self, key: ExitKey) {
        if self.streams.get(&key).is_some_and(|s| s.write_closed && s.read_closed) {
            self.end(key, false);
        }
    }

    /// Forgets a stream and tells the driver to drop (or release) its connection.
    fn end(&mut self, key: ExitKey, abort: bool) {
        if self.streams.contains_key(&key) {
            if self.streams.get(&key).is_some_and(|s| s.phase.connecting()) {
                self.connecting -= 1;
            }
            self.forget(key, Closed::Ended);
            if abort {
                self.cancel_replies(key);
            }
            self.actions.push_back(if abort { ExitAction::Abort { key } } else { ExitAction::Release { key } });
        }
    }

    /// An aborted stream's replies not yet sent are cancelled, and its share of the
    /// reply window released (a finished stream's last replies still go out).
    fn cancel_replies(&mut self, key: ExitKey) {
        let ids: Vec<MessageId> = self.replies.iter().filter(|(_, (k, _))| *k == key).map(|(id, _)| *id).collect();
        for id in ids {
            if let Some((_, len)) = self.replies.remove(&id) {
                self.replies_in_flight -= len;
            }
            self.messenger.cancel(id);
        }
    }

    /// Tells the client the stream is over, and forgets it.
    fn reset(&mut self, now: Instant, key: ExitKey, reason: &str) {
        let seq = self.streams.get(&key).map_or(0, |s| s.sent);
        self.reply_raw(now, key, StreamMessage::Close { id: key.1, seq, error: Some(reason.into()) });
        self.end(key, true);
    }

    /// Removes a stream's state and its accounting (no driver action).
    fn remove(&mut self, key: ExitKey) {
        let Some(s) = self.streams.remove(&key) else { return };
        self.paused.remove(&key);
        self.buffered -= s.buffered.min(self.buffered);
        if s.phase == Phase::Unopened {
            self.unopened_total -= 1;
            self.unopened_buffered -= s.buffered.min(self.unopened_buffered);
        }
        if let Some(u) = self.senders.get_mut(&key.0) {
            u.streams -= 1;
            u.buffered -= s.buffered.min(u.buffered);
            if s.phase == Phase::Unopened {
                u.unopened -= 1;
            }
            if u.streams == 0 {
                self.senders.remove(&key.0);
            }
        }
    }

    /// A reply on a live stream, counted against its window.
    fn reply(&mut self, now: Instant, key: ExitKey, msg: StreamMessage) {
        let encoded = msg.to_bytes();
        match self.messenger.reply(now, key.0, &encoded) {
            Ok(id) => {
                self.replies.insert(id, (key, encoded.len()));
                self.replies_in_flight += encoded.len();
                if let Some(s) = self.streams.get_mut(&key) {
                    s.in_flight += encoded.len();
                }
            }
            Err(_) => {
                self.stats.reply_failures += 1;
                self.end(key, true);
            }
        }
    }

    /// A reply for a stream that is not (or no longer) held: best effort.
    fn reply_raw(&mut self, now: Instant, key: ExitKey, msg: StreamMessage) {
        if self.messenger.reply(now, key.0, &msg.to_bytes()).is_err() {
            self.stats.reply_failures += 1;
        }
    }

    fn reply_acknowledged(&mut self, id: MessageId) {
        let Some((key, len)) = self.replies.remove(&id) else { return };
        self.replies_in_flight -= len;
        if let Some(s) = self.streams.get_mut(&key) {
            s.in_flight = s.in_flight.saturating_sub(len);
        }
        // resume paused streams whose window (and the total one) has room again
        if self.paused.is_empty() || self.replies_in_flight >= self.limits.total_reply_window {
            return;
        }
        let ready: Vec<ExitKey> = self
            .paused
            .iter()
            .filter(|k| self.streams.get(k).is_some_and(|s| s.in_flight < self.limits.reply_window))
            .copied()
            .collect();
        for k in ready {
            self.paused.remove(&k);
            self.actions.push_back(ExitAction::ReadReady { key: k });
        }
    }

    /// Closes idle streams and forgets unopened ones whose `Open` never came.
    fn sweep(&mut self, now: Instant) {
        let idle = Duration::from_millis(self.limits.idle_timeout_ms);
        let unopened_ttl = Duration::from_millis(self.limits.unopened_ttl_ms);
        while let Some(&(since, key)) = self.unopened.front() {
            if now.saturating_duration_since(since) < unopened_ttl {
                break;
            }
            self.unopened.pop_front();
            if self.streams.get(&key).is_some_and(|s| s.phase == Phase::Unopened) {
                self.stats.unopened_expired += 1;
                self.forget(key, Closed::Lost);
            }
        }
        let idle_keys: Vec<ExitKey> = self
            .streams
            .iter()
            .filter(|(_, s)| s.phase != Phase::Unopened && now.saturating_duration_since(s.last_activity) >= idle)
            .map(|(k, _)| *k)
            .collect();
        for key in idle_keys {
            self.stats.idle_closed += 1;
            self.reset(now, key, "idle timeout at the exit");
        }
        self.next_sweep = (!self.streams.is_empty()).then_some(now + SWEEP);
    }
}

fn ordered_bytes(o: &[Ordered]) -> usize {
    o.iter().map(|x| if let Ordered::Data(d) = x { d.len() } else { 0 }).sum()
}
