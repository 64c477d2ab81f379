//! A stream's writer waits when the server does not read: what a `MixStream` accepts
//! is bounded (the client's `MAX_UNSENT`, the stream's window, the exit's buffers and
//! the kernel's socket buffers), not the whole upload held in memory. Once the server
//! reads, everything arrives in order.

use std::time::Duration;

use demo_services::origin::pattern;
use localnet::{Localnet, LocalnetConfig};
use mixnet_core::message::RouteMode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waits_while_the_server_does_not_read() {
    let net = Localnet::start(LocalnetConfig { mode: RouteMode::Fast, ..LocalnetConfig::default() })
        .await
        .expect("localnet starts");
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    let client = mixnet_client::Client::connect(net.client_config(0)).await.unwrap();
    let exit = client.exits().await.unwrap()[0];
    let mut stream = client.open_stream(exit, "127.0.0.1", port).await.unwrap();
    let (mut socket, _) = server.accept().await.unwrap();

    // write until a write has waited 3 s (the server reads nothing)
    const CHUNK: usize = 64 * 1024;
    const LIMIT: usize = 64 << 20;
    let data = pattern(LIMIT);
    let mut written = 0;
    while written < LIMIT {
        match tokio::time::timeout(Duration::from_secs(3), stream.write(&data[written..written + CHUNK])).await {
            Ok(n) => written += n.unwrap(),
            Err(_) => break,
        }
    }
    eprintln!("accepted {written} B while the server read nothing");
    assert!(written < 32 << 20, "{written} B accepted while the server read nothing");

    // the server reads: what was accepted, then the rest, arrives in order
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        socket.read_to_end(&mut got).await.unwrap();
        got
    });
    let more = written + 2 * CHUNK;
    // bounded waits: a writer that is never released fails here instead of hanging
    let limit = Duration::from_secs(120);
    tokio::time::timeout(limit, stream.write_all(&data[written..more])).await.expect("the writer is released").unwrap();
    tokio::time::timeout(limit, stream.shutdown()).await.expect("the stream shuts down").unwrap();
    let got = tokio::time::timeout(Duration::from_secs(120), reader).await.unwrap().unwrap();
    assert_eq!(got.len(), more);
    assert!(got == data[..more], "the bytes arrive in order");
    drop(stream);
    drop(client);
    net.shutdown().await;
}
