//! The gateway: entry for its clients (sessions, forwarding their packets into the
//! mixnet) and final hop for packets addressed to them (inbox, SURB-acks).
//!
//! Sans-IO, with the contract of every state machine here: the driver feeds inputs
//! (`handle_*`: client transport messages, node packets, storage results, time), then
//! sends what [`Gateway::poll_transmit`] gives to other nodes and carries out what
//! [`Gateway::poll_action`] gives ([`GatewayAction`]: send to a client, close a
//! connection, store / load / delete inbox entries), and calls `handle_timeout` at
//! [`Gateway::poll_timeout`]. Every delivery goes through the
//! durable inbox first; its SURB-ack is sent once the store succeeded, and the entry
//! is deleted only after the client acknowledged it.
//!
//! **Bounds** (each counted in [`GatewayStats`] when it bites): connections; every
//! frame a client sends costs a token of its rate limit; an inbox only for identities
//! that authenticated here ([`registry`]), capped per client and in total, in entries
//! and bytes; the inbox is pushed a page at a time, the next page once the client has
//! acknowledged most of the last; a client that does not read is closed with a reason.

mod registry;

pub use registry::ClientRecord;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use rand_core::CryptoRng;

use crate::message::{Delivery, ReceiveError, Transmit, ack_packet, split_data};
use crate::mix::{MixError, NodeKeys};
use crate::noise::Transport;
use crate::session::{self, ClientFrame, MAX_FRAME, ServerFrame, SessionError, code};
use crate::sphinx::{self, DestinationAddress, NodeAddress, NodeSecret, PacketSize, Processed, ProcessedFinal};
use crate::time::Instant;
use crate::wire::Repr;

/// A final-hop packet, ready to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalHop {
    /// The client it is for.
    pub client: DestinationAddress,
    /// What to give the client.
    pub delivery: Delivery,
    /// The ack to send into the mixnet once the delivery is accepted (delivered or
    /// stored): `None` for replies, which the client acknowledges itself.
    pub ack: Option<Transmit>,
}

/// Prepares a final-hop packet for delivery. Forward packets (zero identifier) are
/// decoded so that their SURB-ack can be sent; acks and replies stay sealed.
pub fn final_hop(processed: ProcessedFinal, ack_size: PacketSize) -> Result<FinalHop, ReceiveError> {
    let ProcessedFinal { destination, identifier, payload } = processed;
    if identifier != [0u8; 16] {
        return Ok(FinalHop { client: destination, delivery: Delivery { identifier, payload }, ack: None });
    }
    let data = sphinx::recover_plaintext(&payload)?.to_vec();
    let (surb, _) = split_data(&data)?;
    let (packet, first_hop) = ack_packet(&surb, ack_size)?;
    Ok(FinalHop {
        client: destination,
        delivery: Delivery { identifier, payload: data },
        ack: Some(Transmit { first_hop, packet }),
    })
}

/// A client connection, numbered by the driver.
pub type ConnId = u64;

/// A gateway's tunables: rate limits, connection and inbox bounds, the authentication timeout.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Size of the SURB-ack packets sent for forward packets.
    pub ack_size: PacketSize,
    /// Frames per second a client may send (token bucket refill); every frame kind
    /// costs a token.
    pub rate_per_sec: u32,
    /// Token bucket size.
    pub burst: u32,
    /// A connection must authenticate within this time.
    pub auth_timeout: Duration,
    /// Connections held at once (any state); more are closed at once with
    /// [`code::BUSY`].
    pub max_connections: usize,
    /// Identities that keep an inbox here (the least recently seen offline one is
    /// forgotten, with its inbox, for a new one).
    pub max_clients: usize,
    /// Deliveries stored per client.
    pub inbox_entries_per_client: u64,
    /// Payload bytes stored per client.
    pub inbox_bytes_per_client: u64,
    /// Payload bytes stored in total.
    pub inbox_total_bytes: u64,
    /// Deliveries pushed to a client before it must acknowledge (a page of the inbox).
    pub inbox_page: usize,
    /// Stores handed to the driver and not yet confirmed; beyond this, final-hop
    /// packets are refused (unacknowledged) until storage catches up.
    pub max_pending_stores: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            ack_size: PacketSize::Regular,
            rate_per_sec: 2000,
            burst: 4000,
            auth_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_clients: 1_000_000,
            inbox_entries_per_client: 100_000,
            inbox_bytes_per_client: 64 << 20,
            inbox_total_bytes: 4 << 30,
            inbox_page: 256,
            max_pending_stores: 16_384,
        }
    }
}

