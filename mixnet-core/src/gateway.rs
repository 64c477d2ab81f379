//! The gateway: entry for its clients (sessions, forwarding their packets into the
//! mixnet) and final hop for packets addressed to them (inbox, SURB-acks).
//!
//! Sans-IO: the driver feeds client transport messages, node packets, storage
//! results and time, and carries out [`Output`]s: send to a client or a node, close a
//! connection, store / load / delete inbox entries. Every delivery goes through the
//! durable inbox first; its SURB-ack is sent once the store succeeded, and the entry
//! is deleted only after the client acknowledged it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use rand_core::CryptoRng;

use crate::message::{Delivery, ReceiveError, Transmit, ack_packet, split_data};
use crate::mix::{MixError, NodeKeys};
use crate::noise::Transport;
use crate::session::{self, ClientFrame, MAX_FRAME, ServerFrame, SessionError, code};
use crate::sphinx::{self, DestinationAddress, NodeAddress, NodeSecret, PacketSize, Processed, ProcessedFinal};
use crate::time::Instant;

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

/// Tunables.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Size of the SURB-ack packets sent for forward packets.
    pub ack_size: PacketSize,
    /// Packets per second a client may send (token bucket refill).
    pub rate_per_sec: u32,
    /// Token bucket size.
    pub burst: u32,
    /// A connection must authenticate within this time.
    pub auth_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self { ack_size: PacketSize::Regular, rate_per_sec: 2000, burst: 4000, auth_timeout: Duration::from_secs(10) }
    }
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a transport message to a client connection.
    ToClient {
        /// Connection.
        conn: ConnId,
        /// One WebSocket binary message.
        message: Vec<u8>,
    },
    /// Close a connection (after sending what is queued), with a reason.
    Close {
        /// Connection.
        conn: ConnId,
        /// One of [`session::code`].
        code: u16,
        /// Human-readable reason.
        reason: String,
    },
    /// Send a packet to another node.
    ToNode {
        /// Its address (identity key).
        next_hop: NodeAddress,
        /// The packet.
        packet: Vec<u8>,
    },
    /// Durably store a delivery, then call [`Gateway::handle_stored`] with `token`.
    Store {
        /// Identifies this request.
        token: u64,
        /// The client.
        client: [u8; 32],
        /// What to store.
        delivery: Delivery,
    },
    /// Load the client's stored deliveries (ascending `seq`) and call [`Gateway::handle_inbox`].
    LoadInbox {
        /// The connection that asked.
        conn: ConnId,
        /// The client.
        client: [u8; 32],
    },
    /// Delete the client's stored deliveries with `seq ≤ up_to`.
    DeleteInbox {
        /// The client.
        client: [u8; 32],
        /// Highest acknowledged sequence number.
        up_to: u64,
    },
    /// Hand a delivery to an in-process client (the exit service).
    LocalDeliver {
        /// The local client.
        client: [u8; 32],
        /// The packet.
        delivery: Delivery,
    },
}

