//! The directory authority: nodes register signed descriptors, and the directory
//! publishes a signed topology per epoch, with mix layers assigned at random at each
//! epoch and each node's Sphinx key for that epoch. Nodes that stop refreshing their
//! descriptor leave the topology after `node_ttl_ms`.
//!
//! HTTP API: `POST /v1/descriptors` (a `SignedDescriptor`), `GET /v1/topology` (a
//! `SignedTopology`), `GET /v1/epoch` (an `EpochInfo`), `GET /metrics`.
//!
//! **Admission.** Only identities on the operator's allowlist (`[[allow]]` in the
//! configuration, each with its role) are admitted; a descriptor may not reuse
//! another node's Noise key, Sphinx key, address or client URL; registrations are
//! rate-limited per identity and in total; bodies are small. Each refusal is
//! counted by reason. Epochs count from a genesis kept in the data directory, so a
//! restarted directory never goes back to an earlier epoch.

use std::collections::{HashMap, HashSet};
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

use nodenet::node::StartError;

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
    /// The nodes admitted: identity (base58, what `mix-node identity` prints) and role.
    pub allow: Vec<AllowedNode>,
    /// Registrations accepted from one identity at most this often (a node registers
    /// every heartbeat).
    pub min_register_interval_ms: u64,
    /// Registrations accepted per second from everyone (token bucket of as many).
    pub max_registrations_per_sec: u32,
}

/// A node the operator admits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowedNode {
    /// Its ed25519 identity (base58).
    pub identity: String,
    /// `mix` or `gateway`.
    pub role: Role,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            data_dir: None,
            epoch_ms: 3_600_000,
            node_ttl_ms: 30_000,
            max_clock_skew_ms: 300_000,
            allow: Vec::new(),
            min_register_interval_ms: 100,
            max_registrations_per_sec: 200,
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

struct DirectoryState {
    config: DirectoryConfig,
    key: SigningKey,
    allowed: Mutex<HashMap<[u8; 32], Role>>,
    state: Mutex<DirState>,
    limiter: Mutex<Limiter>,
    registrations: Counter,
    refused: HashMap<Refusal, Counter>,
    publications: Counter,
}

/// Why a descriptor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Refusal {
    /// Bad signature or malformed document.
    Invalid,
    /// Not on the allowlist, or not in this role.
    NotAllowed,
    /// Its clock is off, or it is older than the one registered.
    Stale,
    /// It reuses another node's key, address or URL.
    Duplicate,
    /// Over the rate limit.
    RateLimited,
}

const REFUSALS: [(Refusal, &str); 5] = [
    (Refusal::Invalid, "invalid"),
    (Refusal::NotAllowed, "not_allowed"),
    (Refusal::Stale, "stale"),
    (Refusal::Duplicate, "duplicate"),
    (Refusal::RateLimited, "rate_limited"),
];

/// Registrations per identity and in total.
#[derive(Default)]
struct Limiter {
    last: HashMap<[u8; 32], u64>,
    tokens: f64,
    refilled_ms: u64,
}

/// A running directory.
pub struct RunningDirectory {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its public key (clients verify the topology against it).
    pub key: VerifyingKey,
    shared: Arc<DirectoryState>,
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

    /// Admits `identity` in `role` from now on (as an `[[allow]]` entry would).
    pub fn allow(&self, identity: [u8; 32], role: Role) {
        self.shared.allowed.lock().unwrap_or_else(|e| e.into_inner()).insert(identity, role);
    }

    /// Stops serving (also on drop).
    pub fn stop(self) {}
}

impl DirectoryState {
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

    /// Takes a token of the registration rate limits (per identity and in total).
    fn admit_rate(&self, identity: &[u8; 32], now: u64) -> bool {
        let mut l = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        let rate = f64::from(self.config.max_registrations_per_sec.max(1));
        let elapsed = now.saturating_sub(l.refilled_ms) as f64 / 1000.0;
        l.tokens = (l.tokens + elapsed * rate).min(rate);
        l.refilled_ms = now;
        if l.last.get(identity).is_some_and(|t| now.saturating_sub(*t) < self.config.min_register_interval_ms) {
            return false;
        }
        if l.tokens < 1.0 {
            return false;
        }
        l.tokens -= 1.0;
        // only allowlisted identities get here: this map is bounded by the allowlist
        l.last.insert(*identity, now);
        true
    }

