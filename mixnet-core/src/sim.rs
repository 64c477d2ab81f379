//! A simulated network of sans-IO state machines: seeded loss, duplication,
//! corruption, latency with jitter (hence reordering), nodes that go down, and
//! time that jumps to the next event. Like quinn-proto's `Pair::drive()` and
//! smoltcp's `FaultInjector`; enabled by the `sim` feature for tests of this and
//! later crates.
//!
//! [`SimNet`] is generic over any [`Endpoint`]; [`mixnet`] wires the core's mixes,
//! gateways and messengers into a whole network.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

use crate::time::Instant;

/// A state machine on the simulated network, addressed by `A`.
pub trait Endpoint<A> {
    /// Bytes arrived from `from`.
    fn handle_input(&mut self, now: Instant, from: &A, bytes: Vec<u8>);
    /// A timer set by [`Endpoint::poll_timeout`] fired.
    fn handle_timeout(&mut self, now: Instant);
    /// Next bytes to send, and to whom.
    fn poll_transmit(&mut self, now: Instant) -> Option<(A, Vec<u8>)>;
    /// When [`Endpoint::handle_timeout`] should next run.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// Faults and timing of a link.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkConfig {
    /// Base one-way latency.
    pub latency: Duration,
    /// Extra latency, uniform in `[0, jitter)`: reorders packets closer than this.
    pub jitter: Duration,
    /// Probability a packet is lost.
    pub loss: f64,
    /// Probability a packet is delivered twice.
    pub duplicate: f64,
    /// Probability one byte of a packet is flipped.
    pub corrupt: f64,
}

impl LinkConfig {
    /// A perfect link with `latency`.
    pub fn ideal(latency: Duration) -> Self {
        Self { latency, jitter: Duration::ZERO, loss: 0.0, duplicate: 0.0, corrupt: 0.0 }
    }
}

/// What the network did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Packets handed to the network.
    pub sent: u64,
    /// Packets delivered to a node.
    pub delivered: u64,
    /// Packets dropped by loss.
    pub lost: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Packets with a flipped byte.
    pub corrupted: u64,
    /// Packets for an address with no (live) node.
    pub unroutable: u64,
}

struct InFlight<A> {
    at: Instant,
    seq: u64,
    from: A,
    to: A,
    bytes: Vec<u8>,
}

