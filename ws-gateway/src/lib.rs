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
mod wt;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use mixnet_core::address::Recipient;
use mixnet_core::exit::ExitLimits;
use mixnet_core::gateway::GatewayConfig as CoreConfig;
use mixnet_core::message::RouteMode;
use mixnet_core::mix::ReplayConfig;
use mixnet_core::policy::ExitPolicy;
use mixnet_core::sphinx::NodeAddress;
use mixnet_core::topology::{self, NodeDescriptor, Role, WebTransportEndpoint};
use nodenet::directory::DirectoryClient;
use nodenet::keys::NodeIdentity;
use nodenet::link::{LinkStats, Links};
use nodenet::membership::{Joined, Membership};
use nodenet::metrics::Counter;
use nodenet::node::StartError;
use nodenet::replay::ReplayKeeper;
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
    /// Where browsers connect over WebTransport (UDP; off if unset).
    pub wt_listen: Option<String>,
    /// The WebTransport URL published for clients (default: `https://` + the bound
    /// address + `/mixnet`); sessions at any other path are refused.
    pub wt_url: Option<String>,
    /// PEM certificate chain for WebTransport, with `wt_key`, for a certificate
    /// browsers trust. Unset: a self-signed ECDSA P-256 certificate valid 13 days
    /// (kept in `data_dir`, replaced at start after 6 days) whose SHA-256 is published
    /// so browsers pin it with `serverCertificateHashes`. That is for development and
    /// localnet: a gateway running past the 13 days needs a restart, or its clients
    /// fall back to WebSocket.
    pub wt_cert: Option<PathBuf>,
    /// The PEM private key of `wt_cert`.
    pub wt_key: Option<PathBuf>,
    /// Where `GET /metrics` is served (off if unset).
    pub metrics_listen: Option<String>,
    /// Directory URL.
    pub directory: String,
    /// The directory's base58 ed25519 key.
    pub directory_key: String,
    /// Keys and `inbox.sqlite` (ephemeral keys and an in-memory inbox if unset).
    pub data_dir: Option<PathBuf>,
    /// Frames per second one client may send (packets, acks and pings alike).
    pub rate_per_sec: u32,
    /// Burst of the per-client rate limit.
    pub burst: u32,
    /// Client connections held at once (more are closed at once with a reason).
    pub max_connections: usize,
    /// Identities that keep an inbox here (only those that authenticated here; the
    /// least recently seen offline one is forgotten, with its inbox, for a new one).
    pub max_clients: usize,
    /// Most inbox entries per client.
    pub inbox_per_client: u64,
    /// Most inbox payload bytes per client.
    pub inbox_bytes_per_client: u64,
    /// Most inbox payload bytes in total (the disk this gateway may fill).
    pub inbox_total_bytes: u64,
    /// Deliveries pushed to a client before it must acknowledge them.
    pub inbox_page: usize,
    /// Messages queued towards one client before it counts as too slow (and is
    /// closed with a reason).
    pub client_queue: usize,
    /// Inbox entries expire after this long.
    pub inbox_max_age_secs: u64,
    /// Packets queued per outgoing link.
    pub link_queue: usize,
    /// How often the descriptor is refreshed.
    pub heartbeat_ms: u64,
    /// Replay filter size per key epoch (`capacity` packets at `false_positive`).
    pub replay: ReplayConfig,
    /// Run an exit service.
    pub exit: Option<ExitConfig>,
}

impl GatewayConfig {
    /// The core's configuration, limits checked (a zero bound cannot carry anything).
    pub fn core(&self) -> Result<CoreConfig, StartError> {
        nodenet::node::require_positive(&[
            ("rate_per_sec", u64::from(self.rate_per_sec)),
            ("burst", u64::from(self.burst)),
            ("link_queue", self.link_queue as u64),
            ("max_connections", self.max_connections as u64),
            ("max_clients", self.max_clients as u64),
            ("inbox_per_client", self.inbox_per_client),
            ("inbox_bytes_per_client", self.inbox_bytes_per_client),
            ("inbox_total_bytes", self.inbox_total_bytes),
            ("inbox_page", self.inbox_page as u64),
            ("client_queue", self.client_queue as u64),
            ("replay.capacity", self.replay.capacity),
        ])?;
        Ok(CoreConfig {
            rate_per_sec: self.rate_per_sec,
            burst: self.burst,
            max_connections: self.max_connections,
            max_clients: self.max_clients,
            inbox_entries_per_client: self.inbox_per_client,
            inbox_bytes_per_client: self.inbox_bytes_per_client,
            inbox_total_bytes: self.inbox_total_bytes,
            inbox_page: self.inbox_page,
            ..CoreConfig::default()
        })
    }
}

