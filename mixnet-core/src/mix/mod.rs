//! A mix node's packet handling: replay check, Sphinx processing, holding each
//! packet for its header delay, then forwarding. Sans-IO: the driver feeds packets
//! and time, and sends what [`Mix::poll_transmit`] yields.
//!
//! Everything a sender can make a mix hold is bounded here: the delay queue by
//! packets and by bytes, each packet's delay by [`MixConfig::max_delay`] (a
//! client chooses its delays; a packet asking for more is dropped, not kept for
//! centuries), replay filters by a fixed size ([`replay`]). Each drop is counted by
//! reason in [`MixStats`].
//!
//! A single-threaded driver (the simulator) calls [`Mix::handle_packet`]. A
//! multi-core driver runs the crypto on worker threads through clones of
//! [`NodeKeys`] and hands each result to [`Mix::handle_processed`]: the same
//! decisions either way.

mod keys;
pub mod replay;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

pub use keys::{JournalEntry, NodeKeys};
pub use replay::{ReplayConfig, ReplayFilter, RestoreError};

use crate::message::Transmit;
use crate::sphinx::{NodeAddress, Processed, SphinxError};
use crate::time::Instant;

/// The longest per-hop delay a mix holds a packet for by default. Clients cap the
/// delays they sample at this, so honest packets are never dropped for it.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(60);

/// Memory charged per queued packet on top of its bytes (heap slot, next hop).
pub const QUEUE_ENTRY_OVERHEAD: usize = 64;

/// Why a packet was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    /// Seen before in this key epoch.
    #[error("replayed packet")]
    Replay,
    /// Processing failed (wrong key, tampered, malformed).
    #[error(transparent)]
    Sphinx(#[from] SphinxError),
    /// A final-hop packet reached a mix, which has no clients.
    #[error("final-hop packet at a mix node")]
    UnexpectedFinalHop,
    /// The delay queue is full (by packets or by bytes).
    #[error("delay queue full ({packets} packets, {bytes} B)")]
    QueueFull {
        /// Packets held.
        packets: usize,
        /// Bytes held.
        bytes: usize,
    },
    /// The packet asks to be held longer than [`MixConfig::max_delay`].
    #[error("per-hop delay of {0:?} exceeds the maximum")]
    DelayTooLong(Duration),
    /// The key's replay state was lost (see [`NodeKeys::restore_replay`]).
    #[error("packets under the key of epoch {0} are refused: its replay filter was lost")]
    KeyRefused(u64),
}

/// Limits of a mix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixConfig {
    /// Most packets waiting for their delay.
    pub max_queue: usize,
    /// Most bytes waiting for their delay (packets plus [`QUEUE_ENTRY_OVERHEAD`] each).
    pub max_queue_bytes: usize,
    /// Longest per-hop delay honoured; longer ones are dropped.
    pub max_delay: Duration,
}

impl Default for MixConfig {
    fn default() -> Self {
        Self { max_queue: 100_000, max_queue_bytes: 256 << 20, max_delay: DEFAULT_MAX_DELAY }
    }
}

/// A mix's counters: packets in and out, drops by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MixStats {
    /// Packets accepted and scheduled.
    pub forwarded: u64,
    /// Replays dropped.
    pub replays: u64,
    /// Malformed or undecryptable packets dropped.
    pub malformed: u64,
    /// Final-hop packets dropped (a mix has no clients).
    pub final_hop: u64,
    /// Dropped because the delay queue was full.
    pub queue_full: u64,
    /// Dropped because their delay exceeded the maximum.
    pub delay_too_long: u64,
    /// Dropped because their key's replay filter was lost.
    pub key_refused: u64,
}

struct Scheduled {
    at: Instant,
    seq: u64,
    next_hop: NodeAddress,
    packet: Vec<u8>,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// One mix node's packet handling; see the module docs.
pub struct Mix {
    keys: NodeKeys,
    config: MixConfig,
    queue: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    queued_bytes: usize,
    stats: MixStats,
}

impl Mix {
    /// A mix with `keys` and limits `config`.
    pub fn new(config: MixConfig, keys: NodeKeys) -> Self {
        Self { keys, config, queue: BinaryHeap::new(), seq: 0, queued_bytes: 0, stats: MixStats::default() }
    }

