//! The directory authority: nodes register signed descriptors, and the directory
//! publishes a signed topology per epoch, with mix layers assigned at random at each
//! epoch and each node's Sphinx key for that epoch. Nodes that stop refreshing their
//! descriptor leave the topology after `node_ttl_ms`.
//!
//! HTTP API: `POST /v1/descriptors` (a `SignedDescriptor`), `GET /v1/topology` (a
//! `SignedTopology`), `GET /v1/epoch` (an `EpochInfo`), `GET /metrics`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderName, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use ed25519_dalek::{SigningKey, VerifyingKey};
use mixnet_core::topology::{
    self, Gateway, Key32, MixNode, NodeDescriptor, Role, SignedDescriptor, SignedTopology, Topology,
};
use nodenet::directory::EpochInfo;
use nodenet::keys::NodeIdentity;
use nodenet::metrics::{Counter, Exposition};
use serde::Deserialize;

use crate::StartError;

/// Directory configuration (TOML).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectoryConfig {
    /// HTTP listen address.
    pub listen: String,
    /// Where the signing key lives (ephemeral if unset).
    pub data_dir: Option<PathBuf>,
    /// Epoch length: layers are re-assigned and Sphinx keys rotate per epoch.
    pub epoch_ms: u64,
    /// A node not heard from for this long leaves the topology.
    pub node_ttl_ms: u64,
    /// Descriptors signed further than this from our clock are refused.
    pub max_clock_skew_ms: u64,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            data_dir: None,
            epoch_ms: 3_600_000,
            node_ttl_ms: 30_000,
            max_clock_skew_ms: 300_000,
        }
    }
}

struct Registered {
    descriptor: NodeDescriptor,
    last_seen_ms: u64,
}

struct DirState {
    genesis_ms: u64,
    nodes: HashMap<[u8; 32], Registered>,
    layers: HashMap<[u8; 32], u8>,
    layers_epoch: u64,
    published: SignedTopology,
    published_topology: Topology,
}

struct Shared {
    config: DirectoryConfig,
    key: SigningKey,
    state: Mutex<DirState>,
    registrations: Counter,
    refused: Counter,
    publications: Counter,
}

