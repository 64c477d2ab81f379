//! The client's message state machine: sends (fragment, seal, SURB-ack, build),
//! retransmits on ack timeout, receives (open, reassemble, decode), answers by SURB
//! and keeps SURB supplies topped up.
//!
//! Naming contract (quinn-proto's): getters take `&self`; `handle_*` take network
//! input and timers; plain methods (`send`, `reply`, `set_routes`) are app commands;
//! `poll_*` drain output. After any input the driver drains [`Messenger::poll_event`]
//! and arms a timer for [`Messenger::poll_timeout`]. [`Messenger::poll_transmit`] yields
//! the next real packet; a Loopix driver calls it at each tick of its real-traffic
//! stream and sends [`Messenger::cover_packet`] when it returns `None`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use rand_core::CryptoRng;

use super::content::{Content, SenderTag};
use super::fragment::{FRAGMENT_LEN, Fragment, split_message};
use super::reassembly::{Eviction, Insert, Reassembler, ReassemblyConfig};
use super::seal::{SEAL_OVERHEAD, open, seal};
use super::{ACK_MARKER, BODY_LEN, ReceiveError, ack_packet, split_data};
use crate::address::Recipient;
use crate::sphinx::{
    self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, NodeSecret, PacketSize, RouteNode, Surb,
    SurbId, SurbRecovery,
};
use crate::time::Instant;
use crate::topology::{Routes, TopologyError};

/// Local handle of a message we send.
pub type MessageId = u64;

/// How packets are routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(rename = "Mode"))]
#[serde(rename_all = "lowercase")]
pub enum RouteMode {
    /// Three mix layers with exponential delays.
    Mixnet,
    /// Straight to the recipient's gateway, no delays.
    Fast,
}

/// Tunables of the messenger.
#[derive(Debug, Clone)]
pub struct MessengerConfig {
    /// Mixnet or fast routes.
    pub mode: RouteMode,
    /// Mean per-hop delay of data packets (mixnet mode).
    pub average_hop_delay: Duration,
    /// Mean per-hop delay of the SURB-ack route (mixnet mode).
    pub average_ack_delay: Duration,
    /// The ack timeout is the route's total delay times this, plus `ack_wait_addition`.
    pub ack_wait_multiplier: f64,
    /// Added to every ack timeout (network and processing time).
    pub ack_wait_addition: Duration,
    /// A fragment is given up (and its message reported failed) after this many retransmissions.
    pub max_retransmissions: u32,
    /// Size of the SURB-ack packets we send for replies we receive.
    pub ack_packet_size: PacketSize,
    /// Reassembly limits.
    pub reassembly: ReassemblyConfig,
    /// Ask for more SURBs when a sender's supply drops to this many.
    pub surb_low_water: usize,
    /// How many SURBs to ask for at once.
    pub surb_request_batch: u16,
    /// After this many replies arrived through our SURBs for one conversation, send
    /// that many fresh SURBs, so supply follows consumption (0 disables; requests
    /// from the replier still work).
    pub surb_replenish_batch: u16,
    /// Most SURBs kept per anonymous sender.
    pub max_surbs_per_sender: usize,
    /// Most anonymous senders whose SURBs are kept (the least recently active is
    /// forgotten for a new one).
    pub max_surb_senders: usize,
    /// Most SURBs kept in total (the least recently active senders' go first).
    pub max_surbs_total: usize,
    /// A sender's SURBs are dropped unused when none arrived for this long (their
    /// keys have rotated by then).
    pub surb_max_age: Duration,
    /// Most of our reply SURBs outstanding (oldest forgotten first).
    pub max_outstanding_reply_surbs: usize,
    /// Our reply SURBs are forgotten after this long (their keys rotate anyway).
    pub reply_surb_lifetime: Duration,
    /// Replies that arrived through our SURBs are acknowledged to their sender in
    /// batches of up to this many (one message instead of one SURB-ack packet each:
    /// under Loopix every packet we send costs a slot of the sending rate). 0 sends
    /// each reply's SURB-ack instead.
    pub reply_ack_batch: usize,
    /// A batch of reply acks leaves at the latest this long after its first ack.
    pub reply_ack_delay: Duration,
}

impl Default for MessengerConfig {
    fn default() -> Self {
        Self {
            mode: RouteMode::Mixnet,
            average_hop_delay: Duration::from_millis(15),
            average_ack_delay: Duration::from_millis(15),
            ack_wait_multiplier: 1.5,
            ack_wait_addition: Duration::from_millis(1500),
            max_retransmissions: 20,
            ack_packet_size: PacketSize::Regular,
            reassembly: ReassemblyConfig::default(),
            surb_low_water: 8,
            surb_request_batch: 32,
            surb_replenish_batch: 32,
            max_surbs_per_sender: 4096,
            max_surb_senders: 4096,
            max_surbs_total: 100_000,
            surb_max_age: Duration::from_secs(2 * 3600),
            max_outstanding_reply_surbs: 20_000,
            reply_surb_lifetime: Duration::from_secs(24 * 3600),
            reply_ack_batch: 64,
            reply_ack_delay: Duration::from_millis(20),
        }
    }
}

/// The client's keys.
#[derive(Debug, Clone)]
pub struct ClientKeys {
    /// Identity public key (X25519; the Sphinx destination address).
    pub identity: [u8; 32],
    /// X25519 secret for end-to-end encryption.
    pub encryption: NodeSecret,
}

