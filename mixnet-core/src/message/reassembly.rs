//! Reassembly of fragments into messages, tolerant of loss, duplicates and
//! reordering, with bounded memory: a cap on messages in flight and on buffered
//! bytes (oldest evicted first), a maximum message size, and eviction of messages
//! that stop making progress, driven by the injected time.
//!
//! Memory is counted as allocated, not as payload: a message holds only the
//! fragments that arrived (a sparse map, so a fragment claiming a huge `count`
//! costs what one fragment costs), and each message and fragment is charged its
//! bookkeeping as well as its bytes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use super::ReceiveError;
use super::fragment::{FRAGMENT_DATA, Fragment};
use crate::time::Instant;

/// Limits of the reassembler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Largest message accepted, in bytes.
    pub max_message_size: usize,
    /// Most incomplete messages held at once.
    pub max_incomplete: usize,
    /// Most memory held in incomplete messages: data plus bookkeeping, as counted by
    /// [`Reassembler::buffered_bytes`].
    pub max_buffered_bytes: usize,
    /// An incomplete message with no new fragment for this long is dropped.
    pub stale_after: Duration,
    /// How many completed message ids are remembered to drop late duplicates.
    pub remember_completed: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        Self {
            max_message_size: 64 << 20,
            max_incomplete: 256,
            max_buffered_bytes: 128 << 20,
            stale_after: Duration::from_secs(300),
            remember_completed: 4096,
        }
    }
}

/// Result of adding a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum Insert {
    /// The message is complete.
    Complete(Vec<u8>),
    /// More fragments are needed.
    Incomplete,
    /// Already had this fragment (or the whole message).
    Duplicate,
}

/// Why an incomplete message was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// No progress within `stale_after`.
    Stale,
    /// Room was needed for newer messages.
    Capacity,
}

struct Partial {
    /// Fragments received so far, by index (sparse: never sized by the claimed count).
    parts: HashMap<u32, Vec<u8>>,
    count: u32,
    /// Memory charged to this message ([`MESSAGE_OVERHEAD`] + per fragment
    /// [`FRAGMENT_OVERHEAD`] + its data).
    bytes: usize,
    last_activity: Instant,
}

/// Memory charged for each incomplete message's bookkeeping (map entry, struct,
/// allocator slack), whatever its claimed size.
pub const MESSAGE_OVERHEAD: usize = 512;
/// Memory charged for each buffered fragment on top of its data (tree node share,
/// `Vec` header, allocator slack).
pub const FRAGMENT_OVERHEAD: usize = 64;

/// Reassembles messages from fragments.
pub struct Reassembler {
    config: ReassemblyConfig,
    partial: HashMap<u64, Partial>,
    buffered: usize,
    completed: HashSet<u64>,
    completed_order: VecDeque<u64>,
    evicted: Vec<(u64, Eviction)>,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new(config: ReassemblyConfig) -> Self {
        Self {
            config,
            partial: HashMap::new(),
            buffered: 0,
            completed: HashSet::new(),
            completed_order: VecDeque::new(),
            evicted: Vec::new(),
        }
    }

    /// Incomplete messages held.
    pub fn incomplete(&self) -> usize {
        self.partial.len()
    }

    /// Memory held in incomplete messages: their data plus [`MESSAGE_OVERHEAD`] per
    /// message and [`FRAGMENT_OVERHEAD`] per fragment.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Messages dropped since the last call, and why.
    pub fn take_evicted(&mut self) -> Vec<(u64, Eviction)> {
        std::mem::take(&mut self.evicted)
    }

    fn max_fragments(&self) -> u32 {
        u32::try_from(self.config.max_message_size.div_ceil(FRAGMENT_DATA).max(1)).unwrap_or(u32::MAX)
    }

    fn remember(&mut self, id: u64) {
        if self.config.remember_completed == 0 {
            return;
        }
        if self.completed.insert(id) {
            self.completed_order.push_back(id);
        }
        while self.completed_order.len() > self.config.remember_completed {
            if let Some(old) = self.completed_order.pop_front() {
                self.completed.remove(&old);
            }
        }
    }

