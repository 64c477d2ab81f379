//! The mix node server: Noise links in, Sphinx processing on a worker pool sized to
//! the cores, then the core's [`Mix`] (delay queue with its caps, maximum delay,
//! counters by reason) holds each packet for its header delay before it goes out
//! over Noise links. Replay filters are the core's, kept on disk by
//! [`nodenet::replay`] so a restart does not reopen them. `GET /metrics` exposes
//! Prometheus counters.
//!
//! The driver decides nothing: workers call `NodeKeys::process` (the crypto, on every
//! core), the scheduler task hands each result to `Mix::handle_processed` and sends
//! what `Mix::poll_transmit` yields.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mixnet_core::mix::{Mix, MixConfig as CoreMixConfig, MixError, MixStats, NodeKeys, ReplayConfig};
use mixnet_core::sphinx::{NodeAddress, Processed};
use mixnet_core::topology::{self, NodeDescriptor, Role};
use nodenet::directory::DirectoryClient;
use nodenet::keys::NodeIdentity;
use nodenet::link::{self, LinkStats, Links};
use nodenet::membership::{Joined, Membership};
use nodenet::metrics::{Counter, Exposition};
use nodenet::replay::ReplayKeeper;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use nodenet::node::StartError;

/// Mix node configuration (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixConfig {
    /// Where other nodes connect (Noise over TCP).
    pub listen: String,
    /// The `host:port` published in the topology (default: the bound address).
    pub announce: Option<String>,
    /// Where `GET /metrics` is served (off if unset).
    pub metrics_listen: Option<String>,
    /// Directory URL, e.g. `http://127.0.0.1:8000`.
    pub directory: String,
    /// The directory's base58 ed25519 key.
    pub directory_key: String,
    /// Key files and replay filters (ephemeral keys, filters in memory only, if unset).
    pub data_dir: Option<PathBuf>,
    /// Crypto worker threads (0: one per core).
    pub workers: usize,
    /// Packets queued per worker before drops.
    pub worker_queue: usize,
    /// Packets queued per outgoing link before drops.
    pub link_queue: usize,
    /// How often the descriptor is refreshed.
    pub heartbeat_ms: u64,
    /// Most packets held for their delay.
    pub max_queue: usize,
    /// Most bytes held for their delay.
    pub max_queue_bytes: usize,
    /// Longest per-hop delay honoured, in milliseconds; packets asking for more are dropped.
    pub max_delay_ms: u64,
    /// Replay filter size per key epoch (`capacity` packets at `false_positive`).
    pub replay: ReplayConfig,
}

impl Default for MixConfig {
    fn default() -> Self {
        let core = CoreMixConfig::default();
        Self {
            listen: "127.0.0.1:0".into(),
            announce: None,
            metrics_listen: None,
            directory: String::new(),
            directory_key: String::new(),
            data_dir: None,
            workers: 0,
            worker_queue: 4096,
            link_queue: 8192,
            heartbeat_ms: 10_000,
            max_queue: core.max_queue,
            max_queue_bytes: core.max_queue_bytes,
            max_delay_ms: core.max_delay.as_millis() as u64,
            replay: ReplayConfig::default(),
        }
    }
}

impl MixConfig {
    /// Checks the limits (a zero queue cannot carry anything).
    pub fn validate(&self) -> Result<(), StartError> {
        nodenet::node::require_positive(&[
            ("worker_queue", self.worker_queue as u64),
            ("link_queue", self.link_queue as u64),
            ("max_queue", self.max_queue as u64),
            ("max_queue_bytes", self.max_queue_bytes as u64),
            ("replay.capacity", self.replay.capacity),
        ])?;
        if !(self.replay.false_positive > 0.0 && self.replay.false_positive < 1.0) {
            return Err(StartError::Config("replay.false_positive must be between 0 and 1".into()));
        }
        Ok(())
    }

    fn core(&self) -> CoreMixConfig {
        CoreMixConfig {
            max_queue: self.max_queue,
            max_queue_bytes: self.max_queue_bytes,
            max_delay: Duration::from_millis(self.max_delay_ms),
        }
    }
}

/// Counters of a mix node: the driver's own, and the core's as last published.
#[derive(Debug, Default)]
pub struct MixMetrics {
    /// Packets received from links.
    pub packets_in: Counter,
    /// Packets handed to outgoing links after their delay.
    pub packets_out: Counter,
    /// Packets dropped because every worker queue was full.
    pub dropped_queue_full: Counter,
    /// Total processing time, microseconds.
    pub processing_us: Counter,
    /// Packets processed.
    pub processed: Counter,
    queued_workers: AtomicUsize,
    core: Mutex<(MixStats, usize, usize)>,
    replay: Mutex<(u64, usize)>,
    /// Link counters.
    pub links: Arc<LinkStats>,
}

impl MixMetrics {
    /// The core's counters as last published by the scheduler.
    pub fn core_stats(&self) -> MixStats {
        self.core.lock().unwrap_or_else(|e| e.into_inner()).0.clone()
    }

