//! Replay filters that survive a restart.
//!
//! The core keeps one fixed-size Bloom filter per held Sphinx key and, with its
//! journal on, queues every tag it accepts. [`ReplayStore`] writes those tags to an
//! append-only log per key epoch (`replay/<epoch>.log`, 32 bytes a tag, fsynced by
//! [`ReplayStore::persist`]) and periodically replaces the log by a snapshot of the
//! whole filter (`replay/<epoch>.bloom`, written to a temporary file, fsynced, then
//! renamed). At start both are read back before the node accepts a packet.
//!
//! What is durable: every tag accepted before the last `persist`. A mix calls it
//! every [`PERSIST_INTERVAL`]; a gateway also calls it before committing stored
//! deliveries, so no delivery it acknowledged can be replayed after a crash. A
//! snapshot that cannot be read (disk corruption) makes its key refused rather than
//! accept replays (see `NodeKeys::restore_replay`).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mixnet_core::mix::{JournalEntry, NodeKeys};
use mixnet_core::sphinx::REPLAY_TAG_SIZE;

/// How often a mix makes accepted tags durable.
pub const PERSIST_INTERVAL: Duration = Duration::from_millis(100);
/// How often the logs are folded into snapshots.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_secs(60);

/// What was read back at start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Epochs whose snapshot was loaded.
    pub snapshots: Vec<u64>,
    /// Tags read from logs.
    pub logged_tags: u64,
    /// Epochs refused because their snapshot was unreadable.
    pub refused: Vec<u64>,
}

/// The on-disk side of a node's replay filters.
pub struct ReplayStore {
    dir: PathBuf,
    keys: NodeKeys,
    logs: HashMap<u64, File>,
    last_snapshot: Instant,
}

fn log_path(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(format!("{epoch}.log"))
}

fn snapshot_path(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(format!("{epoch}.bloom"))
}

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl ReplayStore {
    /// Opens `dir` (created if missing), restores the filters of every epoch `keys`
    /// holds, deletes files of epochs it does not hold, and turns the journal on.
    pub fn open(dir: &Path, keys: &NodeKeys) -> io::Result<(Self, Restored)> {
        std::fs::create_dir_all(dir).map_err(|e| with_path(dir, e))?;
        let mut restored = Restored::default();
        for epoch in keys.epochs() {
            let snap = snapshot_path(dir, epoch);
            match std::fs::read(&snap) {
                Ok(bytes) => match keys.restore_replay(epoch, &bytes) {
                    Ok(()) => restored.snapshots.push(epoch),
                    Err(e) => {
                        tracing::error!(epoch, error = %e, path = %snap.display(), "replay filter unreadable: refusing this key's packets");
                        restored.refused.push(epoch);
                    }
                },
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(with_path(&snap, e)),
            }
            let log = log_path(dir, epoch);
            match File::open(&log) {
                Ok(mut f) => {
                    let mut bytes = Vec::new();
                    f.read_to_end(&mut bytes).map_err(|e| with_path(&log, e))?;
                    // a crash mid-append leaves a partial last record: it was never synced
                    let tags = bytes.chunks_exact(REPLAY_TAG_SIZE).map(|c| (epoch, c.try_into().expect("tag size")));
                    restored.logged_tags += (bytes.len() / REPLAY_TAG_SIZE) as u64;
                    keys.replay_journal(tags);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(with_path(&log, e)),
            }
        }
        keys.enable_journal();
        let mut store =
            Self { dir: dir.to_path_buf(), keys: keys.clone(), logs: HashMap::new(), last_snapshot: Instant::now() };
        store.prune();
        Ok((store, restored))
    }

    fn log(&mut self, epoch: u64) -> io::Result<&mut File> {
        if !self.logs.contains_key(&epoch) {
            let path = log_path(&self.dir, epoch);
            let f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| with_path(&path, e))?;
            self.logs.insert(epoch, f);
        }
        Ok(self.logs.get_mut(&epoch).expect("just inserted"))
    }

    /// Appends the tags accepted since the last call to their logs and syncs them.
    /// Returns how many were written.
    pub fn persist(&mut self) -> io::Result<usize> {
        let entries: Vec<JournalEntry> = self.keys.take_journal();
        if entries.is_empty() {
            return Ok(0);
        }
        let mut by_epoch: HashMap<u64, Vec<u8>> = HashMap::new();
        for (epoch, tag) in &entries {
            by_epoch.entry(*epoch).or_default().extend_from_slice(tag);
        }
        for (epoch, bytes) in by_epoch {
            let f = self.log(epoch)?;
            f.write_all(&bytes)?;
            f.sync_data()?;
        }
        Ok(entries.len())
    }

    /// Writes every held filter as a snapshot and empties the logs (their tags are
    /// in the snapshots).
    pub fn snapshot(&mut self) -> io::Result<()> {
        self.persist()?;
        for epoch in self.keys.epochs() {
            let Some(filter) = self.keys.replay_filter(epoch) else { continue };
            let path = snapshot_path(&self.dir, epoch);
            let tmp = path.with_extension("bloom.tmp");
            {
                let mut f = File::create(&tmp).map_err(|e| with_path(&tmp, e))?;
                f.write_all(&filter.snapshot())?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path).map_err(|e| with_path(&path, e))?;
            // tags accepted from here on are in the journal, and go to the emptied log
            let log = log_path(&self.dir, epoch);
            self.logs.remove(&epoch);
            File::create(&log).and_then(|f| f.sync_all()).map_err(|e| with_path(&log, e))?;
        }
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.last_snapshot = Instant::now();
        self.prune();
        Ok(())
    }

    /// Deletes the files of epochs whose keys are gone.
    pub fn prune(&mut self) {
        let held = self.keys.epochs();
        self.logs.retain(|e, _| held.contains(e));
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(epoch) = name.to_str().and_then(|n| n.split('.').next()).and_then(|e| e.parse::<u64>().ok())
            else {
                continue;
            };
            if !held.contains(&epoch) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Persists, and snapshots when [`SNAPSHOT_INTERVAL`] has passed.
    pub fn tick(&mut self) -> io::Result<()> {
        if self.last_snapshot.elapsed() >= SNAPSHOT_INTERVAL { self.snapshot() } else { self.persist().map(|_| ()) }
    }
}

/// A thread that keeps a [`ReplayStore`] current: persists every
/// [`PERSIST_INTERVAL`], snapshots every [`SNAPSHOT_INTERVAL`], and once more when
/// dropped (a clean shutdown leaves no log to replay).
pub struct ReplayKeeper {
    store: Arc<Mutex<ReplayStore>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ReplayKeeper {
    /// Restores `keys`' filters from `data_dir/replay` and keeps them there; `None`
    /// without a data directory (keys are then ephemeral: nothing to protect after a
    /// restart).
    pub fn open(data_dir: Option<&Path>, keys: &NodeKeys) -> io::Result<Option<Self>> {
        let Some(dir) = data_dir else { return Ok(None) };
        let (store, restored) = ReplayStore::open(&dir.join("replay"), keys)?;
        tracing::info!(
            snapshots = ?restored.snapshots,
            logged = restored.logged_tags,
            refused = ?restored.refused,
            "replay filters restored"
        );
        Ok(Some(Self::start(store)))
    }

    /// Starts the thread.
    pub fn start(store: ReplayStore) -> Self {
        let store = Arc::new(Mutex::new(store));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (store.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("replay-store".into())
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    std::thread::park_timeout(PERSIST_INTERVAL);
                    if let Err(e) = s.lock().unwrap_or_else(|e| e.into_inner()).tick() {
                        tracing::error!(error = %e, "writing the replay filter failed");
                    }
                }
            })
            .expect("spawning the replay-store thread");
        Self { store, stop, thread: Some(thread) }
    }

    /// The store (a gateway persists through it before committing deliveries).
    pub fn store(&self) -> Arc<Mutex<ReplayStore>> {
        self.store.clone()
    }
}

