//! A mix node's packet handling: replay check, Sphinx processing, holding each
//! packet for its header delay, then forwarding. Sans-IO: the driver feeds packets
//! and time, and sends what [`Mix::poll_transmit`] yields.

use std::collections::{BinaryHeap, HashSet};
use std::cmp::Reverse;

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

/// Replay tags seen under one key.
#[derive(Debug, Default)]
pub struct ReplayFilter {
    seen: HashSet<[u8; REPLAY_TAG_SIZE]>,
}

impl ReplayFilter {
    /// Records `tag`; false if it was already there.
    pub fn insert(&mut self, tag: [u8; REPLAY_TAG_SIZE]) -> bool {
        self.seen.insert(tag)
    }

    /// Whether `tag` was seen.
    pub fn contains(&self, tag: &[u8; REPLAY_TAG_SIZE]) -> bool {
        self.seen.contains(tag)
    }

    /// Tags remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no tag is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
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

/// One mix node's state for one key epoch.
pub struct Mix {
    secret: NodeSecret,
    replay: ReplayFilter,
    queue: BinaryHeap<Reverse<Scheduled>>,
    max_queue: usize,
    seq: u64,
    stats: MixStats,
}

impl Mix {
    /// A mix with `secret`, holding at most `max_queue` packets.
    pub fn new(secret: NodeSecret, max_queue: usize) -> Self {
        Self { secret, replay: ReplayFilter::default(), queue: BinaryHeap::new(), max_queue, seq: 0, stats: MixStats::default() }
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
        let expanded = self.secret.packet_secret(&packet)?;
        let tag = expanded.replay_tag();
        if self.replay.contains(&tag) {
            return Err(MixError::Replay);
        }
        // the MAC is checked before the tag is remembered, so junk cannot fill the filter
        let processed = sphinx::process_packet_with_secret(&expanded, packet)?;
        self.replay.insert(tag);
        match processed {
            Processed::Forward(f) => {
                self.seq += 1;
                self.queue.push(Reverse(Scheduled {
                    at: now + f.delay.to_duration(),
                    seq: self.seq,
                    next_hop: f.next_hop,
                    packet: f.packet,
                }));
                Ok(())
            }
            Processed::Final(_) => Err(MixError::UnexpectedFinalHop),
        }
    }

    /// The next packet whose delay has passed.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(NodeAddress, Vec<u8>)> {
        if self.queue.peek()?.0.at > now {
            return None;
        }
        let Reverse(s) = self.queue.pop()?;
        Some((s.next_hop, s.packet))
    }

    /// When the next packet is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|s| s.0.at)
    }
}
