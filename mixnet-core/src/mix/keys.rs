//! A node's Sphinx keys: the current epoch's, the next one's (clients may already
//! use it near the boundary) and, during the overlap, the previous one's, each with
//! its own replay filter (dropped with the key).
//!
//! [`NodeKeys`] is a shared handle: the worker threads of a mix process packets
//! through clones of it while the driver rotates keys through another. When
//! journaling is on, every tag accepted is also queued for the driver to write to
//! disk ([`NodeKeys::take_journal`]), so a restarted node still rejects replays.

use std::sync::{Arc, Mutex, RwLock};

use super::MixError;
use super::replay::{ReplayConfig, ReplayFilter, RestoreError};
use crate::sphinx::{self, NodeSecret, Processed, REPLAY_TAG_SIZE, SphinxError};

/// Keys held at most: previous, current, next.
const HELD_KEYS: usize = 3;
/// Tags queued for the driver at most; beyond this (a driver that stopped draining)
/// they are counted and not queued.
const MAX_JOURNAL: usize = 1 << 20;

struct EpochKey {
    epoch: u64,
    secret: NodeSecret,
    replay: Arc<ReplayFilter>,
    /// Its replay filter could not be restored after a restart: packets under it
    /// are refused rather than risk accepting replays.
    refused: bool,
}

struct KeySet {
    /// Newest first.
    keys: Vec<EpochKey>,
    current: u64,
}

/// A replay tag accepted under the key of `epoch`.
pub type JournalEntry = (u64, [u8; REPLAY_TAG_SIZE]);

struct KeyStore {
    set: RwLock<KeySet>,
    replay: ReplayConfig,
    journal: Mutex<Option<Vec<JournalEntry>>>,
    journal_overflow: std::sync::atomic::AtomicU64,
}

/// A node's Sphinx keys with their replay filters; clones share them.
#[derive(Clone)]
pub struct NodeKeys {
    shared: Arc<KeyStore>,
}