/// What the driver must do (beside sending packets: [`Gateway::poll_transmit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayAction {
    /// Send a transport message to a client connection.
    ToClient {
        /// The client connection, numbered by the driver.
        conn: ConnId,
        /// One WebSocket binary message.
        message: Vec<u8>,
    },
    /// Close a connection (after sending what is queued), with a reason.
    Close {
        /// The client connection, numbered by the driver.
        conn: ConnId,
        /// One of [`session::code`].
        code: u16,
        /// Human-readable reason.
        reason: String,
    },
    /// Something for the gateway's durable store.
    Storage(Storage),
    /// Hand a delivery to an in-process client (the exit service).
    LocalDeliver {
        /// The local client.
        client: [u8; 32],
        /// The packet.
        delivery: Delivery,
    },
}

/// What the gateway asks of its durable store (an inbox per client, and the clients it
/// keeps storage for); the driver carries it out and answers through the named
/// `handle_*` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// Durably store a delivery, then call [`Gateway::handle_stored`] with `token`.
    Store {
        /// Identifies this request.
        token: u64,
        /// The client.
        client: [u8; 32],
        /// What to store.
        delivery: Delivery,
    },
    /// Load at most `limit` of the client's stored deliveries with `seq > after`,
    /// ascending, and call [`Gateway::handle_inbox`].
    LoadInbox {
        /// The connection that asked.
        conn: ConnId,
        /// The client.
        client: [u8; 32],
        /// Only deliveries after this sequence number.
        after: u64,
        /// At most this many.
        limit: usize,
    },
    /// Delete the client's stored deliveries with `seq ≤ up_to`, then call
    /// [`Gateway::handle_deleted`] with how many (and their bytes). At most one is
    /// outstanding per client; acknowledgements that arrive meanwhile are coalesced.
    DeleteInbox {
        /// The client.
        client: [u8; 32],
        /// Highest acknowledged sequence number.
        up_to: u64,
    },
    /// Persist that `client` authenticated here (with ordering value `seen`): the
    /// gateway keeps storage for it, also after a restart ([`Gateway::restore_clients`]).
    RememberClient {
        /// The client.
        client: [u8; 32],
        /// Ordering value of its last authentication.
        seen: u64,
    },
    /// Delete `client` and everything stored for it (the registry made room).
    ForgetClient {
        /// The client.
        client: [u8; 32],
    },
}

/// Counters (exported as metrics by the driver).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GatewayStats {
    /// Connections that authenticated.
    pub sessions_opened: u64,
    /// Packets from clients forwarded into the mixnet.
    pub client_packets: u64,
    /// Frames from clients dropped by the rate limit.
    pub throttled: u64,
    /// Malformed, oversize or unexpected client messages (each closed its connection).
    pub bad_client_messages: u64,
    /// Failed handshakes or authentications.
    pub auth_failures: u64,
    /// Connections refused at the connection limit.
    pub refused_connections: u64,
    /// Connections closed because the client did not read.
    pub slow_clients: u64,
    /// Packets from nodes accepted as final hop.
    pub final_hop_packets: u64,
    /// Replayed packets dropped.
    pub replays: u64,
    /// Malformed or undecryptable node packets dropped.
    pub bad_node_packets: u64,
    /// Final-hop packets for an identity that never authenticated here (not stored).
    pub unknown_destination: u64,
    /// Deliveries refused because the client's inbox was full.
    pub inbox_full_client: u64,
    /// Deliveries refused because the gateway's inbox was full.
    pub inbox_full_total: u64,
    /// Identities forgotten (with their inboxes) to make room for new ones.
    pub clients_evicted: u64,
    /// Deliveries stored.
    pub stored: u64,
    /// Deliveries that could not be stored (no ack was sent, so the sender retransmits).
    pub store_failures: u64,
    /// Final-hop packets refused because storage was behind (too many stores pending).
    pub store_backlog: u64,
    /// Deliveries pushed to connected clients.
    pub pushed: u64,
    /// SURB-acks sent.
    pub acks_sent: u64,
}

