//! The gateway server: the bridge between browsers and the node network.
//!
//! - clients connect over WebSocket and speak the session protocol
//!   (`PROTOCOL.md`; the state machine is `mixnet_core::gateway::Gateway`);
//! - their packets go into the mixnet over Noise links; packets for them come back
//!   the same way, are stored in the SQLite inbox, acknowledged by SURB, pushed, and
//!   deleted when the client acknowledges them;
//! - with `[exit]` configured it also runs an exit service: TCP streams for clients,
//!   DNS resolved here, an exit policy, answers only through the clients' SURBs.
//!
//! One actor task owns the protocol state; sockets, the inbox thread and TCP tasks
//! talk to it through channels.

mod actor;
mod exit;
pub mod inbox;
mod ws;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mixnet_core::address::Recipient;
use mixnet_core::gateway::GatewayConfig as CoreConfig;
use mixnet_core::message::RouteMode;
use mixnet_core::policy::ExitPolicy;
use mixnet_core::sphinx::NodeAddress;
use mixnet_core::topology::{self, Key32, NodeDescriptor, Role};
use mix_node::StartError;
use nodenet::directory::DirectoryClient;
use nodenet::keys::NodeIdentity;
use nodenet::link::{LinkStats, Links};
use nodenet::membership::Membership;
use nodenet::metrics::Counter;
use serde::Deserialize;

pub use actor::Metrics;

/// Gateway configuration (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where mix nodes connect (Noise over TCP).
    pub listen: String,
    /// The `host:port` published for nodes (default: the bound address).
    pub announce: Option<String>,
    /// Where browsers connect (WebSocket).
    pub ws_listen: String,
    /// The WebSocket URL published for clients (default: `ws://` + the bound address).
    pub ws_url: Option<String>,
    /// Where `GET /metrics` is served (off if unset).
    pub metrics_listen: Option<String>,
    /// Directory URL.
    pub directory: String,
    /// The directory's base58 ed25519 key.
    pub directory_key: String,
    /// Keys and `inbox.sqlite` (ephemeral keys and an in-memory inbox if unset).
    pub data_dir: Option<PathBuf>,
    /// Packets per second one client may send.
    pub rate_per_sec: u32,
    /// Burst of the per-client rate limit.
    pub burst: u32,
    /// Most inbox entries per client.
    pub inbox_per_client: u64,
    /// Inbox entries expire after this long.
    pub inbox_max_age_secs: u64,
    /// Packets queued per outgoing link.
    pub link_queue: usize,
    /// How often the descriptor is refreshed.
    pub heartbeat_ms: u64,
    /// Run an exit service.
    pub exit: Option<ExitConfig>,
}

/// The exit role.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExitConfig {
    /// What the exit may connect to.
    pub policy: ExitPolicy,
    /// Routes of the exit's own acknowledgements (`mixnet` or `fast`).
    pub mode: RouteMode,
    /// TCP connect timeout.
    pub connect_timeout_ms: u64,
}

impl Default for ExitConfig {
    fn default() -> Self {
        Self { policy: ExitPolicy::default(), mode: RouteMode::Mixnet, connect_timeout_ms: 10_000 }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            announce: None,
            ws_listen: "127.0.0.1:0".into(),
            ws_url: None,
            metrics_listen: None,
            directory: String::new(),
            directory_key: String::new(),
            data_dir: None,
            rate_per_sec: 2000,
            burst: 4000,
            inbox_per_client: 100_000,
            inbox_max_age_secs: 24 * 3600,
            link_queue: 8192,
            heartbeat_ms: 10_000,
            exit: None,
        }
    }
}

/// A running gateway.
pub struct RunningGateway {
    /// Its node address (identity key).
    pub address: NodeAddress,
    /// Where nodes connect.
    pub mix_addr: SocketAddr,
    /// Where clients connect.
    pub ws_addr: SocketAddr,
    /// The published WebSocket URL.
    pub ws_url: String,
    /// Where metrics are served.
    pub metrics_addr: Option<SocketAddr>,
    /// The exit service's address, if it runs one.
    pub exit: Option<Recipient>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Outgoing node links (fault injection in tests).
    pub links: Links,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: tokio::sync::mpsc::Sender<actor::Event>,
}

impl RunningGateway {
    /// The Prometheus exposition (what `GET /metrics` serves).
    pub async fn metrics_text(&self) -> String {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.shutdown.send(actor::Event::Metrics(tx)).await;
        rx.await.unwrap_or_default()
    }

