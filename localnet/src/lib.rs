//! The whole network on loopback, in one process: the directory, three layers of mix
//! nodes, an entry gateway and an exit gateway, all on OS-chosen ports. Each is the
//! same server that runs standalone from a TOML config; here they are started from
//! code. Clients connect with the `mixnet-client` crate (or from a browser with the
//! worker), given [`Localnet::client_config`] or the `localnet.json` it writes.

pub mod wait;
pub mod web;

use std::path::PathBuf;
use std::time::Duration;

use mix_node::directory::{self, AllowedNode, DirectoryConfig, RunningDirectory};
use mix_node::mix::{self, MixConfig, RunningMix};
use mixnet_core::address::{Recipient, encode_key};
use mixnet_core::message::{MessengerConfig, RouteMode};
use mixnet_core::mix::ReplayConfig;
use mixnet_core::policy::ExitPolicy;
use mixnet_core::sphinx::NodeAddress;
use mixnet_core::topology::Role;
use mixnet_core::topology::{Topology, WebTransportEndpoint};
use nodenet::directory::DirectoryClient;
use nodenet::keys::NodeIdentity;
use nodenet::node::StartError;
use serde::Serialize;
use ws_gateway::{ExitConfig, GatewayConfig, RunningGateway};

use mixnet_client::ClientConfig;

/// Replay filters of localnet's nodes: sized for a test network (4.8 MiB per key)
/// rather than the servers' default (48 MiB), as eight nodes share one process.
pub const LOCALNET_REPLAY: ReplayConfig = ReplayConfig { capacity: 1_000_000, false_positive: 1e-6 };

/// How to run the local network.
#[derive(Debug, Clone)]
pub struct LocalnetConfig {
    /// Route mode clients should use (also the exit's own acks).
    pub mode: RouteMode,
    /// Mix nodes per layer.
    pub mixes_per_layer: usize,
    /// Where nodes keep keys and the inbox (a temporary directory if unset).
    pub data_dir: Option<PathBuf>,
    /// Epoch length.
    pub epoch_ms: u64,
    /// Nodes silent this long leave the topology.
    pub node_ttl_ms: u64,
    /// How often nodes re-register (and re-read the topology).
    pub heartbeat_ms: u64,
    /// What the exit may connect to (loopback allowed: this is a local network).
    pub exit_policy: ExitPolicy,
    /// Gateways also listen for WebTransport (self-signed certificates, pinned by hash
    /// in the topology).
    pub webtransport: bool,
    /// Derive every node's long-term keys (and the directory's) from this seed where
    /// none are on disk yet: the same seed gives the same identities and directory key,
    /// run after run (Sphinx keys, one per epoch, stay random).
    pub seed: Option<u64>,
    /// What every mix starts from (limits, replay filter size, workers); addresses,
    /// directory, data directory and heartbeat are set by localnet.
    pub mix: MixConfig,
    /// What both gateways start from (limits, rates); likewise.
    pub gateway: GatewayConfig,
}

impl Default for LocalnetConfig {
    fn default() -> Self {
        Self {
            mode: RouteMode::Mixnet,
            mixes_per_layer: 2,
            data_dir: None,
            epoch_ms: 3_600_000,
            node_ttl_ms: 6_000,
            heartbeat_ms: 1_000,
            exit_policy: ExitPolicy::localnet(),
            webtransport: true,
            seed: None,
            mix: MixConfig { workers: 1, replay: LOCALNET_REPLAY, ..MixConfig::default() },
            gateway: GatewayConfig { replay: LOCALNET_REPLAY, ..GatewayConfig::default() },
        }
    }
}

/// What a client needs to use the local network (written as JSON).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalnetInfo {
    /// Directory URL.
    pub directory: String,
    /// Directory key (base58).
    pub directory_key: String,
    /// Route mode.
    pub mode: RouteMode,
    /// The entry gateway (identity, base58).
    pub entry_gateway: String,
    /// Its WebSocket URL.
    pub entry_ws: String,
    /// Its WebTransport endpoint, if it offers one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry_wt: Option<WebTransportEndpoint>,
    /// The exit gateway (identity, base58).
    pub exit_gateway: String,
    /// Its WebSocket URL.
    pub exit_ws: String,
    /// Its WebTransport endpoint, if it offers one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_wt: Option<WebTransportEndpoint>,
    /// The exit service's address.
    pub exit_address: String,
    /// The entry gateway's Prometheus metrics URL.
    pub entry_metrics: String,
    /// The exit gateway's Prometheus metrics URL.
    pub exit_metrics: String,
    /// Every mix node: address and metrics URL.
    pub mixes: Vec<NodeInfo>,
    /// The demo's anonymous publishing service, when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub publish_service: Option<String>,
    /// The demo site's URL, when it is served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo: Option<String>,
    /// A web origin to fetch through the exit (MixFetch's demo), when it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub demo_origin: Option<DemoOrigin>,
}