/// The exit role.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExitConfig {
    /// What the exit may connect to.
    pub policy: ExitPolicy,
    /// Routes of the exit's own acknowledgements (`mixnet` or `fast`).
    pub mode: RouteMode,
    /// Time for resolving a name, and for each connection attempt.
    pub connect_timeout_ms: u64,
    /// Anonymous senders whose SURBs the exit keeps (least recently active dropped first).
    pub surb_senders: usize,
    /// SURBs the exit keeps in total.
    pub surbs_total: usize,
    /// Streams, buffers, windows and timeouts (see `mixnet_core::exit::ExitLimits`).
    pub limits: ExitLimits,
}

impl Default for ExitConfig {
    fn default() -> Self {
        let m = mixnet_core::message::MessengerConfig::default();
        Self {
            policy: ExitPolicy::default(),
            mode: RouteMode::Mixnet,
            connect_timeout_ms: 10_000,
            surb_senders: m.max_surb_senders,
            surbs_total: m.max_surbs_total,
            limits: ExitLimits::default(),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        let core = CoreConfig::default();
        Self {
            listen: "127.0.0.1:0".into(),
            announce: None,
            ws_listen: "127.0.0.1:0".into(),
            ws_url: None,
            wt_listen: None,
            wt_url: None,
            wt_cert: None,
            wt_key: None,
            metrics_listen: None,
            directory: String::new(),
            directory_key: String::new(),
            data_dir: None,
            rate_per_sec: core.rate_per_sec,
            burst: core.burst,
            max_connections: core.max_connections,
            max_clients: core.max_clients,
            inbox_per_client: core.inbox_entries_per_client,
            inbox_bytes_per_client: core.inbox_bytes_per_client,
            inbox_total_bytes: core.inbox_total_bytes,
            inbox_page: core.inbox_page,
            client_queue: 4096,
            inbox_max_age_secs: 24 * 3600,
            link_queue: 8192,
            heartbeat_ms: 10_000,
            replay: ReplayConfig::default(),
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
    /// Where WebTransport clients connect (UDP), and what is published for them.
    pub wt: Option<(SocketAddr, WebTransportEndpoint)>,
    /// Where metrics are served.
    pub metrics_addr: Option<SocketAddr>,
    /// The exit service's address, if it runs one.
    pub exit: Option<Recipient>,
    /// Its counters and gauges (what `/metrics` serves).
    pub metrics: Arc<Metrics>,
    /// Outgoing node links (fault injection in tests).
    pub links: Links,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Writes the replay filters; dropped last (after the actor stops), it writes them
    /// a final time.
    _replay: Option<ReplayKeeper>,
    wt_task: Option<tokio::task::JoinHandle<()>>,
    wt_endpoint: Option<Arc<wtransport::Endpoint<wtransport::endpoint::endpoint_side::Server>>>,
    /// The actor's input: metrics requests and the shutdown.
    actor: tokio::sync::mpsc::Sender<actor::Event>,
}

impl RunningGateway {
    /// The Prometheus exposition (what `GET /metrics` serves).
    pub async fn metrics_text(&self) -> String {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.actor.send(actor::Event::Metrics(tx)).await;
        rx.await.unwrap_or_default()
    }

    /// Closes the WebTransport listener (its sessions end; the UDP port is free when
    /// this returns) while everything else keeps serving; the topology still offers the endpoint, as
    /// when a network blocks UDP. For fallback tests.
    pub async fn close_webtransport(&mut self) {
        if let Some(t) = self.wt_task.take() {
            t.abort();
            let _ = t.await;
        }
        if let Some(endpoint) = self.wt_endpoint.take() {
            wt::close(endpoint, mixnet_core::session::code::SHUTDOWN, "webtransport closed").await;
        }
    }

    /// Closes client sessions with a reason, then stops (dropping also stops, abruptly).
    pub async fn shutdown(mut self) {
        let _ = self.actor.send(actor::Event::Shutdown).await;
        // give the close frames a moment, then stop every task and wait until the
        // listeners are closed (so a restart can bind the same ports)
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.close_webtransport().await;
        for t in self.tasks.drain(..) {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        for t in self.tasks.iter().chain(&self.wt_task) {
            t.abort();
        }
    }
}

fn exit_identity(dir: Option<&std::path::Path>) -> Result<NodeIdentity, StartError> {
    NodeIdentity::load_or_create(dir.map(|d| d.join("exit")).as_deref()).map_err(StartError::Keys)
}

/// Starts a gateway: registers with the directory, then serves.
pub async fn start(config: GatewayConfig) -> Result<RunningGateway, StartError> {
    nodenet::node::require_directory(&config.directory, &config.directory_key)?;
    let identity = NodeIdentity::load_or_create(config.data_dir.as_deref()).map_err(StartError::Keys)?;
    let address = identity.address();
    let noise = identity.noise.clone();
    let dir_key = topology::directory_key(&config.directory_key).map_err(|e| StartError::Config(e.to_string()))?;
    // WebTransport first: a client that finds its UDP port closed then also finds the
    // WebSocket port closed, so on a restart it cannot settle for WebSocket while the
    // gateway is coming up (it tries WebTransport first again)
    let wt = match &config.wt_listen {
        Some(listen) => Some(bind_webtransport(&config, listen).await?),
        None => None,
    };
    let mix_listener = nodenet::node::bind(&config.listen).await?;
    let mix_addr =
        mix_listener.local_addr().map_err(|error| StartError::Bind { addr: config.listen.clone(), error })?;
    // the WebSocket port is reserved now (its URL goes in the descriptor) and listens
    // only when its sessions are served, beside WebTransport's: while this gateway
    // joins the network, a client finds both closed, not WebTransport failing and
    // WebSocket's backlog accepting (which would settle it on WebSocket)
    let ws_socket = nodenet::node::reserve(&config.ws_listen).await?;
    let ws_addr = ws_socket.local_addr().map_err(|error| StartError::Bind { addr: config.ws_listen.clone(), error })?;
    let ws_url = config.ws_url.clone().unwrap_or_else(|| format!("ws://{ws_addr}"));

    let exit = match &config.exit {
        Some(_) => {
            let id = exit_identity(config.data_dir.as_deref())?;
            Some(actor::ExitKeys { identity: id.signing.verifying_key().to_bytes(), encryption: id.noise.clone() })
        }
        None => None,
    };
    let exit_address = exit.as_ref().map(|e| Recipient {
        identity: e.identity,
        encryption: e.encryption.public_key(),
        gateway: address.0,
    });

    let announce = config.announce.clone().unwrap_or_else(|| mix_addr.to_string());
    let template = NodeDescriptor {
        client_ws: Some(ws_url.clone()),
        client_wt: wt.as_ref().map(|w| w.published.clone()),
        exit: exit_address,
        ..NodeDescriptor::template(address.0, Role::Gateway, announce, noise.public_key())
    };
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

    let link_stats = Arc::new(LinkStats::default());
    let links = Links::new(&noise, config.link_queue, link_stats.clone());
    let metrics =
        Arc::new(Metrics { links: link_stats.clone(), ws_connections: Counter::default(), ..Default::default() });
    let core = config.core()?;
    let (actor, events) = actor::Actor::new(
        address,
        noise.clone(),
        keys,
        core,
        links.clone(),
        metrics.clone(),
        exit.map(|keys| (keys, config.exit.clone().unwrap_or_default())),
        replay.as_ref().map(ReplayKeeper::store),
        &config,
    )
    .map_err(StartError::Config)?;

    if let Ok(t) = membership.client.topology().await {
        let _ = events.send(actor::Event::Topology(t)).await;
    }
    let mut tasks = vec![tokio::spawn(actor.run())];
    let ev = events.clone();
    let node_metrics = metrics.clone();
    tasks.push(tokio::spawn(nodenet::link::serve(mix_listener, noise, links.clone(), move |p| {
        if ev.try_send(actor::Event::NodePacket(p)).is_err() {
            node_metrics.dropped_overload.inc();
        }
    })));
    let conn_ids = Arc::new(AtomicU64::new(1));
    let ws_listener =
        ws_socket.listen(1024).map_err(|error| StartError::Bind { addr: config.ws_listen.clone(), error })?;
    tasks.push(tokio::spawn(ws::serve(
        ws_listener,
        events.clone(),
        metrics.clone(),
        conn_ids.clone(),
        config.client_queue,
    )));
    let wt_addr = wt.as_ref().map(|w| (w.addr, w.published.clone()));
    let wt_endpoint = wt.as_ref().map(|w| w.endpoint.clone());
    let wt_task = wt.map(|w| {
        tokio::spawn(wt::serve(w.endpoint, w.path, events.clone(), metrics.clone(), conn_ids, config.client_queue))
    });
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
        let l = nodenet::node::bind(m).await?;
        metrics_addr = l.local_addr().ok();
        let ev = events.clone();
        tasks.push(nodenet::metrics::serve(l, move || {
            let ev = ev.clone();
            async move {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let _ = ev.send(actor::Event::Metrics(tx)).await;
                rx.await.unwrap_or_default()
            }
        }));
    }
    let wt_url = wt_addr.as_ref().map(|(_, p)| p.url.as_str());
    tracing::info!(%address, %mix_addr, %ws_url, ?wt_url, exit = ?exit_address.map(|e| e.to_string()), "gateway running");
    Ok(RunningGateway {
        address,
        mix_addr,
        ws_addr,
        ws_url,
        wt: wt_addr,
        metrics_addr,
        exit: exit_address,
        metrics,
        links,
        tasks,
        wt_task,
        wt_endpoint,
        _replay: replay,
        actor: events,
    })
}

/// A bound WebTransport endpoint, before it serves.
struct BoundWebTransport {
    endpoint: Arc<wtransport::Endpoint<wtransport::endpoint::endpoint_side::Server>>,
    addr: SocketAddr,
    path: String,
    published: WebTransportEndpoint,
}

async fn bind_webtransport(config: &GatewayConfig, listen: &str) -> Result<BoundWebTransport, StartError> {
    let bind_err = |error: std::io::Error| StartError::Bind { addr: listen.to_owned(), error };
    let addr = nodenet::node::resolve(listen).await?;
    // the certificate names the published host, so it is known before binding
    let configured = config.wt_url.as_deref().map(parse_https_url).transpose().map_err(StartError::Config)?;
    let host = configured.as_ref().map_or_else(|| addr.ip().to_string(), |(h, _)| h.clone());
    let identity =
        wt::load_identity(config.wt_cert.as_deref(), config.wt_key.as_deref(), config.data_dir.as_deref(), &host)
            .await
            .map_err(StartError::Config)?;
    let endpoint = Arc::new(wt::bind(addr, &identity).map_err(bind_err)?);
    let bound = endpoint.local_addr().map_err(bind_err)?;
    let (url, path) = match (&config.wt_url, configured) {
        (Some(url), Some((_, path))) => (url.clone(), path),
        _ => (format!("https://{bound}/mixnet"), "/mixnet".to_owned()),
    };
    Ok(BoundWebTransport {
        endpoint,
        addr: bound,
        path,
        published: match &identity.pinned {
            Some(hash) => WebTransportEndpoint::pinned(url, hash),
            None => WebTransportEndpoint { url, cert_sha256: None },
        },
    })
}

/// `https://host[:port]/path` → (host, path).
fn parse_https_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("https://").ok_or_else(|| format!("wt_url {url:?} must start with https://"))?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.is_empty() {
        return Err(format!("wt_url {url:?} has no host"));
    }
    Ok((host.to_owned(), path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::parse_https_url;

    #[test]
    fn wt_urls() {
        assert_eq!(parse_https_url("https://gw.example:4433/mixnet").unwrap(), ("gw.example".into(), "/mixnet".into()));
        assert_eq!(parse_https_url("https://127.0.0.1:9/").unwrap(), ("127.0.0.1".into(), "/".into()));
        assert_eq!(parse_https_url("https://[::1]:9/a/b").unwrap(), ("::1".into(), "/a/b".into()));
        assert_eq!(parse_https_url("https://gw.example").unwrap(), ("gw.example".into(), "/".into()));
        assert!(parse_https_url("http://gw.example/").is_err());
        assert!(parse_https_url("https://:9/").is_err());
    }
}
