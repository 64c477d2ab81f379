//! A node's membership in the network: register its signed descriptor with the
//! directory on every heartbeat, rotate its Sphinx key when the epoch changes (the
//! previous key stays for the overlap), and follow the published topology.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mixnet_core::mix::{NodeKeys, ReplayConfig};
use mixnet_core::sphinx::NodeSecret;
use mixnet_core::topology::{EpochKey, Freshness, Key32, NodeDescriptor, SignedDescriptor, Topology};

use crate::directory::{DirectoryClient, DirectoryError};
use crate::keys::NodeIdentity;
use crate::node::StartError;
use crate::replay::ReplayKeeper;

/// What one registration round learnt.
#[derive(Debug, Clone)]
pub struct Round {
    /// The current epoch, from the signed topology (never from an unsigned source).
    pub epoch: u64,
    /// How long the directory keeps a silent node.
    pub node_ttl_ms: u64,
    /// The signed topology, verified and fresh.
    pub topology: Topology,
}

/// Registers a node and keeps it registered.
#[derive(Clone)]
pub struct Membership {
    /// The directory.
    pub client: DirectoryClient,
    identity: Arc<Mutex<NodeIdentity>>,
    template: NodeDescriptor,
    heartbeat: Duration,
    freshness: Arc<Mutex<Freshness>>,
}

fn refused(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Refused { status: 0, body: e.to_string() }
}

/// The epoch after `epoch` (a signed epoch this large is a broken directory).
fn next(epoch: u64) -> Result<u64, DirectoryError> {
    epoch.checked_add(1).ok_or_else(|| refused(format!("epoch {epoch} has no successor")))
}

/// A node that has joined the network: its membership (heartbeats and key rotation
/// still to spawn), the round it joined in, its Sphinx keys, and its replay filters,
/// read back from disk before the first packet is accepted.
pub struct Joined {
    /// Heartbeats, key rotation and topology refresh, for [`Membership::spawn`].
    pub membership: Membership,
    /// The round it joined in.
    pub round: Round,
    /// Its Sphinx keys for the current epochs.
    pub keys: NodeKeys,
    /// Its replay filters' keeper (`None` without a data directory).
    pub replay: Option<ReplayKeeper>,
}

impl Membership {
    /// `template` is the descriptor without keys and timestamp (they are filled in).
    pub fn new(
        client: DirectoryClient,
        identity: Arc<Mutex<NodeIdentity>>,
        template: NodeDescriptor,
        heartbeat: Duration,
    ) -> Self {
        Self { client, identity, template, heartbeat, freshness: Arc::new(Mutex::new(Freshness::new())) }
    }

    fn descriptor(&self, epoch: u64) -> Result<SignedDescriptor, DirectoryError> {
        let following = next(epoch)?;
        let mut id = self.identity.lock().unwrap_or_else(|e| e.into_inner());
        let mut d = self.template.clone();
        d.sphinx_keys = vec![
            EpochKey { epoch, key: Key32(id.sphinx_key(epoch).map_err(refused)?.public_key()) },
            EpochKey { epoch: following, key: Key32(id.sphinx_key(following).map_err(refused)?.public_key()) },
        ];
        d.signed_at_ms = crate::unix_ms();
        Ok(SignedDescriptor::sign(&d, &id.signing))
    }

    /// What every node (mix or gateway) does at start: registers `template` with the
    /// directory, waiting up to 30 s for it, then reads its replay filters back from
    /// `data_dir`.
    pub async fn join_network(
        client: DirectoryClient,
        identity: NodeIdentity,
        template: NodeDescriptor,
        heartbeat: Duration,
        replay: ReplayConfig,
        data_dir: Option<&Path>,
    ) -> Result<Joined, StartError> {
        let membership = Self::new(client, Arc::new(Mutex::new(identity)), template, heartbeat);
        let (round, keys) =
            membership.join(Duration::from_secs(30), replay).await.map_err(|e| StartError::Directory(e.to_string()))?;
        let replay = ReplayKeeper::open(data_dir, &keys).map_err(StartError::Keys)?;
        Ok(Joined { membership, round, keys, replay })
    }

    /// Registers once (retrying for up to `patience`); returns what the round learnt
    /// and the keys for its epoch and the next one.
    pub async fn join(&self, patience: Duration, replay: ReplayConfig) -> Result<(Round, NodeKeys), DirectoryError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match self.register_once().await {
                Ok(round) => {
                    let keys = self.keys_for(round.epoch, replay)?;
                    return Ok((round, keys));
                }
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::info!(error = %e, "directory not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// The keys a node holds in `epoch`: that epoch's and the next one's.
    fn keys_for(&self, epoch: u64, replay: ReplayConfig) -> Result<NodeKeys, DirectoryError> {
        let following = next(epoch)?;
        let mut id = self.identity.lock().unwrap_or_else(|e| e.into_inner());
        let keys = NodeKeys::new(epoch, id.sphinx_key(epoch).map_err(refused)?, replay);
        keys.add(following, id.sphinx_key(following).map_err(refused)?);
        Ok(keys)
    }

    /// Fetches the signed topology (refusing an older or expired one), registers
    /// for its epoch.
    async fn register_once(&self) -> Result<Round, DirectoryError> {
        let topology = self.client.topology().await?;
        self.freshness.lock().unwrap_or_else(|e| e.into_inner()).check(&topology, crate::unix_ms())?;
        // only the heartbeat depends on this unsigned figure, and it is clamped
        let node_ttl_ms = self.client.epoch().await.map_or(30_000, |i| i.node_ttl_ms);
        let epoch = topology.epoch;
        self.client.register(&self.descriptor(epoch)?).await?;
        Ok(Round { epoch, node_ttl_ms, topology })
    }

    /// Keeps registering every heartbeat (at most a third of the directory's TTL);
    /// when the epoch moves on calls `on_epoch(epoch, its key, the next epoch's key)`;
    /// calls `on_topology` with every topology accepted.
    pub fn spawn(
        self,
        mut epoch: u64,
        on_epoch: impl Fn(u64, NodeSecret, NodeSecret) + Send + Sync + 'static,
        on_topology: impl Fn(Topology) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.register_once().await {
                    Ok(round) => {
                        if round.epoch > epoch {
                            epoch = round.epoch;
                            let keys = {
                                let mut id = self.identity.lock().unwrap_or_else(|e| e.into_inner());
                                let keys = next(epoch)
                                    .map_err(|e| std::io::Error::other(e.to_string()))
                                    .and_then(|n| Ok((id.sphinx_key(epoch)?, id.sphinx_key(n)?)));
                                id.prune_sphinx_keys(epoch.saturating_sub(1));
                                keys
                            };
                            match keys {
                                Ok((k, next)) => on_epoch(epoch, k, next),
                                Err(e) => tracing::error!(error = %e, "cannot load the new epoch's keys"),
                            }
                        }
                        on_topology(round.topology);
                        let ttl = Duration::from_millis(round.node_ttl_ms / 3);
                        tokio::time::sleep(self.heartbeat.min(ttl).max(Duration::from_millis(100))).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "directory registration failed");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        })
    }
}
