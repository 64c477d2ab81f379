//! Socket-level attacks on a gateway, against the real server on loopback: an upgrade
//! that never completes, more connections than allowed, a client that stops reading.
//! (Protocol-level ones run in the simulator: mixnet-core/tests/hostile_gateway.rs.)

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use localnet::LocalnetConfig;
use mixnet_core::message::RouteMode;
use mixnet_core::session::ClientSession;
use mixnet_core::sphinx::NodeSecret;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use ws_gateway::GatewayConfig;

fn with_gateway(gateway: GatewayConfig) -> LocalnetConfig {
    LocalnetConfig { mode: RouteMode::Fast, gateway, ..LocalnetConfig::default() }
}

async fn dropped(net: &localnet::Localnet, reason: &str) -> f64 {
    let text = net.gateways[0].as_ref().unwrap().metrics_text().await;
    metric(&text, &format!("gateway_dropped_total{{reason=\"{reason}\"}}"))
}

/// On 117647c a connection could hold its HTTP upgrade open for good (slowloris).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_that_never_completes_is_dropped() {
    let net = net(RouteMode::Fast).await;
    let gw = net.gateways[0].as_ref().unwrap();
    let mut s = tokio::net::TcpStream::connect(gw.ws_addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: gateway\r\n").await.unwrap();
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await.expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)), "the gateway closed the connection: {n:?}");
    assert!(started.elapsed() >= Duration::from_secs(9), "not before the upgrade timeout");
    assert_eq!(dropped(&net, "ws_upgrade_timeout").await, 1.0);
    net.shutdown().await;
}

/// On 117647c there was no connection limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_limit_are_closed_with_busy() {
    let config = GatewayConfig { max_connections: 2, ..LocalnetConfig::default().gateway };
    let net = net_with(with_gateway(config)).await;
    let url = net.gateways[0].as_ref().unwrap().ws_url.clone();
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(tokio_tungstenite::connect_async(url.as_str()).await.unwrap().0);
    }
    // the actor has registered both before the third arrives
    let gw = net.gateways[0].as_ref().unwrap();
    eventually("both connections are registered", || async {
        let open = metric(&gw.metrics_text().await, "gateway_connections");
        if open == 2.0 { Ok(()) } else { Err(format!("{open} connections")) }
    })
    .await;
    let (mut third, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
    match tokio::time::timeout(WAIT, third.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(f)))) => {
            assert_eq!(f.code, CloseCode::from(4000 + mixnet_core::session::code::BUSY));
            assert!(f.reason.contains("limit"), "{}", f.reason);
        }
        other => panic!("expected a close with a reason, got {other:?}"),
    }
    assert_eq!(dropped(&net, "refused_connection").await, 1.0);
    drop(held);
    net.shutdown().await;
}

/// On 117647c a client whose queue filled was forgotten but its socket left open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_closed_and_its_connection_dropped() {
    let config = GatewayConfig {
        client_queue: 8,
        rate_per_sec: 1_000_000,
        burst: 1_000_000,
        ..LocalnetConfig::default().gateway
    };
    let net = net_with(with_gateway(config)).await;
    let gw = net.gateways[0].as_ref().unwrap();
    let topology = net.wait_for_topology(|_| true, WAIT).await.unwrap();
    let gateway_key = topology.gateway(&gw.address.0).unwrap().noise_key.0;
    // a tiny receive buffer, so the gateway's replies back up quickly
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(gw.ws_addr).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(gw.ws_url.as_str(), stream).await.unwrap();
    let (mut sink, mut source) = ws.split();
    let mut session = ClientSession::start(&mut nodenet::os_rng(), &gateway_key, NodeSecret::from_bytes([3; 32]));
    while !session.is_authenticated() {
        while let Some(m) = session.poll_send() {
            sink.send(Message::Binary(m.into())).await.unwrap();
        }
        let Some(Ok(Message::Binary(b))) = source.next().await else { panic!("handshake") };
        session.handle_message(&b).unwrap();
    }
    // now ask for pongs and never read them
    for i in 0..200_000u64 {
        session.ping(i).unwrap();
        let m = session.poll_send().unwrap();
        if tokio::time::timeout(Duration::from_secs(2), sink.send(Message::Binary(m.into()))).await.is_err() {
            break; // our writes block: the gateway stopped reading us
        }
        if i % 1000 == 0 && dropped(&net, "slow_client").await >= 1.0 {
            break;
        }
    }
    eventually("the slow client is dropped", || async {
        let text = gw.metrics_text().await;
        let slow = metric(&text, "gateway_dropped_total{reason=\"slow_client\"}");
        let open = metric(&text, "gateway_connections");
        if slow >= 1.0 && open == 0.0 { Ok(()) } else { Err(format!("slow {slow}, connections {open}")) }
    })
    .await;
    // the socket is gone too: reading what was queued ends in a close or an error
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match source.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| f.code),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the connection ends");
    if let Some(code) = end {
        assert_eq!(code, CloseCode::from(4000 + mixnet_core::session::code::SLOW));
    }
    honest(&net).await;
    net.shutdown().await;
}

async fn honest(net: &localnet::Localnet) {
    let a = client(net, 0).await;
    let mut b = client(net, 1).await;
    a.send(b.address, b"still serving".to_vec(), 0).await.unwrap();
    assert_eq!(b.recv(WAIT).await.unwrap().data, b"still serving");
}