    /// The node's keys (clone it for worker threads; rotate through it).
    pub fn keys(&self) -> &NodeKeys {
        &self.keys
    }

    /// Its counters since it started.
    pub fn stats(&self) -> &MixStats {
        &self.stats
    }

    /// The limits in force.
    pub fn config(&self) -> &MixConfig {
        &self.config
    }

    /// Packets waiting for their delay.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Bytes waiting for their delay (as counted against the limit).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    fn full(&self, extra: usize) -> Option<MixError> {
        (self.queue.len() >= self.config.max_queue || self.queued_bytes + extra > self.config.max_queue_bytes)
            .then_some(MixError::QueueFull { packets: self.queue.len(), bytes: self.queued_bytes })
    }

    /// Processes (with our keys) and schedules a packet received at `now`.
    pub fn handle_packet(&mut self, now: Instant, packet: Vec<u8>) -> Result<(), MixError> {
        // drop before the crypto when there is no room anyway
        let result = match self.full(packet.len() + QUEUE_ENTRY_OVERHEAD) {
            Some(e) => Err(e),
            None => self.keys.process(packet),
        };
        self.handle_processed(now, result)
    }

    /// Schedules the result of processing a packet (on a worker thread, through a
    /// clone of [`Self::keys`]) received at `now`; counts drops by reason.
    pub fn handle_processed(&mut self, now: Instant, result: Result<Processed, MixError>) -> Result<(), MixError> {
        let result = result.and_then(|p| self.schedule(now, p));
        let counter = match &result {
            Ok(()) => &mut self.stats.forwarded,
            Err(MixError::Replay) => &mut self.stats.replays,
            Err(MixError::QueueFull { .. }) => &mut self.stats.queue_full,
            Err(MixError::DelayTooLong(_)) => &mut self.stats.delay_too_long,
            Err(MixError::UnexpectedFinalHop) => &mut self.stats.final_hop,
            Err(MixError::KeyRefused(_)) => &mut self.stats.key_refused,
            Err(MixError::Sphinx(_)) => &mut self.stats.malformed,
        };
        *counter += 1;
        result
    }

    fn schedule(&mut self, now: Instant, processed: Processed) -> Result<(), MixError> {
        let f = match processed {
            Processed::Forward(f) => f,
            Processed::Final(_) => return Err(MixError::UnexpectedFinalHop),
        };
        let delay = f.delay.to_duration();
        if delay > self.config.max_delay {
            return Err(MixError::DelayTooLong(delay));
        }
        let cost = f.packet.len() + QUEUE_ENTRY_OVERHEAD;
        if let Some(e) = self.full(cost) {
            return Err(e);
        }
        self.seq += 1;
        self.queued_bytes += cost;
        self.queue.push(Reverse(Scheduled { at: now + delay, seq: self.seq, next_hop: f.next_hop, packet: f.packet }));
        Ok(())
    }