    fn register(&self, signed: &SignedDescriptor) -> Result<(), (Refusal, String)> {
        let d = signed.verify().map_err(|e| (Refusal::Invalid, e.to_string()))?;
        let allowed = self.allowed.lock().unwrap_or_else(|e| e.into_inner()).get(&d.identity.0).copied();
        match allowed {
            None => return Err((Refusal::NotAllowed, format!("{} is not on the directory's allowlist", d.identity))),
            Some(role) if role != d.role => {
                return Err((
                    Refusal::NotAllowed,
                    format!("{} is allowed as a {role:?}, not a {:?}", d.identity, d.role),
                ));
            }
            Some(_) => {}
        }
        let now = nodenet::unix_ms();
        if !self.admit_rate(&d.identity.0, now) {
            return Err((Refusal::RateLimited, "too many registrations: try again later".into()));
        }
        if now.abs_diff(d.signed_at_ms) > self.config.max_clock_skew_ms {
            return Err((
                Refusal::Stale,
                format!("descriptor signed at {} ms, our clock says {now} ms", d.signed_at_ms),
            ));
        }
        if d.sphinx_keys.is_empty() || d.sphinx_keys.len() > 4 {
            return Err((Refusal::Invalid, "a descriptor lists 1 to 4 epoch keys".into()));
        }
        {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(old) = state.nodes.get(&d.identity.0)
                && old.descriptor.signed_at_ms > d.signed_at_ms
            {
                return Err((Refusal::Stale, "an older descriptor than the one registered (replay?)".into()));
            }
            if let Some(clash) = clash(&d, state.nodes.values().map(|r| &r.descriptor)) {
                return Err((Refusal::Duplicate, clash));
            }
            state.nodes.insert(d.identity.0, Registered { descriptor: d, last_seen_ms: now });
        }
        self.refresh();
        Ok(())
    }
}

/// What of `d` is already another node's: its keys, its address, its client URLs.
fn clash<'a>(d: &NodeDescriptor, others: impl Iterator<Item = &'a NodeDescriptor>) -> Option<String> {
    let mine = |x: &NodeDescriptor| {
        let mut v: Vec<String> = vec![format!("noise key {}", x.noise_key), format!("address {}", x.mix_address)];
        v.extend(x.sphinx_keys.iter().map(|k| format!("sphinx key {}", k.key)));
        v.extend(x.client_ws.iter().map(|u| format!("url {u}")));
        v.extend(x.client_wt.iter().map(|w| format!("url {}", w.url)));
        v.extend(x.exit.iter().map(|e| format!("exit {}", Key32(e.identity))));
        v
    };
    let ours: HashSet<String> = mine(d).into_iter().collect();
    for o in others.filter(|o| o.identity != d.identity) {
        if let Some(same) = mine(o).into_iter().find(|x| ours.contains(x)) {
            return Some(format!("{same} already belongs to node {}", o.identity));
        }
    }
    None
}

async fn post_descriptor(
    State(s): State<Arc<DirectoryState>>,
    Json(d): Json<SignedDescriptor>,
) -> (StatusCode, String) {
    match s.register(&d) {
        Ok(()) => {
            s.registrations.inc();
            (StatusCode::OK, "registered".into())
        }
        Err((why, e)) => {
            if let Some(c) = s.refused.get(&why) {
                c.inc();
            }
            tracing::warn!(error = %e, "descriptor refused");
            let status = match why {
                Refusal::NotAllowed => StatusCode::FORBIDDEN,
                Refusal::RateLimited => StatusCode::TOO_MANY_REQUESTS,
                Refusal::Duplicate => StatusCode::CONFLICT,
                Refusal::Invalid | Refusal::Stale => StatusCode::BAD_REQUEST,
            };
            (status, e)
        }
    }
}

/// The topology and epoch are public documents: any page may read them (browser
/// clients fetch the topology from their own origin).
const PUBLIC: [(HeaderName, &str); 1] = [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];

