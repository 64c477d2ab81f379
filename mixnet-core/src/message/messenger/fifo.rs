//! The one bounded map of the SURB keys we hold (our reply keys, our cover packets'
//! ack keys): insertion order, the oldest forgotten first, whether it goes for room
//! or for age. (Per-sender SURB banks are another kind of bound, the least recently
//! active sender, in `surbs.rs`; prepared recipient keys are a cache, emptied when
//! full, in `outbound.rs`.)

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use crate::time::Instant;

/// A map that forgets its oldest insertion first: once more than `cap` entries are
/// held, once `2 cap + 16` newer ones were inserted (so memory stays O(cap) however
/// many are removed), or once older than what [`Self::expire`] is given. Keys are
/// never inserted twice (they are random SURB identifiers).
pub(super) struct FifoMap<K, V> {
    entries: HashMap<K, V>,
    /// Insertions, oldest first; a removed entry leaves its key behind, skipped when
    /// its turn comes.
    order: VecDeque<(Instant, K)>,
    cap: usize,
}

impl<K: Hash + Eq + Copy, V> FifoMap<K, V> {
    pub(super) fn new(cap: usize) -> Self {
        Self { entries: HashMap::new(), order: VecDeque::new(), cap: cap.max(1) }
    }

    pub(super) fn get(&self, k: &K) -> Option<&V> {
        self.entries.get(k)
    }

    /// Inserts `k` (not present) at `now`; forgets the oldest entries past the bounds
    /// and returns how many of them were still held.
    pub(super) fn insert(&mut self, now: Instant, k: K, v: V) -> usize {
        self.entries.insert(k, v);
        self.order.push_back((now, k));
        let mut forgotten = 0;
        while self.entries.len() > self.cap || self.order.len() > 2 * self.cap + 16 {
            forgotten += usize::from(self.pop_oldest());
        }
        forgotten
    }

    pub(super) fn remove(&mut self, k: &K) -> Option<V> {
        self.entries.remove(k)
    }

    /// When the oldest insertion was (its entry may be gone already).
    pub(super) fn oldest(&self) -> Option<Instant> {
        self.order.front().map(|(t, _)| *t)
    }

    /// Forgets what was inserted `lifetime` or longer before `now`.
    pub(super) fn expire(&mut self, now: Instant, lifetime: Duration) {
        while self.oldest().is_some_and(|t| now.saturating_duration_since(t) >= lifetime) {
            self.pop_oldest();
        }
    }

    /// Whether the oldest insertion was still held.
    fn pop_oldest(&mut self) -> bool {
        self.order.pop_front().is_some_and(|(_, k)| self.entries.remove(&k).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn forgets_the_oldest_for_room_and_for_age_and_stays_bounded() {
        let at = |s| Instant::ZERO + Duration::from_secs(s);
        let mut m = FifoMap::new(3);
        for i in 0..4u32 {
            assert_eq!(m.insert(at(i.into()), i, i * 10), usize::from(i == 3), "the fourth forgets one");
        }
        assert_eq!(m.get(&0), None, "the oldest goes for room");
        assert_eq!(m.oldest(), Some(at(1)));
        assert_eq!(m.remove(&1), Some(10));
        m.insert(at(4), 4, 40);
        assert_eq!(m.entries.len(), 3, "room was left by the removal");
        m.insert(at(5), 5, 50);
        assert_eq!(m.get(&2), None);
        m.expire(at(6), Duration::from_secs(2));
        assert_eq!((m.entries.len(), m.oldest()), (1, Some(at(5))), "all up to 4 s are gone");
        // churn: insert and remove many times; the order never grows past O(cap), and
        // the one entry held is forgotten once 2 cap + 16 newer were inserted
        for i in 0..21u32 {
            m.insert(at(6), 100 + i, i);
            m.remove(&(100 + i));
            assert_eq!(m.get(&5), Some(&50), "{i}");
        }
        m.insert(at(6), 200, 0);
        assert_eq!(m.get(&5), None);
        for i in 0..1_000_000u32 {
            m.insert(at(7), 1000 + i, i);
            m.remove(&(1000 + i));
            assert!(m.order.len() <= 2 * m.cap + 16);
        }
    }
}