/// The demo's web origin: what to fetch, and the CA to trust for it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoOrigin {
    /// `https://localhost:port/`.
    pub https: String,
    /// `http://127.0.0.1:port/`.
    pub http: String,
    /// The CA that signed its certificate (PEM): MixFetch's `extraRoots`.
    pub ca: String,
}

/// A node's address and metrics URL.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// Identity (base58).
    pub identity: String,
    /// `http://…/metrics`.
    pub metrics: String,
}

fn metrics_url(addr: Option<std::net::SocketAddr>) -> String {
    addr.map(|a| format!("http://{a}/metrics")).unwrap_or_default()
}

/// A running local network.
pub struct Localnet {
    /// The directory.
    pub directory: RunningDirectory,
    /// Mix nodes (`None` once killed).
    pub mixes: Vec<Option<RunningMix>>,
    /// Gateway 0 is the entry, gateway 1 the exit (`None` while down).
    pub gateways: Vec<Option<RunningGateway>>,
    gateway_configs: Vec<GatewayConfig>,
    /// UDP sockets that silently swallow what is sent to closed WebTransport ports.
    blackholes: Vec<std::net::UdpSocket>,
    config: LocalnetConfig,
    _tmp: Option<tempfile::TempDir>,
}

/// Writes `identity.key` and `noise.key` for each node directory from a ChaCha20 stream
/// seeded with `seed` (keys already on disk are kept: a data directory's keys win).
fn seed_keys(data_dir: &std::path::Path, seed: u64, dirs: impl Iterator<Item = String>) -> std::io::Result<()> {
    use rand_core::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    for d in dirs {
        let dir = data_dir.join(d);
        std::fs::create_dir_all(&dir)?;
        for name in ["identity.key", "noise.key"] {
            let mut key = zeroize::Zeroizing::new([0u8; 32]);
            rng.fill_bytes(key.as_mut());
            let path = dir.join(name);
            if !path.exists() {
                nodenet::keys::write_secret(&path, key.as_ref())?;
            }
        }
    }
    Ok(())
}

