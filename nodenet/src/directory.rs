//! The directory's HTTP API, client side, and the types both sides share.

use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use mixnet_core::topology::{SignedDescriptor, SignedTopology, Topology, TopologyError};
use serde::{Deserialize, Serialize};

/// `GET /v1/epoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochInfo {
    /// Current epoch.
    pub epoch: u64,
    /// Epoch length.
    pub epoch_ms: u64,
    /// Unix milliseconds when the next epoch starts.
    pub next_epoch_at_ms: u64,
    /// Nodes not heard from for this long leave the topology.
    pub node_ttl_ms: u64,
}

/// Why a directory request failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// Network or HTTP failure.
    #[error("directory request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The directory answered with an error.
    #[error("directory refused: {status}: {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// The topology did not verify.
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

/// Talks to the directory.
#[derive(Clone)]
pub struct DirectoryClient {
    base: String,
    http: reqwest::Client,
    key: VerifyingKey,
}

impl DirectoryClient {
    /// A client for the directory at `base` (e.g. `http://127.0.0.1:8000`) whose key is `key`.
    pub fn new(base: &str, key: VerifyingKey) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap_or_default();
        Self { base: base.trim_end_matches('/').to_owned(), http, key }
    }

    async fn check(r: reqwest::Response) -> Result<reqwest::Response, DirectoryError> {
        if r.status().is_success() {
            Ok(r)
        } else {
            let status = r.status().as_u16();
            Err(DirectoryError::Refused { status, body: r.text().await.unwrap_or_default() })
        }
    }

    /// The current epoch.
    pub async fn epoch(&self) -> Result<EpochInfo, DirectoryError> {
        let r = Self::check(self.http.get(format!("{}/v1/epoch", self.base)).send().await?).await?;
        Ok(r.json().await?)
    }

    /// Registers (or refreshes) a node's descriptor.
    pub async fn register(&self, descriptor: &SignedDescriptor) -> Result<(), DirectoryError> {
        Self::check(self.http.post(format!("{}/v1/descriptors", self.base)).json(descriptor).send().await?).await?;
        Ok(())
    }

    /// The signed topology, verified against the directory key.
    pub async fn topology(&self) -> Result<Topology, DirectoryError> {
        Ok(self.signed_topology().await?.verify(&self.key)?)
    }

    /// The signed topology as published.
    pub async fn signed_topology(&self) -> Result<SignedTopology, DirectoryError> {
        let r = Self::check(self.http.get(format!("{}/v1/topology", self.base)).send().await?).await?;
        Ok(r.json().await?)
    }
}