    /// The Prometheus exposition.
    pub fn render(&self, links_queued: usize) -> String {
        let (s, queued, queued_bytes) = self.core.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (replay_tags, replay_bytes) = *self.replay.lock().unwrap_or_else(|e| e.into_inner());
        let mut e = Exposition::default();
        let l = &self.links;
        e.counter("mix_packets_in_total", "Packets received from other nodes.", self.packets_in.get())
            .counter("mix_packets_out_total", "Packets forwarded after their delay.", self.packets_out.get())
            .labelled(
                "mix_dropped_total",
                "Packets dropped, by reason.",
                "reason",
                &[
                    ("replay", s.replays),
                    ("malformed", s.malformed),
                    ("final_hop", s.final_hop),
                    ("delay_queue_full", s.queue_full),
                    ("delay_too_long", s.delay_too_long),
                    ("key_refused", s.key_refused),
                    ("worker_queue_full", self.dropped_queue_full.get()),
                    ("link_queue_full", l.dropped_queue_full.get()),
                    ("unknown_next_hop", l.dropped_unknown_peer.get()),
                    ("link_error", l.dropped_link_error.get()),
                ],
            )
            .counter("mix_bad_frames_total", "Link frames that failed to parse or decrypt.", l.bad_frames.get())
            .counter("mix_link_handshake_failures_total", "Failed Noise handshakes.", l.handshake_failures.get())
            .counter(
                "mix_link_rejected_peers_total",
                "Incoming links refused: the peer's key is not in the topology.",
                l.rejected_peers.get(),
            )
            .counter(
                "mix_link_connect_failures_total",
                "Failed outgoing connection attempts.",
                l.connect_failures.get(),
            )
            .counter("mix_processing_microseconds_sum", "Time spent in Sphinx processing.", self.processing_us.get())
            .counter("mix_processing_microseconds_count", "Packets processed.", self.processed.get())
            .gauge(
                "mix_worker_queue_depth",
                "Packets waiting for a worker.",
                self.queued_workers.load(Ordering::Relaxed) as f64,
            )
            .gauge("mix_delay_queue_depth", "Packets waiting for their delay.", queued as f64)
            .gauge("mix_delay_queue_bytes", "Bytes waiting for their delay.", queued_bytes as f64)
            .gauge("mix_link_queue_depth", "Packets waiting for an outgoing link.", links_queued as f64)
            .gauge("mix_replay_tags", "Replay tags held across the held keys.", replay_tags as f64)
            .gauge("mix_replay_filter_bytes", "Memory of the replay filters (fixed per key).", replay_bytes as f64);
        e.finish()
    }
}

/// A running mix node.
pub struct RunningMix {
    /// Its address (identity key).
    pub address: NodeAddress,
    /// Where it accepts links.
    pub mix_addr: SocketAddr,
    /// Where metrics are served.
    pub metrics_addr: Option<SocketAddr>,
    /// Its counters.
    pub metrics: Arc<MixMetrics>,
    /// Its outgoing links (fault injection in tests).
    pub links: Links,
    /// Its Sphinx keys.
    pub keys: NodeKeys,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _replay: Option<ReplayKeeper>,
}

impl Drop for RunningMix {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RunningMix {
    /// The Prometheus exposition (what `GET /metrics` serves).
    pub fn metrics_text(&self) -> String {
        self.metrics.render(self.links.queued())
    }