impl<A> PartialEq for InFlight<A> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<A> Eq for InFlight<A> {}
impl<A> PartialOrd for InFlight<A> {
    fn partial_cmp(&self, o: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<A> Ord for InFlight<A> {
    fn cmp(&self, o: &Self) -> core::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// A simulated network of endpoints.
pub struct SimNet<A, E> {
    now: Instant,
    nodes: BTreeMap<A, E>,
    down: HashSet<A>,
    in_flight: BinaryHeap<Reverse<InFlight<A>>>,
    seq: u64,
    rng: ChaCha8Rng,
    default_link: LinkConfig,
    links: HashMap<(A, A), LinkConfig>,
    capture: Option<Vec<(A, A, Vec<u8>)>>,
    /// What the network did so far.
    pub stats: NetStats,
}

impl<A: Ord + Clone + core::hash::Hash, E: Endpoint<A>> SimNet<A, E> {
    /// An empty network; `seed` fixes every random fault.
    pub fn new(seed: u64, default_link: LinkConfig) -> Self {
        Self {
            now: Instant::ZERO,
            nodes: BTreeMap::new(),
            down: HashSet::new(),
            in_flight: BinaryHeap::new(),
            seq: 0,
            rng: ChaCha8Rng::seed_from_u64(seed),
            default_link,
            links: HashMap::new(),
            capture: None,
            stats: NetStats::default(),
        }
    }

    /// Simulated time.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Adds (or replaces) a node.
    pub fn add(&mut self, addr: A, node: E) {
        self.down.remove(&addr);
        self.nodes.insert(addr, node);
    }

    /// Removes a node; packets to it become unroutable.
    pub fn remove(&mut self, addr: &A) -> Option<E> {
        self.nodes.remove(addr)
    }

    /// Takes a node off the network without dropping its state (packets to it are lost).
    pub fn set_down(&mut self, addr: &A, down: bool) {
        if down {
            self.down.insert(addr.clone());
        } else {
            self.down.remove(addr);
        }
    }

    /// A node.
    pub fn node(&self, addr: &A) -> Option<&E> {
        self.nodes.get(addr)
    }

    /// A node, mutably (to call its app commands).
    pub fn node_mut(&mut self, addr: &A) -> Option<&mut E> {
        self.nodes.get_mut(addr)
    }

    /// All nodes.
    pub fn nodes(&self) -> impl Iterator<Item = (&A, &E)> {
        self.nodes.iter()
    }

    /// Sets the link from `from` to `to`.
    pub fn set_link(&mut self, from: A, to: A, link: LinkConfig) {
        self.links.insert((from, to), link);
    }

    /// Sets the link used where no specific one is set.
    pub fn set_default_link(&mut self, link: LinkConfig) {
        self.default_link = link;
    }

    /// Starts recording every packet sent (before faults).
    pub fn start_capture(&mut self) {
        self.capture = Some(Vec::new());
    }

    /// Packets recorded since [`Self::start_capture`].
    pub fn captured(&self) -> &[(A, A, Vec<u8>)] {
        self.capture.as_deref().unwrap_or(&[])
    }

    /// Puts bytes on the wire from `from` to `to` now, as if `from` had sent them.
    pub fn inject(&mut self, from: A, to: A, bytes: Vec<u8>) {
        self.schedule(from, to, bytes);
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    fn schedule(&mut self, from: A, to: A, mut bytes: Vec<u8>) {
        self.stats.sent += 1;
        if let Some(c) = self.capture.as_mut() {
            c.push((from.clone(), to.clone(), bytes.clone()));
        }
        let link = self.links.get(&(from.clone(), to.clone())).unwrap_or(&self.default_link).clone();
        if self.chance(link.loss) {
            self.stats.lost += 1;
            return;
        }
        if !bytes.is_empty() && self.chance(link.corrupt) {
            let i = (self.rng.next_u64() % bytes.len() as u64) as usize;
            bytes[i] ^= 1 << (self.rng.next_u32() % 8);
            self.stats.corrupted += 1;
        }
        let copies = if self.chance(link.duplicate) { 2 } else { 1 };
        self.stats.duplicated += copies - 1;
        for _ in 0..copies {
            let jitter = if link.jitter.is_zero() {
                Duration::ZERO
            } else {
                Duration::from_micros(self.rng.next_u64() % link.jitter.as_micros().max(1) as u64)
            };
            self.seq += 1;
            self.in_flight.push(Reverse(InFlight {
                at: self.now + link.latency + jitter,
                seq: self.seq,
                from: from.clone(),
                to: to.clone(),
                bytes: bytes.clone(),
            }));
        }
    }

    fn flush(&mut self) {
        let now = self.now;
        let mut out = Vec::new();
        for (addr, node) in self.nodes.iter_mut() {
            if self.down.contains(addr) {
                continue;
            }
            while let Some((to, bytes)) = node.poll_transmit(now) {
                out.push((addr.clone(), to, bytes));
            }
        }
        for (from, to, bytes) in out {
            self.schedule(from, to, bytes);
        }
    }

    /// When the next thing happens, if anything will.
    pub fn next_event(&self) -> Option<Instant> {
        let packet = self.in_flight.peek().map(|p| p.0.at);
        let timer =
            self.nodes.iter().filter(|(a, _)| !self.down.contains(a)).filter_map(|(_, n)| n.poll_timeout()).min();
        [packet, timer].into_iter().flatten().min()
    }

    /// Sends what nodes have queued, then jumps to the next event and handles it.
    /// Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.flush();
        let Some(next) = self.next_event() else { return false };
        self.now = self.now.max(next);
        let now = self.now;
        while self.in_flight.peek().is_some_and(|p| p.0.at <= now) {
            let Reverse(p) = self.in_flight.pop().expect("peeked");
            match self.nodes.get_mut(&p.to) {
                Some(node) if !self.down.contains(&p.to) => {
                    self.stats.delivered += 1;
                    node.handle_input(now, &p.from, p.bytes);
                }
                _ => self.stats.unroutable += 1,
            }
        }
        for (addr, node) in self.nodes.iter_mut() {
            if !self.down.contains(addr) && node.poll_timeout().is_some_and(|t| t <= now) {
                node.handle_timeout(now);
            }
        }
        self.flush();
        true
    }

    /// Steps until `done` holds (true) or time passes `limit` or nothing is left (false).
    pub fn run_until(&mut self, limit: Instant, mut done: impl FnMut(&Self) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            // queued output is sent now, so it counts as an event before any timer
            self.flush();
            match self.next_event() {
                Some(t) if t <= limit => {
                    self.step();
                }
                _ => return done(self),
            }
        }
    }

    /// Steps until simulated time reaches `until` (or nothing is left).
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until, |_| false);
        self.now = self.now.max(until);
    }
}

