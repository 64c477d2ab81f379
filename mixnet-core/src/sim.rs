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
        let timer = self
            .nodes
            .iter()
            .filter(|(a, _)| !self.down.contains(a))
            .filter_map(|(_, n)| n.poll_timeout())
            .min();
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
    //! (final hop, SURB-acks, inbox for offline clients) and clients ([`Messenger`]).

    use std::collections::{HashMap, VecDeque};
    use std::time::Duration;

    use rand_chacha::{ChaCha8Rng, ChaCha20Rng};
    use rand_core::{Rng, SeedableRng};

    use super::{Endpoint, LinkConfig, SimNet};
    use crate::gateway::final_hop;
    use crate::message::{ClientKeys, Delivery, Event, Messenger, MessengerConfig};
    use crate::mix::{Mix, ReplayFilter};
    use crate::sphinx::{self, NodeAddress, NodeSecret, PacketSize, Processed};
    use crate::address::Recipient;
    use crate::time::Instant;
    use crate::topology::{Gateway, Key32, MixNode, Routes, Topology};

    /// A client frame to its gateway: `first hop (32) || packet`; a gateway frame to
    /// its client: `identifier (16) || payload`.
    const FIRST_HOP_LEN: usize = 32;

    /// Counters of a simulated gateway.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct GatewayStats {
        /// Deliveries handed to a client (live or from the inbox).
        pub delivered: u64,
        /// Deliveries stored for an offline client.
        pub stored: u64,
        /// SURB-acks sent.
        pub acks_sent: u64,
        /// Replayed packets dropped.
        pub replays: u64,
        /// Malformed packets dropped.
        pub malformed: u64,
    }

    /// A gateway: final hop for its clients, forwards their packets, stores for them while offline.
    pub struct SimGateway {
        address: NodeAddress,
        secret: NodeSecret,
        replay: ReplayFilter,
        online: HashMap<[u8; 32], bool>,
        inbox: HashMap<[u8; 32], VecDeque<Vec<u8>>>,
        out: VecDeque<(NodeAddress, Vec<u8>)>,
        /// Counters.
        pub stats: GatewayStats,
    }

    impl SimGateway {
        fn deliver(&mut self, client: [u8; 32], frame: Vec<u8>) {
            match self.online.get(&client) {
                Some(true) => {
                    self.stats.delivered += 1;
                    self.out.push_back((NodeAddress(client), frame));
                }
                _ => {
                    self.stats.stored += 1;
                    self.inbox.entry(client).or_default().push_back(frame);
                }
            }
        }

        /// Marks a client on- or offline; coming online flushes its inbox in order.
        pub fn set_online(&mut self, client: [u8; 32], online: bool) {
            self.online.insert(client, online);
            if online {
                for frame in self.inbox.remove(&client).unwrap_or_default() {
                    self.stats.delivered += 1;
                    self.out.push_back((NodeAddress(client), frame));
                }
            }
        }

        /// Deliveries waiting for offline clients.
        pub fn stored(&self) -> usize {
            self.inbox.values().map(VecDeque::len).sum()
        }

        fn handle_packet(&mut self, packet: Vec<u8>) {
            let expanded = match self.secret.packet_secret(&packet) {
                Ok(e) => e,
                Err(_) => {
                    self.stats.malformed += 1;
                    return;
                }
            };
            if self.replay.contains(&expanded.replay_tag()) {
                self.stats.replays += 1;
                return;
            }
            let processed = match sphinx::process_packet_with_secret(&expanded, packet) {
                Ok(Processed::Final(f)) => f,
                _ => {
                    self.stats.malformed += 1;
                    return;
                }
            };
            self.replay.insert(expanded.replay_tag());
            match final_hop(processed, PacketSize::Regular) {
                Ok(hop) => {
                    let mut frame = hop.delivery.identifier.to_vec();
                    frame.extend_from_slice(&hop.delivery.payload);
                    self.deliver(hop.client.0, frame);
                    if let Some(ack) = hop.ack {
                        self.stats.acks_sent += 1;
                        self.out.push_back((ack.first_hop, ack.packet));
                    }
                }
                Err(_) => self.stats.malformed += 1,
            }
        }
    }

    /// A client: a [`Messenger`] attached to a gateway, sending as fast as it builds.
    pub struct SimClient {
        gateway: NodeAddress,
        /// The state machine under test.
        pub messenger: Messenger<ChaCha20Rng>,
        /// Events so far.
        pub events: Vec<Event>,
    }

    impl SimClient {
        fn drain(&mut self) {
            while let Some(e) = self.messenger.poll_event() {
                self.events.push(e);
            }
        }

        /// Received messages so far.
        pub fn received(&self) -> impl Iterator<Item = &crate::message::ReceivedMessage> {
            self.events.iter().filter_map(|e| match e {
                Event::Received(m) => Some(m),
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
                    if g.online.contains_key(&from.0) {
                        // from one of our clients: forward to the first hop (maybe ourselves)
                        if bytes.len() < FIRST_HOP_LEN {
                            g.stats.malformed += 1;
                            return;
                        }
                        let first = NodeAddress(bytes[..FIRST_HOP_LEN].try_into().expect("32 bytes"));
                        let packet = bytes[FIRST_HOP_LEN..].to_vec();
                        if first == g.address {
                            g.handle_packet(packet);
                        } else {
                            g.out.push_back((first, packet));
                        }
                    } else {
                        g.handle_packet(bytes);
                    }
                }
                Self::Client(c) => {
                    if bytes.len() < 16 {
                        return;
                    }
                    let identifier = bytes[..16].try_into().expect("16 bytes");
                    c.messenger.handle_delivery(now, Delivery { identifier, payload: bytes[16..].to_vec() });
                    c.drain();
                }
            }
        }

        fn handle_timeout(&mut self, now: Instant) {
            if let Self::Client(c) = self {
                c.messenger.handle_timeout(now);
                c.drain();
            }
        }

        fn poll_transmit(&mut self, now: Instant) -> Option<(NodeAddress, Vec<u8>)> {
            match self {
                Self::Mix(m) => m.poll_transmit(now),
                Self::Gateway(g) => g.out.pop_front(),
                Self::Client(c) => {
                    let t = c.messenger.poll_transmit(now);
                    c.drain();
                    let t = t?;
                    let mut frame = t.first_hop.0.to_vec();
                    frame.extend_from_slice(&t.packet);
                    Some((c.gateway, frame))
                }
            }
        }

        fn poll_timeout(&self) -> Option<Instant> {
            match self {
                Self::Mix(m) => m.poll_timeout(),
                Self::Gateway(_) => None,
                Self::Client(c) => c.messenger.poll_timeout(),
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

    impl SimMixnet {
        /// `mixes_per_layer` mixes in each of 3 layers and `gateways` gateways, all
        /// keys from `seed`.
        pub fn new(seed: u64, link: LinkConfig, mixes_per_layer: usize, gateways: usize) -> Self {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut net = SimNet::new(seed ^ 0x5eed, link);
            let key = |rng: &mut ChaCha8Rng| {
                let mut b = [0u8; 32];
                rng.fill_bytes(&mut b);
                b
            };
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
                    });
                    net.add(NodeAddress(identity), SimNode::Mix(Mix::new(secret, 100_000)));
                }
            }
            let mut gws = Vec::new();
            for i in 0..gateways {
                let identity = key(&mut rng);
                let secret = NodeSecret::from_bytes(key(&mut rng));
                gws.push(Gateway {
                    identity: Key32(identity),
                    sphinx_key: Key32(secret.public_key()),
                    mix_address: format!("gateway-{i}"),
                    client_key: Key32(key(&mut rng)),
                    client_ws: None,
                    client_wt: None,
                    exit: false,
                });
                net.add(
                    NodeAddress(identity),
                    SimNode::Gateway(SimGateway {
                        address: NodeAddress(identity),
                        secret,
                        replay: ReplayFilter::default(),
                        online: HashMap::new(),
                        inbox: HashMap::new(),
                        out: VecDeque::new(),
                        stats: GatewayStats::default(),
                    }),
                );
            }
            let topology = Topology { epoch: 1, valid_until_ms: u64::MAX, mixes, gateways: gws };
            Self { net, topology, rng }
        }

        /// Adds a client at gateway number `gateway`; returns its address.
        pub fn add_client(&mut self, gateway: usize, config: MessengerConfig) -> Recipient {
            let mut identity = [0u8; 32];
            self.rng.fill_bytes(&mut identity);
            let mut enc = [0u8; 32];
            self.rng.fill_bytes(&mut enc);
            let gw = self.topology.gateways[gateway].identity.0;
            let keys = ClientKeys { identity, encryption: NodeSecret::from_bytes(enc) };
            let mut messenger = Messenger::new(config, keys, gw, ChaCha20Rng::seed_from_u64(self.rng.next_u64()));
            messenger.set_routes(Routes::new(self.topology.clone()).expect("valid topology"));
            let address = messenger.self_address();
            self.net.add(NodeAddress(identity), SimNode::Client(SimClient { gateway: NodeAddress(gw), messenger, events: vec![] }));
            self.gateway_mut(gw).set_online(identity, true);
            // the client's own connection is reliable (TCP/QUIC in production); faults
            // apply between nodes
            let latency = LinkConfig::ideal(Duration::from_millis(2));
            self.net.set_link(NodeAddress(identity), NodeAddress(gw), latency.clone());
            self.net.set_link(NodeAddress(gw), NodeAddress(identity), latency);
            address
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

        /// Takes a client offline (its gateway stores for it) or back online.
        pub fn set_client_online(&mut self, address: &Recipient, online: bool) {
            self.net.set_down(&NodeAddress(address.identity), !online);
            self.gateway_mut(address.gateway).set_online(address.identity, online);
        }

        /// Runs until `done` or `limit` of simulated time from now.
        pub fn run_until(&mut self, limit: Duration, done: impl FnMut(&SimNet<NodeAddress, SimNode>) -> bool) -> bool {
            let until = self.net.now() + limit;
            self.net.run_until(until, done)
        }
    }
}
