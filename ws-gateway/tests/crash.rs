//! `kill -9` of a gateway process while deliveries arrive: after a restart on the same
//! data directory nothing that was acknowledged is missing, and every packet it had
//! accepted before the crash is refused as a replay.
//!
//! The gateway runs as its own process (the binary this crate builds); the directory
//! and the clients run here. Fast mode: no mixes are needed.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mix_node::directory::{self, AllowedNode, DirectoryConfig};
use mixnet_client::{Client, ClientConfig, ClientEvent};
use mixnet_core::address::{ClientIdentity, encode_key};
use mixnet_core::message::{MessengerConfig, RouteMode};
use mixnet_core::sphinx::{self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, PacketSize, RouteNode};
use mixnet_core::topology::Role;
use nodenet::directory::DirectoryClient;
use nodenet::link::{LinkStats, Links};

const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Gateway {
    child: Child,
}

impl Gateway {
    /// Starts the gateway binary and waits for its "gateway … running" line.
    fn spawn(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ws-gateway"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the gateway binary starts");
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        assert!(line.starts_with("gateway "), "unexpected first line: {line:?}");
        Self { child }
    }

    /// `kill -9`: no shutdown, no final snapshot, no flush.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn metric(url: &str, name: &str) -> f64 {
    match reqwest::get(url).await {
        Ok(r) => nodenet::metrics::sample(&r.text().await.unwrap_or_default(), name).unwrap_or(0.0),
        Err(_) => 0.0,
    }
}

async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn client_config(dir: &str, key: &str, gateway: &str, seed: u8) -> ClientConfig {
    let mut c = ClientConfig::new(dir, key);
    c.gateway = Some(gateway.to_owned());
    c.messenger = MessengerConfig { mode: RouteMode::Fast, ..MessengerConfig::default() };
    c.identity = Some(ClientIdentity::from_parts([seed; 32], [seed + 100; 32]));
    c.topology_refresh = Duration::from_millis(500);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged_and_replays_stay_refused() {
    let data = tempfile::tempdir().unwrap();
    let gw_dir = data.path().join("gateway");
    let identity = nodenet::keys::NodeIdentity::load_or_create(Some(&gw_dir)).unwrap();
    let gateway_id = identity.address();
    let noise = identity.noise.clone();
    let dir = directory::start(DirectoryConfig {
        allow: vec![AllowedNode { identity: gateway_id.to_string(), role: Role::Gateway }],
        node_ttl_ms: 60_000,
        ..DirectoryConfig::default()
    })
    .await
    .unwrap();
    let dir_key = encode_key(&dir.key.to_bytes());
    let metrics_port = free_port();
    let metrics = format!("http://127.0.0.1:{metrics_port}/metrics");
    let config = data.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{}\"\nws_listen = \"127.0.0.1:{}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\
             directory = \"{}\"\ndirectory_key = \"{dir_key}\"\ndata_dir = \"{}\"\nheartbeat_ms = 500\n\
             [replay]\ncapacity = 100000\nfalse_positive = 1e-6\n",
            free_port(),
            free_port(),
            dir.url(),
            gw_dir.display()
        ),
    )
    .unwrap();
    let gw = Gateway::spawn(&config);
    let directory = DirectoryClient::new(&dir.url(), dir.key);
    let topology = directory.topology().await.unwrap();
    let g = topology.gateway(&gateway_id.0).expect("the gateway registered").clone();
    let gateway = gateway_id.to_string();

    // b registers at the gateway once, then goes offline: what follows waits in its inbox
    let b = Client::connect(client_config(&dir.url(), &dir_key, &gateway, 2)).await.unwrap();
    let b_address = b.address;
    drop(b);

    // packets straight from a node link (the gateway's own key is in the topology),
    // kept to be replayed after the crash
    let links = Links::new(&noise, 4096, Arc::new(LinkStats::default()));
    links.set_peers(&topology);
    let mut rng = nodenet::os_rng();
    let route = [RouteNode { address: NodeAddress(g.identity.0), key: NodeKey::prepared(g.sphinx_key.0) }];
    let dest = Destination { address: DestinationAddress(b_address.identity), identifier: [7; 16] };
    let injected: Vec<Vec<u8>> = (0..50u8)
        .map(|i| {
            sphinx::build_packet(&mut rng, &route, &dest, &[Delay(0)], &[i; 100], PacketSize::Regular.payload_len())
                .unwrap()
        })
        .collect();
    for p in &injected {
        links.send(NodeAddress(g.identity.0), p.clone());
    }
    until("the injected packets are stored", async || metric(&metrics, "gateway_stored_total").await >= 50.0).await;

    // a sends while the gateway dies
    let mut a = Client::connect(client_config(&dir.url(), &dir_key, &gateway, 1)).await.unwrap();
    let mut sent = Vec::new();
    for i in 0..300u32 {
        sent.push((a.send(b_address, format!("message {i}").into_bytes(), 0).await.unwrap(), i));
    }
    let mut acknowledged = HashSet::new();
    while acknowledged.len() < 100 {
        match tokio::time::timeout(WAIT, a.next_event()).await.expect("acks arrive") {
            Some(ClientEvent::Delivered(id)) => {
                acknowledged.insert(id);
            }
            Some(_) => {}
            None => panic!("client ended"),
        }
    }
    gw.kill();
    // whatever else was acknowledged before the kill took effect counts too
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), a.next_event()).await {
        if let ClientEvent::Delivered(id) = e {
            acknowledged.insert(id);
        }
    }
    let acknowledged: HashSet<u32> = sent.iter().filter(|(id, _)| acknowledged.contains(id)).map(|(_, i)| *i).collect();

    let gw = Gateway::spawn(&config);
    // every packet the gateway accepted before the crash is a replay now
    let links = Links::new(&noise, 4096, Arc::new(LinkStats::default()));
    links.set_peers(&topology);
    for p in &injected {
        links.send(NodeAddress(g.identity.0), p.clone());
    }
    until("the replays are refused", async || {
        metric(&metrics, "gateway_dropped_total{reason=\"replay\"}").await >= 50.0
    })
    .await;

    // b comes back: every acknowledged message is there
    let mut b = Client::connect(client_config(&dir.url(), &dir_key, &gateway, 2)).await.unwrap();
    let mut got = HashSet::new();
    while !acknowledged.is_subset(&got) {
        let m = b.recv(WAIT).await.unwrap_or_else(|| {
            panic!(
                "{} of {} acknowledged messages arrived",
                acknowledged.intersection(&got).count(),
                acknowledged.len()
            )
        });
        let text = String::from_utf8(m.data).unwrap();
        got.insert(text.trim_start_matches("message ").parse::<u32>().unwrap());
    }
    drop(gw);
}