pub mod mixnet {
    //! The core's state machines on a [`SimNet`]: mixes in three layers, gateways
    //! ([`Gateway`] with an in-memory inbox) and clients (the core's [`Client`]),
    //! speaking the real session protocol to their gateway.

    use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
    use std::time::Duration;

    use crate::client::{Client, ClientEvent, LoopixConfig};
    use rand_chacha::{ChaCha8Rng, ChaCha20Rng};
    use rand_core::{Rng, SeedableRng};

    use super::{Endpoint, LinkConfig, SimNet};
    use std::net::{IpAddr, SocketAddr};

    use crate::address::Recipient;
    use crate::exit::{ConnectError, Exit, ExitAction, ExitConfig, ExitKey, ResolveError};
    use crate::gateway::{ConnId, Gateway, GatewayAction, GatewayConfig, Storage};
    use crate::message::{Delivery, Messenger, MessengerConfig, ReceivedMessage};
    use crate::mix::{Mix, MixConfig, NodeKeys, ReplayConfig};
    use crate::sphinx::{NodeAddress, NodeSecret};
    use crate::time::Instant;
    use crate::topology::{Gateway as GatewayInfo, Key32, MixNode, Routes, Topology};

    /// A gateway with an in-memory inbox standing in for SQLite.
    pub struct SimGateway {
        /// The state machine under test.
        pub gateway: Gateway<ChaCha20Rng>,
        nodes: HashSet<NodeAddress>,
        conns: HashMap<NodeAddress, ConnId>,
        addrs: HashMap<ConnId, NodeAddress>,
        next_conn: ConnId,
        inbox: HashMap<[u8; 32], BTreeMap<u64, Delivery>>,
        next_seq: u64,
        out: VecDeque<(NodeAddress, Vec<u8>)>,
        /// The exit attached to this gateway, if any.
        pub exit: Option<SimExit>,
        /// Inbox pages loaded, and the largest asked for.
        pub pages: (usize, usize),
    }

    /// How a simulated server behaves.
    #[derive(Debug, Clone, Copy)]
    pub enum SimServer {
        /// Writes back what it reads; closes after the client does.
        Echo,
        /// Reads everything, never answers; closes after the client does.
        Sink,
        /// Accepts the connection, then never reads (a slow or stuck server).
        Stalled,
        /// Sends this many bytes at once, then closes (a download).
        Source(usize),
        /// Never answers the connection attempt (the driver's connect timeout is not
        /// simulated: the attempt stays pending).
        Unresponsive,
        /// A server application made per connection by this function (a TLS or HTTP
        /// server in a test): bytes in, bytes out.
        App(fn() -> Box<dyn SimApp>),
    }