/// A Sphinx packet and the node it goes to next: what every state machine's
/// `poll_transmit` gives (a client's goes to its entry gateway, which forwards it to
/// `first_hop`; a mix's and a gateway's go to `first_hop` directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The first Sphinx hop of the packet's route from here.
    pub first_hop: NodeAddress,
    /// The packet.
    pub packet: Vec<u8>,
}

/// What our gateway hands us for one packet that reached it as the final hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Zero for forward packets; the SURB identifier for acks and replies.
    pub identifier: SurbId,
    /// Forward packets: the decoded packet data. Acks and replies: the sealed payload.
    pub payload: Vec<u8>,
}

/// A message for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The data.
    pub data: Vec<u8>,
    /// Set when the sender attached SURBs: answer with [`Messenger::reply`].
    pub sender_tag: Option<SenderTag>,
    /// Set when this is a reply through our SURBs: whom we had sent them to.
    pub reply_from: Option<Recipient>,
}

/// Why a message could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendFailure {
    /// A fragment was never acknowledged.
    #[error("no acknowledgement after {attempts} transmissions")]
    NoAck {
        /// Transmissions of the fragment.
        attempts: u32,
    },
    /// The recipient's encryption key is degenerate.
    #[error("recipient encryption key is invalid")]
    InvalidRecipient,
    /// Routes could not be built (e.g. the gateway left the topology).
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Building the packet failed.
    #[error(transparent)]
    Sphinx(#[from] sphinx::SphinxError),
    /// A reply's SURBs were dropped (evicted for other senders', or expired): it
    /// cannot be sent.
    #[error("the recipient's SURBs were dropped: the reply cannot be sent")]
    NoSurbs,
}

/// Why `send` or `reply` refused a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Larger than the configured maximum.
    #[error("message of {len} B exceeds the maximum of {max} B")]
    TooLarge {
        /// Encoded length.
        len: usize,
        /// The largest message `send` accepts.
        max: usize,
    },
    /// No topology yet (needed to build reply SURBs).
    #[error("no network topology yet")]
    NoTopology,
    /// We hold no SURBs for this sender.
    #[error("no SURBs from this sender: cannot reply")]
    UnknownSenderTag,
    /// Building SURBs failed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// Building SURBs failed.
    #[error(transparent)]
    Sphinx(#[from] sphinx::SphinxError),
}

/// What the messenger tells the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A message arrived.
    Received(ReceivedMessage),
    /// Every fragment of a message was acknowledged by the recipient's side.
    Delivered(MessageId),
    /// A message was given up.
    Failed {
        /// Which message.
        id: MessageId,
        /// Why it was given up.
        reason: SendFailure,
    },
    /// Inbound data was dropped (malformed, unknown, or evicted by reassembly limits).
    Dropped(ReceiveError),
}

/// The messenger's counters: packets, acknowledgements, retransmissions, drops.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MessengerStats {
    /// Real packets built (first transmissions and retransmissions).
    pub packets_sent: u64,
    /// Fragments sent again because their acknowledgement did not come in time.
    pub retransmissions: u64,
    /// Cover packets built.
    pub cover_sent: u64,
    /// Acks for our fragments.
    pub acks_received: u64,
    /// Acks for our cover packets.
    pub cover_acks_received: u64,
    /// Cover packets that came back to us.
    pub cover_received: u64,
    /// Data fragments received.
    pub fragments_received: u64,
    /// Fragments or messages seen twice.
    pub duplicates: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Messages fully acknowledged.
    pub messages_delivered: u64,
    /// Messages given up.
    pub messages_failed: u64,
    /// Inbound data dropped.
    pub dropped: u64,
    /// SURBs from others dropped unused (by the per-sender, sender-count or total
    /// bound, or by age).
    pub surbs_dropped: u64,
}

enum Target {
    Recipient(Recipient),
    Surbs(SenderTag),
}

struct OutFragment {
    encoded: Box<[u8; FRAGMENT_LEN]>,
    attempts: u32,
    ack_ids: Vec<SurbId>,
}

struct Outbound {
    target: Target,
    /// `None` once acknowledged.
    fragments: Vec<Option<OutFragment>>,
    unacked: usize,
    /// A SURB request may use the last SURB we hold.
    is_surb_request: bool,
}

struct AckWait {
    message: MessageId,
    index: u32,
    recovery: SurbRecovery,
}

struct ReplyKey {
    recovery: SurbRecovery,
    tag: SenderTag,
}

struct SurbBank {
    /// Oldest first (used first).
    surbs: VecDeque<Surb>,
    requested: bool,
    /// When SURBs last arrived or were used.
    last_active: Instant,
    /// When SURBs last arrived: past `surb_max_age` all of them are that old.
    refilled: Instant,
}

impl SurbBank {
    fn new(now: Instant) -> Self {
        Self { surbs: VecDeque::new(), requested: false, last_active: now, refilled: now }
    }
}

/// A fragment waiting in a sending queue.
#[derive(Clone, Copy)]
struct QueuedFragment {
    message: MessageId,
    index: u32,
}

/// Where a message's packets go in the sending queue.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Priority {
    /// Ahead of everything queued (SURB requests, reply acks).
    Urgent,
    /// In order.
    Normal,
    /// After everything else (our own SURB refills).
    Background,
}