    /// Closes client sessions with a reason, then stops (dropping also stops, abruptly).
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(actor::Event::Shutdown).await;
        // give the close frames a moment, then stop every task and wait until the
        // listeners are closed (so a restart can bind the same ports)
        tokio::time::sleep(Duration::from_millis(50)).await;
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn exit_identity(dir: Option<&std::path::Path>) -> Result<NodeIdentity, StartError> {
    NodeIdentity::load_or_create(dir.map(|d| d.join("exit")).as_deref()).map_err(StartError::Keys)
}

/// Starts a gateway: registers with the directory, then serves.
pub async fn start(config: GatewayConfig) -> Result<RunningGateway, StartError> {
    mix_node::require_directory(&config.directory, &config.directory_key)?;
    let identity = NodeIdentity::load_or_create(config.data_dir.as_deref()).map_err(StartError::Keys)?;
    let address = identity.address();
    let noise = identity.noise.clone();
    let dir_key = topology::directory_key(&config.directory_key).map_err(|e| StartError::Config(e.to_string()))?;
    let mix_listener = mix_node::bind(&config.listen).await?;
    let mix_addr = mix_listener.local_addr().map_err(|error| StartError::Bind { addr: config.listen.clone(), error })?;
    let ws_listener = mix_node::bind(&config.ws_listen).await?;
    let ws_addr = ws_listener.local_addr().map_err(|error| StartError::Bind { addr: config.ws_listen.clone(), error })?;
    let ws_url = config.ws_url.clone().unwrap_or_else(|| format!("ws://{ws_addr}"));

    let exit = match &config.exit {
        Some(_) => {
            let id = exit_identity(config.data_dir.as_deref())?;
            Some(actor::ExitKeys {
                identity: id.signing.verifying_key().to_bytes(),
                encryption: id.noise.clone(),
            })
        }
        None => None,
    };
    let exit_address = exit.as_ref().map(|e| Recipient {
        identity: e.identity,
        encryption: e.encryption.public_key(),
        gateway: address.0,
    });

    let identity = Arc::new(Mutex::new(identity));
    let template = NodeDescriptor {
        identity: Key32(address.0),
        role: Role::Gateway,
        mix_address: config.announce.clone().unwrap_or_else(|| mix_addr.to_string()),
        noise_key: Key32(noise.public_key()),
        sphinx_keys: vec![],
        client_ws: Some(ws_url.clone()),
        client_wt: None,
        exit: exit_address,
        signed_at_ms: 0,
    };
    let membership = Membership::new(
        DirectoryClient::new(&config.directory, dir_key),
        identity,
        template,
        Duration::from_millis(config.heartbeat_ms),
    );
    let (info, keys) = membership.join(Duration::from_secs(30)).await.map_err(|e| StartError::Directory(e.to_string()))?;

    let link_stats = Arc::new(LinkStats::default());
    let links = Links::new(&noise, config.link_queue, link_stats.clone());
    let metrics = Arc::new(Metrics { links: link_stats.clone(), ws_connections: Counter::default(), ..Default::default() });
    let core = CoreConfig { rate_per_sec: config.rate_per_sec, burst: config.burst, ..CoreConfig::default() };
    let (actor, events) = actor::Actor::new(
        address,
        noise.clone(),
        keys,
        core,
        links.clone(),
        metrics.clone(),
        exit.map(|keys| (keys, config.exit.clone().unwrap_or_default())),
        &config,
    )
    .map_err(StartError::Config)?;

    if let Ok(t) = membership.client.topology().await {
        let _ = events.send(actor::Event::Topology(t)).await;
    }
    let mut tasks = vec![tokio::spawn(actor.run())];
    let ev = events.clone();
    let node_metrics = metrics.clone();
    tasks.push(tokio::spawn(nodenet::link::serve(mix_listener, noise, link_stats, move |p| {
        if ev.try_send(actor::Event::NodePacket(p)).is_err() {
            node_metrics.dropped_overload.inc();
        }
    })));
    tasks.push(tokio::spawn(ws::serve(ws_listener, events.clone(), metrics.clone())));
    let (ev_epoch, ev_topo) = (events.clone(), events.clone());
    tasks.push(membership.spawn(
        info.epoch,
        move |epoch, key, next| {
            let _ = ev_epoch.try_send(actor::Event::Rotate(epoch, key, next));
        },
        move |t| {
            let _ = ev_topo.try_send(actor::Event::Topology(t));
        },
    ));
    let mut metrics_addr = None;
    if let Some(m) = &config.metrics_listen {
        let l = mix_node::bind(m).await?;
        metrics_addr = l.local_addr().ok();
        let ev = events.clone();
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let ev = ev.clone();
                async move {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let _ = ev.send(actor::Event::Metrics(tx)).await;
                    rx.await.unwrap_or_default()
                }
            }),
        );
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        }));
    }
    tracing::info!(%address, %mix_addr, %ws_url, exit = ?exit_address.map(|e| e.to_string()), "gateway running");
    Ok(RunningGateway {
        address,
        mix_addr,
        ws_addr,
        ws_url,
        metrics_addr,
        exit: exit_address,
        metrics,
        links,
        tasks,
        shutdown: events,
    })
}
