//! Attacks on the directory and on what nodes take from it, against the real
//! servers: Sybil registrations, stolen keys and addresses, registration floods, a
//! restart that would reset the epoch, and an unsigned epoch pushed to a node.

mod common;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use common::eventually;
use ed25519_dalek::SigningKey;
use mix_node::directory::{self, AllowedNode, DirectoryConfig, RunningDirectory};
use mix_node::mix::{self, MixConfig};
use mixnet_core::address::encode_key;
use mixnet_core::topology::{EpochKey, Key32, NodeDescriptor, Role, SignedDescriptor};
use nodenet::directory::{DirectoryClient, DirectoryError};

fn descriptor(key: &SigningKey, noise: [u8; 32], addr: &str, epoch: u64) -> SignedDescriptor {
    let d = NodeDescriptor {
        identity: Key32(key.verifying_key().to_bytes()),
        role: Role::Mix,
        mix_address: addr.into(),
        noise_key: Key32(noise),
        sphinx_keys: vec![EpochKey { epoch, key: Key32(noise.map(|b| b ^ 0x55)) }],
        client_ws: None,
        client_wt: None,
        exit: None,
        signed_at_ms: nodenet::unix_ms(),
    };
    SignedDescriptor::sign(&d, key)
}

fn allow(key: &SigningKey) -> AllowedNode {
    AllowedNode { identity: encode_key(&key.verifying_key().to_bytes()), role: Role::Mix }
}

async fn start(allow: Vec<AllowedNode>) -> (RunningDirectory, DirectoryClient) {
    start_with(DirectoryConfig { allow, ..DirectoryConfig::default() }).await
}

async fn start_with(config: DirectoryConfig) -> (RunningDirectory, DirectoryClient) {
    let dir = directory::start(config).await.unwrap();
    let client = DirectoryClient::new(&dir.url(), dir.key);
    (dir, client)
}

async fn metric(dir: &RunningDirectory, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", dir.url())).await.unwrap().text().await.unwrap();
    nodenet::metrics::sample(&text, name).unwrap()
}

fn status(r: Result<(), DirectoryError>) -> u16 {
    match r {
        Ok(()) => 200,
        Err(DirectoryError::Refused { status, .. }) => status,
        Err(e) => panic!("{e}"),
    }
}

async fn refused(dir: &RunningDirectory, reason: &str) -> f64 {
    metric(dir, &format!("directory_refused_total{{reason=\"{reason}\"}}")).await
}

/// On 117647c any ed25519 key could register as a mix, a gateway or an exit.
#[tokio::test]
async fn an_identity_off_the_allowlist_cannot_register() {
    let admitted = SigningKey::from_bytes(&[1; 32]);
    let (dir, client) = start(vec![allow(&admitted)]).await;
    let epoch = client.epoch().await.unwrap().epoch;
    for i in 0..20u8 {
        let sybil = SigningKey::from_bytes(&[100 + i; 32]);
        assert_eq!(status(client.register(&descriptor(&sybil, [i; 32], &format!("10.0.0.{i}:1"), epoch)).await), 403);
    }
    // an allowed identity in another role is refused too
    let mut as_gateway = descriptor(&admitted, [50; 32], "10.0.1.1:1", epoch);
    let mut d: NodeDescriptor = serde_json::from_str(&as_gateway.document).unwrap();
    d.role = Role::Gateway;
    as_gateway = SignedDescriptor::sign(&d, &admitted);
    assert_eq!(status(client.register(&as_gateway).await), 403);
    assert_eq!(status(client.register(&descriptor(&admitted, [50; 32], "10.0.1.1:1", epoch)).await), 200);
    assert_eq!(refused(&dir, "not_allowed").await, 21.0);
    let t = client.topology().await.unwrap();
    assert_eq!(t.mixes.len(), 1);
}

/// On 117647c nothing stopped a node from publishing another node's keys or address.
#[tokio::test]
async fn a_node_cannot_claim_another_node_s_keys_or_address() {
    let (a, b) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
    // no minimum interval between one identity's registrations: this test is not about rates
    let config = DirectoryConfig {
        allow: vec![allow(&a), allow(&b)],
        min_register_interval_ms: 0,
        ..DirectoryConfig::default()
    };
    let (dir, client) = start_with(config).await;
    let epoch = client.epoch().await.unwrap().epoch;
    assert_eq!(status(client.register(&descriptor(&a, [7; 32], "10.0.0.1:1", epoch)).await), 200);
    // b with a's Noise (and Sphinx) key, then with a's address
    assert_eq!(status(client.register(&descriptor(&b, [7; 32], "10.0.0.2:1", epoch)).await), 409);
    assert_eq!(status(client.register(&descriptor(&b, [8; 32], "10.0.0.1:1", epoch)).await), 409);
    assert_eq!(status(client.register(&descriptor(&b, [8; 32], "10.0.0.2:1", epoch)).await), 200);
    assert_eq!(refused(&dir, "duplicate").await, 2.0);
}

