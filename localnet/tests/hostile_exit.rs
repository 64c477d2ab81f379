//! Socket-level attacks on the exit, against the real gateway on loopback (the
//! protocol-level ones run in the simulator: mixnet-core/tests/hostile_exit.rs).

mod common;

use std::time::Duration;

use common::*;
use localnet::LocalnetConfig;
use mixnet_core::message::RouteMode;
use tokio::io::AsyncWriteExt;

/// On 117647c the exit's writer channel to a server was unbounded: a client could
/// park any amount of data at the exit behind a server that never reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_reads_holds_the_exit_to_its_stream_buffer() {
    let net = net_with(LocalnetConfig { mode: RouteMode::Fast, ..LocalnetConfig::default() }).await;
    let limit = mixnet_core::exit::ExitLimits::default().stream_buffer;
    // accepts, then never reads
    let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = server.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let (s, _) = server.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(s);
    });
    let a = client(&net, 0).await;
    let mut stream = a.open_stream(net.exit_address(), "127.0.0.1", port).await.unwrap();
    // more than the kernel's socket buffers and the exit's stream buffer together
    let data = vec![0x42u8; 24 << 20];
    // the client holds a writer back once 1 MiB has not left (mixnet_client::MAX_UNSENT),
    // so the upload is written beside the watching, not before it
    let upload = data.clone();
    let writer = tokio::spawn(async move {
        let _ = stream.write_all(&upload).await;
        stream
    });
    let exit = net.gateways[1].as_ref().unwrap();
    let mut peak = 0.0f64;
    let mut last_out = -1.0;
    // until the exit stops writing (the kernel buffers are full)
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let text = exit.metrics_text().await;
        peak = peak.max(metric(&text, "exit_upload_buffered_bytes"));
        let out = metric(&text, "exit_bytes_out_total");
        if out == last_out && out > 0.0 {
            break;
        }
        last_out = out;
    }
    let text = exit.metrics_text().await;
    assert!(peak <= limit as f64, "the exit buffered {peak} B for one stream (bound {limit} B)");
    assert!(last_out < data.len() as f64, "the server never read, yet {last_out} B were written");
    assert_eq!(metric(&text, "exit_refused_total{reason=\"buffer_exceeded\"}"), 0.0, "the client kept to its window");
    assert_eq!(metric(&text, "exit_streams_open"), 1.0);
    writer.abort();
    hold.abort();
    net.shutdown().await;
}