    /// A server application behind [`SimServer::App`].
    pub trait SimApp {
        /// The client's next bytes; returns what the server answers now.
        fn on_data(&mut self, data: &[u8]) -> Vec<u8>;
        /// The client closed its side; returns the server's last bytes (it closes
        /// once they have been read).
        fn on_close(&mut self) -> Vec<u8> {
            Vec::new()
        }
    }

    struct SimConn {
        server: SimServer,
        app: Option<Box<dyn SimApp>>,
        /// Bytes the server has for the exit to read.
        to_read: VecDeque<u8>,
        /// The server closes once `to_read` is empty.
        closing: bool,
    }

    /// The core's [`Exit`] with simulated DNS and servers: the driver the gateway
    /// runs, with sockets replaced by [`SimServer`]s.
    pub struct SimExit {
        /// The state machine under test.
        pub exit: Exit<ChaCha20Rng>,
        /// Names and their addresses.
        pub dns: HashMap<String, Vec<IpAddr>>,
        /// Servers by address; connecting anywhere else is refused.
        pub servers: HashMap<SocketAddr, SimServer>,
        conns: HashMap<ExitKey, SimConn>,
        /// Every action the exit asked for, in order (for tests).
        pub actions: Vec<ExitAction>,
    }

    impl SimExit {
        fn feed(&mut self, now: Instant, key: ExitKey) {
            loop {
                let budget = self.exit.read_budget(&key);
                let Some(c) = self.conns.get_mut(&key) else { return };
                if budget == 0 || c.to_read.is_empty() {
                    if c.to_read.is_empty() && c.closing {
                        c.closing = false;
                        self.exit.handle_eof(now, key, None);
                    }
                    return;
                }
                let n = budget.min(c.to_read.len());
                let data: Vec<u8> = c.to_read.drain(..n).collect();
                self.exit.handle_read(now, key, &data);
            }
        }

        /// Carries out the exit's actions; true if there were any.
        fn pump(&mut self, now: Instant) -> bool {
            let mut any = false;
            while let Some(a) = self.exit.poll_action() {
                any = true;
                self.actions.push(a.clone());
                match a {
                    ExitAction::Resolve { key, host, .. } => {
                        let r = match host.parse::<IpAddr>() {
                            Ok(ip) => Ok(vec![ip]),
                            Err(_) => self.dns.get(&host).cloned().ok_or(ResolveError::NotFound),
                        };
                        self.exit.handle_resolved(now, key, r);
                    }
                    ExitAction::Connect { key, addr } => match self.servers.get(&addr) {
                        Some(SimServer::Unresponsive) => {}
                        Some(&server) => {
                            let (to_read, closing) = match server {
                                SimServer::Source(n) => ((0..n).map(|i| i as u8).collect(), true),
                                _ => (VecDeque::new(), false),
                            };
                            let app = match server {
                                SimServer::App(make) => Some(make()),
                                _ => None,
                            };
                            self.conns.insert(key, SimConn { server, app, to_read, closing });
                            self.exit.handle_connected(now, key);
                        }
                        None => self.exit.handle_connect_failed(now, key, ConnectError::Refused),
                    },
                    ExitAction::Write { key, data } => {
                        let Some(c) = self.conns.get_mut(&key) else { continue };
                        match c.server {
                            SimServer::Echo => c.to_read.extend(&data),
                            SimServer::App(_) => {
                                if let Some(app) = c.app.as_mut() {
                                    c.to_read.extend(app.on_data(&data));
                                }
                            }
                            SimServer::Sink | SimServer::Source(_) => {}
                            SimServer::Stalled | SimServer::Unresponsive => continue,
                        }
                        self.exit.handle_written(now, key, data.len());
                        self.feed(now, key);
                    }
                    ExitAction::ShutdownWrite { key } => {
                        if let Some(c) = self.conns.get_mut(&key)
                            && !matches!(c.server, SimServer::Stalled)
                        {
                            if let Some(app) = c.app.as_mut() {
                                c.to_read.extend(app.on_close());
                            }
                            c.closing = true;
                            self.feed(now, key);
                        }
                    }
                    ExitAction::ReadReady { key } => self.feed(now, key),
                    ExitAction::Abort { key } | ExitAction::Release { key } => {
                        self.conns.remove(&key);
                    }
                }
            }
            any
        }

