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
//!
//! **Its parts**, one concern a file, all of them methods of the one [`Messenger`]:
//! `outbound.rs` (fragments queued by priority, packets built when their turn comes,
//! ack deadlines, retransmission, failure), `surbs.rs` (our reply keys, the per-sender
//! SURB banks with their one eviction rule, top-ups), `inbound.rs` (deliveries opened,
//! reassembled and dispatched, replies' batched acks), `cover.rs` (loop cover),
//! `fifo.rs` (the one bounded map of our own keys, oldest forgotten first). Each
//! part's state is its own struct (`Outgoing`, `SurbStores`). This file holds the
//! public types, the state, and what coordinates the parts: the timers
//! ([`Messenger::handle_timeout`], [`Messenger::poll_timeout`]) and events.

mod cover;
mod fifo;
mod inbound;
mod outbound;
mod surbs;

use cover::MAX_COVER_ACKS;
use fifo::FifoMap;
use outbound::{MAX_BACKGROUND_JOBS, Outgoing, Priority, QueuedFragment, Target};
use surbs::SurbStores;

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
use crate::wire::Repr;

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
    /// Most of our reply SURBs outstanding (oldest forgotten first; a key also goes
    /// once twice as many newer SURBs were made).
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
    /// Keys of our own reply SURBs forgotten while their SURBs were still out (past
    /// [`MessengerConfig::max_outstanding_reply_surbs`]): replies through them are
    /// dropped as unknown, and their senders retransmit through newer ones.
    pub reply_keys_forgotten: u64,
}

/// The client's message state machine; see the module docs for the contract.
pub struct Messenger<R> {
    config: MessengerConfig,
    keys: ClientKeys,
    self_address: Recipient,
    /// Our own encryption key, prepared on first cover packet.
    self_key: Option<NodeKey>,
    rng: R,
    routes: Option<Routes>,
    /// Recipients' keys, prepared for sealing (a cache, emptied when full).
    recipient_keys: HashMap<[u8; 32], NodeKey>,
    /// Messages on their way: queues, ack deadlines, retransmission (`outbound.rs`).
    out: Outgoing,
    /// Our reply keys and the SURBs others gave us (`surbs.rs`).
    surbs: SurbStores,
    /// Keys of our cover packets' SURB-acks (`cover.rs`).
    cover_acks: FifoMap<SurbId, SurbRecovery>,
    /// Reply acks waiting to go to each replier, and since when (`inbound.rs`).
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
            surbs: SurbStores::new(config.max_outstanding_reply_surbs),
            config,
            keys,
            self_address,
            self_key: None,
            rng,
            routes: None,
            recipient_keys: HashMap::new(),
            out: Outgoing::default(),
            cover_acks: FifoMap::new(MAX_COVER_ACKS),
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
        !self.out.ready_acks.is_empty()
            || ((!self.out.queue.is_empty() || !self.out.background.is_empty()) && self.routes.is_some())
    }

    /// Whether acknowledgements of replies received are waiting for their batch
    /// (see [`MessengerConfig::reply_ack_delay`]): a client that stops now leaves its
    /// repliers retransmitting.
    pub fn owes_acks(&self) -> bool {
        !self.pending_acks.is_empty()
    }

    /// Messages sent but not yet acknowledged or failed.
    pub fn in_flight(&self) -> usize {
        self.out.outbound.len()
    }

    /// Anonymous senders whose SURBs are held.
    pub fn surb_senders(&self) -> usize {
        self.surbs.banks.len()
    }

    /// SURBs held for replies, in total.
    pub fn surbs_held(&self) -> usize {
        self.surbs.banks.values().map(|b| b.surbs.len()).sum()
    }

    /// SURBs held for replies to `tag`.
    pub fn surbs_for(&self, tag: &SenderTag) -> usize {
        self.surbs.banks.get(tag).map_or(0, |b| b.surbs.len())
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

    /// Handles ack deadlines and housekeeping due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(deadline, id)) = self.out.deadlines.first() {
            if deadline > now {
                break;
            }
            self.out.deadlines.pop_first();
            let Some(wait) = self.out.acks.get(&id) else { continue };
            let (message, index) = (wait.message, wait.index);
            let Some(Some(f)) = self.out.outbound.get(&message).and_then(|o| o.fragments.get(index as usize)) else {
                continue;
            };
            if f.ack_ids.last() != Some(&id) {
                continue; // an earlier copy; the latest one has its own deadline
            }
            if f.attempts > self.config.max_retransmissions {
                let attempts = f.attempts;
                self.fail(message, SendFailure::NoAck { attempts });
            } else {
                self.out.queue.push_front(QueuedFragment { message, index });
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
        self.surbs.reply_keys.expire(now, lifetime);
    }

    /// When [`Self::handle_timeout`] should next run.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let ack = self.out.deadlines.first().map(|(t, _)| *t);
        let stale = self.reassembler.next_expiry();
        let reply = self.surbs.reply_keys.oldest().map(|t| t + self.config.reply_surb_lifetime);
        let acks = self.pending_acks.values().map(|(since, _)| *since + self.config.reply_ack_delay).min();
        [ack, stale, reply, acks].into_iter().flatten().min()
    }

    /// The next event for the application.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