async fn get_topology(State(s): State<Arc<DirectoryState>>) -> ([(HeaderName, &'static str); 1], Json<SignedTopology>) {
    s.refresh();
    (PUBLIC, Json(s.state.lock().unwrap_or_else(|e| e.into_inner()).published.clone()))
}

async fn get_epoch(State(s): State<Arc<DirectoryState>>) -> ([(HeaderName, &'static str); 1], Json<EpochInfo>) {
    (PUBLIC, Json(s.epoch_info()))
}

async fn get_metrics(State(s): State<Arc<DirectoryState>>) -> String {
    let (mixes, gateways) = {
        let st = s.state.lock().unwrap_or_else(|e| e.into_inner());
        (st.published_topology.mixes.len(), st.published_topology.gateways.len())
    };
    let mut e = Exposition::default();
    let refused: Vec<(&str, u64)> =
        REFUSALS.iter().map(|(r, name)| (*name, s.refused.get(r).map_or(0, Counter::get))).collect();
    e.counter("directory_registrations_total", "Descriptors accepted.", s.registrations.get())
        .labelled("directory_refused_total", "Descriptors refused, by reason.", "reason", &refused)
        .counter("directory_publications_total", "Topology documents published.", s.publications.get())
        .gauge("directory_mixes", "Mix nodes in the published topology.", mixes as f64)
        .gauge("directory_gateways", "Gateways in the published topology.", gateways as f64);
    e.finish()
}

/// Starts the directory.
pub async fn start(config: DirectoryConfig) -> Result<RunningDirectory, StartError> {
    let identity = NodeIdentity::load_or_create(config.data_dir.as_deref()).map_err(StartError::Keys)?;
    let key = identity.signing.clone();
    let allowed = allowlist(&config.allow)?;
    if allowed.is_empty() {
        tracing::warn!("the allowlist is empty: no node can register (add [[allow]] entries)");
    }
    let genesis_ms = genesis(config.data_dir.as_deref()).map_err(StartError::Keys)?;
    let listener = nodenet::node::bind(&config.listen).await?;
    let addr = listener.local_addr().map_err(|error| StartError::Bind { addr: config.listen.clone(), error })?;
    let empty = Topology { epoch: 1, valid_until_ms: 0, mixes: vec![], gateways: vec![] };
    let shared = Arc::new(DirectoryState {
        state: Mutex::new(DirState {
            genesis_ms,
            nodes: HashMap::new(),
            layers: HashMap::new(),
            layers_epoch: 0,
            published: SignedTopology::sign(&empty, &key),
            published_topology: empty,
        }),
        config,
        key,
        allowed: Mutex::new(allowed),
        limiter: Mutex::new(Limiter::default()),
        registrations: Counter::default(),
        refused: REFUSALS.iter().map(|(r, _)| (*r, Counter::default())).collect(),
        publications: Counter::default(),
    });
    shared.refresh();
    let app = Router::new()
        .route("/v1/descriptors", post(post_descriptor))
        .route("/v1/topology", get(get_topology))
        .route("/v1/epoch", get(get_epoch))
        .route("/metrics", get(get_metrics))
        // a descriptor is a few hundred bytes
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
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
    Ok(RunningDirectory { addr, key: shared.key.verifying_key(), shared, tasks: vec![refresh, serve] })
}

/// Largest request body accepted.
const MAX_BODY: usize = 16 * 1024;

fn allowlist(allow: &[AllowedNode]) -> Result<HashMap<[u8; 32], Role>, StartError> {
    allow
        .iter()
        .map(|a| {
            let key = mixnet_core::address::decode_key(&a.identity, "allowed identity")
                .map_err(|e| StartError::Config(format!("[[allow]] {}: {e}", a.identity)))?;
            Ok((key, a.role))
        })
        .collect()
}

/// When epoch 1 began: kept in the data directory, so epochs never go back after a
/// restart (nodes and clients refuse an older epoch than the one they hold).
fn genesis(data_dir: Option<&std::path::Path>) -> std::io::Result<u64> {
    let now = nodenet::unix_ms();
    let Some(dir) = data_dir else { return Ok(now) };
    let path = dir.join("genesis_ms");
    match std::fs::read_to_string(&path) {
        Ok(s) => s
            .trim()
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&path, now.to_string())?;
            Ok(now)
        }
        Err(e) => Err(e),
    }
}
