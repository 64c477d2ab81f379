//! `mixnet-client socks5` with clients no one here wrote: curl through the proxy to an
//! HTTP and an HTTPS server on loopback, in both route modes. The proxy is the
//! binary as a user runs it; curl is the system's.

use std::process::Stdio;
use std::time::Duration;

use demo_services::origin::{self, pattern};
use localnet::{Localnet, LocalnetConfig};
use mixnet_core::address::encode_key;
use mixnet_core::message::RouteMode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TEN_MB: usize = 10 * 1024 * 1024;

/// The proxy, started as a user would, and the address it printed.
struct Proxy {
    child: Child,
    addr: String,
}

async fn proxy(net: &Localnet, mode: &str) -> Proxy {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mixnet-client"))
        .args(["--directory", &net.directory.url()])
        .args(["--directory-key", &encode_key(&net.directory.key.to_bytes())])
        .args(["--mode", mode, "socks5", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the mixnet-client binary runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the proxy starts within 30 s")
        .unwrap()
        .expect("the proxy prints its address");
    let addr = line.strip_prefix("socks5://").expect("socks5://host:port").to_owned();
    Proxy { child, addr }
}

/// Runs curl; its exit code and what it wrote to standard output.
async fn curl(args: &[&str]) -> (i32, Vec<u8>) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "180"])
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("curl is installed (scripts/setup)");
    (out.status.code().unwrap_or(-1), out.stdout)
}

async fn curl_through_the_proxy(mode: RouteMode, mode_arg: &str) {
    let net = Localnet::start(LocalnetConfig { mode, ..LocalnetConfig::default() }).await.expect("localnet starts");
    let http = origin::server(None).await.unwrap();
    let pki = origin::pki();
    let https = origin::server(Some(pki.server.clone())).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let ca = ca.to_str().unwrap();
    let mut p = proxy(&net, mode_arg).await;
    let socks5h = format!("socks5h://{}", p.addr);
    let socks4a = format!("socks4a://{}", p.addr);

    // 10 MB over plain HTTP, the name resolved by the exit, byte-identical
    let (code, body) = curl(&["--proxy", &socks5h, &format!("http://localhost:{}/bytes/{TEN_MB}", http.port)]).await;
    assert_eq!(code, 0);
    assert!(body == pattern(TEN_MB), "{} bytes, not the 10 MB pattern", body.len());

    // 10 MB over HTTPS: TLS between curl and the server, end to end through the exit
    let url = format!("https://localhost:{}/bytes/{TEN_MB}", https.port);
    let (code, body) = curl(&["--proxy", &socks5h, "--cacert", ca, &url]).await;
    assert_eq!(code, 0);
    assert!(body == pattern(TEN_MB), "{} bytes, not the 10 MB pattern", body.len());

    // an upload: curl's body goes out through the stream and comes back from /echo
    let upload = dir.path().join("upload");
    std::fs::write(&upload, pattern(300_000)).unwrap();
    let data = format!("@{}", upload.display());
    let echo = format!("https://localhost:{}/echo", https.port);
    let (code, body) = curl(&["--proxy", &socks5h, "--cacert", ca, "--data-binary", &data, &echo]).await;
    assert_eq!(code, 0);
    assert!(body == pattern(300_000), "{} bytes echoed", body.len());

    // SOCKS4a
    let (code, body) = curl(&["--proxy", &socks4a, &format!("http://localhost:{}/text", http.port)]).await;
    assert_eq!((code, body.as_slice()), (0, b"hello over the mixnet".as_slice()));

    // a port nobody listens on: the proxy refuses the CONNECT (curl: 97, proxy
    // handshake failed) and keeps serving
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (code, _) = curl(&["--proxy", &socks5h, &format!("http://127.0.0.1:{closed}/")]).await;
    assert_eq!(code, 97);
    let (code, body) = curl(&["--proxy", &socks5h, &format!("http://127.0.0.1:{}/json", http.port)]).await;
    assert_eq!((code, body.as_slice()), (0, br#"{"ok":true,"n":42}"#.as_slice()));

    p.child.kill().await.unwrap();
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_the_socks_proxy_in_fast_mode() {
    curl_through_the_proxy(RouteMode::Fast, "fast").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_the_socks_proxy_in_mixnet_mode() {
    curl_through_the_proxy(RouteMode::Mixnet, "mixnet").await;
}

/// A SOCKS5 CONNECT to `ip:port` through the proxy; the reply code (RFC 1928 §6).
async fn socks5_connect_reply(proxy: &str, ip: [u8; 4], port: u16) -> u8 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut method = [0u8; 2];
    s.read_exact(&mut method).await.unwrap();
    assert_eq!(method, [5, 0], "no authentication");
    let mut request = vec![5, 1, 0, 1];
    request.extend_from_slice(&ip);
    request.extend_from_slice(&port.to_be_bytes());
    s.write_all(&request).await.unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).await.unwrap();
    reply[1]
}

/// The exit's failure code reaches the SOCKS client as the matching reply code (a
/// refused port is not a policy refusal), so curl and browsers say what happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks_replies_say_why_the_exit_could_not_connect() {
    let net =
        Localnet::start(LocalnetConfig { mode: RouteMode::Fast, ..LocalnetConfig::default() }).await.expect("starts");
    let p = proxy(&net, "fast").await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    assert_eq!(socks5_connect_reply(&p.addr, [127, 0, 0, 1], closed).await, 5, "connection refused");
    assert_eq!(socks5_connect_reply(&p.addr, [10, 0, 0, 1], 80).await, 2, "not allowed by the exit's policy");
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = open.local_addr().unwrap().port();
    assert_eq!(socks5_connect_reply(&p.addr, [127, 0, 0, 1], port).await, 0, "succeeded");
    drop(p);
    net.shutdown().await;
}
