//! A mix node's packet handling: replay check, Sphinx processing, holding each
//! packet for its header delay, then forwarding. Sans-IO: the driver feeds packets
//! and time, and sends what [`Mix::poll_transmit`] yields.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Mutex;

use crate::sphinx::{self, NodeAddress, NodeSecret, Processed, REPLAY_TAG_SIZE, SphinxError};
use crate::time::Instant;

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
    /// The delay queue is full.
    #[error("delay queue full ({0} packets)")]
    QueueFull(usize),
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MixStats {
    /// Packets accepted and scheduled.
    pub forwarded: u64,
    /// Replays dropped.
    pub replays: u64,
    /// Malformed or undecryptable packets dropped.
    pub malformed: u64,
    /// Dropped because the queue was full.
    pub queue_full: u64,
}

/// Bytes of a replay tag kept (the first half of the 32-byte tag; collisions at
/// 2⁻⁶⁴ per pair are harmless, and it halves the memory).
const KEPT_TAG: usize = 16;
const SHARDS: usize = 16;

/// Replay tags seen under one key; sharded so worker threads rarely contend.
#[derive(Debug, Default)]
pub struct ReplayFilter {
    shards: [Mutex<HashSet<[u8; KEPT_TAG]>>; SHARDS],
}

fn kept(tag: &[u8; REPLAY_TAG_SIZE]) -> [u8; KEPT_TAG] {
    let mut k = [0u8; KEPT_TAG];
    k.copy_from_slice(&tag[..KEPT_TAG]);
    k
}

impl ReplayFilter {
    fn shard(&self, tag: &[u8; REPLAY_TAG_SIZE]) -> std::sync::MutexGuard<'_, HashSet<[u8; KEPT_TAG]>> {
        // a poisoned shard only means a panic elsewhere; the set itself is intact
        self.shards[usize::from(tag[0]) % SHARDS].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `tag`; false if it was already there.
    pub fn insert(&self, tag: [u8; REPLAY_TAG_SIZE]) -> bool {
        self.shard(&tag).insert(kept(&tag))
    }

    /// Whether `tag` was seen.
    pub fn contains(&self, tag: &[u8; REPLAY_TAG_SIZE]) -> bool {
        self.shard(tag).contains(&kept(tag))
    }

    /// Tags remembered.
    pub fn len(&self) -> usize {
        (0..SHARDS).map(|i| self.shards[i].lock().map(|s| s.len()).unwrap_or(0)).sum()
    }

    /// Whether no tag is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct EpochKey {
    epoch: u64,
    secret: NodeSecret,
    replay: ReplayFilter,
}

/// A node's Sphinx keys: the current epoch's, the next one's (clients may already
/// use it near the boundary) and, during the overlap, the previous one's, each with
/// its own replay filter (dropped with the key). `process` takes `&self`, so worker
/// threads can share it.
pub struct NodeKeys {
    /// Newest first.
    keys: Vec<EpochKey>,
    current: u64,
}

/// Keys held at most: previous, current, next.
const HELD_KEYS: usize = 3;

impl NodeKeys {
    /// Keys holding only `secret` for `epoch`, which is current.
    pub fn new(epoch: u64, secret: NodeSecret) -> Self {
        Self { keys: vec![EpochKey { epoch, secret, replay: ReplayFilter::default() }], current: epoch }
    }

    /// Adds the key of `epoch` (if new), keeping the newest three.
    pub fn add(&mut self, epoch: u64, secret: NodeSecret) {
        if self.keys.iter().any(|k| k.epoch == epoch) {
            return;
        }
        self.keys.push(EpochKey { epoch, secret, replay: ReplayFilter::default() });
        self.keys.sort_by_key(|k| std::cmp::Reverse(k.epoch));
        self.keys.truncate(HELD_KEYS);
    }

    /// Makes `epoch` current, adding its key and the next epoch's; the previous key
    /// stays for the overlap, older ones go with their replay filters.
    pub fn rotate(&mut self, epoch: u64, secret: NodeSecret, next: Option<NodeSecret>) {
        self.add(epoch, secret);
        if let Some(n) = next {
            self.add(epoch + 1, n);
        }
        self.current = epoch;
        self.keys.retain(|k| k.epoch + 1 >= epoch);
    }

    /// Epochs whose keys are held, newest first.
    pub fn epochs(&self) -> Vec<u64> {
        self.keys.iter().map(|k| k.epoch).collect()
    }

    /// Public key of `epoch`, if held.
    pub fn public_key(&self, epoch: u64) -> Option<[u8; 32]> {
        self.keys.iter().find(|k| k.epoch == epoch).map(|k| k.secret.public_key())
    }

    /// Replay tags remembered across held keys.
    pub fn replay_tags(&self) -> usize {
        self.keys.iter().map(|k| k.replay.len()).sum()
    }