impl Localnet {
    /// Starts everything and waits until the directory publishes every node.
    pub async fn start(config: LocalnetConfig) -> Result<Self, StartError> {
        let (data_dir, tmp) = match &config.data_dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = tempfile::tempdir().map_err(StartError::Keys)?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        // the directory admits only the nodes we start: their identities come first
        let mixes_n = config.mixes_per_layer * 3;
        if let Some(seed) = config.seed {
            let dirs = std::iter::once("directory".to_string())
                .chain((0..mixes_n).map(|i| format!("mix-{i}")))
                .chain((0..2).map(|i| format!("gateway-{i}")));
            seed_keys(&data_dir, seed, dirs).map_err(StartError::Keys)?;
        }
        let mut allow = Vec::new();
        for (dir, role) in (0..mixes_n)
            .map(|i| (format!("mix-{i}"), Role::Mix))
            .chain((0..2).map(|i| (format!("gateway-{i}"), Role::Gateway)))
        {
            let id = NodeIdentity::load_or_create(Some(&data_dir.join(dir))).map_err(StartError::Keys)?;
            allow.push(AllowedNode { identity: id.address().to_string(), role });
        }
        let directory = directory::start(DirectoryConfig {
            data_dir: Some(data_dir.join("directory")),
            epoch_ms: config.epoch_ms,
            node_ttl_ms: config.node_ttl_ms,
            allow,
            ..DirectoryConfig::default()
        })
        .await?;
        let dir_url = directory.url();
        let dir_key = encode_key(&directory.key.to_bytes());

        let mut mixes = Vec::new();
        for i in 0..mixes_n {
            let m = mix::start(MixConfig {
                metrics_listen: Some("127.0.0.1:0".into()),
                directory: dir_url.clone(),
                directory_key: dir_key.clone(),
                data_dir: Some(data_dir.join(format!("mix-{i}"))),
                heartbeat_ms: config.heartbeat_ms,
                ..config.mix.clone()
            })
            .await?;
            mixes.push(Some(m));
        }
        let mut gateways = Vec::new();
        let mut gateway_configs = Vec::new();
        for (i, exit) in [false, true].into_iter().enumerate() {
            let mut gc = GatewayConfig {
                metrics_listen: Some("127.0.0.1:0".into()),
                directory: dir_url.clone(),
                directory_key: dir_key.clone(),
                data_dir: Some(data_dir.join(format!("gateway-{i}"))),
                heartbeat_ms: config.heartbeat_ms,
                exit: exit.then(|| ExitConfig {
                    policy: config.exit_policy.clone(),
                    mode: config.mode,
                    ..ExitConfig::default()
                }),
                wt_listen: config.webtransport.then(|| "127.0.0.1:0".into()),
                ..config.gateway.clone()
            };
            let g = ws_gateway::start(gc.clone()).await?;
            // a restart keeps the same ports (and certificate, in the data directory), so
            // what the topology published stays valid
            gc.listen = g.mix_addr.to_string();
            gc.ws_listen = g.ws_addr.to_string();
            if let Some((addr, endpoint)) = &g.wt {
                gc.wt_listen = Some(addr.to_string());
                gc.wt_url = Some(endpoint.url.clone());
            }
            gc.metrics_listen = g.metrics_addr.map(|a| a.to_string());
            gateways.push(Some(g));
            gateway_configs.push(gc);
        }
        let net = Self { directory, mixes, gateways, gateway_configs, blackholes: Vec::new(), config, _tmp: tmp };
        let topology = net
            .wait_for_topology(|t| t.mixes.len() == net.live_mixes() && t.gateways.len() == 2, Duration::from_secs(20))
            .await
            .map_err(|_| StartError::Directory("not every node appeared in the topology within 20 s".into()))?;
        net.wait_for_nodes_to_learn(&topology, Duration::from_secs(20)).await?;
        Ok(net)
    }

    /// Waits until every running node has fetched `topology` (its links know every
    /// node and admit their keys), so a caller's first packet is not dropped as for an
    /// unknown peer or refused on a link from a key the node has not yet learned.
    async fn wait_for_nodes_to_learn(&self, topology: &Topology, timeout: Duration) -> Result<(), StartError> {
        let addresses: Vec<NodeAddress> = topology
            .mixes
            .iter()
            .map(|m| NodeAddress(m.identity.0))
            .chain(topology.gateways.iter().map(|g| NodeAddress(g.identity.0)))
            .collect();
        let addresses = &addresses;
        wait::until(timeout, || async move {
            let mut links =
                self.mixes.iter().flatten().map(|m| &m.links).chain(self.gateways.iter().flatten().map(|g| &g.links));
            if links.all(|l| addresses.iter().all(|a| l.knows(a))) { Ok(()) } else { Err(String::new()) }
        })
        .await
        .map_err(|_| {
            StartError::Directory(format!(
                "not every node fetched the complete topology within {} s",
                timeout.as_secs()
            ))
        })
    }

    fn live_mixes(&self) -> usize {
        self.mixes.iter().flatten().count()
    }

    /// Polls the directory until `done(topology)` or `timeout`.
    pub async fn wait_for_topology(
        &self,
        done: impl Fn(&Topology) -> bool,
        timeout: Duration,
    ) -> Result<Topology, String> {
        let client = DirectoryClient::new(&self.directory.url(), self.directory.key);
        let (client, done) = (&client, &done);
        wait::until(timeout, || async move {
            match client.topology().await {
                Ok(t) if done(&t) => Ok(t),
                Ok(t) => Err(format!(
                    "timed out at epoch {} ({} mixes, {} gateways)",
                    t.epoch,
                    t.mixes.len(),
                    t.gateways.len()
                )),
                Err(e) => Err(format!("timed out: {e}")),
            }
        })
        .await
    }

    fn gateway(&self, i: usize) -> &RunningGateway {
        self.gateways[i].as_ref().expect("gateway is running")
    }