/// Background packets queued at most before refills are skipped (two refills of 32
/// SURBs are 16 packets).
const MAX_BACKGROUND_JOBS: usize = 16;

/// SURBs kept back so a request for more (and its retransmissions) can be sent.
const SURB_RESERVE: usize = 3;
const MAX_RECIPIENT_KEYS: usize = 1024;
const MAX_COVER_ACKS: usize = 4096;

/// The client's message state machine; see the module docs for the contract.
pub struct Messenger<R> {
    config: MessengerConfig,
    keys: ClientKeys,
    self_address: Recipient,
    /// Our own encryption key, prepared on first cover packet.
    self_key: Option<NodeKey>,
    rng: R,
    routes: Option<Routes>,
    recipient_keys: HashMap<[u8; 32], NodeKey>,
    next_id: MessageId,
    outbound: HashMap<MessageId, Outbound>,
    queue: VecDeque<QueuedFragment>,
    /// SURB top-ups we send on our own as replies arrive: they go when nothing else
    /// waits, so a new message never queues behind a download's refills.
    background: VecDeque<QueuedFragment>,
    raw: VecDeque<Transmit>,
    acks: HashMap<SurbId, AckWait>,
    deadlines: BTreeSet<(Instant, SurbId)>,
    reply_keys: HashMap<SurbId, ReplyKey>,
    reply_key_order: VecDeque<(Instant, SurbId)>,
    tags: HashMap<Recipient, SenderTag>,
    tag_recipients: HashMap<SenderTag, Recipient>,
    banks: HashMap<SenderTag, SurbBank>,
    blocked: HashMap<SenderTag, VecDeque<QueuedFragment>>,
    cover_acks: HashMap<SurbId, SurbRecovery>,
    cover_ack_order: VecDeque<SurbId>,
    reply_arrivals: HashMap<SenderTag, u16>,
    /// Reply acks waiting to go to each replier, and since when.
    pending_acks: HashMap<Recipient, (Instant, Vec<SurbId>)>,
    /// Hops of the packet `poll_transmit` / `cover_packet` returned last.
    last_route: Vec<NodeAddress>,
    reassembler: Reassembler,
    events: VecDeque<Event>,
    stats: MessengerStats,
}

impl<R: CryptoRng> Messenger<R> {
    /// A messenger for the client with `keys` whose inbox is at `gateway`.
    pub fn new(config: MessengerConfig, keys: ClientKeys, gateway: [u8; 32], rng: R) -> Self {
        let encryption_public = keys.encryption.public_key();
        let self_address = Recipient { identity: keys.identity, encryption: encryption_public, gateway };
        Self {
            reassembler: Reassembler::new(config.reassembly.clone()),
            config,
            keys,
            self_address,
            self_key: None,
            rng,
            routes: None,
            recipient_keys: HashMap::new(),
            next_id: 1,
            outbound: HashMap::new(),
            queue: VecDeque::new(),
            background: VecDeque::new(),
            raw: VecDeque::new(),
            acks: HashMap::new(),
            deadlines: BTreeSet::new(),
            reply_keys: HashMap::new(),
            reply_key_order: VecDeque::new(),
            tags: HashMap::new(),
            tag_recipients: HashMap::new(),
            banks: HashMap::new(),
            blocked: HashMap::new(),
            cover_acks: HashMap::new(),
            cover_ack_order: VecDeque::new(),
            reply_arrivals: HashMap::new(),
            pending_acks: HashMap::new(),
            last_route: Vec::new(),
            events: VecDeque::new(),
            stats: MessengerStats::default(),
        }
    }

    /// Our address.
    pub fn self_address(&self) -> Recipient {
        self.self_address
    }

