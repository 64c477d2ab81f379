//! Network benchmarks, each against its reference in the same run:
//! 1. packets/s through one mix node on loopback (Noise links in and out, replay
//!    filter, zero delay, one worker thread) against the crypto-only hop rate
//!    (`NodeKeys::process` on one core, same packets, same run);
//! 2. end-to-end latency of a small message, fast and mixnet modes (localnet,
//!    native clients), against the mean of the route's sampled delays (three mix
//!    layers at 15 ms each; the final hop has none).
//!
//! `cargo bench -p localnet --bench network` (also run by `npm run bench`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use localnet::{Localnet, LocalnetConfig};
use mix_node::directory::{self, AllowedNode, DirectoryConfig};
use mix_node::mix::{self, MixConfig};
use mixnet_client::Client;
use mixnet_core::address::encode_key;
use mixnet_core::message::RouteMode;
use mixnet_core::mix::{NodeKeys, ReplayConfig};
use mixnet_core::sphinx::{
    self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, NodeSecret, PacketSize, RouteNode,
};
use mixnet_core::topology::{EpochKey, Key32, NodeDescriptor, Role, SignedDescriptor};
use nodenet::directory::DirectoryClient;
use nodenet::link::{self, LinkStats, Links};

const PACKETS: usize = 20_000;

fn build(rng: &mut rand_chacha::ChaCha20Rng, route: &[RouteNode], n: usize) -> Vec<Vec<u8>> {
    let dest = Destination { address: DestinationAddress([1; 32]), identifier: [0; 16] };
    let delays = vec![Delay(0); route.len()];
    (0..n)
        .map(|_| {
            sphinx::build_packet(rng, route, &dest, &delays, &[7u8; 2048], PacketSize::Regular.payload_len()).unwrap()
        })
        .collect()
}

struct Throughput {
    node_pps: f64,
    crypto_pps: f64,
}

