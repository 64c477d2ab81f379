//! The mix node server: Noise links in, Sphinx processing on a worker pool sized to
//! the cores (replay filter per key epoch, in `mixnet_core::mix::NodeKeys`), each
//! packet held for its header delay, then forwarded over Noise links out. Bounded
//! queues drop and count when full. `GET /metrics` exposes Prometheus counters.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use mixnet_core::mix::{DelayQueue, MixError, NodeKeys};
use mixnet_core::sphinx::{NodeAddress, Processed};
use mixnet_core::topology::{self, Key32, NodeDescriptor, Role};
use nodenet::directory::DirectoryClient;
use nodenet::keys::NodeIdentity;
use nodenet::link::{self, LinkStats, Links};
use nodenet::membership::Membership;
use nodenet::metrics::{Counter, Exposition};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::StartError;

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
    /// Key files (ephemeral keys if unset).
    pub data_dir: Option<PathBuf>,
    /// Crypto worker threads (0: one per core).
    pub workers: usize,
    /// Packets queued per worker before drops.
    pub worker_queue: usize,
    /// Packets queued per outgoing link before drops.
    pub link_queue: usize,
    /// How often the descriptor is refreshed.
    pub heartbeat_ms: u64,
}

impl Default for MixConfig {
    fn default() -> Self {
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
        }
    }
}

/// Counters of a mix node.
#[derive(Debug, Default)]
pub struct MixMetrics {
    /// Packets received from links.
    pub packets_in: Counter,
    /// Packets handed to outgoing links after their delay.
    pub packets_out: Counter,
    /// Replays dropped.
    pub dropped_replay: Counter,
    /// Undecryptable or malformed packets dropped.
    pub dropped_malformed: Counter,
    /// Final-hop packets at a mix (a sender's mistake) dropped.
    pub dropped_final_hop: Counter,
    /// Packets dropped because every worker queue was full.
    pub dropped_queue_full: Counter,
    /// Total processing time, microseconds.
    pub processing_us: Counter,
    /// Packets processed.
    pub processed: Counter,
    queued_workers: AtomicUsize,
    queued_delay: AtomicUsize,
    /// Link counters.
    pub links: Arc<LinkStats>,
}

impl MixMetrics {
    /// The Prometheus exposition.
    pub fn render(&self, links_queued: usize) -> String {
        let mut e = Exposition::default();
        let l = &self.links;
        e.counter("mix_packets_in_total", "Packets received from other nodes.", self.packets_in.get())
            .counter("mix_packets_out_total", "Packets forwarded after their delay.", self.packets_out.get())
            .labelled(
                "mix_dropped_total",
                "Packets dropped, by reason.",
                "reason",
                &[
                    ("replay", self.dropped_replay.get()),
                    ("malformed", self.dropped_malformed.get()),
                    ("final_hop", self.dropped_final_hop.get()),
                    ("worker_queue_full", self.dropped_queue_full.get()),
                    ("link_queue_full", l.dropped_queue_full.get()),
                    ("unknown_next_hop", l.dropped_unknown_peer.get()),
                    ("link_error", l.dropped_link_error.get()),
                ],
            )
            .counter("mix_bad_frames_total", "Link frames that failed to parse or decrypt.", l.bad_frames.get())
            .counter("mix_link_handshake_failures_total", "Failed Noise handshakes.", l.handshake_failures.get())
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
            .gauge(
                "mix_delay_queue_depth",
                "Packets waiting for their delay.",
                self.queued_delay.load(Ordering::Relaxed) as f64,
            )
            .gauge("mix_link_queue_depth", "Packets waiting for an outgoing link.", links_queued as f64);
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
    tasks: Vec<tokio::task::JoinHandle<()>>,
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

    /// Stops the node (also on drop); its workers exit when their queues close.
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

fn spawn_workers(
    count: usize,
    queue: usize,
    keys: Arc<RwLock<NodeKeys>>,
    metrics: Arc<MixMetrics>,
    scheduled: mpsc::UnboundedSender<(Duration, NodeAddress, Vec<u8>)>,
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
                        let result = keys.read().unwrap_or_else(|e| e.into_inner()).process(packet);
                        metrics.processing_us.add(start.elapsed().as_micros() as u64);
                        metrics.processed.inc();
                        match result {
                            Ok(Processed::Forward(f)) => {
                                if scheduled.send((f.delay.to_duration(), f.next_hop, f.packet)).is_err() {
                                    return;
                                }
                            }
                            Ok(Processed::Final(_)) => metrics.dropped_final_hop.inc(),
                            Err(MixError::Replay) => metrics.dropped_replay.inc(),
                            Err(_) => metrics.dropped_malformed.inc(),
                        }
                    }
                })
                .expect("spawning a worker thread");
            tx
        })
        .collect()
}

