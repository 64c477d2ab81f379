//! A node's membership in the network: register its signed descriptor with the
//! directory on every heartbeat, rotate its Sphinx key when the epoch changes (the
//! previous key stays for the overlap), and follow the published topology.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mixnet_core::mix::{NodeKeys, ReplayConfig};
use mixnet_core::sphinx::NodeSecret;
use mixnet_core::topology::{EpochKey, Key32, NodeDescriptor, SignedDescriptor, Topology};

use crate::directory::{DirectoryClient, DirectoryError, EpochInfo};
use crate::keys::NodeIdentity;

/// Registers a node and keeps it registered.
#[derive(Clone)]
pub struct Membership {
    /// The directory.
    pub client: DirectoryClient,
    identity: Arc<Mutex<NodeIdentity>>,
    template: NodeDescriptor,
    heartbeat: Duration,
}

impl Membership {
    /// `template` is the descriptor without keys and timestamp (they are filled in).
    pub fn new(
        client: DirectoryClient,
        identity: Arc<Mutex<NodeIdentity>>,
        template: NodeDescriptor,
        heartbeat: Duration,
    ) -> Self {
        Self { client, identity, template, heartbeat }
    }

    fn descriptor(&self, epoch: u64) -> std::io::Result<SignedDescriptor> {
        let mut id = self.identity.lock().unwrap_or_else(|e| e.into_inner());
        let mut d = self.template.clone();
        d.sphinx_keys = vec![
            EpochKey { epoch, key: Key32(id.sphinx_key(epoch)?.public_key()) },
            EpochKey { epoch: epoch + 1, key: Key32(id.sphinx_key(epoch + 1)?.public_key()) },
        ];
        d.signed_at_ms = crate::unix_ms();
        Ok(SignedDescriptor::sign(&d, &id.signing))
    }

    /// Registers once (retrying for up to `patience`); returns the epoch and the keys
    /// for it and the next one.
    pub async fn join(
        &self,
        patience: Duration,
        replay: ReplayConfig,
    ) -> Result<(EpochInfo, NodeKeys), DirectoryError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match self.register_once().await {
                Ok(info) => {
                    let keys = self
                        .keys_for(info.epoch, replay)
                        .map_err(|e| DirectoryError::Refused { status: 0, body: e.to_string() })?;
                    return Ok((info, keys));
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
    fn keys_for(&self, epoch: u64, replay: ReplayConfig) -> std::io::Result<NodeKeys> {
        let mut id = self.identity.lock().unwrap_or_else(|e| e.into_inner());
        let keys = NodeKeys::new(epoch, id.sphinx_key(epoch)?, replay);
        keys.add(epoch + 1, id.sphinx_key(epoch + 1)?);
        Ok(keys)
    }

    async fn register_once(&self) -> Result<EpochInfo, DirectoryError> {
        let info = self.client.epoch().await?;
        let signed =
            self.descriptor(info.epoch).map_err(|e| DirectoryError::Refused { status: 0, body: e.to_string() })?;
        self.client.register(&signed).await?;
        Ok(info)
    }

    /// Keeps registering every heartbeat (at most a third of the directory's TTL);
    /// when the epoch changes calls `on_epoch(epoch, its key, the next epoch's key)`;
    /// calls `on_topology` with every topology fetched.
    pub fn spawn(
        self,
        mut epoch: u64,
        on_epoch: impl Fn(u64, NodeSecret, NodeSecret) + Send + Sync + 'static,
        on_topology: impl Fn(Topology) + Send + Sync + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.register_once().await {
                    Ok(info) => {
                        if info.epoch != epoch {
                            epoch = info.epoch;
                            let keys = {
                                let mut id = self.identity.lock().unwrap_or_else(|e| e.into_inner());
                                let keys = id.sphinx_key(epoch).and_then(|k| Ok((k, id.sphinx_key(epoch + 1)?)));
                                id.prune_sphinx_keys(epoch.saturating_sub(1));
                                keys
                            };
                            match keys {
                                Ok((k, next)) => on_epoch(epoch, k, next),
                                Err(e) => tracing::error!(error = %e, "cannot load the new epoch's keys"),
                            }
                        }
                        match self.client.topology().await {
                            Ok(t) => on_topology(t),
                            Err(e) => tracing::warn!(error = %e, "topology fetch failed"),
                        }
                        let ttl = Duration::from_millis(info.node_ttl_ms / 3);
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