    /// Processes a packet with whichever held key it was built for; replays are refused.
    pub fn process(&self, packet: Vec<u8>) -> Result<Processed, MixError> {
        let mut last = MixError::Sphinx(SphinxError::InvalidMac);
        // the current key first: nearly every packet is for it
        let current = self.keys.iter().filter(|k| k.epoch == self.current);
        for key in current.chain(self.keys.iter().filter(|k| k.epoch != self.current)) {
            let expanded = key.secret.packet_secret(&packet)?;
            if !sphinx::header_mac_ok(&expanded, &packet) {
                continue;
            }
            let tag = expanded.replay_tag();
            if key.replay.contains(&tag) {
                return Err(MixError::Replay);
            }
            match sphinx::process_packet_with_secret(&expanded, packet) {
                Ok(p) => {
                    // two workers may race on copies of one packet: only one wins
                    if !key.replay.insert(tag) {
                        return Err(MixError::Replay);
                    }
                    return Ok(p);
                }
                Err(e) => {
                    last = e.into();
                    break;
                }
            }
        }
        Err(last)
    }
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

/// Packets held until their send time, earliest first (ties in arrival order).
#[derive(Default)]
pub struct DelayQueue {
    heap: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
}

impl DelayQueue {
    /// Holds `packet` for `next_hop` until `at`.
    pub fn push(&mut self, at: Instant, next_hop: NodeAddress, packet: Vec<u8>) {
        self.seq += 1;
        self.heap.push(Reverse(Scheduled { at, seq: self.seq, next_hop, packet }));
    }

    /// The next packet due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(NodeAddress, Vec<u8>)> {
        if self.heap.peek()?.0.at > now {
            return None;
        }
        let Reverse(s) = self.heap.pop()?;
        Some((s.next_hop, s.packet))
    }

    /// When the next packet is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|s| s.0.at)
    }

    /// Packets held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

/// One mix node's packet handling (single-threaded; a multi-core driver shares
/// [`NodeKeys`] between workers and schedules delays itself).
pub struct Mix {
    keys: NodeKeys,
    queue: DelayQueue,
    max_queue: usize,
    stats: MixStats,
}

impl Mix {
    /// A mix with `keys`, holding at most `max_queue` packets.
    pub fn new(keys: NodeKeys, max_queue: usize) -> Self {
        Self { keys, queue: DelayQueue::default(), max_queue, stats: MixStats::default() }
    }

    /// The node's keys (to rotate them).
    pub fn keys_mut(&mut self) -> &mut NodeKeys {
        &mut self.keys
    }

    /// Counters.
    pub fn stats(&self) -> &MixStats {
        &self.stats
    }

    /// Packets waiting for their delay.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Processes a packet received at `now`.
    pub fn handle_packet(&mut self, now: Instant, packet: Vec<u8>) -> Result<(), MixError> {
        let result = self.process(now, packet);
        match &result {
            Ok(()) => self.stats.forwarded += 1,
            Err(MixError::Replay) => self.stats.replays += 1,
            Err(MixError::QueueFull(_)) => self.stats.queue_full += 1,
            Err(_) => self.stats.malformed += 1,
        }
        result
    }

    fn process(&mut self, now: Instant, packet: Vec<u8>) -> Result<(), MixError> {
        if self.queue.len() >= self.max_queue {
            return Err(MixError::QueueFull(self.queue.len()));
        }
        let processed = self.keys.process(packet)?;
        match processed {
            Processed::Forward(f) => {
                self.queue.push(now + f.delay.to_duration(), f.next_hop, f.packet);
                Ok(())
            }
            Processed::Final(_) => Err(MixError::UnexpectedFinalHop),
        }
    }

    /// The next packet whose delay has passed.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(NodeAddress, Vec<u8>)> {
        self.queue.pop_due(now)
    }

    /// When the next packet is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.next_due()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sphinx::{Delay, Destination, DestinationAddress, NodeKey, PacketSize, RouteNode};
    use rand_core::SeedableRng;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn packet_for(secret: &NodeSecret, seed: u64) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let route = [
            RouteNode { address: NodeAddress([1; 32]), key: NodeKey::new(secret.public_key()) },
            RouteNode {
                address: NodeAddress([2; 32]),
                key: NodeKey::new(NodeSecret::from_bytes([9; 32]).public_key()),
            },
        ];
        let dest = Destination { address: DestinationAddress([3; 32]), identifier: [0; 16] };
        sphinx::build_packet(&mut rng, &route, &dest, &[Delay(0); 2], b"x", PacketSize::Ack.payload_len()).unwrap()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn keys_of_the_previous_current_and_next_epoch_work_and_older_ones_go() {
        let k = |e: u8| NodeSecret::from_bytes([e; 32]);
        let mut keys = NodeKeys::new(5, k(5));
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
}