        /// Connections the exit holds open in the simulated servers.
        pub fn connections(&self) -> usize {
            self.conns.len()
        }
    }

    impl SimGateway {
        /// Deliveries stored and not yet acknowledged by their clients.
        pub fn stored(&self) -> usize {
            self.inbox.values().map(BTreeMap::len).sum()
        }

        fn disconnect(&mut self, client: &NodeAddress) {
            if let Some(conn) = self.conns.remove(client) {
                self.addrs.remove(&conn);
                self.gateway.handle_disconnect(conn);
            }
        }

        fn run_outputs(&mut self, now: Instant) {
            // carrying out an action can give packets to send (a SURB-ack once stored):
            // every packet goes out before the next action, none is left behind
            loop {
                while let Some(t) = self.gateway.poll_transmit() {
                    self.out.push_back((t.first_hop, t.packet));
                }
                let Some(o) = self.gateway.poll_action() else { break };
                match o {
                    GatewayAction::ToClient { conn, message } => {
                        if let Some(a) = self.addrs.get(&conn) {
                            self.out.push_back((*a, message));
                        }
                    }
                    GatewayAction::Close { conn, .. } => {
                        if let Some(a) = self.addrs.remove(&conn) {
                            self.conns.remove(&a);
                        }
                    }
                    GatewayAction::Storage(Storage::Store { token, client, delivery }) => {
                        self.next_seq += 1;
                        self.inbox.entry(client).or_default().insert(self.next_seq, delivery);
                        self.gateway.handle_stored(token, Ok(self.next_seq));
                    }
                    GatewayAction::Storage(Storage::LoadInbox { conn, client, after, limit }) => {
                        self.pages = (self.pages.0 + 1, self.pages.1.max(limit));
                        let entries = self
                            .inbox
                            .get(&client)
                            .map(|m| m.range(after + 1..).take(limit).map(|(s, d)| (*s, d.clone())).collect());
                        self.gateway.handle_inbox(conn, entries.unwrap_or_default());
                    }
                    GatewayAction::Storage(Storage::DeleteInbox { client, up_to }) => {
                        let m = self.inbox.entry(client).or_default();
                        let gone: Vec<u64> = m.range(..=up_to).map(|(s, _)| *s).collect();
                        let bytes: usize = gone.iter().filter_map(|s| m.remove(s)).map(|d| d.payload.len()).sum();
                        self.gateway.handle_deleted(client, up_to, gone.len() as u64, bytes as u64);
                    }
                    GatewayAction::Storage(Storage::RememberClient { .. }) => {}
                    GatewayAction::Storage(Storage::ForgetClient { client }) => {
                        self.inbox.remove(&client);
                    }
                    GatewayAction::LocalDeliver { delivery, .. } => {
                        if let Some(x) = self.exit.as_mut() {
                            x.exit.handle_delivery(now, delivery);
                        }
                    }
                }
            }
            // the exit's packets go into the gateway like a client's
            if let Some(x) = self.exit.as_mut() {
                let mut again = x.pump(now);
                while let Some(t) = x.exit.poll_transmit(now) {
                    self.gateway.handle_local_packet(now, t);
                    again = true;
                }
                if again {
                    self.run_outputs(now);
                }
            }
        }
    }

    /// A client: the core's [`Client`] (session, messenger, Loopix streams) attached
    /// to its gateway; the connection is modelled as always openable.
    pub struct SimClient {
        gateway: NodeAddress,
        /// The state machine under test.
        pub client: Client<ChaCha20Rng>,
        /// Events so far.
        pub events: Vec<ClientEvent>,
        /// Transport messages sent to the gateway (all of them, for rate checks).
        pub sent: u64,
    }

