//! The gateways' WebTransport listener with the native client: messages and an
//! anonymous reply between a WebTransport client and a WebSocket one; a malformed
//! and a truncated stream, and a session at the wrong path, are refused and counted
//! while the gateway keeps serving; closing the WebTransport port releases it and
//! leaves WebSocket serving; a restart with a session open rebinds the same port.

mod common;

use common::*;
use mixnet_client::Transport;
use mixnet_core::message::RouteMode;

fn wt_client_config(net: &localnet::Localnet, gateway: usize) -> mixnet_client::ClientConfig {
    let mut c = net.client_config(gateway);
    c.transport = Transport::WebTransport;
    c
}

/// A wtransport client that pins the endpoint's published certificate hash.
fn pinned_client(
    endpoint: &mixnet_core::topology::WebTransportEndpoint,
) -> wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client> {
    let hash = endpoint.cert_hash().unwrap().expect("localnet pins a self-signed certificate");
    let config = wtransport::ClientConfig::builder()
        .with_bind_default()
        .with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(hash)])
        .build();
    wtransport::Endpoint::client(config).unwrap()
}

async fn raw_session(endpoint: &mixnet_core::topology::WebTransportEndpoint) -> wtransport::Connection {
    pinned_client(endpoint).connect(&endpoint.url).await.expect("session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_replies_between_webtransport_and_websocket_clients() {
    let net = net(RouteMode::Mixnet).await;
    let topology = net.wait_for_topology(|_| true, WAIT).await.unwrap();
    for g in &topology.gateways {
        let wt = g.client_wt.as_ref().expect("every localnet gateway offers WebTransport");
        assert!(wt.url.starts_with("https://127.0.0.1:") && wt.url.ends_with("/mixnet"), "{}", wt.url);
        assert_eq!(wt.cert_sha256.as_ref().map(String::len), Some(64));
    }
    let mut a = client_with(wt_client_config(&net, 0)).await;
    let mut b = client(&net, 1).await;
    let id = a.send(b.address, b"over webtransport".to_vec(), 4).await.unwrap();
    let m = b.recv(WAIT).await.expect("message from the webtransport client");
    assert_eq!(m.data, b"over webtransport");
    assert!(a.delivered(id, WAIT).await, "acknowledged to the webtransport client");
    b.reply(m.sender_tag.expect("SURBs attached"), b"and back".to_vec()).await.unwrap();
    assert_eq!(a.recv(WAIT).await.expect("reply over webtransport").data, b"and back");
    // a large message: many packets each way on the stream
    let big = payload(3, 256 * 1024);
    let id = b.send(a.address, big.clone(), 0).await.unwrap();
    assert!(a.recv(WAIT).await.expect("256 KiB over webtransport").data == big);
    assert!(b.delivered(id, WAIT).await);
    let text = net.gateways[0].as_ref().unwrap().metrics_text().await;
    assert_eq!(metric(&text, "gateway_transport_connections_total{transport=\"webtransport\"}"), 1.0);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_streams_are_counted_and_the_gateway_keeps_serving() {
    let mut net = net(RouteMode::Fast).await;
    let gw = net.gateways[0].as_ref().unwrap();
    let (_, endpoint) = gw.wt.clone().unwrap();

    // junk where the handshake belongs: closed with the protocol's code and reason
    let conn = raw_session(&endpoint).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap().await.unwrap();
    send.write_all(&mixnet_core::framing::encode(&[1u8; 100]).unwrap()).await.unwrap();
    let mut decoder = mixnet_core::framing::Decoder::new();
    let mut buf = [0u8; 512];
    let record = loop {
        if let Some(r) = decoder.next_record() {
            break r;
        }
        let n = recv.read(&mut buf).await.unwrap().expect("a close record before the stream ends");
        decoder.push(&buf[..n]);
    };
    match record {
        mixnet_core::framing::Record::Close { code, reason } => {
            assert_eq!(code, 4002, "authentication failure");
            assert!(reason.contains("decrypt"), "{reason}");
        }
        other => panic!("expected a close record, got {other:?}"),
    }
    // the session itself ends with the same code
    match conn.closed().await {
        wtransport::error::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.code().into_inner(), 4002, "authentication failure");
            assert!(
                String::from_utf8_lossy(c.reason()).contains("decrypt"),
                "{:?}",
                String::from_utf8_lossy(c.reason())
            );
        }
        other => panic!("expected the gateway to close with a code, got {other}"),
    }
    // a stream that ends inside a message
    let conn = raw_session(&endpoint).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap().await.unwrap();
    send.write_all(&[0x10, 0x00, 1, 2, 3]).await.unwrap();
    send.finish().await.unwrap();
    // a session at a path the gateway does not serve
    let wrong = endpoint.url.replace("/mixnet", "/elsewhere");
    let refused = pinned_client(&endpoint).connect(&wrong).await;
    assert!(refused.is_err(), "a session at {wrong} is refused");

    eventually("every bad session is counted", || async {
        let text = gw.metrics_text().await;
        let auth = metric(&text, "gateway_dropped_total{reason=\"auth_failure\"}");
        let truncated = metric(&text, "gateway_dropped_total{reason=\"ws_bad_message\"}");
        let failed = metric(&text, "gateway_webtransport_failed_total");
        if auth >= 1.0 && truncated >= 1.0 && failed >= 1.0 {
            Ok(())
        } else {
            Err(format!("auth {auth} truncated {truncated} failed {failed}"))
        }
    })
    .await;
    let a = client_with(wt_client_config(&net, 0)).await;
    let mut b = client_with(wt_client_config(&net, 1)).await;
    a.send(b.address, b"still serving".to_vec(), 0).await.unwrap();
    assert_eq!(b.recv(WAIT).await.unwrap().data, b"still serving");
    drop((a, b));

    // closing the port releases it; WebSocket keeps serving
    let (addr, _) = net.gateways[0].as_ref().unwrap().wt.clone().unwrap();
    assert!(net.close_webtransport(0).await);
    assert!(std::net::UdpSocket::bind(addr).is_ok(), "UDP port {addr} still bound after closing");
    let a = client(&net, 0).await;
    let mut b = client(&net, 1).await;
    a.send(b.address, b"websocket still works".to_vec(), 0).await.unwrap();
    assert_eq!(b.recv(WAIT).await.unwrap().data, b"websocket still works");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restart_rebinds_its_webtransport_port_and_clients_come_back() {
    let mut net = net(RouteMode::Fast).await;
    let mut a = client_with(wt_client_config(&net, 0)).await;
    let b = client(&net, 1).await;
    let before = net.gateways[0].as_ref().unwrap().wt.clone().unwrap();
    // a connected WebTransport session must not keep the UDP port from the restart
    net.stop_gateway(0).await;
    net.start_gateway(0).await.expect("the gateway restarts on the same ports");
    assert_eq!(net.gateways[0].as_ref().unwrap().wt.clone().unwrap(), before, "same port, same pinned certificate");
    b.send(a.address, b"after the restart".to_vec(), 0).await.unwrap();
    assert_eq!(a.recv(WAIT).await.expect("delivered over the new session").data, b"after the restart");
    net.shutdown().await;
}
