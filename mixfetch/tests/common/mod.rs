//! Test kit: a local HTTP/HTTPS server with a route per behaviour, a CA for it, and a
//! driver that carries a `Fetcher`'s streams over any async byte stream (plain TCP
//! here; the mixnet's exit streams in localnet's tests).
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mixfetch::{Action, FetchEvent, FetchId, FetchRequest, Fetcher, ResponseInfo};
use mixnet_core::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A CA and a certificate for `localhost` / 127.0.0.1 signed by it.
pub struct TestPki {
    pub ca_pem: String,
    pub server: Arc<rustls::ServerConfig>,
}

pub fn pki() -> TestPki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name.push(rcgen::DnType::CommonName, "mixfetch test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf_cert.der().clone(), ca_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    TestPki { ca_pem: ca_cert.pem(), server: Arc::new(server) }
}

/// `n` deterministic bytes.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

async fn read_request(io: &mut (impl AsyncRead + Unpin)) -> Option<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(n)) = req.parse(&buf) {
            let method = req.method?.to_owned();
            let path = req.path?.to_owned();
            let hs: Vec<(String, String)> =
                req.headers.iter().map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned())).collect();
            let len: usize = hs.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
            let mut body = buf[n..].to_vec();
            while body.len() < len {
                let mut chunk = [0u8; 8192];
                let k = io.read(&mut chunk).await.ok()?;
                if k == 0 {
                    return None;
                }
                body.extend_from_slice(&chunk[..k]);
            }
            return Some((method, path, hs, body));
        }
        let mut chunk = [0u8; 8192];
        let k = io.read(&mut chunk).await.ok()?;
        if k == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..k]);
    }
}

fn respond(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// Serves one connection: keep-alive until the client or a route closes it.
async fn serve_conn(mut io: Box<dyn Io>) {
    while let Some((method, path, headers, body)) = read_request(&mut io).await {
        let out = match path.as_str() {
            "/text" => respond("200 OK", &[("Content-Type", "text/plain".into())], b"hello over the mixnet"),
            "/json" => respond("200 OK", &[("Content-Type", "application/json".into())], br#"{"ok":true,"n":42}"#),
            "/echo" => {
                let ct = headers.iter().find(|(k, _)| k == "content-type").map(|(_, v)| v.clone()).unwrap_or_default();
                respond("201 Created", &[("Content-Type", ct), ("X-Method", method.clone())], &body)
            }
            "/headers" => {
                let text: String = headers.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
                respond("200 OK", &[], text.as_bytes())
            }
            p if p.starts_with("/bytes/") => {
                let n: usize = p[7..].parse().unwrap_or(0);
                respond("200 OK", &[("Content-Type", "application/octet-stream".into())], &pattern(n))
            }
            "/chunked" => {
                let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for part in ["first ", "second ", "third"] {
                    out.extend_from_slice(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes());
                }
                out.extend_from_slice(b"0\r\n\r\n");
                out
            }
            "/close-delimited" => {
                let _ = io.write_all(b"HTTP/1.0 200 OK\r\n\r\nuntil the end").await;
                let _ = io.shutdown().await;
                return;
            }
            p if p.starts_with("/redirect/") => {
                let n: usize = p[10..].parse().unwrap_or(0);
                let to = if n <= 1 { "/text".to_string() } else { format!("/redirect/{}", n - 1) };
                respond("302 Found", &[("Location", to)], b"")
            }
            "/see-other" => respond("303 See Other", &[("Location", "/echo".into())], b""),
            "/temporary" => respond("307 Temporary Redirect", &[("Location", "/echo".into())], b""),
            "/not-found" => respond("404 Not Found", &[], b"nothing here"),
            "/error" => respond("500 Internal Server Error", &[], b"it broke"),
            "/hang" => {
                let _ = io.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial").await;
                tokio::time::sleep(Duration::from_secs(600)).await;
                return;
            }
            _ => respond("404 Not Found", &[], b"no such route"),
        };
        if io.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// A server on an OS-chosen loopback port; TLS when `tls` is given. Stops when dropped.
pub struct Server {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn server(tls: Option<Arc<rustls::ServerConfig>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let tls = tls.clone();
            conns.spawn(async move {
                let io: Box<dyn Io> = match tls {
                    Some(cfg) => match tokio_rustls::TlsAcceptor::from(cfg).accept(stream).await {
                        Ok(s) => Box::new(s),
                        Err(_) => return,
                    },
                    None => Box::new(stream),
                };
                serve_conn(io).await;
            });
        }
    });
    Server { port, task }
}

/// A finished (or failed) request as the tests see it.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub response: Option<ResponseInfo>,
    pub body: Vec<u8>,
    pub error: Option<String>,
}

pub type Connector = Arc<dyn Fn(String, u16) -> Pin<Box<dyn Future<Output = Result<Box<dyn Stream>, String>> + Send>> + Send + Sync>;

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Plain TCP to loopback (what an exit does, without the mixnet).
/// Plain TCP to loopback (what an exit does, without the mixnet); every host name
/// resolves to 127.0.0.1.
pub fn tcp() -> Connector {
    Arc::new(|_host, port| {
        Box::pin(async move {
            TcpStream::connect(("127.0.0.1", port)).await.map(|s| Box::new(s) as Box<dyn Stream>).map_err(|e| e.to_string())
        })
    })
}

enum StreamEv {
    Opened(u64, mpsc::UnboundedSender<Option<Vec<u8>>>),
    OpenFailed(u64, String),
    Data(u64, Vec<u8>),
    Closed(u64),
}

/// Drives a `Fetcher` over `connect`ed streams; streams outlive a `run`, so keep-alive
/// connections are reused across runs.
pub struct Harness {
    pub fetcher: Fetcher,
    connect: Connector,
    start: tokio::time::Instant,
    tx: mpsc::UnboundedSender<StreamEv>,
    rx: mpsc::UnboundedReceiver<StreamEv>,
    writers: HashMap<u64, mpsc::UnboundedSender<Option<Vec<u8>>>>,
    pending_writes: HashMap<u64, Vec<Vec<u8>>>,
    /// Streams opened so far.
    pub opened: usize,
}

impl Harness {
    pub fn new(fetcher: Fetcher, connect: Connector) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            fetcher,
            connect,
            start: tokio::time::Instant::now(),
            tx,
            rx,
            writers: HashMap::new(),
            pending_writes: HashMap::new(),
            opened: 0,
        }
    }