    /// Stops the node (also on drop): its workers exit when their queues close, and
    /// the replay filters are written out.
    pub fn stop(self) {}
}

/// Spreads packets over worker threads; drops when all are full.
struct Dispatcher {
    workers: Vec<SyncSender<Vec<u8>>>,
    next: AtomicUsize,
    metrics: Arc<MixMetrics>,
}

impl Dispatcher {
    fn dispatch(&self, packet: Vec<u8>) {
        self.metrics.packets_in.inc();
        let n = self.workers.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut packet = packet;
        for i in 0..n {
            match self.workers[(start + i) % n].try_send(packet) {
                Ok(()) => {
                    self.metrics.queued_workers.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(TrySendError::Full(p)) | Err(TrySendError::Disconnected(p)) => packet = p,
            }
        }
        self.metrics.dropped_queue_full.inc();
    }
}

type ProcessResult = Result<Processed, MixError>;

/// Workers run the crypto; each result goes to the scheduler (blocking when it lags,
/// so the worker queues fill and the dispatcher drops and counts).
fn spawn_workers(
    count: usize,
    queue: usize,
    keys: NodeKeys,
    metrics: Arc<MixMetrics>,
    scheduled: mpsc::Sender<ProcessResult>,
) -> Vec<SyncSender<Vec<u8>>> {
    (0..count)
        .map(|i| {
            let (tx, rx) = sync_channel::<Vec<u8>>(queue);
            let keys = keys.clone();
            let metrics = metrics.clone();
            let scheduled = scheduled.clone();
            std::thread::Builder::new()
                .name(format!("mix-worker-{i}"))
                .spawn(move || {
                    while let Ok(packet) = rx.recv() {
                        metrics.queued_workers.fetch_sub(1, Ordering::Relaxed);
                        let start = std::time::Instant::now();
                        let result = keys.process(packet);
                        metrics.processing_us.add(start.elapsed().as_micros() as u64);
                        metrics.processed.inc();
                        if scheduled.blocking_send(result).is_err() {
                            return;
                        }
                    }
                })
                .expect("spawning a worker thread");
            tx
        })
        .collect()
}

/// How often the scheduler publishes the core's counters for `/metrics`.
const PUBLISH_EVERY: Duration = Duration::from_millis(20);

/// Owns the core's [`Mix`]: schedules what the workers processed and forwards what
/// is due.
async fn scheduler(mut mix: Mix, mut rx: mpsc::Receiver<ProcessResult>, links: Links, metrics: Arc<MixMetrics>) {
    let start = Instant::now();
    let mut batch = Vec::with_capacity(256);
    // the counters for /metrics are published on a tick, not per packet (this loop
    // runs once per packet under load)
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = mix.poll_timeout().map(|t| start + Duration::from_micros(t.as_micros()));
        let mut publish = false;
        tokio::select! {
            _ = tick.tick() => publish = true,
            n = rx.recv_many(&mut batch, 256) => {
                if n == 0 {
                    return;
                }
                let now = nodenet::core_now(start);
                for result in batch.drain(..) {
                    let _ = mix.handle_processed(now, result);
                }
            }
            _ = async { tokio::time::sleep_until(next.unwrap_or_else(Instant::now)).await }, if next.is_some() => {}
        }
        let now = nodenet::core_now(start);
        while let Some(t) = mix.poll_transmit(now) {
            metrics.packets_out.inc();
            links.send(t.first_hop, t.packet);
        }
        if publish {
            *metrics.core.lock().unwrap_or_else(|e| e.into_inner()) =
                (mix.stats().clone(), mix.queued(), mix.queued_bytes());
            *metrics.replay.lock().unwrap_or_else(|e| e.into_inner()) =
                (mix.keys().replay_tags(), mix.keys().replay_memory());
        }
    }
}

/// Starts a mix node: registers with the directory, then serves.
pub async fn start(config: MixConfig) -> Result<RunningMix, StartError> {
    nodenet::node::require_directory(&config.directory, &config.directory_key)?;
    config.validate()?;
    let identity = NodeIdentity::load_or_create(config.data_dir.as_deref()).map_err(StartError::Keys)?;
    let address = identity.address();
    let noise = identity.noise.clone();
    let dir_key = topology::directory_key(&config.directory_key).map_err(|e| StartError::Config(e.to_string()))?;
    let listener = nodenet::node::bind(&config.listen).await?;
    let mix_addr = listener.local_addr().map_err(|error| StartError::Bind { addr: config.listen.clone(), error })?;
    let announce = config.announce.clone().unwrap_or_else(|| mix_addr.to_string());
    let template = NodeDescriptor::template(address.0, Role::Mix, announce, noise.public_key());
    // registered, and the replay filters on disk read back before the first packet
    let Joined { membership, round: info, keys, replay } = Membership::join_network(
        DirectoryClient::new(&config.directory, dir_key),
        identity,
        template,
        Duration::from_millis(config.heartbeat_ms),
        config.replay,
        config.data_dir.as_deref(),
    )
    .await?;

    let metrics = Arc::new(MixMetrics::default());
    let links = Links::new(&noise, config.link_queue, metrics.links.clone());
    if let Ok(t) = membership.client.topology().await {
        links.set_peers(&t);
    }
    let workers = if config.workers == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        config.workers
    };
    let (sched_tx, sched_rx) = mpsc::channel(workers * config.worker_queue);
    let dispatcher = Arc::new(Dispatcher {
        workers: spawn_workers(workers, config.worker_queue, keys.clone(), metrics.clone(), sched_tx),
        next: AtomicUsize::new(0),
        metrics: metrics.clone(),
    });

    let mut tasks = Vec::new();
    let mix = Mix::new(config.core(), keys.clone());
    tasks.push(tokio::spawn(scheduler(mix, sched_rx, links.clone(), metrics.clone())));
    let d = dispatcher.clone();
    tasks.push(tokio::spawn(link::serve(listener, noise, links.clone(), move |p| d.dispatch(p))));
    let rotate = keys.clone();
    let peers = links.clone();
    tasks.push(membership.spawn(
        info.epoch,
        move |epoch, key, next| {
            rotate.rotate(epoch, key, Some(next));
            tracing::info!(epoch, "rotated Sphinx key");
        },
        move |t| peers.set_peers(&t),
    ));
    let mut metrics_addr = None;
    if let Some(m) = &config.metrics_listen {
        let l = nodenet::node::bind(m).await?;
        metrics_addr = l.local_addr().ok();
        let (metrics, links) = (metrics.clone(), links.clone());
        tasks.push(nodenet::metrics::serve(l, move || {
            let text = metrics.render(links.queued());
            async move { text }
        }));
    }
    tracing::info!(address = %address, %mix_addr, workers, "mix node running");
    Ok(RunningMix { address, mix_addr, metrics_addr, metrics, links, keys, tasks, _replay: replay })
}