    /// Its counters since it started.
    pub fn stats(&self) -> &MessengerStats {
        &self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &MessengerConfig {
        &self.config
    }

    /// Whether real packets are waiting for [`Self::poll_transmit`].
    pub fn has_queued(&self) -> bool {
        !self.raw.is_empty() || ((!self.queue.is_empty() || !self.background.is_empty()) && self.routes.is_some())
    }

    /// Whether acknowledgements of replies received are waiting for their batch
    /// (see [`MessengerConfig::reply_ack_delay`]): a client that stops now leaves its
    /// repliers retransmitting.
    pub fn owes_acks(&self) -> bool {
        !self.pending_acks.is_empty()
    }

    /// Messages sent but not yet acknowledged or failed.
    pub fn in_flight(&self) -> usize {
        self.outbound.len()
    }

    /// Anonymous senders whose SURBs are held.
    pub fn surb_senders(&self) -> usize {
        self.banks.len()
    }

    /// SURBs held for replies, in total.
    pub fn surbs_held(&self) -> usize {
        self.banks.values().map(|b| b.surbs.len()).sum()
    }

    /// SURBs held for replies to `tag`.
    pub fn surbs_for(&self, tag: &SenderTag) -> usize {
        self.banks.get(tag).map_or(0, |b| b.surbs.len())
    }

    /// The hops of the packet last returned by [`Self::poll_transmit`] or
    /// [`Self::cover_packet`] (only the first hop for packets sent by SURB).
    pub fn last_route(&self) -> &[NodeAddress] {
        &self.last_route
    }

    /// Installs a (new) topology; later packets use it.
    pub fn set_routes(&mut self, routes: Routes) {
        self.routes = Some(routes);
    }

    /// The sender tag we use towards `recipient`, created on first use.
    fn tag_for(&mut self, recipient: Recipient) -> SenderTag {
        if let Some(t) = self.tags.get(&recipient) {
            return *t;
        }
        let mut tag = [0u8; 16];
        self.rng.fill_bytes(&mut tag);
        self.tags.insert(recipient, tag);
        self.tag_recipients.insert(tag, recipient);
        tag
    }

    fn random_surb_id(&mut self) -> SurbId {
        loop {
            let mut id = [0u8; 16];
            self.rng.fill_bytes(&mut id);
            if id != [0u8; 16] {
                return id;
            }
        }
    }

    fn delays(&mut self, hops: usize, mean: Duration) -> Vec<Delay> {
        match self.config.mode {
            RouteMode::Fast => vec![Delay(0); hops],
            // a mix drops packets that ask for more than its maximum: never ask for it
            RouteMode::Mixnet => Delay::sample_exponential(&mut self.rng, mean, hops)
                .into_iter()
                .map(|d| d.min(Delay::from_duration(crate::mix::DEFAULT_MAX_DELAY)))
                .collect(),
        }
    }

    fn route_to(&mut self, gateway: &[u8; 32]) -> Result<Vec<RouteNode>, TopologyError> {
        let Some(routes) = self.routes.as_mut() else {
            return Err(TopologyError::Malformed("no topology".into()));
        };
        match self.config.mode {
            RouteMode::Mixnet => routes.mixnet_route(&mut self.rng, gateway),
            RouteMode::Fast => routes.fast_route(gateway),
        }
    }

    /// A SURB routed back to us. Returns it with its recovery and total route delay.
    fn surb_to_self(&mut self, mean_delay: Duration) -> Result<(Surb, SurbRecovery, Duration), SendFailure> {
        let gateway = self.self_address.gateway;
        let route = self.route_to(&gateway)?;
        let delays = self.delays(route.len(), mean_delay);
        let identifier = self.random_surb_id();
        let destination = Destination { address: DestinationAddress(self.keys.identity), identifier };
        let (surb, recovery) = sphinx::create_surb(&mut self.rng, &route, &delays, &destination)?;
        Ok((surb, recovery, sphinx::total_delay(&delays)))
    }

    fn ack_timeout(&self, route_delay: Duration) -> Duration {
        route_delay.mul_f64(self.config.ack_wait_multiplier.max(1.0)) + self.config.ack_wait_addition
    }

    fn recipient_key(&mut self, key: [u8; 32]) -> NodeKey {
        if self.recipient_keys.len() >= MAX_RECIPIENT_KEYS && !self.recipient_keys.contains_key(&key) {
            self.recipient_keys.clear();
        }
        self.recipient_keys.entry(key).or_insert_with(|| NodeKey::prepared(key)).clone()
    }

    fn enqueue(&mut self, target: Target, content: &Content, is_surb_request: bool) -> Result<MessageId, SendError> {
        // a SURB request goes ahead of the replies waiting for the SURBs it asks for
        let priority = if is_surb_request { Priority::Urgent } else { Priority::Normal };
        self.enqueue_with(target, content, is_surb_request, priority)
    }

    /// Queues a message; urgent ones go ahead of everything queued (SURB requests,
    /// and reply acks: an ack held behind a long queue makes its sender retransmit,
    /// spending the very SURBs the queue is waiting to deliver).
    fn enqueue_with(
        &mut self,
        target: Target,
        content: &Content,
        is_surb_request: bool,
        priority: Priority,
    ) -> Result<MessageId, SendError> {
        let encoded = content.encode();
        let max = self.config.reassembly.max_message_size;
        if encoded.len() > max {
            return Err(SendError::TooLarge { len: encoded.len(), max });
        }
        let wire_id = self.rng.next_u64();
        let fragments: Vec<_> = split_message(wire_id, &encoded)
            .iter()
            .map(|f| Some(OutFragment { encoded: Box::new(f.encode()), attempts: 0, ack_ids: Vec::new() }))
            .collect();
        let id = self.next_id;
        self.next_id += 1;
        let count = fragments.len();
        let jobs = (0..count as u32).map(|index| QueuedFragment { message: id, index });
        match priority {
            Priority::Urgent => {
                for job in jobs.rev() {
                    self.queue.push_front(job);
                }
            }
            Priority::Normal => self.queue.extend(jobs),
            Priority::Background => self.background.extend(jobs),
        }
        self.outbound.insert(id, Outbound { target, fragments, unacked: count, is_surb_request });
        Ok(id)
    }

    /// Queues `data` for `recipient`, attaching `reply_surbs` SURBs it can answer with.
    pub fn send(
        &mut self,
        now: Instant,
        recipient: Recipient,
        data: &[u8],
        reply_surbs: u16,
    ) -> Result<MessageId, SendError> {
        let content = if reply_surbs == 0 {
            Content::Data(data.to_vec())
        } else {
            if self.routes.is_none() {
                return Err(SendError::NoTopology);
            }
            let tag = self.tag_for(recipient);
            let surbs = self.reply_surbs(now, tag, reply_surbs)?;
            Content::DataWithSurbs { tag, surbs, body: data.to_vec() }
        };
        self.enqueue(Target::Recipient(recipient), &content, false)
    }

    /// Answers the anonymous sender `tag` through its SURBs.
    pub fn reply(&mut self, _now: Instant, tag: SenderTag, data: &[u8]) -> Result<MessageId, SendError> {
        if !self.banks.contains_key(&tag) {
            return Err(SendError::UnknownSenderTag);
        }
        self.enqueue(Target::Surbs(tag), &Content::Reply(data.to_vec()), false)
    }

    fn reply_surbs(&mut self, now: Instant, tag: SenderTag, n: u16) -> Result<Vec<Surb>, SendError> {
        let mut surbs = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let (surb, recovery, _) = self.surb_to_self(self.config.average_hop_delay).map_err(|e| match e {
                SendFailure::Topology(t) => SendError::Topology(t),
                SendFailure::Sphinx(s) => SendError::Sphinx(s),
                _ => SendError::NoTopology,
            })?;
            let id = *recovery.identifier();
            self.reply_keys.insert(id, ReplyKey { recovery, tag });
            self.reply_key_order.push_back((now, id));
            surbs.push(surb);
        }
        while self.reply_keys.len() > self.config.max_outstanding_reply_surbs {
            match self.reply_key_order.pop_front() {
                Some((_, old)) => {
                    self.reply_keys.remove(&old);
                }
                None => break,
            }
        }
        Ok(surbs)
    }