    fn evict(&mut self, id: u64, why: Eviction) {
        if let Some(p) = self.partial.remove(&id) {
            self.buffered -= p.bytes;
            self.evicted.push((id, why));
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((&id, _)) = self.partial.iter().min_by_key(|(id, p)| (p.last_activity, **id)) {
            self.evict(id, Eviction::Capacity);
        }
    }

    /// Adds a fragment received at `now`.
    pub fn insert(&mut self, now: Instant, fragment: Fragment) -> Result<Insert, ReceiveError> {
        if self.completed.contains(&fragment.message_id) {
            return Ok(Insert::Duplicate);
        }
        if fragment.count > self.max_fragments() {
            return Err(ReceiveError::MessageTooLarge(fragment.count));
        }
        if fragment.count == 1 {
            self.remember(fragment.message_id);
            return Ok(Insert::Complete(fragment.data));
        }
        let id = fragment.message_id;
        let existing = self.partial.get(&id).map(|p| (p.count, p.parts.contains_key(&fragment.index)));
        let cost = fragment.data.len() + FRAGMENT_OVERHEAD + if existing.is_none() { MESSAGE_OVERHEAD } else { 0 };
        match existing {
            Some((count, _)) if count != fragment.count => {
                return Err(ReceiveError::MalformedFragment("fragment count differs within a message"));
            }
            Some((_, true)) => return Ok(Insert::Duplicate),
            Some(_) => {}
            None => {
                while !self.partial.is_empty() && self.partial.len() >= self.config.max_incomplete.max(1) {
                    self.evict_oldest();
                }
            }
        }
        // make room, but never by dropping the message this fragment belongs to
        while self.buffered + cost > self.config.max_buffered_bytes {
            let victim = self
                .partial
                .iter()
                .filter(|(pid, _)| **pid != id)
                .min_by_key(|(pid, p)| (p.last_activity, **pid))
                .map(|(pid, _)| *pid);
            match victim {
                Some(v) => self.evict(v, Eviction::Capacity),
                None => break,
            }
        }
        if self.buffered + cost > self.config.max_buffered_bytes {
            // this message alone would exceed the limit: it can never complete
            self.evict(id, Eviction::Capacity);
            return Err(ReceiveError::MessageTooLarge(fragment.count));
        }
        let p = self.partial.entry(id).or_insert_with(|| Partial {
            parts: HashMap::new(),
            count: fragment.count,
            bytes: MESSAGE_OVERHEAD,
            last_activity: now,
        });
        p.bytes += cost - if existing.is_none() { MESSAGE_OVERHEAD } else { 0 };
        p.parts.insert(fragment.index, fragment.data);
        p.last_activity = now;
        self.buffered += cost;
        if p.parts.len() == p.count as usize {
            let p = self.partial.remove(&id).expect("just inserted");
            self.buffered -= p.bytes;
            self.remember(id);
            let len = p.parts.values().map(Vec::len).sum();
            let mut message = Vec::with_capacity(len);
            let mut parts = p.parts;
            for i in 0..p.count {
                // complete: every index is there
                if let Some(part) = parts.remove(&i) {
                    message.extend_from_slice(&part);
                }
            }
            return Ok(Insert::Complete(message));
        }
        Ok(Insert::Incomplete)
    }

    /// Drops messages without progress for `stale_after`; returns how many.
    pub fn evict_stale(&mut self, now: Instant) -> usize {
        let stale: Vec<u64> = self
            .partial
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_activity) >= self.config.stale_after)
            .map(|(id, _)| *id)
            .collect();
        for id in &stale {
            self.evict(*id, Eviction::Stale);
        }
        stale.len()
    }

    /// When the next incomplete message goes stale.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.partial.values().map(|p| p.last_activity + self.config.stale_after).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fragment::split_message;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn msg(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7) as u8).collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn reorders_and_ignores_duplicates() {
        let m = msg(FRAGMENT_DATA * 4 + 3);
        let mut frags = split_message(9, &m);
        frags.reverse();
        let dup = frags[1].clone();
        let mut r = Reassembler::new(ReassemblyConfig::default());
        let now = Instant::ZERO;
        for f in frags.iter().take(4) {
            assert_eq!(r.insert(now, f.clone()).unwrap(), Insert::Incomplete);
        }
        assert_eq!(r.insert(now, dup).unwrap(), Insert::Duplicate);
        assert_eq!(r.insert(now, frags[4].clone()).unwrap(), Insert::Complete(m));
        assert_eq!(r.insert(now, frags[0].clone()).unwrap(), Insert::Duplicate);
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn bounded_by_count_bytes_size_and_time() {
        let cfg = ReassemblyConfig {
            max_message_size: FRAGMENT_DATA * 3,
            max_incomplete: 2,
            max_buffered_bytes: 3 * (FRAGMENT_DATA + FRAGMENT_OVERHEAD + MESSAGE_OVERHEAD),
            stale_after: Duration::from_secs(10),
            remember_completed: 1,
        };
        let mut r = Reassembler::new(cfg);
        let big = split_message(1, &msg(FRAGMENT_DATA * 4));
        assert_eq!(r.insert(Instant::ZERO, big[0].clone()), Err(ReceiveError::MessageTooLarge(4)));
        for id in 0..3u64 {
            let f = split_message(id + 10, &msg(FRAGMENT_DATA * 2))[0].clone();
            r.insert(Instant::from_millis(id), f).unwrap();
        }
        assert_eq!(r.incomplete(), 2);
        assert_eq!(r.take_evicted(), vec![(10, Eviction::Capacity)]);
        let m11 = msg(FRAGMENT_DATA * 2);
        let f = split_message(11, &m11)[1].clone();
        assert_eq!(r.insert(Instant::from_millis(5), f).unwrap(), Insert::Complete(m11));
        assert_eq!(r.buffered_bytes(), FRAGMENT_DATA + FRAGMENT_OVERHEAD + MESSAGE_OVERHEAD);
        assert_eq!(r.next_expiry(), Some(Instant::from_millis(2) + Duration::from_secs(10)));
        assert_eq!(r.evict_stale(Instant::from_millis(9_000)), 0);
        assert_eq!(r.evict_stale(Instant::from_millis(20_000)), 1);
        assert_eq!(r.take_evicted(), vec![(12, Eviction::Stale)]);
        assert_eq!(r.incomplete(), 0);
        assert_eq!(r.buffered_bytes(), 0);
    }
}