    /// The exit service's address.
    pub fn exit_address(&self) -> Recipient {
        self.gateway(1).exit.expect("gateway 1 runs the exit")
    }

    /// What a client needs, as written to the JSON file.
    pub fn info(&self) -> LocalnetInfo {
        let (entry, exit) = (self.gateway(0), self.gateway(1));
        LocalnetInfo {
            directory: self.directory.url(),
            directory_key: encode_key(&self.directory.key.to_bytes()),
            mode: self.config.mode,
            entry_gateway: entry.address.to_string(),
            entry_ws: entry.ws_url.clone(),
            entry_wt: entry.wt.as_ref().map(|(_, e)| e.clone()),
            exit_gateway: exit.address.to_string(),
            exit_ws: exit.ws_url.clone(),
            exit_wt: exit.wt.as_ref().map(|(_, e)| e.clone()),
            exit_address: self.exit_address().to_string(),
            entry_metrics: metrics_url(entry.metrics_addr),
            exit_metrics: metrics_url(exit.metrics_addr),
            mixes: self
                .mixes
                .iter()
                .flatten()
                .map(|m| NodeInfo { identity: m.address.to_string(), metrics: metrics_url(m.metrics_addr) })
                .collect(),
            publish_service: None,
            demo: None,
            demo_origin: None,
        }
    }

    /// A client configuration for gateway `i`, in this network's mode, refreshing the
    /// topology every second (so it notices dead nodes quickly).
    pub fn client_config(&self, i: usize) -> ClientConfig {
        let mut c = ClientConfig::new(&self.directory.url(), &encode_key(&self.directory.key.to_bytes()));
        c.gateway = Some(self.gateway(i).address.to_string());
        c.messenger = MessengerConfig { mode: self.config.mode, ..MessengerConfig::default() };
        c.topology_refresh = Duration::from_secs(1);
        c
    }

    /// Kills mix `i` abruptly (the directory drops it after `node_ttl_ms`).
    pub fn kill_mix(&mut self, i: usize) -> Option<mixnet_core::sphinx::NodeAddress> {
        self.mixes[i].take().map(|m| m.address)
    }

    /// Stops gateway `i` (closing client sessions with a reason).
    pub async fn stop_gateway(&mut self, i: usize) {
        if let Some(g) = self.gateways[i].take() {
            g.shutdown().await;
        }
    }

    /// Closes gateway `i`'s WebTransport port while it keeps serving WebSocket (the
    /// topology still offers WebTransport): what a client behind a UDP-blocking network
    /// sees. `false` if the gateway is down or has no WebTransport listener.
    pub async fn close_webtransport(&mut self, i: usize) -> bool {
        match self.gateways[i].as_mut() {
            Some(g) if g.wt.is_some() => {
                g.close_webtransport().await;
                true
            }
            _ => false,
        }
    }

    /// Like [`Localnet::close_webtransport`], then holds the UDP port with a socket that
    /// never answers: what a client sees on a network that drops UDP silently (its
    /// WebTransport attempt times out rather than failing at once). Released when the
    /// gateway is started again.
    pub async fn blackhole_webtransport(&mut self, i: usize) -> Result<(), String> {
        let Some(addr) = self.gateways[i].as_ref().and_then(|g| g.wt.as_ref().map(|(a, _)| *a)) else {
            return Err("the gateway is down or has no webtransport listener".into());
        };
        self.close_webtransport(i).await;
        let socket = std::net::UdpSocket::bind(addr).map_err(|e| format!("cannot hold {addr}: {e}"))?;
        self.blackholes.push(socket);
        Ok(())
    }

    /// Starts gateway `i` again with the same keys, inbox and ports.
    pub async fn start_gateway(&mut self, i: usize) -> Result<(), StartError> {
        if let Some(wt) = &self.gateway_configs[i].wt_listen {
            self.blackholes.retain(|s| s.local_addr().map(|a| a.to_string()).ok().as_ref() != Some(wt));
        }
        let g = ws_gateway::start(self.gateway_configs[i].clone()).await?;
        self.gateways[i] = Some(g);
        Ok(())
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for i in 0..self.gateways.len() {
            self.stop_gateway(i).await;
        }
        self.mixes.clear();
    }
}