async fn mix_throughput() -> Throughput {
    // the mix's identity and the sink's are on the allowlist
    let mix_dir = tempfile::tempdir().unwrap();
    let mix_id = nodenet::keys::NodeIdentity::load_or_create(Some(mix_dir.path())).unwrap().address();
    let sink_signing = ed25519_dalek::SigningKey::from_bytes(&[10; 32]);
    let allow = vec![
        AllowedNode { identity: mix_id.to_string(), role: Role::Mix },
        AllowedNode { identity: encode_key(&sink_signing.verifying_key().to_bytes()), role: Role::Gateway },
    ];
    let dir = directory::start(DirectoryConfig { allow, ..DirectoryConfig::default() }).await.unwrap();
    let dir_key = encode_key(&dir.key.to_bytes());
    let mix = mix::start(MixConfig {
        directory: dir.url(),
        directory_key: dir_key,
        workers: 1,
        worker_queue: PACKETS + 1000,
        link_queue: PACKETS + 1000,
        heartbeat_ms: 200,
        data_dir: Some(mix_dir.path().to_path_buf()),
        ..MixConfig::default()
    })
    .await
    .unwrap();

    // a sink node, registered as a gateway, that counts what the mix forwards
    let sink_noise = NodeSecret::from_bytes([9; 32]);
    let sink_sphinx = NodeSecret::from_bytes([11; 32]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sink_addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    // the sink both receives from the mix and sends to it: its key is in the topology
    let sink_links = Links::new(&sink_noise, PACKETS + 10, Arc::new(LinkStats::default()));
    let sink = tokio::spawn(link::serve(listener, sink_noise.clone(), sink_links.clone(), move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    }));
    let client = DirectoryClient::new(&dir.url(), dir.key);
    let epoch = client.epoch().await.unwrap().epoch;
    let sink_id = NodeAddress(sink_signing.verifying_key().to_bytes());
    let descriptor = NodeDescriptor {
        identity: Key32(sink_id.0),
        role: Role::Gateway,
        mix_address: sink_addr.to_string(),
        noise_key: Key32(sink_noise.public_key()),
        sphinx_keys: vec![EpochKey { epoch, key: Key32(sink_sphinx.public_key()) }],
        client_ws: None,
        client_wt: None,
        exit: None,
        signed_at_ms: nodenet::unix_ms(),
    };
    client.register(&SignedDescriptor::sign(&descriptor, &sink_signing)).await.unwrap();
    let topology = loop {
        let t = client.topology().await.unwrap();
        if t.gateway(&sink_id.0).is_some() && !t.mixes.is_empty() {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // let the mix learn the sink from its next heartbeat
    tokio::time::sleep(Duration::from_millis(600)).await;

    let m = &topology.mixes[0];
    let mut rng = nodenet::os_rng();
    let route = [
        RouteNode { address: NodeAddress(m.identity.0), key: NodeKey::prepared(m.sphinx_key.0) },
        RouteNode { address: sink_id, key: NodeKey::prepared(sink_sphinx.public_key()) },
    ];
    let packets = build(&mut rng, &route, PACKETS);

    // reference: the same hop's crypto alone, one core, packets built the same way
    let key = NodeSecret::from_bytes([12; 32]);
    let baseline_route =
        [RouteNode { address: NodeAddress([1; 32]), key: NodeKey::prepared(key.public_key()) }, route[1].clone()];
    let baseline = build(&mut rng, &baseline_route, PACKETS);
    let keys = NodeKeys::new(epoch, key, ReplayConfig::default());
    let start = Instant::now();
    for p in baseline {
        let _ = std::hint::black_box(keys.process(p).unwrap());
    }
    let crypto_pps = PACKETS as f64 / start.elapsed().as_secs_f64();

    // the node: Noise in, worker, zero delay, Noise out
    let sender = sink_links;
    sender.set_peers(&topology);
    let start = Instant::now();
    for p in packets {
        sender.send(NodeAddress(m.identity.0), p);
    }
    while received.load(Ordering::Relaxed) < PACKETS as u64 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "mix forwarded only {} packets; {}",
            received.load(Ordering::Relaxed),
            mix.metrics_text()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let node_pps = PACKETS as f64 / start.elapsed().as_secs_f64();
    sink.abort();
    drop(mix);
    drop(dir);
    Throughput { node_pps, crypto_pps }
}

struct Latency {
    p50: f64,
    p95: f64,
    p99: f64,
    mean: f64,
}

async fn latency(mode: RouteMode, n: usize) -> Latency {
    let net = Localnet::start(LocalnetConfig { mode, ..LocalnetConfig::default() }).await.unwrap();
    let a = Client::connect(net.client_config(0)).await.unwrap();
    let mut b = Client::connect(net.client_config(1)).await.unwrap();
    // warm up (connections, key tables)
    a.send(b.address, b"warm".to_vec(), 0).await.unwrap();
    b.recv(Duration::from_secs(30)).await.unwrap();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        a.send(b.address, format!("ping {i}").into_bytes(), 0).await.unwrap();
        b.recv(Duration::from_secs(30)).await.expect("message arrives");
        samples.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    net.shutdown().await;
    samples.sort_by(|x, y| x.total_cmp(y));
    let q = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    Latency { p50: q(0.5), p95: q(0.95), p99: q(0.99), mean: samples.iter().sum::<f64>() / n as f64 }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench` probing for benchmarks
    }
    let t = mix_throughput().await;
    let fast = latency(RouteMode::Fast, 200).await;
    let mixnet = latency(RouteMode::Mixnet, 200).await;
    println!("\n| measure | value | reference (same run) | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| packets/s through one mix node (1 worker, Noise, replay filter, zero delay) | {:.0} | crypto-only hop rate on one core: {:.0} | {:.1} % |",
        t.node_pps,
        t.crypto_pps,
        100.0 * t.node_pps / t.crypto_pps
    );
    for (name, l, expected) in [("fast", &fast, 0.0), ("mixnet", &mixnet, 3.0 * 15.0)] {
        println!(
            "| small message latency, {name} mode (ms): p50 / p95 / p99 / mean | {:.1} / {:.1} / {:.1} / {:.1} | mean of sampled delays: {expected:.0} ms | mean − delays: {:.1} ms |",
            l.p50,
            l.p95,
            l.p99,
            l.mean,
            l.mean - expected
        );
    }
}
