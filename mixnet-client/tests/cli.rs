//! The `mixnet-client` binary as a user runs it against a localnet's `localnet.json`:
//! a stable address from an identity file, `listen` answering through SURBs, `send`
//! waiting for the acknowledgement and the reply, and clear errors.

use std::process::Stdio;
use std::time::Duration;

use localnet::{Localnet, LocalnetConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn cli(json: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mixnet-client"));
    c.arg("--localnet").arg(json).kill_on_drop(true);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_listen_and_reply_with_a_kept_identity() {
    let net = Localnet::start(LocalnetConfig::default()).await.expect("localnet starts");
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("localnet.json");
    std::fs::write(&json, serde_json::to_vec(&net.info()).unwrap()).unwrap();
    let id = dir.path().join("bob.id");

    let out = cli(&json).arg("--identity").arg(&id).arg("address").output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let address = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let kept = std::fs::read_to_string(&id).unwrap();
    assert!(mixnet_core::address::ClientIdentity::parse(&kept).is_ok(), "the file holds the 64-byte base58 form");

    let mut listener = cli(&json)
        .arg("--identity")
        .arg(&id)
        .args(["listen", "--count", "1", "--reply", "pong"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(listener.stdout.take().unwrap()).lines();
    // the same identity file, the same address
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some(address.as_str()));

    let out = cli(&json)
        .args(["send", &address, "ping", "--surbs", "2", "--wait-reply", "--timeout", "30"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "pong\n");
    assert_eq!(lines.next_line().await.unwrap().as_deref(), Some("ping"));
    let status = tokio::time::timeout(Duration::from_secs(60), listener.wait()).await.unwrap().unwrap();
    assert!(status.success(), "listen exits 0 after --count messages, its reply acknowledged");
    net.shutdown().await;
}

#[tokio::test]
async fn errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.json");
    let out = cli(&missing).arg("address").output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.json"));

    let bad_id = dir.path().join("bad.id");
    std::fs::write(&bad_id, "not an identity").unwrap();
    let json = dir.path().join("localnet.json");
    std::fs::write(&json, r#"{"directory":"http://127.0.0.1:9","directoryKey":"x","mode":"fast"}"#).unwrap();
    let out = cli(&json).arg("--identity").arg(&bad_id).arg("address").output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("identity is not base58"), "{:?}", out);

    let out = Command::new(env!("CARGO_BIN_EXE_mixnet-client")).arg("address").output().await.unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--localnet URL"));
}