/// Holds each packet for its delay (the core's `DelayQueue`), then forwards it.
async fn delay_queue(
    mut rx: mpsc::UnboundedReceiver<(Duration, NodeAddress, Vec<u8>)>,
    links: Links,
    metrics: Arc<MixMetrics>,
) {
    let start = Instant::now();
    let mut queue = DelayQueue::default();
    loop {
        let next = queue.next_due().map(|t| start + Duration::from_micros(t.as_micros()));
        tokio::select! {
            item = rx.recv() => {
                let Some((delay, next_hop, packet)) = item else { return };
                queue.push(nodenet::core_now(start) + delay, next_hop, packet);
            }
            _ = async { tokio::time::sleep_until(next.unwrap_or_else(Instant::now)).await }, if next.is_some() => {}
        }
        let now = nodenet::core_now(start);
        while let Some((next_hop, packet)) = queue.pop_due(now) {
            metrics.packets_out.inc();
            links.send(next_hop, packet);
        }
        metrics.queued_delay.store(queue.len(), Ordering::Relaxed);
    }
}

/// Starts a mix node: registers with the directory, then serves.
pub async fn start(config: MixConfig) -> Result<RunningMix, StartError> {
    crate::require_directory(&config.directory, &config.directory_key)?;
    let identity = NodeIdentity::load_or_create(config.data_dir.as_deref()).map_err(StartError::Keys)?;
    let address = identity.address();
    let noise = identity.noise.clone();
    let dir_key = topology::directory_key(&config.directory_key).map_err(|e| StartError::Config(e.to_string()))?;
    let listener = crate::bind(&config.listen).await?;
    let mix_addr = listener.local_addr().map_err(|error| StartError::Bind { addr: config.listen.clone(), error })?;
    let identity = Arc::new(Mutex::new(identity));
    let template = NodeDescriptor {
        identity: Key32(address.0),
        role: Role::Mix,
        mix_address: config.announce.clone().unwrap_or_else(|| mix_addr.to_string()),
        noise_key: Key32(noise.public_key()),
        sphinx_keys: vec![],
        client_ws: None,
        client_wt: None,
        exit: None,
        signed_at_ms: 0,
    };
    let membership = Membership::new(
        DirectoryClient::new(&config.directory, dir_key),
        identity,
        template,
        Duration::from_millis(config.heartbeat_ms),
    );
    let (info, keys) =
        membership.join(Duration::from_secs(30)).await.map_err(|e| StartError::Directory(e.to_string()))?;
    let keys = Arc::new(RwLock::new(keys));

    let metrics = Arc::new(MixMetrics::default());
    let links = Links::new(&noise, config.link_queue, metrics.links.clone());
    if let Ok(t) = membership.client.topology().await {
        links.set_peers(&t);
    }
    let (sched_tx, sched_rx) = mpsc::unbounded_channel();
    let workers = if config.workers == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    } else {
        config.workers
    };
    let dispatcher = Arc::new(Dispatcher {
        workers: spawn_workers(workers, config.worker_queue, keys.clone(), metrics.clone(), sched_tx),
        next: AtomicUsize::new(0),
        metrics: metrics.clone(),
    });

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(delay_queue(sched_rx, links.clone(), metrics.clone())));
    let d = dispatcher.clone();
    tasks.push(tokio::spawn(link::serve(listener, noise, metrics.links.clone(), move |p| d.dispatch(p))));
    let rotate = keys.clone();
    let peers = links.clone();
    tasks.push(membership.spawn(
        info.epoch,
        move |epoch, key, next| {
            rotate.write().unwrap_or_else(|e| e.into_inner()).rotate(epoch, key, Some(next));
            tracing::info!(epoch, "rotated Sphinx key");
        },
        move |t| peers.set_peers(&t),
    ));
    let mut metrics_addr = None;
    if let Some(m) = &config.metrics_listen {
        let l = crate::bind(m).await?;
        metrics_addr = l.local_addr().ok();
        let (metrics, links) = (metrics.clone(), links.clone());
        let app = Router::new().route("/metrics", get(move || async move { metrics.render(links.queued()) }));
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        }));
    }
    tracing::info!(address = %address, %mix_addr, workers, "mix node running");
    Ok(RunningMix { address, mix_addr, metrics_addr, metrics, links, tasks })
}