    /// The next real packet, built now (route, SURB-ack, sealing), if any is queued.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(t) = self.raw.pop_front() {
            self.last_route = vec![t.first_hop];
            return Some(t);
        }
        self.routes.as_ref()?;
        while let Some(job) = self.queue.pop_front().or_else(|| self.background.pop_front()) {
            let QueuedFragment { message, index } = job;
            match self.build_fragment(now, message, index) {
                Ok(Some(t)) => return Some(t),
                Ok(None) => {}
                Err(reason) => self.fail(message, reason),
            }
        }
        None
    }

    fn build_fragment(
        &mut self,
        now: Instant,
        message: MessageId,
        index: u32,
    ) -> Result<Option<Transmit>, SendFailure> {
        let Some(out) = self.outbound.get(&message) else { return Ok(None) };
        let Some(Some(fragment)) = out.fragments.get(index as usize) else { return Ok(None) };
        let encoded = fragment.encoded.clone();
        let is_request = out.is_surb_request;
        let (ack_surb, ack_recovery, ack_delay) = self.surb_to_self(self.config.average_ack_delay)?;
        let mut data = [0u8; PacketSize::Regular.data_len()];
        data[..super::ACK_SURB_LEN].copy_from_slice(&ack_surb.to_bytes());
        let (transmit, forward_delay) = match self.outbound[&message].target {
            Target::Recipient(recipient) => {
                let key = self.recipient_key(recipient.encryption);
                let sealed = seal(&mut self.rng, &key, &encoded).ok_or(SendFailure::InvalidRecipient)?;
                data[super::ACK_SURB_LEN..].copy_from_slice(&sealed);
                let route = self.route_to(&recipient.gateway)?;
                let delays = self.delays(route.len(), self.config.average_hop_delay);
                let destination = Destination { address: recipient.destination(), identifier: [0u8; 16] };
                let packet = sphinx::build_packet(
                    &mut self.rng,
                    &route,
                    &destination,
                    &delays,
                    &data,
                    PacketSize::Regular.payload_len(),
                )?;
                self.last_route = route.iter().map(|r| r.address).collect();
                (Transmit { first_hop: route[0].address, packet }, sphinx::total_delay(&delays))
            }
            Target::Surbs(tag) => {
                if !self.banks.contains_key(&tag) {
                    return Err(SendFailure::NoSurbs);
                }
                let Some(surb) = self.take_surb(now, tag, is_request) else {
                    self.blocked.entry(tag).or_default().push_back(QueuedFragment { message, index });
                    return Ok(None);
                };
                let at = super::ACK_SURB_LEN + FRAGMENT_LEN;
                data[super::ACK_SURB_LEN..at].copy_from_slice(&encoded[..]);
                // the recipient may acknowledge in a batch (Content::Acks) instead of by SURB-ack
                data[at..at + 16].copy_from_slice(ack_recovery.identifier());
                let (packet, first_hop) = surb.use_surb(&data, PacketSize::Regular.payload_len())?;
                self.last_route = vec![first_hop];
                // the SURB's creator chose its delays; assume its route is like ours
                let assumed = match self.config.mode {
                    RouteMode::Mixnet => self.config.average_hop_delay * (crate::topology::LAYERS as u32 + 1),
                    RouteMode::Fast => Duration::ZERO,
                };
                (Transmit { first_hop, packet }, assumed)
            }
        };
        let ack_id = *ack_recovery.identifier();
        let deadline = now + self.ack_timeout(forward_delay + ack_delay);
        self.acks.insert(ack_id, AckWait { message, index, recovery: ack_recovery });
        self.deadlines.insert((deadline, ack_id));
        if let Some(Some(f)) = self.outbound.get_mut(&message).and_then(|o| o.fragments.get_mut(index as usize)) {
            if f.attempts > 0 {
                self.stats.retransmissions += 1;
            }
            f.attempts += 1;
            f.ack_ids.push(ack_id);
        }
        self.stats.packets_sent += 1;
        Ok(Some(transmit))
    }

    /// Takes a SURB for `tag`, keeping one back unless this is the request for more;
    /// asks for more when the supply runs low.
    fn take_surb(&mut self, now: Instant, tag: SenderTag, is_request: bool) -> Option<Surb> {
        let max_age = self.config.surb_max_age;
        let bank = self.banks.get_mut(&tag)?;
        bank.last_active = now;
        if now.saturating_duration_since(bank.refilled) >= max_age {
            // nothing arrived for so long that every SURB held is stale (keys rotated)
            self.stats.surbs_dropped += bank.surbs.len() as u64;
            bank.surbs.clear();
        }
        let usable = if is_request { bank.surbs.len() } else { bank.surbs.len().saturating_sub(SURB_RESERVE) };
        let surb = if usable > 0 { bank.surbs.pop_front() } else { None };
        let low = bank.surbs.len() <= self.config.surb_low_water;
        if low && !bank.requested && !is_request {
            bank.requested = true;
            let batch = self.config.surb_request_batch;
            // the request may use the reserve; it cannot itself be too large
            let _ = self.enqueue(Target::Surbs(tag), &Content::SurbRequest(batch), true);
        }
        surb
    }

    /// A cover packet: a loop to ourselves, sealed and with a SURB-ack like real
    /// traffic, so no node on the path can tell them apart. `None` without topology.
    pub fn cover_packet(&mut self, _now: Instant) -> Option<Transmit> {
        let (ack_surb, ack_recovery, _) = self.surb_to_self(self.config.average_ack_delay).ok()?;
        let mut data = [0u8; PacketSize::Regular.data_len()];
        data[..super::ACK_SURB_LEN].copy_from_slice(&ack_surb.to_bytes());
        let encryption = self.self_address.encryption;
        let key = self.self_key.get_or_insert_with(|| NodeKey::prepared(encryption)).clone();
        let sealed = seal(&mut self.rng, &key, &Fragment::cover())?;
        data[super::ACK_SURB_LEN..].copy_from_slice(&sealed);
        let gateway = self.self_address.gateway;
        let route = self.route_to(&gateway).ok()?;
        let delays = self.delays(route.len(), self.config.average_hop_delay);
        let destination = Destination { address: DestinationAddress(self.keys.identity), identifier: [0u8; 16] };
        let packet = sphinx::build_packet(
            &mut self.rng,
            &route,
            &destination,
            &delays,
            &data,
            PacketSize::Regular.payload_len(),
        )
        .ok()?;
        let id = *ack_recovery.identifier();
        self.cover_acks.insert(id, ack_recovery);
        self.cover_ack_order.push_back(id);
        while self.cover_ack_order.len() > MAX_COVER_ACKS {
            if let Some(old) = self.cover_ack_order.pop_front() {
                self.cover_acks.remove(&old);
            }
        }
        self.stats.cover_sent += 1;
        self.last_route = route.iter().map(|r| r.address).collect();
        Some(Transmit { first_hop: route[0].address, packet })
    }

    fn fail(&mut self, message: MessageId, reason: SendFailure) {
        if let Some(out) = self.outbound.remove(&message) {
            if let (true, Target::Surbs(tag)) = (out.is_surb_request, &out.target)
                && let Some(bank) = self.banks.get_mut(tag)
            {
                // let a later shortage ask again
                bank.requested = false;
            }
            for f in out.fragments.into_iter().flatten() {
                for id in f.ack_ids {
                    self.acks.remove(&id);
                }
            }
            self.stats.messages_failed += 1;
            self.events.push_back(Event::Failed { id: message, reason });
        }
    }

    fn drop_inbound(&mut self, error: ReceiveError) {
        self.stats.dropped += 1;
        self.events.push_back(Event::Dropped(error));
    }

    /// Handles ack deadlines and housekeeping due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(wait) = self.acks.get(&id) else { continue };
            let (message, index) = (wait.message, wait.index);
            let Some(Some(f)) = self.outbound.get(&message).and_then(|o| o.fragments.get(index as usize)) else {
                continue;
            };
            if f.ack_ids.last() != Some(&id) {
                continue; // an earlier copy; the latest one has its own deadline
            }
            if f.attempts > self.config.max_retransmissions {
                let attempts = f.attempts;
                self.fail(message, SendFailure::NoAck { attempts });
            } else {
                self.queue.push_front(QueuedFragment { message, index });
            }
        }
        let due: Vec<Recipient> = self
            .pending_acks
            .iter()
            .filter(|(_, (since, _))| *since + self.config.reply_ack_delay <= now)
            .map(|(r, _)| *r)
            .collect();
        for replier in due {
            self.flush_acks(replier);
        }
        self.reassembler.evict_stale(now);
        self.report_evictions();
        let lifetime = self.config.reply_surb_lifetime;
        while let Some(&(created, id)) = self.reply_key_order.front() {
            if now.saturating_duration_since(created) < lifetime {
                break;
            }
            self.reply_key_order.pop_front();
            self.reply_keys.remove(&id);
        }
    }

    fn report_evictions(&mut self) {
        for (_, why) in self.reassembler.take_evicted() {
            let reason = match why {
                Eviction::Stale => "incomplete message went stale",
                Eviction::Capacity => "incomplete message evicted by reassembly limits",
            };
            self.drop_inbound(ReceiveError::MalformedFragment(reason));
        }
    }

    /// When [`Self::handle_timeout`] should next run.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ack = self.deadlines.first().map(|(t, _)| *t);
        let stale = self.reassembler.next_expiry();
        let reply = self.reply_key_order.front().map(|(t, _)| *t + self.config.reply_surb_lifetime);
        let acks = self.pending_acks.values().map(|(since, _)| *since + self.config.reply_ack_delay).min();
        [ack, stale, reply, acks].into_iter().flatten().min()
    }

    /// The next event for the application.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Handles a packet our gateway delivered.
    pub fn handle_delivery(&mut self, now: Instant, delivery: Delivery) {
        if let Err(e) = self.handle_delivery_inner(now, delivery) {
            self.drop_inbound(e);
        }
    }

    fn handle_delivery_inner(&mut self, now: Instant, delivery: Delivery) -> Result<(), ReceiveError> {
        let Delivery { identifier, payload } = delivery;
        if identifier == [0u8; 16] {
            let (_ack, body) = split_data(&payload)?;
            let fragment = open(&self.keys.encryption, &body[..FRAGMENT_LEN + SEAL_OVERHEAD])?;
            return self.handle_fragment(now, &fragment, None);
        }
        if let Some(wait) = self.acks.remove(&identifier) {
            return match wait.recovery.recover_plaintext(payload) {
                Ok(m) if m == ACK_MARKER => {
                    self.acknowledge(wait.message, wait.index);
                    Ok(())
                }
                other => {
                    self.acks.insert(identifier, wait);
                    Err(other.err().map_or(ReceiveError::MalformedContent("ack marker"), ReceiveError::from))
                }
            };
        }
        if let Some(recovery) = self.cover_acks.remove(&identifier) {
            recovery.recover_plaintext(payload)?;
            self.stats.cover_acks_received += 1;
            return Ok(());
        }
        let Some(key) = self.reply_keys.remove(&identifier) else {
            return Err(ReceiveError::UnknownSurb);
        };
        let data = match key.recovery.recover_plaintext(payload) {
            Ok(d) => d,
            Err(e) => {
                self.reply_keys.insert(identifier, key);
                return Err(e.into());
            }
        };
        let (ack, body) = split_data(&data)?;
        self.replenish(now, key.tag);
        // the reply is sealed to us, so its ack is ours to send: in a batch to the
        // replier when we know it and it told us the ack's identifier, else by SURB-ack
        let ack_id: SurbId = body[FRAGMENT_LEN..FRAGMENT_LEN + 16].try_into().expect("16 bytes");
        match self.tag_recipients.get(&key.tag).copied() {
            Some(replier) if self.config.reply_ack_batch > 0 && ack_id != [0u8; 16] => {
                self.batch_ack(now, replier, ack_id)
            }
            _ => {
                if let Ok((packet, first_hop)) = ack_packet(&ack, self.config.ack_packet_size) {
                    self.raw.push_back(Transmit { first_hop, packet });
                }
            }
        }
        debug_assert!(body.len() == BODY_LEN);
        self.handle_fragment(now, &body[..FRAGMENT_LEN], Some(key.tag))
    }

    /// A fragment as if it had arrived sealed to us and been opened (`--cfg fuzzing`
    /// only): a fuzz target reaches reassembly and what follows it without spending
    /// its time on the X25519 of sealing and opening, which its inputs never vary.
    #[cfg(fuzzing)]
    pub fn handle_opened_fragment(&mut self, now: Instant, fragment: &[u8]) {
        if let Err(e) = self.handle_fragment(now, fragment, None) {
            self.drop_inbound(e);
        }
    }

    fn acknowledge(&mut self, message: MessageId, index: u32) {
        let Some(out) = self.outbound.get_mut(&message) else { return };
        let Some(slot) = out.fragments.get_mut(index as usize) else { return };
        let Some(f) = slot.take() else { return };
        self.stats.acks_received += 1;
        for id in f.ack_ids {
            self.acks.remove(&id);
        }
        out.unacked -= 1;
        if out.unacked == 0 {
            self.outbound.remove(&message);
            self.stats.messages_delivered += 1;
            self.events.push_back(Event::Delivered(message));
        }
    }

    fn handle_fragment(
        &mut self,
        now: Instant,
        bytes: &[u8],
        via_reply: Option<SenderTag>,
    ) -> Result<(), ReceiveError> {
        let Some(fragment) = Fragment::decode(bytes)? else {
            self.stats.cover_received += 1;
            return Ok(());
        };
        self.stats.fragments_received += 1;
        let inserted = self.reassembler.insert(now, fragment);
        self.report_evictions();
        match inserted? {
            Insert::Incomplete => Ok(()),
            Insert::Duplicate => {
                self.stats.duplicates += 1;
                Ok(())
            }
            Insert::Complete(bytes) => self.handle_content(now, Content::decode(bytes)?, via_reply),
        }
    }

    fn handle_content(
        &mut self,
        now: Instant,
        content: Content,
        via_reply: Option<SenderTag>,
    ) -> Result<(), ReceiveError> {
        let reply_from = via_reply.and_then(|t| self.tag_recipients.get(&t).copied());
        let received = |data, sender_tag, reply_from| Event::Received(ReceivedMessage { data, sender_tag, reply_from });
        match content {
            Content::Data(data) => {
                self.stats.messages_received += 1;
                self.events.push_back(received(data, None, reply_from));
            }
            Content::Reply(data) => {
                self.stats.messages_received += 1;
                self.events.push_back(received(data, None, reply_from));
            }
            Content::DataWithSurbs { tag, surbs, body } => {
                self.add_surbs(now, tag, surbs);
                self.stats.messages_received += 1;
                self.events.push_back(received(body, Some(tag), reply_from));
            }
            Content::SurbTopUp { tag, surbs } => {
                self.add_surbs(now, tag, surbs);
                if let Some(bank) = self.banks.get_mut(&tag) {
                    bank.requested = false;
                }
                if let Some(jobs) = self.blocked.remove(&tag) {
                    for job in jobs.into_iter().rev() {
                        self.queue.push_front(job);
                    }
                }
            }
            Content::Acks(ids) => {
                for id in ids {
                    if let Some(wait) = self.acks.remove(&id) {
                        self.acknowledge(wait.message, wait.index);
                    }
                }
            }
            Content::SurbRequest(n) => {
                let Some(recipient) = reply_from else {
                    return Err(ReceiveError::MalformedContent("SURB request outside a reply"));
                };
                let tag = self.tag_for(recipient);
                let n = n.min(u16::try_from(self.config.max_surbs_per_sender).unwrap_or(u16::MAX));
                match self.reply_surbs(now, tag, n) {
                    Ok(surbs) => {
                        // best effort: a top-up too large for one message cannot happen (n is bounded)
                        let _ = self.enqueue(Target::Recipient(recipient), &Content::SurbTopUp { tag, surbs }, false);
                    }
                    Err(_) => return Err(ReceiveError::MalformedContent("cannot build SURBs for a top-up")),
                }
            }
        }
        Ok(())
    }

    /// Counts a reply that used one of our SURBs for `tag`; every
    /// `surb_replenish_batch` replies, sends as many fresh SURBs.
    fn replenish(&mut self, now: Instant, tag: SenderTag) {
        let batch = self.config.surb_replenish_batch;
        if batch == 0 {
            return;
        }
        let count = self.reply_arrivals.entry(tag).or_default();
        *count += 1;
        if *count < batch {
            return;
        }
        *count = 0;
        // refills already waiting are enough: more would only lengthen the backlog (a
        // replier that runs low asks, and its request is answered at normal priority)
        if self.background.len() >= MAX_BACKGROUND_JOBS {
            return;
        }
        let Some(&recipient) = self.tag_recipients.get(&tag) else { return };
        if let Ok(surbs) = self.reply_surbs(now, tag, batch) {
            let topup = Content::SurbTopUp { tag, surbs };
            let _ = self.enqueue_with(Target::Recipient(recipient), &topup, false, Priority::Background);
        }
    }

    fn batch_ack(&mut self, now: Instant, replier: Recipient, id: SurbId) {
        let batch = self.config.reply_ack_batch.min(super::content::MAX_ACKS);
        let (_, ids) = self.pending_acks.entry(replier).or_insert_with(|| (now, Vec::new()));
        ids.push(id);
        if ids.len() >= batch {
            self.flush_acks(replier);
        }
    }

    fn flush_acks(&mut self, replier: Recipient) {
        if let Some((_, ids)) = self.pending_acks.remove(&replier) {
            // like any message: acked by the replier's gateway, retransmitted if lost
            let _ = self.enqueue_with(Target::Recipient(replier), &Content::Acks(ids), false, Priority::Urgent);
        }
    }

    /// Keeps SURBs from `tag` within the per-sender, sender-count and total bounds.
    fn add_surbs(&mut self, now: Instant, tag: SenderTag, surbs: Vec<Surb>) {
        if !self.banks.contains_key(&tag) && self.banks.len() >= self.config.max_surb_senders.max(1) {
            self.drop_least_active_bank(&tag);
        }
        // one sender alone never holds more than the total either
        let cap = self.config.max_surbs_per_sender.min(self.config.max_surbs_total);
        let bank = self.banks.entry(tag).or_insert_with(|| SurbBank::new(now));
        bank.last_active = now;
        bank.refilled = now;
        bank.surbs.extend(surbs);
        let mut dropped = 0;
        while bank.surbs.len() > cap {
            bank.surbs.pop_front();
            dropped += 1;
        }
        self.stats.surbs_dropped += dropped;
        while self.banks.values().map(|b| b.surbs.len()).sum::<usize>() > self.config.max_surbs_total
            && self.drop_least_active_bank(&tag)
        {}
    }

    /// Forgets the SURBs of the least recently active sender other than `keep`.
    /// The replies waiting for its SURBs fail (their senders learn it at once).
    fn drop_least_active_bank(&mut self, keep: &SenderTag) -> bool {
        let victim = self.banks.iter().filter(|(t, _)| *t != keep).min_by_key(|(_, b)| b.last_active).map(|(t, _)| *t);
        let Some(victim) = victim else { return false };
        if let Some(b) = self.banks.remove(&victim) {
            self.stats.surbs_dropped += b.surbs.len() as u64;
        }
        for QueuedFragment { message, .. } in self.blocked.remove(&victim).unwrap_or_default() {
            self.fail(message, SendFailure::NoSurbs);
        }
        true
    }

    /// Forgets a message we no longer want sent (no event follows): e.g. replies of a
    /// stream that ended. False if it was not pending.
    pub fn cancel(&mut self, id: MessageId) -> bool {
        let Some(out) = self.outbound.remove(&id) else { return false };
        for f in out.fragments.into_iter().flatten() {
            for ack in f.ack_ids {
                self.acks.remove(&ack);
            }
        }
        true
    }
}