struct TokenBucket {
    tokens: f64,
    last: Instant,
    notified: Option<Instant>,
}

enum ConnState {
    AwaitHello,
    AwaitAuth(Box<Transport>),
    Open(Box<OpenSession>),
}

struct OpenSession {
    transport: Transport,
    client: [u8; 32],
    /// `Authenticated` went out (after the first page).
    announced: bool,
    /// A page of the inbox was asked for (of this many at most) and has not come back.
    loading: Option<usize>,
    /// More is stored than was pushed: page again once acks make room.
    behind: bool,
    last_pushed: u64,
    /// Pushed and not yet acknowledged.
    unacked: VecDeque<u64>,
    /// Highest sequence number acknowledged.
    acked: u64,
    /// A delete is outstanding for this client.
    deleting: bool,
    bucket: TokenBucket,
}

struct Conn {
    state: ConnState,
    opened: Instant,
}

struct PendingStore {
    client: [u8; 32],
    delivery: Delivery,
    ack: Option<Transmit>,
}

/// One gateway's protocol state.
pub struct Gateway<R> {
    config: GatewayConfig,
    address: NodeAddress,
    noise: NodeSecret,
    keys: NodeKeys,
    rng: R,
    conns: HashMap<ConnId, Conn>,
    clients: HashMap<[u8; 32], ConnId>,
    local: HashSet<[u8; 32]>,
    registry: registry::Registry,
    pending: HashMap<u64, PendingStore>,
    next_token: u64,
    actions: VecDeque<GatewayAction>,
    transmits: VecDeque<Transmit>,
    stats: GatewayStats,
}

impl<R: CryptoRng> Gateway<R> {
    /// A gateway with identity `address`, Noise key `noise` and Sphinx `keys`.
    pub fn new(config: GatewayConfig, address: NodeAddress, noise: NodeSecret, keys: NodeKeys, rng: R) -> Self {
        Self {
            config,
            address,
            noise,
            keys,
            rng,
            conns: HashMap::new(),
            clients: HashMap::new(),
            local: HashSet::new(),
            registry: registry::Registry::default(),
            pending: HashMap::new(),
            next_token: 1,
            actions: VecDeque::new(),
            transmits: VecDeque::new(),
            stats: GatewayStats::default(),
        }
    }

    /// The clients that authenticated here before a restart, with what their inboxes
    /// hold (from storage), so bounds and the registry carry over.
    pub fn restore_clients(&mut self, records: impl IntoIterator<Item = ClientRecord>) {
        self.registry.restore(records);
    }

    /// Its counters since it started.
    pub fn stats(&self) -> &GatewayStats {
        &self.stats
    }

    /// Our node address.
    pub fn address(&self) -> NodeAddress {
        self.address
    }

    /// The Sphinx keys (to rotate them per epoch, and persist their replay filters).
    pub fn keys(&self) -> &NodeKeys {
        &self.keys
    }

    /// Connections currently open (any state).
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Identities that keep an inbox here.
    pub fn registered_clients(&self) -> usize {
        self.registry.len()
    }

    /// Deliveries and payload bytes stored (or being stored), in total.
    pub fn inbox_usage(&self) -> (u64, u64) {
        self.registry.totals()
    }

    /// Whether `client` has an authenticated connection (or is local).
    pub fn is_connected(&self, client: &[u8; 32]) -> bool {
        self.clients.contains_key(client) || self.local.contains(client)
    }

