//! Streams through the exit to real local servers: a TCP echo server, and an HTTPS
//! server with TLS end to end (the exit relays ciphertext); the exit policy refuses
//! what it should, with a clear reason.

mod common;

use std::sync::Arc;

use common::*;
use localnet::LocalnetConfig;
use mixnet_core::message::RouteMode;
use mixnet_core::policy::ExitPolicy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn echo_server() -> (u16, tokio::task::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (port, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_to_a_tcp_echo_server_in_both_modes() {
    let (port, server) = echo_server().await;
    for mode in [RouteMode::Mixnet, RouteMode::Fast] {
        let net = net(mode).await;
        let a = client(&net, 0).await;
        let mut s = a.open_stream(net.exit_address(), "127.0.0.1", port).await.expect("stream opens");
        let data = payload(5, 300_000);
        let (mut r, mut w) = tokio::io::split(&mut s);
        let writer = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut echoed = Vec::new();
        let reader = tokio::time::timeout(WAIT, r.read_to_end(&mut echoed));
        let (_, read) = tokio::join!(writer, reader);
        read.expect("echo within the deadline").unwrap();
        assert!(echoed == data, "{mode:?}: echo differs ({} of {} bytes)", echoed.len(), data.len());
        net.shutdown().await;
    }
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_tls_end_to_end_from_the_client() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_der = cert.cert.der().clone();
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let server_config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key_der)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let body = payload(9, 100_000);
    let served = body.clone();
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let mut tls = acceptor.accept(s).await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0);
            req.extend_from_slice(&buf[..n]);
        }
        assert!(req.starts_with(b"GET /secret HTTP/1.1\r\n"));
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", served.len());
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(&served).await.unwrap();
        tls.shutdown().await.unwrap();
    });

    let net = net(RouteMode::Mixnet).await;
    let a = client(&net, 0).await;
    let stream = a.open_stream(net.exit_address(), "localhost", port).await.expect("stream opens");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert_der).unwrap();
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio::time::timeout(WAIT, connector.connect(name, stream))
        .await
        .expect("handshake in time")
        .expect("TLS handshake");
    tls.write_all(b"GET /secret HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, tls.read_to_end(&mut response)).await.expect("response in time").unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("header end") + 4;
    assert!(response.starts_with(b"HTTP/1.1 200 OK"));
    assert!(response[split..] == body[..], "body differs");
    // the exit relayed the TLS records, not the request: its byte counters saw ciphertext only
    server.await.unwrap();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exit_policy_refuses_with_a_clear_reason() {
    // the default policy: no loopback, only ports 80 and 443
    let net = net_with(LocalnetConfig {
        mode: RouteMode::Fast,
        exit_policy: ExitPolicy::default(),
        ..LocalnetConfig::default()
    })
    .await;
    let a = client(&net, 0).await;
    let err = a.open_stream(net.exit_address(), "127.0.0.1", 443).await.err().expect("refused");
    assert!(err.to_string().contains("loopback address, denied by the exit policy"), "{err}");
    let err = a.open_stream(net.exit_address(), "127.0.0.1", 22).await.err().expect("refused");
    assert!(err.to_string().contains("port 22 is not allowed"), "{err}");
    let err = a.open_stream(net.exit_address(), "no-such-host.invalid", 443).await.err().expect("refused");
    assert!(err.to_string().contains("cannot resolve"), "{err}");
    let metrics = net.gateways[1].as_ref().unwrap().metrics_text().await;
    assert_eq!(metric(&metrics, "exit_policy_denials_total"), 2.0);
    net.shutdown().await;
}
