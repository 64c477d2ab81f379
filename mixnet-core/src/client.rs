//! The whole client as one state machine: the session with its gateway, the
//! [`Messenger`], and Loopix-style traffic shaping. Browser and native drivers only
//! move bytes and arm the timer.
//!
//! **Loopix streams** (mixnet mode): a Poisson real-traffic stream — at each tick the
//! next queued packet, or a cover packet when none is queued — and a Poisson loop-cover
//! stream of packets to ourselves. Every packet has the same size and shape, so an
//! observer sees the same traffic whether the user is idle or busy. **Immediate** mode
//! (fast mode, services, tests): packets leave as soon as they are built; no cover.
//!
//! Contract: `handle_*` for input from the network and timers, plain methods for app
//! commands, `poll_*` for output. After any call, drain [`Client::poll_transmit`]
//! (messages for the gateway connection) and [`Client::poll_event`], check
//! [`Client::wants_connection`], and arm a timer for [`Client::poll_timeout`].

use std::collections::VecDeque;
use std::time::Duration;

use rand_core::CryptoRng;

use crate::address::Recipient;
use crate::message::{
    ClientKeys, Event, MessageId, Messenger, MessengerConfig, MessengerStats, ReceivedMessage, RouteMode, SendError,
    SenderTag, Transmit,
};
use crate::session::{ClientSession, SessionError, SessionEvent};
use crate::sphinx::NodeAddress;
use crate::time::Instant;
use crate::topology::Routes;

/// Traffic shaping.
#[derive(Debug, Clone, PartialEq)]
pub struct LoopixConfig {
    /// Mean of the real-traffic stream's exponential inter-packet delay; `None`
    /// sends immediately without cover (always so in fast mode).
    pub send_delay_mean: Option<Duration>,
    /// Mean of the loop-cover stream's delay; `None` disables loop cover.
    pub loop_cover_mean: Option<Duration>,
}

impl Default for LoopixConfig {
    fn default() -> Self {
        Self { send_delay_mean: Some(Duration::from_millis(20)), loop_cover_mean: Some(Duration::from_millis(200)) }
    }
}

impl LoopixConfig {
    /// Packets leave as soon as built; no cover traffic.
    pub fn immediate() -> Self {
        Self { send_delay_mean: None, loop_cover_mean: None }
    }
}

/// The connection to the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    /// No connection; one is wanted at the time in [`Client::poll_timeout`].
    Disconnected,
    /// Handshaking and authenticating.
    Connecting,
    /// Authenticated: traffic flows.
    Connected,
}

/// What kind of packet a route record is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketKind {
    /// A data packet (or an ack we send for a reply).
    Real,
    /// Cover: loop traffic or a real-stream tick with nothing to send.
    Cover,
}

/// A recently sent packet's route, for live views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRecord {
    /// When it was sent.
    pub at: Instant,
    /// Real or cover.
    pub kind: PacketKind,
    /// First hop onwards (mix layers, then the destination gateway).
    pub hops: Vec<NodeAddress>,
}

/// What the client tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A message arrived.
    Message(ReceivedMessage),
    /// A message was acknowledged by the recipient's side.
    Delivered(MessageId),
    /// A message was given up.
    Failed {
        /// The message, as `send` numbered it.
        id: MessageId,
        /// Why it was given up (no acknowledgement after every retransmission, no route…).
        reason: String,
    },
    /// The connection state changed (with a reason when it dropped).
    State(ConnectionState, Option<String>),
    /// The Noise handshake with the gateway completed; authentication follows.
    Handshake,
    /// The gateway dropped some of our packets over its rate limit.
    Throttled(String),
    /// Inbound data was dropped (malformed, unknown SURB, evicted).
    Dropped(String),
}

/// A client's counters: real and cover packets, and the messenger's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientStats {
    /// Real packets sent.
    pub real_sent: u64,
    /// Cover packets sent (loop cover and empty real-stream ticks).
    pub cover_sent: u64,
    /// Deliveries received from the gateway.
    pub deliveries: u64,
    /// Connections established.
    pub connections: u64,
    /// The messenger's counters.
    pub messenger: MessengerStats,
}

/// Route records kept per kind (real and cover), so a burst of cover does not push
/// every real packet out of the live view.
const MAX_ROUTES_PER_KIND: usize = 16;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The client state machine; see the module docs.
pub struct Client<R> {
    loopix: LoopixConfig,
    messenger: Messenger<R>,
    timing: R,
    identity: crate::sphinx::NodeSecret,
    gateway_key: [u8; 32],
    session: Option<ClientSession>,
    state: ConnectionState,
    reconnect_at: Option<Instant>,
    backoff: Duration,
    next_real: Option<Instant>,
    next_loop: Option<Instant>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
    routes: VecDeque<RouteRecord>,
    stats: ClientStats,
}