/// Runs `requests` to completion (with `abort_after_body`: abort once that much of a
/// response's body has arrived) and returns the outcomes in order.
pub async fn run(&mut self, requests: Vec<FetchRequest>, abort_after_body: Option<usize>) -> Vec<Outcome> {
    let start = self.start;
    let now = || Instant::from_micros(start.elapsed().as_micros() as u64);
    let Self { fetcher, connect, tx, rx, writers, pending_writes, opened, .. } = self;
    let mut ids: Vec<FetchId> = Vec::new();
    let mut outcomes: HashMap<FetchId, Outcome> = HashMap::new();
    for r in requests {
        match fetcher.fetch(now(), r) {
            Ok(id) => ids.push(id),
            Err(e) => {
                let id = u64::MAX - ids.len() as u64;
                ids.push(id);
                outcomes.insert(id, Outcome { error: Some(e.to_string()), ..Outcome::default() });
            }
        }
    }
    let mut done = 0;
    let total = ids.iter().filter(|id| !outcomes.contains_key(id)).count();
    while done < total {
        let mut progressed = true;
        while progressed {
        progressed = false;
        while let Some(a) = fetcher.poll_action() {
            progressed = true;
            match a {
                Action::Open { conn, host, port } => {
                    *opened += 1;
                    let tx = tx.clone();
                    let connect = connect.clone();
                    tokio::spawn(async move {
                        match connect(host, port).await {
                            Err(e) => {
                                let _ = tx.send(StreamEv::OpenFailed(conn, e));
                            }
                            Ok(stream) => {
                                let (mut r, mut w) = tokio::io::split(stream);
                                let (wtx, mut wrx) = mpsc::unbounded_channel::<Option<Vec<u8>>>();
                                let _ = tx.send(StreamEv::Opened(conn, wtx));
                                tokio::spawn(async move {
                                    while let Some(Some(d)) = wrx.recv().await {
                                        if w.write_all(&d).await.is_err() {
                                            return;
                                        }
                                    }
                                    let _ = w.shutdown().await;
                                });
                                let mut buf = vec![0u8; 64 * 1024];
                                loop {
                                    match r.read(&mut buf).await {
                                        Ok(0) | Err(_) => {
                                            let _ = tx.send(StreamEv::Closed(conn));
                                            return;
                                        }
                                        Ok(n) => {
                                            if tx.send(StreamEv::Data(conn, buf[..n].to_vec())).is_err() {
                                                return;
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    });
                }
                Action::Write { conn, data } => match writers.get(&conn) {
                    Some(w) => {
                        let _ = w.send(Some(data));
                    }
                    None => pending_writes.entry(conn).or_default().push(data),
                },
                Action::Close { conn } => {
                    if let Some(w) = writers.remove(&conn) {
                        let _ = w.send(None);
                    }
                    pending_writes.remove(&conn);
                }
            }
        }
        while let Some(e) = fetcher.poll_event() {
            progressed = true;
            match e {
                FetchEvent::Response(id, info) => outcomes.entry(id).or_default().response = Some(info),
                FetchEvent::Body(id, data) => {
                    let o = outcomes.entry(id).or_default();
                    o.body.extend_from_slice(&data);
                    if abort_after_body.is_some_and(|n| o.body.len() >= n) {
                        fetcher.abort(now(), id);
                    }
                }
                FetchEvent::End(id) => {
                    outcomes.entry(id).or_default();
                    done += 1;
                }
                FetchEvent::Failed(id, err) => {
                    outcomes.entry(id).or_default().error = Some(err.to_string());
                    done += 1;
                }
            }
        }
        }
        if done >= total {
            break;
        }
        let sleep = fetcher.poll_timeout().map(|t| Duration::from_micros(t.as_micros().saturating_sub(now().as_micros())));
        let ev = match sleep {
            Some(d) => tokio::time::timeout(d, rx.recv()).await.ok().flatten(),
            None => rx.recv().await,
        };
        let t = now();
        match ev {
            None => fetcher.handle_timeout(t),
            Some(StreamEv::Opened(conn, w)) => {
                for d in pending_writes.remove(&conn).unwrap_or_default() {
                    let _ = w.send(Some(d));
                }
                writers.insert(conn, w);
                fetcher.handle_opened(t, conn);
            }
            Some(StreamEv::OpenFailed(conn, e)) => fetcher.handle_open_failed(t, conn, &e),
            Some(StreamEv::Data(conn, d)) => fetcher.handle_data(t, conn, &d),
            Some(StreamEv::Closed(conn)) => {
                writers.remove(&conn);
                fetcher.handle_closed(t, conn, None);
            }
        }
    }
    ids.into_iter().map(|id| outcomes.remove(&id).unwrap_or_default()).collect()
}
}