impl Drop for ReplayKeeper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if let Err(e) = self.store.lock().unwrap_or_else(|e| e.into_inner()).snapshot() {
            tracing::error!(error = %e, "writing the replay filter at shutdown failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixnet_core::mix::{MixError, ReplayConfig};
    use mixnet_core::sphinx::{
        self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, NodeSecret, PacketSize, RouteNode,
    };
    use rand_core::SeedableRng;

    fn secret(epoch: u64) -> NodeSecret {
        NodeSecret::from_bytes([epoch as u8; 32])
    }

    fn keys() -> NodeKeys {
        let k = NodeKeys::new(7, secret(7), ReplayConfig { capacity: 1000, false_positive: 1e-6 });
        k.add(8, secret(8));
        k
    }

    fn packet(epoch: u64, seed: u64) -> Vec<u8> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let route = [
            RouteNode { address: NodeAddress([1; 32]), key: NodeKey::new(secret(epoch).public_key()) },
            RouteNode { address: NodeAddress([2; 32]), key: NodeKey::new(secret(99).public_key()) },
        ];
        let dest = Destination { address: DestinationAddress([3; 32]), identifier: [0; 16] };
        sphinx::build_packet(&mut rng, &route, &dest, &[Delay(0); 2], b"x", PacketSize::Ack.payload_len()).unwrap()
    }

    #[test]
    fn tags_persisted_before_a_crash_or_snapshotted_are_replays_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::write(dir.path().join("3.log"), [0u8; 64]).unwrap();
        let k = keys();
        let (mut store, restored) = ReplayStore::open(dir.path(), &k).unwrap();
        assert_eq!(restored, Restored::default());
        assert!(!dir.path().join("3.log").exists(), "files of epochs not held are deleted");
        let (a, b, c) = (packet(7, 1), packet(8, 2), packet(7, 3));
        k.process(a.clone()).unwrap();
        k.process(b.clone()).unwrap();
        store.snapshot().unwrap();
        k.process(c.clone()).unwrap();
        assert_eq!(store.persist().unwrap(), 1);
        // a crash: no snapshot at the end; a torn last record is ignored
        drop(store);
        OpenOptions::new().append(true).open(dir.path().join("7.log")).unwrap().write_all(&[9; 5]).unwrap();

        let fresh = keys();
        let (_, restored) = ReplayStore::open(dir.path(), &fresh).unwrap();
        assert_eq!(restored.snapshots, vec![8, 7]);
        assert_eq!(restored.logged_tags, 1);
        for p in [a, b, c] {
            assert_eq!(fresh.process(p).err(), Some(MixError::Replay));
        }
        assert!(fresh.process(packet(7, 4)).is_ok(), "fresh packets still pass");

        // a corrupt snapshot refuses its key
        std::fs::write(dir.path().join("8.bloom"), b"junk").unwrap();
        let again = keys();
        let (_, restored) = ReplayStore::open(dir.path(), &again).unwrap();
        assert_eq!(restored.refused, vec![8]);
        assert_eq!(again.process(packet(8, 5)).err(), Some(MixError::KeyRefused(8)));
    }
}
