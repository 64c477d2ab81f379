//! Sphinx keys rotate every epoch (with the next key held early and the previous one
//! kept for the overlap) and layers are re-dealt, while messages keep flowing.

mod common;

use common::*;
use localnet::LocalnetConfig;
use mixnet_core::message::RouteMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_epoch_boundaries() {
    let net = net_with(LocalnetConfig { mode: RouteMode::Mixnet, epoch_ms: 2_000, ..LocalnetConfig::default() }).await;
    let first = net.wait_for_topology(|_| true, WAIT).await.unwrap();
    let mut a = client(&net, 0).await;
    let mut b = client(&net, 1).await;
    // five messages in each of four epochs: each batch goes out as the epoch turns
    let mut ids = Vec::new();
    let mut epoch = first.epoch;
    for i in 0..20u8 {
        if i > 0 && i % 5 == 0 {
            epoch = net.wait_for_topology(|t| t.epoch > epoch, WAIT).await.expect("the epoch turns").epoch;
        }
        ids.push(a.send(b.address, payload(i, 1000), 0).await.unwrap());
    }
    for _ in 0..20 {
        b.recv(WAIT).await.expect("every message arrives across epochs");
    }
    for id in ids {
        assert!(a.delivered(id, WAIT).await);
    }
    let last = net.wait_for_topology(|t| t.epoch >= first.epoch + 2, WAIT).await.expect("epochs advance");
    // new keys each epoch
    assert!(last.mixes.iter().all(|m| first.mixes.iter().all(|f| f.sphinx_key != m.sphinx_key)));
    net.shutdown().await;
}
