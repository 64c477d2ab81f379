//! Faults against real servers: replays dropped at every node; 5 % loss on every link
//! with nothing lost; a gateway restart delivering stored messages from SQLite; a
//! killed mix routed around after the topology refresh; malformed input counted while
//! the nodes keep serving.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use localnet::LocalnetConfig;
use mixnet_core::address::ClientIdentity;
use mixnet_core::message::RouteMode;
use mixnet_core::sphinx::{self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, PacketSize, RouteNode};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

fn hop(identity: [u8; 32], key: [u8; 32]) -> RouteNode {
    RouteNode { address: NodeAddress(identity), key: NodeKey::new(key) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_packet_is_dropped_at_every_node() {
    let net = net(RouteMode::Mixnet).await;
    let b = client(&net, 0).await;
    let topology = net.wait_for_topology(|_| true, WAIT).await.unwrap();
    // sent from a node of the topology (links from other keys are refused: hostile_mix.rs)
    let links = net.gateways[1].as_ref().unwrap().links.clone();
    let gw = &topology.gateways.iter().find(|g| g.identity.0 == b.address.gateway).unwrap();
    let dest = Destination { address: DestinationAddress(b.address.identity), identifier: [0; 16] };
    let mut rng = nodenet::os_rng();
    let size = PacketSize::Regular.payload_len();
    // one packet starting at each node, each sent twice
    let mut starts: Vec<(NodeAddress, Vec<RouteNode>)> = topology
        .mixes
        .iter()
        .map(|m| {
            (NodeAddress(m.identity.0), vec![hop(m.identity.0, m.sphinx_key.0), hop(gw.identity.0, gw.sphinx_key.0)])
        })
        .collect();
    starts.push((NodeAddress(gw.identity.0), vec![hop(gw.identity.0, gw.sphinx_key.0)]));
    for (first, route) in &starts {
        let packet =
            sphinx::build_packet(&mut rng, route, &dest, &vec![Delay(0); route.len()], &[0u8; 2048], size).unwrap();
        links.send(*first, packet.clone());
        links.send(*first, packet);
    }
    let replays_at = |text: &str, kind: &str| {
        nodenet::metrics::sample(text, &format!("{kind}_dropped_total{{reason=\"replay\"}}")).unwrap_or(0.0)
    };
    let (net_ref, replays_at) = (&net, &replays_at);
    eventually("every node drops the replay once", || async move {
        let mixes: Vec<f64> = net_ref.mixes.iter().flatten().map(|m| replays_at(&m.metrics_text(), "mix")).collect();
        let gw_text = net_ref.gateways[0].as_ref().unwrap().metrics_text().await;
        let gateway = replays_at(&gw_text, "gateway");
        if mixes.iter().all(|r| *r == 1.0) && gateway == 1.0 {
            Ok(())
        } else {
            Err(format!("replays per mix {mixes:?}, at the gateway {gateway}"))
        }
    })
    .await;
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_loss_on_every_link_and_every_message_arrives() {
    let net = net(RouteMode::Mixnet).await;
    for m in net.mixes.iter().flatten() {
        m.links.set_injected_loss(0.05);
    }
    for g in net.gateways.iter().flatten() {
        g.links.set_injected_loss(0.05);
    }
    let mut a = client(&net, 0).await;
    let mut b = client(&net, 1).await;
    let msgs: Vec<Vec<u8>> = (0..12).map(|i| payload(i, 500 + 4000 * usize::from(i))).collect();
    let mut ids = Vec::new();
    for m in &msgs {
        ids.push(a.send(b.address, m.clone(), 0).await.unwrap());
    }
    let mut got = Vec::new();
    while got.len() < msgs.len() {
        got.push(b.recv(WAIT).await.expect("every message arrives").data);
    }
    got.sort();
    let mut want = msgs.clone();
    want.sort();
    assert_eq!(got, want);
    for id in ids {
        assert!(a.delivered(id, WAIT).await, "message {id} acknowledged");
    }
    let injected: u64 = net.mixes.iter().flatten().map(|m| m.links.stats().dropped_injected.get()).sum::<u64>()
        + net.gateways.iter().flatten().map(|g| g.links.stats().dropped_injected.get()).sum::<u64>();
    assert!(injected > 0, "loss was injected");
    assert!(a.stats().await.unwrap().retransmissions > 0, "and repaired by retransmission");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gateway_delivers_what_it_stored() {
    let mut net = net(RouteMode::Fast).await;
    let mut a = client(&net, 0).await;
    let mut config = net.client_config(1);
    config.identity = Some(ClientIdentity::from_parts([7; 32], [8; 32]));
    let b = client_with(config.clone()).await;
    let b_address = b.address;
    drop(b); // offline
    let msgs: Vec<Vec<u8>> = (0..3).map(|i| payload(i, 3000)).collect();
    for m in &msgs {
        let id = a.send(b_address, m.clone(), 0).await.unwrap();
        assert!(a.delivered(id, WAIT).await, "stored by b's gateway, so acknowledged");
    }
    net.stop_gateway(1).await;
    net.start_gateway(1).await.expect("restart");
    let mut b = client_with(config).await;
    for m in &msgs {
        assert_eq!(&b.recv(WAIT).await.expect("stored message").data, m, "in order");
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_mix_is_routed_around_and_nothing_is_lost() {
    let mut net =
        net_with(LocalnetConfig { mode: RouteMode::Mixnet, node_ttl_ms: 3_000, ..LocalnetConfig::default() }).await;
    let mut a = client(&net, 0).await;
    let mut b = client(&net, 1).await;
    let dead = net.kill_mix(0).unwrap();
    // send while the dead mix is still in the topology (some routes go through it and
    // must be retransmitted), then again once the directory has dropped it
    let mut ids = Vec::new();
    for i in 0..5u8 {
        ids.push(a.send(b.address, payload(i, 2500), 0).await.unwrap());
    }
    let t = net.wait_for_topology(|t| t.mixes.iter().all(|m| m.identity.0 != dead.0), WAIT).await.expect("mix dropped");
    for i in 5..10u8 {
        ids.push(a.send(b.address, payload(i, 2500), 0).await.unwrap());
    }
    assert_eq!(t.mixes.len(), 5);
    for _ in 0..10 {
        b.recv(WAIT).await.expect("every message arrives");
    }
    for id in ids {
        assert!(a.delivered(id, WAIT).await);
    }
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_counted_and_the_nodes_keep_serving() {
    let net = net(RouteMode::Mixnet).await;
    let mix = net.mixes[0].as_ref().unwrap();

    // plain garbage on a mix's link port: the handshake fails
    let mut s = tokio::net::TcpStream::connect(mix.mix_addr).await.unwrap();
    s.write_all(&[0, 48]).await.unwrap();
    s.write_all(&[0xAB; 48]).await.unwrap();
    // a proper Noise link carrying packets that are not Sphinx packets for it
    let links = net.gateways[1].as_ref().unwrap().links.clone();
    for len in [10, 2413, 2413] {
        links.send(mix.address, vec![0x5A; len]);
    }
    // a gateway session that sends junk, and one that sends a text frame
    let gw = net.gateways[0].as_ref().unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(gw.ws_url.as_str()).await.unwrap();
    ws.send(Message::Binary(vec![1u8; 100].into())).await.unwrap();
    let close = ws.next().await;
    let reason = match close {
        Some(Ok(Message::Close(Some(f)))) => f.reason.to_string(),
        other => panic!("expected a close frame with a reason, got {other:?}"),
    };
    assert!(reason.contains("decrypt"), "{reason}");
    let (mut ws, _) = tokio_tungstenite::connect_async(gw.ws_url.as_str()).await.unwrap();
    ws.send(Message::Text("hello".into())).await.unwrap();
    let _ = ws.next().await;

    eventually("every bad input is counted", || async {
        let text = mix.metrics_text();
        let malformed = metric(&text, "mix_dropped_total{reason=\"malformed\"}");
        let handshakes = metric(&text, "mix_link_handshake_failures_total");
        let gw_text = gw.metrics_text().await;
        let auth = metric(&gw_text, "gateway_dropped_total{reason=\"auth_failure\"}");
        let ws_bad = metric(&gw_text, "gateway_dropped_total{reason=\"ws_bad_message\"}");
        if malformed >= 3.0 && handshakes >= 1.0 && auth >= 1.0 && ws_bad >= 1.0 {
            Ok(())
        } else {
            Err(format!("malformed {malformed} handshakes {handshakes} auth {auth} ws {ws_bad}"))
        }
    })
    .await;
    // and everything still works
    let a = client(&net, 0).await;
    let mut b = client(&net, 1).await;
    a.send(b.address, b"still serving".to_vec(), 0).await.unwrap();
    assert_eq!(b.recv(WAIT).await.unwrap().data, b"still serving");
    net.shutdown().await;
}