    /// The next packet to send to another node.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing for the driver to do.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_action(&mut self) -> Option<GatewayAction> {
        self.actions.pop_front()
    }

    /// When [`Self::handle_timeout`] should run next (authentication deadlines).
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter(|c| !matches!(c.state, ConnState::Open(_)))
            .map(|c| c.opened + self.config.auth_timeout)
            .min()
    }

    /// Closes connections that did not authenticate in time.
    pub fn handle_timeout(&mut self, now: Instant) {
        let late: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| !matches!(c.state, ConnState::Open(_)) && c.opened + self.config.auth_timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        for conn in late {
            self.stats.auth_failures += 1;
            self.close(conn, code::AUTH_FAILED, "authentication timed out".into());
        }
    }

    /// An in-process client (the exit service): deliveries for it become
    /// [`GatewayAction::LocalDeliver`] and are acknowledged at once.
    pub fn attach_local(&mut self, client: [u8; 32]) {
        self.local.insert(client);
    }

    /// A packet from an in-process client.
    pub fn handle_local_packet(&mut self, now: Instant, transmit: Transmit) {
        self.route_client_packet(now, transmit);
    }

    /// A client connected; refused (closed at once) at the connection limit.
    pub fn handle_connect(&mut self, now: Instant, conn: ConnId) {
        if self.conns.len() >= self.config.max_connections {
            self.stats.refused_connections += 1;
            let reason = format!("the gateway is at its limit of {} connections", self.config.max_connections);
            self.actions.push_back(GatewayAction::Close { conn, code: code::BUSY, reason });
            return;
        }
        self.conns.insert(conn, Conn { state: ConnState::AwaitHello, opened: now });
    }

    /// A client connection closed.
    pub fn handle_disconnect(&mut self, conn: ConnId) {
        if let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.remove(&conn)
            && self.clients.get(&s.client) == Some(&conn)
        {
            self.clients.remove(&s.client);
        }
    }

    /// The driver could not queue more for `conn` (the client does not read): it is
    /// closed with a reason.
    pub fn handle_slow(&mut self, conn: ConnId) {
        if self.conns.contains_key(&conn) {
            self.stats.slow_clients += 1;
            self.close(conn, code::SLOW, "the client did not read fast enough".into());
        }
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: String) {
        if let Some(Conn { state: ConnState::Open(mut s), .. }) = self.conns.remove(&conn) {
            let frame = ServerFrame::Error { code, message: reason.clone() };
            if let Ok(m) = s.transport.send.encrypt(&frame.to_bytes()) {
                self.actions.push_back(GatewayAction::ToClient { conn, message: m });
            }
            if self.clients.get(&s.client) == Some(&conn) {
                self.clients.remove(&s.client);
            }
        }
        self.conns.remove(&conn);
        self.actions.push_back(GatewayAction::Close { conn, code, reason });
    }

    fn send(&mut self, conn: ConnId, frame: &ServerFrame) {
        let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get_mut(&conn) else { return };
        match s.transport.send.encrypt(&frame.to_bytes()) {
            Ok(message) => self.actions.push_back(GatewayAction::ToClient { conn, message }),
            Err(e) => self.close(conn, code::PROTOCOL, e.to_string()),
        }
    }

    /// A transport message from a client connection.
    pub fn handle_message(&mut self, now: Instant, conn: ConnId, message: &[u8]) {
        if message.len() > MAX_FRAME + noise_overhead() {
            self.stats.bad_client_messages += 1;
            self.close(conn, code::TOO_LARGE, format!("message of {} B exceeds {} B", message.len(), MAX_FRAME));
            return;
        }
        if let Err((code, e)) = self.handle_message_inner(now, conn, message) {
            if code == code::AUTH_FAILED {
                self.stats.auth_failures += 1;
            } else {
                self.stats.bad_client_messages += 1;
            }
            self.close(conn, code, e.to_string());
        }
    }

    fn handle_message_inner(&mut self, now: Instant, conn: ConnId, message: &[u8]) -> Result<(), (u16, SessionError)> {
        let Some(c) = self.conns.get_mut(&conn) else { return Ok(()) };
        match &mut c.state {
            ConnState::AwaitHello => {
                let (transport, reply) =
                    session::accept(&mut self.rng, &self.noise, message).map_err(|e| (code::AUTH_FAILED, e))?;
                c.state = ConnState::AwaitAuth(Box::new(transport));
                self.actions.push_back(GatewayAction::ToClient { conn, message: reply });
                Ok(())
            }
            ConnState::AwaitAuth(t) => {
                let plain = t.recv.decrypt(message).map_err(|e| (code::AUTH_FAILED, e.into()))?;
                let ClientFrame::Authenticate { identity, tag } =
                    ClientFrame::parse(&plain).map_err(|e| (code::PROTOCOL, e))?
                else {
                    return Err((code::PROTOCOL, SessionError::Unexpected("first frame must be Authenticate")));
                };
                session::verify_auth(&self.noise, &t.handshake_hash, &identity, &tag)
                    .map_err(|e| (code::AUTH_FAILED, e))?;
                let ConnState::AwaitAuth(t) = std::mem::replace(&mut c.state, ConnState::AwaitHello) else {
                    unreachable!("matched above")
                };
                c.state = ConnState::Open(Box::new(OpenSession {
                    transport: *t,
                    client: identity,
                    announced: false,
                    loading: None,
                    behind: true,
                    last_pushed: 0,
                    unacked: VecDeque::new(),
                    acked: 0,
                    deleting: false,
                    bucket: TokenBucket { tokens: f64::from(self.config.burst), last: now, notified: None },
                }));
                if let Some(old) = self.clients.insert(identity, conn) {
                    self.close(old, code::REPLACED, "the same identity connected again".into());
                    self.clients.insert(identity, conn);
                }
                self.stats.sessions_opened += 1;
                self.remember(identity);
                self.load_page(conn);
                Ok(())
            }
            ConnState::Open(s) => {
                let plain = s.transport.recv.decrypt(message).map_err(|e| (code::PROTOCOL, e.into()))?;
                let frame = ClientFrame::parse(&plain).map_err(|e| (code::PROTOCOL, e))?;
                if let ClientFrame::Authenticate { .. } = frame {
                    return Err((code::PROTOCOL, SessionError::Unexpected("already authenticated")));
                }
                if let ClientFrame::SendPacket(t) = &frame
                    && PacketSize::from_packet_len(t.packet.len()).is_none()
                {
                    return Err((code::PROTOCOL, SessionError::Malformed("not a Sphinx packet size")));
                }
                // every frame costs a token: acks and pings are work for us too
                let rate = f64::from(self.config.rate_per_sec);
                let b = &mut s.bucket;
                let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
                b.tokens = (b.tokens + elapsed * rate).min(f64::from(self.config.burst));
                b.last = now;
                if b.tokens < 1.0 {
                    self.stats.throttled += 1;
                    let notify = b.notified.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
                    if notify {
                        b.notified = Some(now);
                        let msg =
                            format!("over {} frames/s: frames dropped, retransmit later", self.config.rate_per_sec);
                        self.send(conn, &ServerFrame::Error { code: code::THROTTLED, message: msg });
                    }
                    return Ok(());
                }
                b.tokens -= 1.0;
                match frame {
                    ClientFrame::Authenticate { .. } => unreachable!("refused above"),
                    ClientFrame::SendPacket(t) => self.route_client_packet(now, t),
                    ClientFrame::InboxAck(seq) => self.inbox_ack(conn, seq),
                    ClientFrame::Ping(n) => self.send(conn, &ServerFrame::Pong(n)),
                }
                Ok(())
            }
        }
    }

    /// Records an authentication; makes room in the registry if needed.
    fn remember(&mut self, client: [u8; 32]) {
        let clients = &self.clients;
        let (seen, forgotten) = self.registry.seen(client, self.config.max_clients, |c| clients.contains_key(c));
        for victim in forgotten {
            self.stats.clients_evicted += 1;
            self.actions.push_back(GatewayAction::Storage(Storage::ForgetClient { client: victim }));
        }
        self.actions.push_back(GatewayAction::Storage(Storage::RememberClient { client, seen }));
    }

    fn inbox_ack(&mut self, conn: ConnId, seq: u64) {
        let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get_mut(&conn) else { return };
        // only an ack that covers something new is work for the inbox
        let before = s.unacked.len();
        while s.unacked.front().is_some_and(|p| *p <= seq) {
            s.unacked.pop_front();
        }
        if s.unacked.len() == before {
            return;
        }
        s.acked = s.acked.max(seq.min(s.last_pushed));
        if !s.deleting {
            s.deleting = true;
            self.actions.push_back(GatewayAction::Storage(Storage::DeleteInbox { client: s.client, up_to: s.acked }));
        }
        let window = self.config.inbox_page;
        if s.behind && s.loading.is_none() && s.unacked.len() <= window / 2 {
            self.load_page(conn);
        }
    }

    /// Asks for the next page of the inbox, as much as the window has room for.
    fn load_page(&mut self, conn: ConnId) {
        let window = self.config.inbox_page.max(1);
        let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get_mut(&conn) else { return };
        let limit = window - s.unacked.len().min(window - 1);
        s.loading = Some(limit);
        self.actions.push_back(GatewayAction::Storage(Storage::LoadInbox {
            conn,
            client: s.client,
            after: s.last_pushed,
            limit,
        }));
    }

    fn route_client_packet(&mut self, now: Instant, t: Transmit) {
        self.stats.client_packets += 1;
        if t.first_hop == self.address {
            // fast mode to one of our own clients: we are the first and final hop
            self.handle_node_packet(now, t.packet);
        } else {
            self.transmits.push_back(t);
        }
    }

    /// A packet from another node, for which we should be the final hop.
    pub fn handle_node_packet(&mut self, _now: Instant, packet: Vec<u8>) {
        let processed = match self.keys.process(packet) {
            Ok(Processed::Final(f)) => f,
            Ok(Processed::Forward(_)) => {
                self.stats.bad_node_packets += 1;
                return;
            }
            Err(MixError::Replay) => {
                self.stats.replays += 1;
                return;
            }
            Err(_) => {
                self.stats.bad_node_packets += 1;
                return;
            }
        };
        let hop = match final_hop(processed, self.config.ack_size) {
            Ok(h) => h,
            Err(_) => {
                self.stats.bad_node_packets += 1;
                return;
            }
        };
        self.stats.final_hop_packets += 1;
        let client = hop.client.0;
        if self.local.contains(&client) {
            self.actions.push_back(GatewayAction::LocalDeliver { client, delivery: hop.delivery });
            self.send_ack(hop.ack);
            return;
        }
        // no ack unless stored: a refused packet is retransmitted by its sender, which
        // gives up loudly if the refusal lasts
        if self.pending.len() >= self.config.max_pending_stores {
            self.stats.store_backlog += 1;
            return;
        }
        let limits = registry::Limits {
            entries_per_client: self.config.inbox_entries_per_client,
            bytes_per_client: self.config.inbox_bytes_per_client,
            total_bytes: self.config.inbox_total_bytes,
        };
        match self.registry.reserve(&client, hop.delivery.payload.len() as u64, &limits) {
            Ok(()) => {}
            Err(registry::Refusal::Unknown) => {
                self.stats.unknown_destination += 1;
                return;
            }
            Err(registry::Refusal::ClientFull) => {
                self.stats.inbox_full_client += 1;
                return;
            }
            Err(registry::Refusal::TotalFull) => {
                self.stats.inbox_full_total += 1;
                return;
            }
        }
        let token = self.next_token;
        self.next_token += 1;
        self.actions.push_back(GatewayAction::Storage(Storage::Store {
            token,
            client,
            delivery: hop.delivery.clone(),
        }));
        self.pending.insert(token, PendingStore { client, delivery: hop.delivery, ack: hop.ack });
    }

    fn send_ack(&mut self, ack: Option<Transmit>) {
        if let Some(ack) = ack {
            self.stats.acks_sent += 1;
            self.transmits.push_back(ack);
        }
    }

    /// The result of an [`Storage::Store`]: the delivery's inbox sequence number, or why it failed.
    pub fn handle_stored(&mut self, token: u64, result: Result<u64, String>) {
        let Some(p) = self.pending.remove(&token) else { return };
        let seq = match result {
            Ok(seq) => seq,
            Err(_) => {
                // no ack: the sender will retransmit
                self.stats.store_failures += 1;
                self.registry.release(&p.client, 1, p.delivery.payload.len() as u64);
                return;
            }
        };
        self.stats.stored += 1;
        self.send_ack(p.ack);
        let Some(&conn) = self.clients.get(&p.client) else { return };
        let window = self.config.inbox_page;
        let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get_mut(&conn) else { return };
        if s.loading.is_some() {
            // stored before the page was read: the page (or a later one) has it
            return;
        }
        if s.behind || s.unacked.len() >= window || seq <= s.last_pushed {
            s.behind = true;
            return;
        }
        s.last_pushed = seq;
        s.unacked.push_back(seq);
        self.stats.pushed += 1;
        self.send(conn, &ServerFrame::Deliver { seq, delivery: p.delivery });
    }

    /// A page of the client's stored deliveries, ascending, after [`Storage::LoadInbox`].
    pub fn handle_inbox(&mut self, conn: ConnId, entries: Vec<(u64, Delivery)>) {
        let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get_mut(&conn) else { return };
        let Some(limit) = s.loading.take() else { return };
        // a full page means more may be stored (acks that came meanwhile change nothing)
        s.behind = entries.len() >= limit;
        if !s.announced {
            s.announced = true;
            let stored = self.registry.get(&s.client).map_or(0, |u| u.entries).max(entries.len() as u64);
            self.send(conn, &ServerFrame::Authenticated { stored });
        }
        for (seq, delivery) in entries {
            let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get_mut(&conn) else { return };
            if seq <= s.last_pushed {
                continue;
            }
            s.last_pushed = seq;
            s.unacked.push_back(seq);
            self.stats.pushed += 1;
            self.send(conn, &ServerFrame::Deliver { seq, delivery });
        }
        // the client may have acknowledged everything while the page was read: then
        // no later ack would ask for the next one
        let window = self.config.inbox_page;
        if let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get(&conn)
            && s.behind
            && s.unacked.len() <= window / 2
        {
            self.load_page(conn);
        }
    }

    /// The inbox carried out [`Storage::DeleteInbox`] up to `up_to`, deleting `entries`
    /// deliveries of `client` holding `bytes` payload bytes.
    pub fn handle_deleted(&mut self, client: [u8; 32], up_to: u64, entries: u64, bytes: u64) {
        self.registry.release(&client, entries, bytes);
        let Some(&conn) = self.clients.get(&client) else { return };
        let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get_mut(&conn) else { return };
        s.deleting = false;
        if s.acked > up_to {
            s.deleting = true;
            self.actions.push_back(GatewayAction::Storage(Storage::DeleteInbox { client, up_to: s.acked }));
        }
    }

    /// The inbox expired `entries` deliveries of `client` (too old) holding `bytes`.
    pub fn handle_expired(&mut self, client: [u8; 32], entries: u64, bytes: u64) {
        self.registry.release(&client, entries, bytes);
    }

    /// Tells every connection the gateway is shutting down and closes it.
    pub fn shutdown(&mut self) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        for conn in conns {
            self.close(conn, code::SHUTDOWN, "gateway shutting down".into());
        }
    }
}

const fn noise_overhead() -> usize {
    crate::noise::TAG_LEN
}
