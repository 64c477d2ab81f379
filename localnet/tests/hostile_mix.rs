//! Attacks on mix nodes, against the real servers on loopback: a stranger opening a
//! link, packets asking to be held for centuries, and a flood past the delay queue's
//! bound. Each pushes past its bound, then checks honest traffic still flows.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use localnet::LocalnetConfig;
use mix_node::mix::MixConfig;
use mixnet_core::message::RouteMode;
use mixnet_core::sphinx::{
    self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, NodeSecret, PacketSize, RouteNode,
};
use mixnet_core::topology::Topology;
use nodenet::link::{LinkStats, Links};

/// Packets that enter at mix 0 holding `first_delay` there, then go to the entry
/// gateway for a client that does not exist.
fn packets_via_mix(t: &Topology, mix: NodeAddress, first_delay: Duration, n: usize) -> Vec<Vec<u8>> {
    let m = t.mixes.iter().find(|m| m.identity.0 == mix.0).unwrap();
    let g = &t.gateways[0];
    let route = [
        RouteNode { address: mix, key: NodeKey::prepared(m.sphinx_key.0) },
        RouteNode { address: NodeAddress(g.identity.0), key: NodeKey::prepared(g.sphinx_key.0) },
    ];
    let dest = Destination { address: DestinationAddress([7; 32]), identifier: [0; 16] };
    let mut rng = nodenet::os_rng();
    (0..n)
        .map(|_| {
            let delays = [Delay::from_duration(first_delay), Delay(0)];
            sphinx::build_packet(&mut rng, &route, &dest, &delays, &[0u8; 2048], PacketSize::Regular.payload_len())
                .unwrap()
        })
        .collect()
}

async fn honest_traffic_flows(net: &localnet::Localnet) {
    let a = client(net, 0).await;
    let mut b = client(net, 1).await;
    a.send(b.address, b"still here".to_vec(), 0).await.unwrap();
    assert_eq!(b.recv(WAIT).await.expect("an honest message arrives").data, b"still here");
}

/// On 117647c any host could open a Noise link with any key and inject packets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_open_a_link_to_a_mix() {
    let net = net(RouteMode::Mixnet).await;
    let topology = net.wait_for_topology(|_| true, WAIT).await.unwrap();
    let mix = net.mixes[0].as_ref().unwrap();
    let stranger = Links::new(&NodeSecret::from_bytes([42; 32]), 64, Arc::new(LinkStats::default()));
    stranger.set_peers(&topology);
    for p in packets_via_mix(&topology, mix.address, Duration::ZERO, 20) {
        stranger.send(mix.address, p);
    }
    eventually("the stranger's link is refused", || async {
        let text = mix.metrics_text();
        if metric(&text, "mix_link_rejected_peers_total") < 1.0 { Err(text) } else { Ok(()) }
    })
    .await;
    assert_eq!(metric(&mix.metrics_text(), "mix_packets_in_total"), 0.0, "nothing from the stranger got in");
    honest_traffic_flows(&net).await;
    net.shutdown().await;
}

/// On 117647c a packet's delay was honoured whatever it was: a client could park
/// packets in a mix's memory for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packets_asking_for_a_century_of_delay_are_dropped_not_held() {
    let net = net(RouteMode::Mixnet).await;
    let topology = net.wait_for_topology(|_| true, WAIT).await.unwrap();
    let mix = net.mixes[0].as_ref().unwrap();
    let node = net.gateways[1].as_ref().unwrap().links.clone();
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    for p in packets_via_mix(&topology, mix.address, century, 200) {
        node.send(mix.address, p);
    }
    eventually("every long-delay packet is dropped", || async {
        let text = mix.metrics_text();
        if metric(&text, "mix_dropped_total{reason=\"delay_too_long\"}") < 200.0 { Err(text) } else { Ok(()) }
    })
    .await;
    assert_eq!(metric(&mix.metrics_text(), "mix_delay_queue_depth"), 0.0);
    honest_traffic_flows(&net).await;
    net.shutdown().await;
}

/// On 117647c the running mix fed an unbounded channel into an unbounded queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_past_the_delay_queue_bound_is_dropped_and_counted() {
    let (max_queue, max_bytes) = (300, 400 * 1024);
    let config = LocalnetConfig {
        mode: RouteMode::Mixnet,
        mix: MixConfig { max_queue, max_queue_bytes: max_bytes, ..LocalnetConfig::default().mix },
        ..LocalnetConfig::default()
    };
    let net = net_with(config).await;
    let topology = net.wait_for_topology(|_| true, WAIT).await.unwrap();
    let mix = net.mixes[0].as_ref().unwrap();
    let node = net.gateways[1].as_ref().unwrap().links.clone();
    // 1000 packets held 20 s each: three times what the queue may hold
    let flood = 1000;
    for p in packets_via_mix(&topology, mix.address, Duration::from_secs(20), flood) {
        node.send(mix.address, p);
    }
    eventually("the flood is processed", || async {
        let text = mix.metrics_text();
        if metric(&text, "mix_processing_microseconds_count") < flood as f64 { Err(text) } else { Ok(()) }
    })
    .await;
    let text = mix.metrics_text();
    let depth = metric(&text, "mix_delay_queue_depth");
    let bytes = metric(&text, "mix_delay_queue_bytes");
    let full = metric(&text, "mix_dropped_total{reason=\"delay_queue_full\"}");
    assert!(depth <= max_queue as f64 && bytes <= max_bytes as f64, "queue {depth} packets, {bytes} B");
    assert!(full >= (flood - max_queue) as f64, "{full} drops counted");
    // the bound is bytes here: 400 KiB holds ~160 regular packets
    assert!(depth < max_queue as f64, "the byte bound bites before the count bound: {depth}");
    honest_traffic_flows(&net).await;
    net.shutdown().await;
}