    impl SimClient {
        fn drain(&mut self) {
            while let Some(e) = self.client.poll_event() {
                self.events.push(e);
            }
        }

        /// The messenger inside.
        pub fn messenger(&self) -> &Messenger<ChaCha20Rng> {
            self.client.messenger()
        }

        /// Received messages so far.
        pub fn received(&self) -> impl Iterator<Item = &ReceivedMessage> {
            self.events.iter().filter_map(|e| match e {
                ClientEvent::Message(m) => Some(m),
                _ => None,
            })
        }
    }

    /// Any node of the simulated mixnet.
    // a test network has a handful of nodes: boxing the large variant buys nothing
    #[allow(clippy::large_enum_variant)]
    pub enum SimNode {
        /// A mix node.
        Mix(Mix),
        /// A gateway.
        Gateway(SimGateway),
        /// A client.
        Client(SimClient),
    }

    impl Endpoint<NodeAddress> for SimNode {
        fn handle_input(&mut self, now: Instant, from: &NodeAddress, bytes: Vec<u8>) {
            match self {
                Self::Mix(m) => {
                    let _ = m.handle_packet(now, bytes);
                }
                Self::Gateway(g) => {
                    if g.nodes.contains(from) {
                        g.gateway.handle_node_packet(now, bytes);
                    } else {
                        let conn = match g.conns.get(from) {
                            Some(c) => *c,
                            None => {
                                g.next_conn += 1;
                                let c = g.next_conn;
                                g.conns.insert(*from, c);
                                g.addrs.insert(c, *from);
                                g.gateway.handle_connect(now, c);
                                c
                            }
                        };
                        g.gateway.handle_message(now, conn, &bytes);
                    }
                    g.run_outputs(now);
                }
                Self::Client(c) => {
                    c.client.handle_message(now, &bytes);
                    c.drain();
                }
            }
        }

        fn handle_timeout(&mut self, now: Instant) {
            match self {
                Self::Client(c) => {
                    c.client.handle_timeout(now);
                    if c.client.wants_connection(now) {
                        c.client.handle_connected(now);
                    }
                    c.drain();
                }
                Self::Gateway(g) => {
                    g.gateway.handle_timeout(now);
                    if let Some(x) = g.exit.as_mut() {
                        x.exit.handle_timeout(now);
                    }
                    g.run_outputs(now);
                }
                Self::Mix(_) => {}
            }
        }

        fn poll_transmit(&mut self, now: Instant) -> Option<(NodeAddress, Vec<u8>)> {
            match self {
                Self::Mix(m) => m.poll_transmit(now).map(|t| (t.first_hop, t.packet)),
                Self::Gateway(g) => g.out.pop_front(),
                Self::Client(c) => {
                    let m = c.client.poll_transmit()?;
                    c.sent += 1;
                    Some((c.gateway, m))
                }
            }
        }

        fn poll_timeout(&self) -> Option<Instant> {
            match self {
                Self::Mix(m) => m.poll_timeout(),
                Self::Gateway(g) => [g.gateway.poll_timeout(), g.exit.as_ref().and_then(|x| x.exit.poll_timeout())]
                    .into_iter()
                    .flatten()
                    .min(),
                Self::Client(c) => c.client.poll_timeout(),
            }
        }
    }

    /// A whole simulated mixnet.
    pub struct SimMixnet {
        /// The network.
        pub net: SimNet<NodeAddress, SimNode>,
        /// Its topology.
        pub topology: Topology,
        rng: ChaCha8Rng,
    }

    /// Replay filters sized for a simulation (a few hundred KB per node).
    pub fn sim_replay() -> ReplayConfig {
        ReplayConfig { capacity: 100_000, false_positive: 1e-6 }
    }