impl NodeKeys {
    /// Keys holding only `secret` for `epoch`, which is current; replay filters sized
    /// by `replay`.
    pub fn new(epoch: u64, secret: NodeSecret, replay: ReplayConfig) -> Self {
        let key = EpochKey { epoch, secret, replay: Arc::new(ReplayFilter::new(&replay)), refused: false };
        Self {
            shared: Arc::new(KeyStore {
                set: RwLock::new(KeySet { keys: vec![key], current: epoch }),
                replay,
                journal: Mutex::new(None),
                journal_overflow: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeySet> {
        // a poisoned lock only means a panic elsewhere; the key set is intact
        self.shared.set.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeySet> {
        self.shared.set.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the key of `epoch` (if new), keeping the newest three.
    pub fn add(&self, epoch: u64, secret: NodeSecret) {
        let mut set = self.write();
        if set.keys.iter().any(|k| k.epoch == epoch) {
            return;
        }
        let replay = Arc::new(ReplayFilter::new(&self.shared.replay));
        set.keys.push(EpochKey { epoch, secret, replay, refused: false });
        set.keys.sort_by_key(|k| std::cmp::Reverse(k.epoch));
        set.keys.truncate(HELD_KEYS);
    }

    /// Makes `epoch` current, adding its key and the next epoch's; the previous key
    /// stays for the overlap, older ones go with their replay filters.
    pub fn rotate(&self, epoch: u64, secret: NodeSecret, next: Option<NodeSecret>) {
        self.add(epoch, secret);
        if let (Some(n), Some(e)) = (next, epoch.checked_add(1)) {
            self.add(e, n);
        }
        let mut set = self.write();
        set.current = epoch;
        set.keys.retain(|k| k.epoch.saturating_add(1) >= epoch);
    }

    /// The current epoch.
    pub fn current_epoch(&self) -> u64 {
        self.read().current
    }

    /// Epochs whose keys are held, newest first.
    pub fn epochs(&self) -> Vec<u64> {
        self.read().keys.iter().map(|k| k.epoch).collect()
    }

    /// Public key of `epoch`, if held.
    pub fn public_key(&self, epoch: u64) -> Option<[u8; 32]> {
        self.read().keys.iter().find(|k| k.epoch == epoch).map(|k| k.secret.public_key())
    }

    /// Replay tags remembered across held keys.
    pub fn replay_tags(&self) -> u64 {
        self.read().keys.iter().map(|k| k.replay.len()).sum()
    }

    /// Bytes held by the replay filters (fixed per key).
    pub fn replay_memory(&self) -> usize {
        self.read().keys.iter().map(|k| k.replay.memory_bytes()).sum()
    }

    /// Epochs whose filter holds more tags than it was sized for.
    pub fn replay_over_capacity(&self) -> Vec<u64> {
        self.read().keys.iter().filter(|k| k.replay.over_capacity()).map(|k| k.epoch).collect()
    }

    /// The replay filter of `epoch` (to snapshot it).
    pub fn replay_filter(&self, epoch: u64) -> Option<Arc<ReplayFilter>> {
        self.read().keys.iter().find(|k| k.epoch == epoch).map(|k| k.replay.clone())
    }

    /// Adds a snapshot to the filter of `epoch`. On failure the key is refused (its
    /// packets dropped as [`MixError::KeyRefused`]): better to lose an epoch's traffic
    /// at this node than to accept its replays.
    pub fn restore_replay(&self, epoch: u64, snapshot: &[u8]) -> Result<(), RestoreError> {
        let mut set = self.write();
        let Some(k) = set.keys.iter_mut().find(|k| k.epoch == epoch) else { return Ok(()) };
        let r = k.replay.restore(snapshot);
        if r.is_err() {
            k.refused = true;
        }
        r
    }

    /// Records tags of `epoch` read back from a journal.
    pub fn replay_journal(&self, entries: impl IntoIterator<Item = JournalEntry>) {
        let set = self.read();
        for (epoch, tag) in entries {
            if let Some(k) = set.keys.iter().find(|k| k.epoch == epoch) {
                k.replay.insert(&tag);
            }
        }
    }

    /// Refuses every packet under the key of `epoch` (its replay state is lost).
    pub fn refuse(&self, epoch: u64) {
        if let Some(k) = self.write().keys.iter_mut().find(|k| k.epoch == epoch) {
            k.refused = true;
        }
    }

    /// Starts queueing accepted tags for [`Self::take_journal`].
    pub fn enable_journal(&self) {
        let mut j = self.shared.journal.lock().unwrap_or_else(|e| e.into_inner());
        j.get_or_insert_with(Vec::new);
    }

    /// Tags accepted since the last call (empty unless journaling is on).
    pub fn take_journal(&self) -> Vec<JournalEntry> {
        let mut j = self.shared.journal.lock().unwrap_or_else(|e| e.into_inner());
        j.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Tags that were accepted but not journaled because the driver did not drain.
    pub fn journal_overflow(&self) -> u64 {
        self.shared.journal_overflow.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn journal(&self, epoch: u64, tag: [u8; REPLAY_TAG_SIZE]) {
        let mut j = self.shared.journal.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = j.as_mut() {
            if j.len() < MAX_JOURNAL {
                j.push((epoch, tag));
            } else {
                self.shared.journal_overflow.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Processes a packet with whichever held key it was built for; replays are refused.
    pub fn process(&self, packet: Vec<u8>) -> Result<Processed, MixError> {
        let set = self.read();
        let mut last = MixError::Sphinx(SphinxError::InvalidMac);
        // the current key first: nearly every packet is for it
        let current = set.keys.iter().filter(|k| k.epoch == set.current);
        for key in current.chain(set.keys.iter().filter(|k| k.epoch != set.current)) {
            let expanded = key.secret.packet_secret(&packet)?;
            if !sphinx::header_mac_ok(&expanded, &packet) {
                continue;
            }
            if key.refused {
                return Err(MixError::KeyRefused(key.epoch));
            }
            // seen-then-record is one step: of two workers racing on copies of a
            // packet, only one wins (a packet that then fails to process keeps its tag)
            let tag = expanded.replay_tag();
            if !key.replay.insert(&tag) {
                return Err(MixError::Replay);
            }
            self.journal(key.epoch, tag);
            match sphinx::process_packet_with_secret(&expanded, packet) {
                Ok(p) => return Ok(p),
                Err(e) => {
                    last = e.into();
                    break;
                }
            }
        }
        Err(last)
    }
}