/// On 117647c every registration was accepted and re-signed the topology.
#[tokio::test]
async fn registrations_are_rate_limited() {
    let a = SigningKey::from_bytes(&[1; 32]);
    let (dir, client) = start(vec![allow(&a)]).await;
    let epoch = client.epoch().await.unwrap().epoch;
    let mut codes = Vec::new();
    for _ in 0..30 {
        codes.push(status(client.register(&descriptor(&a, [7; 32], "10.0.0.1:1", epoch)).await));
    }
    assert_eq!(codes[0], 200);
    assert!(codes.iter().filter(|c| **c == 429).count() >= 20, "{codes:?}");
    assert!(refused(&dir, "rate_limited").await >= 20.0);
}

/// On 117647c a restarted directory counted epochs from 1 again.
#[tokio::test]
async fn a_restarted_directory_does_not_go_back_in_epochs() {
    let data = tempfile::tempdir().unwrap();
    let config =
        DirectoryConfig { data_dir: Some(data.path().to_path_buf()), epoch_ms: 300, ..DirectoryConfig::default() };
    let dir = directory::start(config.clone()).await.unwrap();
    let client = DirectoryClient::new(&dir.url(), dir.key);
    let client_ref = &client;
    eventually("four epochs pass", || async move {
        let epoch = client_ref.topology().await.map_err(|e| e.to_string())?.epoch;
        if epoch >= 4 { Ok(()) } else { Err(format!("epoch {epoch}")) }
    })
    .await;
    let before = client.topology().await.unwrap().epoch;
    assert!(before >= 4, "{before}");
    drop(dir);
    let dir = directory::start(config).await.unwrap();
    let client = DirectoryClient::new(&dir.url(), dir.key);
    assert!(client.topology().await.unwrap().epoch >= before);
}

/// A proxy that passes the directory through but answers `/v1/epoch` itself.
async fn lying_epoch(real: String) -> (String, tokio::task::JoinHandle<()>) {
    async fn forward_get(State(real): State<Arc<String>>, uri: axum::http::Uri) -> String {
        reqwest::get(format!("{real}{}", uri.path())).await.unwrap().text().await.unwrap()
    }
    async fn forward_post(State(real): State<Arc<String>>, body: String) -> (axum::http::StatusCode, String) {
        let r = reqwest::Client::new()
            .post(format!("{real}/v1/descriptors"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        (axum::http::StatusCode::from_u16(r.status().as_u16()).unwrap(), r.text().await.unwrap())
    }
    let app = axum::Router::new()
        .route("/v1/topology", get(forward_get))
        .route("/v1/descriptors", post(forward_post))
        .route(
            "/v1/epoch",
            get(|| async { r#"{"epoch":18446744073709551615,"epoch_ms":1,"next_epoch_at_ms":0,"node_ttl_ms":30000}"# }),
        )
        .with_state(Arc::new(real));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    (url, tokio::spawn(async move { axum::serve(l, app).await.unwrap() }))
}

/// On 117647c a node took its epoch from `/v1/epoch`, unsigned: a pushed huge epoch
/// overflowed `epoch + 1` and deleted the node's key files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_epoch_cannot_move_a_node() {
    let data = tempfile::tempdir().unwrap();
    let id = nodenet::keys::NodeIdentity::load_or_create(Some(data.path())).unwrap().address();
    let (dir, client) = start(vec![AllowedNode { identity: id.to_string(), role: Role::Mix }]).await;
    let real_epoch = client.topology().await.unwrap().epoch;
    let (proxy, task) = lying_epoch(dir.url()).await;
    let node = mix::start(MixConfig {
        directory: proxy,
        directory_key: encode_key(&dir.key.to_bytes()),
        data_dir: Some(data.path().to_path_buf()),
        heartbeat_ms: 200,
        replay: mixnet_core::mix::ReplayConfig { capacity: 1000, false_positive: 1e-6 },
        ..MixConfig::default()
    })
    .await
    .expect("the node starts on the signed epoch");
    // the node has heartbeated (and so fetched the lying epoch) at least twice since it started
    eventually("the node heartbeats", || async {
        let n = metric(&dir, "directory_registrations_total").await;
        if n >= 3.0 { Ok(()) } else { Err(format!("{n} registrations")) }
    })
    .await;
    assert_eq!(node.keys.current_epoch(), real_epoch);
    assert!(data.path().join(format!("sphinx-{real_epoch}.key")).exists(), "its key file is kept");
    let t = client.topology().await.unwrap();
    assert_eq!(t.mixes.len(), 1, "registered for the real epoch");
    task.abort();
}