    fn key(rng: &mut ChaCha8Rng) -> [u8; 32] {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        b
    }

    impl SimMixnet {
        /// `mixes_per_layer` mixes in each of 3 layers and `gateways` gateways, all
        /// keys from `seed`.
        pub fn new(seed: u64, link: LinkConfig, mixes_per_layer: usize, gateways: usize) -> Self {
            Self::new_with_gateways(seed, link, mixes_per_layer, vec![GatewayConfig::default(); gateways])
        }

        /// Like [`Self::new`], with one gateway per configuration.
        pub fn new_with_gateways(
            seed: u64,
            link: LinkConfig,
            mixes_per_layer: usize,
            gateways: Vec<GatewayConfig>,
        ) -> Self {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut net = SimNet::new(seed ^ 0x5eed, link);
            let mut mixes = Vec::new();
            for layer in 1..=3u8 {
                for i in 0..mixes_per_layer {
                    let identity = key(&mut rng);
                    let secret = NodeSecret::from_bytes(key(&mut rng));
                    mixes.push(MixNode {
                        identity: Key32(identity),
                        sphinx_key: Key32(secret.public_key()),
                        layer,
                        mix_address: format!("mix-{layer}-{i}"),
                        noise_key: Key32(key(&mut rng)),
                    });
                    net.add(
                        NodeAddress(identity),
                        SimNode::Mix(Mix::new(MixConfig::default(), NodeKeys::new(1, secret, sim_replay()))),
                    );
                }
            }
            let mut infos = Vec::new();
            let mut gateways_sm = Vec::new();
            for (i, gateway) in gateways.into_iter().enumerate() {
                let identity = key(&mut rng);
                let secret = NodeSecret::from_bytes(key(&mut rng));
                let noise = NodeSecret::from_bytes(key(&mut rng));
                infos.push(GatewayInfo {
                    identity: Key32(identity),
                    sphinx_key: Key32(secret.public_key()),
                    mix_address: format!("gateway-{i}"),
                    noise_key: Key32(noise.public_key()),
                    client_ws: None,
                    client_wt: None,
                    exit: None,
                });
                let gw = Gateway::new(
                    gateway,
                    NodeAddress(identity),
                    noise,
                    NodeKeys::new(1, secret, sim_replay()),
                    ChaCha20Rng::seed_from_u64(rng.next_u64()),
                );
                gateways_sm.push((identity, gw));
            }
            let topology = Topology { epoch: 1, valid_until_ms: u64::MAX, mixes, gateways: infos };
            let nodes: HashSet<NodeAddress> = topology
                .mixes
                .iter()
                .map(|m| NodeAddress(m.identity.0))
                .chain(topology.gateways.iter().map(|g| NodeAddress(g.identity.0)))
                .collect();
            for (identity, gateway) in gateways_sm {
                net.add(
                    NodeAddress(identity),
                    SimNode::Gateway(SimGateway {
                        gateway,
                        nodes: nodes.clone(),
                        conns: HashMap::new(),
                        addrs: HashMap::new(),
                        next_conn: 0,
                        inbox: HashMap::new(),
                        next_seq: 0,
                        out: VecDeque::new(),
                        exit: None,
                        pages: (0, 0),
                    }),
                );
            }
            Self { net, topology, rng }
        }

        /// Adds a client at gateway number `gateway`, sending immediately without
        /// cover; returns its address. It connects at once.
        pub fn add_client(&mut self, gateway: usize, config: MessengerConfig) -> Recipient {
            self.add_client_with(gateway, config, LoopixConfig::immediate())
        }

