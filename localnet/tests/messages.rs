//! Messages through real servers on loopback (directory, 6 mixes, 2 gateways), with
//! the native client: to self, A → B, an anonymous reply by SURB, a 1 MB message; in
//! both modes.

mod common;

use common::*;
use mixnet_core::message::RouteMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_and_a_to_b_in_both_modes() {
    for mode in [RouteMode::Mixnet, RouteMode::Fast] {
        let net = net(mode).await;
        let mut a = client(&net, 0).await;
        let mut b = client(&net, 1).await;
        let id = a.send(a.address, b"to myself".to_vec(), 0).await.unwrap();
        assert_eq!(a.recv(WAIT).await.expect("self message").data, b"to myself");
        assert!(a.delivered(id, WAIT).await, "{mode:?}: self message not acknowledged");
        let id = a.send(b.address, b"hello b".to_vec(), 0).await.unwrap();
        let m = b.recv(WAIT).await.expect("a to b");
        assert_eq!(m.data, b"hello b");
        assert_eq!(m.sender_tag, None, "no SURBs, no way back");
        assert!(a.delivered(id, WAIT).await, "{mode:?}: a to b not acknowledged");
        net.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_reply_by_surb() {
    let net = net(RouteMode::Mixnet).await;
    let mut a = client(&net, 0).await;
    let mut b = client(&net, 1).await;
    a.send(b.address, b"who are you?".to_vec(), 4).await.unwrap();
    let m = b.recv(WAIT).await.expect("question");
    let tag = m.sender_tag.expect("SURBs attached");
    // b answers without knowing a's address
    let id = b.reply(tag, b"an anonymous answer".to_vec()).await.unwrap();
    let r = a.recv(WAIT).await.expect("reply");
    assert_eq!(r.data, b"an anonymous answer");
    assert_eq!(r.reply_from, Some(b.address));
    assert!(b.delivered(id, WAIT).await, "a acknowledges the reply");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_megabyte_message() {
    let net = net(RouteMode::Mixnet).await;
    let mut a = client(&net, 0).await;
    let mut b = client(&net, 1).await;
    let big = payload(7, 1 << 20);
    let id = a.send(b.address, big.clone(), 0).await.unwrap();
    let m = b.recv(WAIT).await.expect("1 MB message");
    assert!(m.data == big, "1 MB message differs");
    assert!(a.delivered(id, WAIT).await);
    net.shutdown().await;
}