/// Counters (exported as metrics by the driver).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GatewayStats {
    /// Connections that authenticated.
    pub sessions_opened: u64,
    /// Packets from clients forwarded into the mixnet.
    pub client_packets: u64,
    /// Packets from clients dropped by the rate limit.
    pub throttled: u64,
    /// Malformed, oversize or unexpected client messages (each closed its connection).
    pub bad_client_messages: u64,
    /// Failed handshakes or authentications.
    pub auth_failures: u64,
    /// Packets from nodes accepted as final hop.
    pub final_hop_packets: u64,
    /// Replayed packets dropped.
    pub replays: u64,
    /// Malformed or undecryptable node packets dropped.
    pub bad_node_packets: u64,
    /// Deliveries stored.
    pub stored: u64,
    /// Deliveries that could not be stored (no ack was sent, so the sender retransmits).
    pub store_failures: u64,
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
    loading: bool,
    buffered: Vec<(u64, Delivery)>,
    last_pushed: u64,
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
    pending: HashMap<u64, PendingStore>,
    next_token: u64,
    out: VecDeque<Output>,
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
            pending: HashMap::new(),
            next_token: 1,
            out: VecDeque::new(),
            stats: GatewayStats::default(),
        }
    }

    /// Counters.
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

    /// Whether `client` has an authenticated connection (or is local).
    pub fn is_connected(&self, client: &[u8; 32]) -> bool {
        self.clients.contains_key(client) || self.local.contains(client)
    }

    /// The next thing for the driver to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] should run next (authentication deadlines).
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
    /// [`Output::LocalDeliver`] and are acknowledged at once.
    pub fn attach_local(&mut self, client: [u8; 32]) {
        self.local.insert(client);
    }

    /// A packet from an in-process client.
    pub fn handle_local_packet(&mut self, now: Instant, transmit: Transmit) {
        self.route_client_packet(now, transmit);
    }

    /// A client connected.
    pub fn handle_connect(&mut self, now: Instant, conn: ConnId) {
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

    fn close(&mut self, conn: ConnId, code: u16, reason: String) {
        if let Some(Conn { state: ConnState::Open(mut s), .. }) = self.conns.remove(&conn) {
            let frame = ServerFrame::Error { code, message: reason.clone() };
            if let Ok(m) = s.transport.send.encrypt(&frame.encode()) {
                self.out.push_back(Output::ToClient { conn, message: m });
            }
            if self.clients.get(&s.client) == Some(&conn) {
                self.clients.remove(&s.client);
            }
        }
        self.conns.remove(&conn);
        self.out.push_back(Output::Close { conn, code, reason });
    }

    fn send(&mut self, conn: ConnId, frame: &ServerFrame) {
        let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get_mut(&conn) else { return };
        match s.transport.send.encrypt(&frame.encode()) {
            Ok(message) => self.out.push_back(Output::ToClient { conn, message }),
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
                self.out.push_back(Output::ToClient { conn, message: reply });
                Ok(())
            }
            ConnState::AwaitAuth(t) => {
                let plain = t.recv.decrypt(message).map_err(|e| (code::AUTH_FAILED, e.into()))?;
                let ClientFrame::Authenticate { identity, tag } =
                    ClientFrame::decode(&plain).map_err(|e| (code::PROTOCOL, e))?
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
                    loading: true,
                    buffered: Vec::new(),
                    last_pushed: 0,
                    bucket: TokenBucket { tokens: f64::from(self.config.burst), last: now, notified: None },
                }));
                if let Some(old) = self.clients.insert(identity, conn) {
                    self.close(old, code::REPLACED, "the same identity connected again".into());
                    self.clients.insert(identity, conn);
                }
                self.stats.sessions_opened += 1;
                self.out.push_back(Output::LoadInbox { conn, client: identity });
                Ok(())
            }
            ConnState::Open(s) => {
                let plain = s.transport.recv.decrypt(message).map_err(|e| (code::PROTOCOL, e.into()))?;
                match ClientFrame::decode(&plain).map_err(|e| (code::PROTOCOL, e))? {
                    ClientFrame::Authenticate { .. } => {
                        Err((code::PROTOCOL, SessionError::Unexpected("already authenticated")))
                    }
                    ClientFrame::SendPacket(t) => {
                        if PacketSize::from_packet_len(t.packet.len()).is_none() {
                            return Err((code::PROTOCOL, SessionError::Malformed("not a Sphinx packet size")));
                        }
                        let rate = f64::from(self.config.rate_per_sec);
                        let b = &mut s.bucket;
                        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
                        b.tokens = (b.tokens + elapsed * rate).min(f64::from(self.config.burst));
                        b.last = now;
                        if b.tokens < 1.0 {
                            self.stats.throttled += 1;
                            let notify =
                                b.notified.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
                            if notify {
                                b.notified = Some(now);
                                let msg = format!(
                                    "over {} packets/s: packets dropped, retransmit later",
                                    self.config.rate_per_sec
                                );
                                self.send(conn, &ServerFrame::Error { code: code::THROTTLED, message: msg });
                            }
                            return Ok(());
                        }
                        b.tokens -= 1.0;
                        self.route_client_packet(now, t);
                        Ok(())
                    }
                    ClientFrame::InboxAck(seq) => {
                        let client = s.client;
                        self.out.push_back(Output::DeleteInbox { client, up_to: seq });
                        Ok(())
                    }
                    ClientFrame::Ping(n) => {
                        self.send(conn, &ServerFrame::Pong(n));
                        Ok(())
                    }
                }
            }
        }
    }

    fn route_client_packet(&mut self, now: Instant, t: Transmit) {
        self.stats.client_packets += 1;
        if t.first_hop == self.address {
            // fast mode to one of our own clients: we are the first and final hop
            self.handle_node_packet(now, t.packet);
        } else {
            self.out.push_back(Output::ToNode { next_hop: t.first_hop, packet: t.packet });
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
            self.out.push_back(Output::LocalDeliver { client, delivery: hop.delivery });
            self.send_ack(hop.ack);
            return;
        }
        let token = self.next_token;
        self.next_token += 1;
        self.out.push_back(Output::Store { token, client, delivery: hop.delivery.clone() });
        self.pending.insert(token, PendingStore { client, delivery: hop.delivery, ack: hop.ack });
    }

    fn send_ack(&mut self, ack: Option<Transmit>) {
        if let Some(ack) = ack {
            self.stats.acks_sent += 1;
            self.out.push_back(Output::ToNode { next_hop: ack.first_hop, packet: ack.packet });
        }
    }

    /// The result of an [`Output::Store`]: the delivery's inbox sequence number, or why it failed.
    pub fn handle_stored(&mut self, token: u64, result: Result<u64, String>) {
        let Some(p) = self.pending.remove(&token) else { return };
        let seq = match result {
            Ok(seq) => seq,
            Err(_) => {
                // no ack: the sender will retransmit
                self.stats.store_failures += 1;
                return;
            }
        };
        self.stats.stored += 1;
        self.send_ack(p.ack);
        let Some(&conn) = self.clients.get(&p.client) else { return };
        let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get_mut(&conn) else { return };
        if s.loading {
            s.buffered.push((seq, p.delivery));
        } else if seq > s.last_pushed {
            s.last_pushed = seq;
            self.stats.pushed += 1;
            self.send(conn, &ServerFrame::Deliver { seq, delivery: p.delivery });
        }
    }

    /// The client's stored deliveries, ascending, after [`Output::LoadInbox`].
    pub fn handle_inbox(&mut self, conn: ConnId, entries: Vec<(u64, Delivery)>) {
        let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get_mut(&conn) else { return };
        let stored = entries.len() as u64;
        s.loading = false;
        let mut all = entries;
        all.append(&mut s.buffered);
        all.sort_by_key(|(seq, _)| *seq);
        all.dedup_by_key(|(seq, _)| *seq);
        self.send(conn, &ServerFrame::Authenticated { stored });
        for (seq, delivery) in all {
            let Some(Conn { state: ConnState::Open(s), .. }) = self.conns.get_mut(&conn) else { return };
            if seq <= s.last_pushed {
                continue;
            }
            s.last_pushed = seq;
            self.stats.pushed += 1;
            self.send(conn, &ServerFrame::Deliver { seq, delivery });
        }
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