        /// Adds a client with the given traffic shaping.
        pub fn add_client_with(&mut self, gateway: usize, config: MessengerConfig, loopix: LoopixConfig) -> Recipient {
            let signing = NodeSecret::from_bytes(key(&mut self.rng));
            let identity = signing.public_key();
            let info = self.topology.gateways[gateway].clone();
            let gw = info.identity.0;
            let mut client = Client::new(
                config,
                loopix,
                signing,
                NodeSecret::from_bytes(key(&mut self.rng)),
                gw,
                info.noise_key.0,
                ChaCha20Rng::seed_from_u64(self.rng.next_u64()),
                ChaCha20Rng::seed_from_u64(self.rng.next_u64()),
            );
            client.set_routes(Routes::new(self.topology.clone()).expect("valid topology"));
            let address = client.self_address();
            self.net.add(
                NodeAddress(identity),
                SimNode::Client(SimClient { gateway: NodeAddress(gw), client, events: vec![], sent: 0 }),
            );
            // the client's own connection is reliable (TCP/QUIC in production); faults
            // apply between nodes
            let latency = LinkConfig::ideal(Duration::from_millis(2));
            self.net.set_link(NodeAddress(identity), NodeAddress(gw), latency.clone());
            self.net.set_link(NodeAddress(gw), NodeAddress(identity), latency);
            address
        }

        /// Attaches an exit to gateway number `gateway` (like `[exit]` in a gateway's
        /// configuration) and publishes it in the topology; returns its address.
        pub fn add_exit(&mut self, gateway: usize, config: ExitConfig) -> Recipient {
            let gw = self.topology.gateways[gateway].identity.0;
            let keys = crate::message::ClientKeys {
                identity: key(&mut self.rng),
                encryption: NodeSecret::from_bytes(key(&mut self.rng)),
            };
            let mut exit = Exit::new(config, keys, gw, ChaCha20Rng::seed_from_u64(self.rng.next_u64()));
            let address = exit.address();
            self.topology.gateways[gateway].exit = Some(address);
            exit.set_routes(Routes::new(self.topology.clone()).expect("valid topology"));
            let g = self.gateway_mut(gw);
            g.gateway.attach_local(address.identity);
            g.exit = Some(SimExit {
                exit,
                dns: HashMap::new(),
                servers: HashMap::new(),
                conns: HashMap::new(),
                actions: Vec::new(),
            });
            address
        }

        /// The exit attached to gateway `id`.
        pub fn exit_mut(&mut self, gateway: [u8; 32]) -> &mut SimExit {
            self.gateway_mut(gateway).exit.as_mut().expect("an exit is attached")
        }

        /// The gateway with identity `id`.
        pub fn gateway_mut(&mut self, id: [u8; 32]) -> &mut SimGateway {
            match self.net.node_mut(&NodeAddress(id)) {
                Some(SimNode::Gateway(g)) => g,
                _ => panic!("no gateway {id:?}"),
            }
        }

        /// The client at `address`.
        pub fn client(&self, address: &Recipient) -> &SimClient {
            match self.net.node(&NodeAddress(address.identity)) {
                Some(SimNode::Client(c)) => c,
                _ => panic!("no client {address}"),
            }
        }

        /// The client at `address`, mutably.
        pub fn client_mut(&mut self, address: &Recipient) -> &mut SimClient {
            match self.net.node_mut(&NodeAddress(address.identity)) {
                Some(SimNode::Client(c)) => c,
                _ => panic!("no client {address}"),
            }
        }

        /// Takes a client offline (its connection drops; the gateway stores for it) or
        /// back online (it reconnects and receives what was stored).
        pub fn set_client_online(&mut self, address: &Recipient, online: bool) {
            let addr = NodeAddress(address.identity);
            self.net.set_down(&addr, !online);
            if !online {
                self.gateway_mut(address.gateway).disconnect(&addr);
                let now = self.net.now();
                let c = self.client_mut(address);
                c.client.handle_disconnected(now, "offline");
                c.drain();
            }
        }

        /// Runs until `done` or `limit` of simulated time from now.
        pub fn run_until(&mut self, limit: Duration, done: impl FnMut(&SimNet<NodeAddress, SimNode>) -> bool) -> bool {
            let until = self.net.now() + limit;
            self.net.run_until(until, done)
        }
    }
}