impl<R: CryptoRng> Client<R> {
    /// A client with long-term `identity` and `encryption` keys, whose gateway is
    /// `gateway` with Noise key `gateway_key`. `rng` feeds the protocol, `timing` the
    /// Poisson streams (both must be cryptographically secure). It wants a connection
    /// at once.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        messenger: MessengerConfig,
        loopix: LoopixConfig,
        identity: crate::sphinx::NodeSecret,
        encryption: crate::sphinx::NodeSecret,
        gateway: [u8; 32],
        gateway_key: [u8; 32],
        rng: R,
        timing: R,
    ) -> Self {
        let loopix = if messenger.mode == RouteMode::Fast { LoopixConfig::immediate() } else { loopix };
        let keys = ClientKeys { identity: identity.public_key(), encryption };
        Self {
            loopix,
            messenger: Messenger::new(messenger, keys, gateway, rng),
            timing,
            identity,
            gateway_key,
            session: None,
            state: ConnectionState::Disconnected,
            reconnect_at: Some(Instant::ZERO),
            backoff: BACKOFF_MIN,
            next_real: None,
            next_loop: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            routes: VecDeque::new(),
            stats: ClientStats::default(),
        }
    }

    /// Our address.
    pub fn self_address(&self) -> Recipient {
        self.messenger.self_address()
    }

    /// The connection state.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Its counters since it started.
    pub fn stats(&self) -> ClientStats {
        ClientStats { messenger: self.messenger.stats().clone(), ..self.stats.clone() }
    }

    /// Recent packets' routes (the last few of each kind), oldest first.
    pub fn recent_routes(&self) -> impl Iterator<Item = &RouteRecord> {
        self.routes.iter()
    }

    /// The traffic shaping in force.
    pub fn loopix(&self) -> &LoopixConfig {
        &self.loopix
    }

    /// The messenger.
    pub fn messenger(&self) -> &Messenger<R> {
        &self.messenger
    }

    /// The messenger (for stream protocols layered on top); call [`Self::flush`] after.
    pub fn messenger_mut(&mut self) -> &mut Messenger<R> {
        &mut self.messenger
    }

    /// Installs a (new) topology.
    pub fn set_routes(&mut self, routes: Routes) {
        self.messenger.set_routes(routes);
    }

    /// Switches gateway keys (e.g. the topology changed); takes effect on the next connection.
    pub fn set_gateway_key(&mut self, key: [u8; 32]) {
        self.gateway_key = key;
    }

    /// Whether the driver should open a connection now.
    pub fn wants_connection(&self, now: Instant) -> bool {
        self.state == ConnectionState::Disconnected && self.reconnect_at.is_some_and(|t| t <= now)
    }

    /// The driver opened a connection: start the handshake.
    pub fn handle_connected(&mut self, _now: Instant) {
        let mut session = ClientSession::start(&mut self.timing, &self.gateway_key, self.identity.clone());
        while let Some(m) = session.poll_send() {
            self.out.push_back(m);
        }
        self.session = Some(session);
        self.set_state(ConnectionState::Connecting, None);
    }

    /// The connection closed or could not be opened; retry after a backoff.
    pub fn handle_disconnected(&mut self, now: Instant, reason: &str) {
        self.session = None;
        self.out.clear();
        self.next_real = None;
        self.next_loop = None;
        self.reconnect_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.set_state(ConnectionState::Disconnected, Some(reason.to_owned()));
    }

    fn set_state(&mut self, state: ConnectionState, reason: Option<String>) {
        if self.state != state || reason.is_some() {
            self.state = state;
            self.events.push_back(ClientEvent::State(state, reason));
        }
    }

    fn exp(&mut self, mean: Duration) -> Duration {
        mean.mul_f64(-crate::sphinx::unit_interval(&mut self.timing).ln())
    }

    /// A message from the gateway connection.
    pub fn handle_message(&mut self, now: Instant, message: &[u8]) {
        let Some(session) = self.session.as_mut() else { return };
        match session.handle_message(message) {
            Ok(SessionEvent::HandshakeComplete) => self.events.push_back(ClientEvent::Handshake),
            Ok(SessionEvent::Authenticated { .. }) => {
                self.stats.connections += 1;
                self.backoff = BACKOFF_MIN;
                self.reconnect_at = None;
                self.set_state(ConnectionState::Connected, None);
                if let Some(mean) = self.loopix.send_delay_mean {
                    self.next_real = Some(now + self.exp(mean));
                }
                if let Some(mean) = self.loopix.loop_cover_mean {
                    self.next_loop = Some(now + self.exp(mean));
                }
            }
            Ok(SessionEvent::Deliver { seq, delivery }) => {
                self.stats.deliveries += 1;
                self.messenger.handle_delivery(now, delivery);
                if let Some(s) = self.session.as_mut() {
                    let _ = s.ack_inbox(seq);
                }
            }
            Ok(SessionEvent::Pong(_)) => {}
            Ok(SessionEvent::Throttled(m)) => self.events.push_back(ClientEvent::Throttled(m)),
            Err(e) => {
                let reason = match &e {
                    SessionError::Gateway { code, message } => {
                        format!("gateway closed the session ({code}): {message}")
                    }
                    other => other.to_string(),
                };
                self.handle_disconnected(now, &reason);
            }
        }
        self.after(now);
    }

    /// Timers: the Loopix streams, acks, reconnection.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.messenger.handle_timeout(now);
        if self.state == ConnectionState::Connected {
            if let (Some(t), Some(mean)) = (self.next_real, self.loopix.send_delay_mean)
                && t <= now
            {
                match self.messenger.poll_transmit(now) {
                    Some(real) => self.transmit(real, PacketKind::Real, now),
                    None => self.cover(now),
                }
                self.next_real = Some(t.max(now - mean) + self.exp(mean));
            }
            if let (Some(t), Some(mean)) = (self.next_loop, self.loopix.loop_cover_mean)
                && t <= now
            {
                self.cover(now);
                self.next_loop = Some(t.max(now - mean) + self.exp(mean));
            }
        }
        self.after(now);
    }

    fn cover(&mut self, now: Instant) {
        if let Some(c) = self.messenger.cover_packet(now) {
            self.transmit(c, PacketKind::Cover, now);
        }
    }

    fn transmit(&mut self, t: Transmit, kind: PacketKind, now: Instant) {
        let hops = self.messenger.last_route().to_vec();
        let Some(session) = self.session.as_mut() else { return };
        if session.send_packet(t).is_err() {
            return;
        }
        while let Some(m) = session.poll_send() {
            self.out.push_back(m);
        }
        match kind {
            PacketKind::Real => self.stats.real_sent += 1,
            PacketKind::Cover => self.stats.cover_sent += 1,
        }
        if self.routes.iter().filter(|r| r.kind == kind).count() == MAX_ROUTES_PER_KIND
            && let Some(oldest) = self.routes.iter().position(|r| r.kind == kind)
        {
            self.routes.remove(oldest);
        }
        self.routes.push_back(RouteRecord { at: now, kind, hops });
    }

    /// Moves session output and messenger events along; sends at once in immediate mode.
    fn after(&mut self, now: Instant) {
        if let Some(s) = self.session.as_mut() {
            while let Some(m) = s.poll_send() {
                self.out.push_back(m);
            }
        }
        if self.state == ConnectionState::Connected && self.loopix.send_delay_mean.is_none() {
            while let Some(t) = self.messenger.poll_transmit(now) {
                self.transmit(t, PacketKind::Real, now);
            }
        }
        while let Some(e) = self.messenger.poll_event() {
            self.events.push_back(match e {
                Event::Received(m) => ClientEvent::Message(m),
                Event::Delivered(id) => ClientEvent::Delivered(id),
                Event::Failed { id, reason } => ClientEvent::Failed { id, reason: reason.to_string() },
                Event::Dropped(e) => ClientEvent::Dropped(e.to_string()),
            });
        }
    }

    /// Queues `data` for `to` (with `reply_surbs` SURBs for an anonymous answer).
    pub fn send(&mut self, now: Instant, to: Recipient, data: &[u8], reply_surbs: u16) -> Result<MessageId, SendError> {
        let id = self.messenger.send(now, to, data, reply_surbs)?;
        self.after(now);
        Ok(id)
    }

    /// Answers an anonymous sender through its SURBs.
    pub fn reply(&mut self, now: Instant, tag: SenderTag, data: &[u8]) -> Result<MessageId, SendError> {
        let id = self.messenger.reply(now, tag, data)?;
        self.after(now);
        Ok(id)
    }

    /// Call after using [`Self::messenger_mut`] directly, so queued packets move.
    pub fn flush(&mut self, now: Instant) {
        self.after(now);
    }

    /// The next message for the gateway connection.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event for the application.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] should next run (or a connection be opened).
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let reconnect = if self.state == ConnectionState::Disconnected { self.reconnect_at } else { None };
        [self.messenger.poll_timeout(), self.next_real, self.next_loop, reconnect].into_iter().flatten().min()
    }
}