/// A running directory.
pub struct RunningDirectory {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its public key (clients verify the topology against it).
    pub key: VerifyingKey,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RunningDirectory {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RunningDirectory {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving (also on drop).
    pub fn stop(self) {}
}

impl Shared {
    fn epoch_at(&self, now_ms: u64, genesis_ms: u64) -> u64 {
        now_ms.saturating_sub(genesis_ms) / self.config.epoch_ms.max(1) + 1
    }

    fn epoch_info(&self) -> EpochInfo {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = nodenet::unix_ms();
        let epoch = self.epoch_at(now, state.genesis_ms);
        EpochInfo {
            epoch,
            epoch_ms: self.config.epoch_ms,
            next_epoch_at_ms: state.genesis_ms + epoch * self.config.epoch_ms,
            node_ttl_ms: self.config.node_ttl_ms,
        }
    }

    /// Drops expired nodes, re-assigns layers when needed, and re-publishes if anything changed.
    fn refresh(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = nodenet::unix_ms();
        let epoch = self.epoch_at(now, state.genesis_ms);
        let ttl = self.config.node_ttl_ms;
        state.nodes.retain(|_, r| now.saturating_sub(r.last_seen_ms) <= ttl);

        let key_for = |d: &NodeDescriptor| d.sphinx_keys.iter().find(|k| k.epoch == epoch).map(|k| k.key);
        let mixes: Vec<[u8; 32]> = state
            .nodes
            .values()
            .filter(|r| r.descriptor.role == Role::Mix && key_for(&r.descriptor).is_some())
            .map(|r| r.descriptor.identity.0)
            .collect();
        // keep layers within an epoch; re-deal at epoch change or if a layer emptied
        state.layers.retain(|id, _| mixes.contains(id));
        let empty_layer = (1..=topology::LAYERS as u8).any(|l| !state.layers.values().any(|x| *x == l));
        if state.layers_epoch != epoch || (empty_layer && mixes.len() >= topology::LAYERS) {
            state.layers = topology::assign_layers(&mut nodenet::os_rng(), mixes.clone());
            state.layers_epoch = epoch;
        }
        for id in &mixes {
            if !state.layers.contains_key(id) {
                let mut counts = [0usize; topology::LAYERS];
                for l in state.layers.values() {
                    counts[usize::from(*l) - 1] += 1;
                }
                let smallest = (0..topology::LAYERS).min_by_key(|i| counts[*i]).unwrap_or(0);
                state.layers.insert(*id, smallest as u8 + 1);
            }
        }

        let mut t = Topology {
            epoch,
            valid_until_ms: state.genesis_ms + epoch * self.config.epoch_ms,
            mixes: Vec::new(),
            gateways: Vec::new(),
        };
        for r in state.nodes.values() {
            let d = &r.descriptor;
            let Some(sphinx_key) = key_for(d) else { continue };
            match d.role {
                Role::Mix => t.mixes.push(MixNode {
                    identity: d.identity,
                    sphinx_key,
                    layer: state.layers.get(&d.identity.0).copied().unwrap_or(1),
                    mix_address: d.mix_address.clone(),
                    noise_key: d.noise_key,
                }),
                Role::Gateway => t.gateways.push(Gateway {
                    identity: d.identity,
                    sphinx_key,
                    mix_address: d.mix_address.clone(),
                    noise_key: d.noise_key,
                    client_ws: d.client_ws.clone(),
                    client_wt: d.client_wt.clone(),
                    exit: d.exit,
                }),
            }
        }
        t.mixes.sort_by_key(|m| (m.layer, m.identity));
        t.gateways.sort_by_key(|g| g.identity);
        if t != state.published_topology {
            state.published = SignedTopology::sign(&t, &self.key);
            state.published_topology = t;
            self.publications.inc();
        }
    }

    fn register(&self, signed: &SignedDescriptor) -> Result<(), String> {
        let d = signed.verify().map_err(|e| e.to_string())?;
        let now = nodenet::unix_ms();
        if now.abs_diff(d.signed_at_ms) > self.config.max_clock_skew_ms {
            return Err(format!("descriptor signed at {} ms, our clock says {now} ms", d.signed_at_ms));
        }
        if d.sphinx_keys.is_empty() || d.sphinx_keys.len() > 4 {
            return Err("a descriptor lists 1 to 4 epoch keys".into());
        }
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(old) = state.nodes.get(&d.identity.0)
                && old.descriptor.signed_at_ms > d.signed_at_ms
            {
                return Err("an older descriptor than the one registered (replay?)".into());
            }
            state.nodes.insert(d.identity.0, Registered { descriptor: d, last_seen_ms: now });
        }
        self.refresh();
        Ok(())
    }
}

async fn post_descriptor(State(s): State<Arc<Shared>>, Json(d): Json<SignedDescriptor>) -> (StatusCode, String) {
    match s.register(&d) {
        Ok(()) => {
            s.registrations.inc();
            (StatusCode::OK, "registered".into())
        }
        Err(e) => {
            s.refused.inc();
            tracing::warn!(error = %e, "descriptor refused");
            (StatusCode::BAD_REQUEST, e)
        }
    }
}

/// The topology and epoch are public documents: any page may read them (browser
/// clients fetch the topology from their own origin).
const PUBLIC: [(HeaderName, &str); 1] = [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];

async fn get_topology(State(s): State<Arc<Shared>>) -> ([(HeaderName, &'static str); 1], Json<SignedTopology>) {
    s.refresh();
    (PUBLIC, Json(s.state.lock().unwrap_or_else(|e| e.into_inner()).published.clone()))
}

async fn get_epoch(State(s): State<Arc<Shared>>) -> ([(HeaderName, &'static str); 1], Json<EpochInfo>) {
    (PUBLIC, Json(s.epoch_info()))
}

async fn get_metrics(State(s): State<Arc<Shared>>) -> String {
    let (mixes, gateways) = {
        let st = s.state.lock().unwrap_or_else(|e| e.into_inner());
        (st.published_topology.mixes.len(), st.published_topology.gateways.len())
    };
    let mut e = Exposition::default();
    e.counter("directory_registrations_total", "Descriptors accepted.", s.registrations.get())
        .counter("directory_refused_total", "Descriptors refused (bad signature, stale, malformed).", s.refused.get())
        .counter("directory_publications_total", "Topology documents published.", s.publications.get())
        .gauge("directory_mixes", "Mix nodes in the published topology.", mixes as f64)
        .gauge("directory_gateways", "Gateways in the published topology.", gateways as f64);
    e.finish()
}

/// Starts the directory.
pub async fn start(config: DirectoryConfig) -> Result<RunningDirectory, StartError> {
    let identity = NodeIdentity::load_or_create(config.data_dir.as_deref()).map_err(StartError::Keys)?;
    let key = identity.signing.clone();
    let listener = crate::bind(&config.listen).await?;
    let addr = listener.local_addr().map_err(|error| StartError::Bind { addr: config.listen.clone(), error })?;
    let empty = Topology { epoch: 1, valid_until_ms: 0, mixes: vec![], gateways: vec![] };
    let shared = Arc::new(Shared {
        state: Mutex::new(DirState {
            genesis_ms: nodenet::unix_ms(),
            nodes: HashMap::new(),
            layers: HashMap::new(),
            layers_epoch: 0,
            published: SignedTopology::sign(&empty, &key),
            published_topology: empty,
        }),
        config,
        key,
        registrations: Counter::default(),
        refused: Counter::default(),
        publications: Counter::default(),
    });
    shared.refresh();
    let app = Router::new()
        .route("/v1/descriptors", post(post_descriptor))
        .route("/v1/topology", get(get_topology))
        .route("/v1/epoch", get(get_epoch))
        .route("/metrics", get(get_metrics))
        .with_state(shared.clone());
    let ticker = shared.clone();
    let refresh = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            ticker.refresh();
        }
    });
    let serve = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    tracing::info!(%addr, key = %Key32(shared.key.verifying_key().to_bytes()), "directory listening");
    Ok(RunningDirectory { addr, key: shared.key.verifying_key(), tasks: vec![refresh, serve] })
}