    /// The next packet whose delay has passed.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.queue.peek()?.0.at > now {
            return None;
        }
        let Reverse(s) = self.queue.pop()?;
        self.queued_bytes -= s.packet.len() + QUEUE_ENTRY_OVERHEAD;
        Some(Transmit { first_hop: s.next_hop, packet: s.packet })
    }

    /// When the next packet is due.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|s| s.0.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sphinx::{self, Delay, Destination, DestinationAddress, NodeKey, NodeSecret, PacketSize, RouteNode};
    use rand_core::SeedableRng;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn packet_for(secret: &NodeSecret, seed: u64) -> Vec<u8> {
        packet_with_delay(secret, seed, Delay(0))
    }

    fn packet_with_delay(secret: &NodeSecret, seed: u64, delay: Delay) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let route = [
            RouteNode { address: NodeAddress([1; 32]), key: NodeKey::new(secret.public_key()) },
            RouteNode {
                address: NodeAddress([2; 32]),
                key: NodeKey::new(NodeSecret::from_bytes([9; 32]).public_key()),
            },
        ];
        let dest = Destination { address: DestinationAddress([3; 32]), identifier: [0; 16] };
        sphinx::build_packet(&mut rng, &route, &dest, &[delay, Delay(0)], b"x", PacketSize::Ack.payload_len()).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn keys_of_the_previous_current_and_next_epoch_work_and_older_ones_go() {
        let k = |e: u8| NodeSecret::from_bytes([e; 32]);
        let keys = NodeKeys::new(5, k(5), ReplayConfig { capacity: 1000, false_positive: 1e-6 });
        keys.add(6, k(6));
        assert!(keys.process(packet_for(&k(5), 1)).is_ok());
        assert!(keys.process(packet_for(&k(6), 2)).is_ok(), "next epoch's packets are accepted early");
        keys.rotate(6, k(6), Some(k(7)));
        assert_eq!(keys.epochs(), vec![7, 6, 5]);
        assert!(keys.process(packet_for(&k(5), 3)).is_ok(), "the previous epoch overlaps");
        keys.rotate(7, k(7), Some(k(8)));
        assert_eq!(keys.epochs(), vec![8, 7, 6]);
        assert_eq!(keys.process(packet_for(&k(5), 4)).err(), Some(MixError::Sphinx(SphinxError::InvalidMac)));
        // replays are per key
        let p = packet_for(&k(7), 5);
        assert!(keys.process(p.clone()).is_ok());
        assert_eq!(keys.process(p).err(), Some(MixError::Replay));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn long_delays_a_full_queue_and_a_refused_key_are_dropped_and_counted() {
        let secret = NodeSecret::from_bytes([4; 32]);
        let keys = NodeKeys::new(1, secret.clone(), ReplayConfig { capacity: 1000, false_positive: 1e-6 });
        let config = MixConfig { max_queue: 2, max_queue_bytes: 1 << 20, max_delay: Duration::from_secs(1) };
        let mut mix = Mix::new(config, keys.clone());
        let century = Delay::from_duration(Duration::from_secs(100 * 365 * 24 * 3600));
        assert!(matches!(
            mix.handle_packet(Instant::ZERO, packet_with_delay(&secret, 1, century)),
            Err(MixError::DelayTooLong(_))
        ));
        let second = Delay::from_duration(Duration::from_secs(1));
        for seed in 2..4 {
            mix.handle_packet(Instant::ZERO, packet_with_delay(&secret, seed, second)).unwrap();
        }
        assert!(matches!(mix.handle_packet(Instant::ZERO, packet_for(&secret, 4)), Err(MixError::QueueFull { .. })));
        assert_eq!(mix.queued(), 2);
        assert_eq!(mix.poll_timeout(), Some(Instant::ZERO + Duration::from_secs(1)));
        assert!(mix.poll_transmit(Instant::from_millis(999)).is_none());
        assert!(mix.poll_transmit(Instant::from_millis(1000)).is_some());
        assert!(mix.poll_transmit(Instant::from_millis(1000)).is_some());
        assert_eq!(mix.queued_bytes(), 0);

        let mut by_bytes = Mix::new(MixConfig { max_queue_bytes: 700, ..MixConfig::default() }, keys.clone());
        by_bytes.handle_packet(Instant::ZERO, packet_for(&secret, 5)).unwrap();
        assert!(matches!(
            by_bytes.handle_packet(Instant::ZERO, packet_for(&secret, 6)),
            Err(MixError::QueueFull { .. })
        ));

        keys.refuse(1);
        assert_eq!(mix.handle_packet(Instant::ZERO, packet_for(&secret, 7)), Err(MixError::KeyRefused(1)));
        let s = mix.stats();
        assert_eq!((s.forwarded, s.delay_too_long, s.queue_full, s.key_refused), (2, 1, 1, 1));
    }
}
