//! Test kit: a driver that carries a `Fetcher`'s streams over any async byte stream
//! (plain TCP here). The servers are the test origin (`demo_services::origin`).
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

pub use demo_services::origin::{pattern, pki, server};
use mixfetch::{Action, FetchEvent, FetchId, FetchRequest, Fetcher, ResponseInfo};
use mixnet_core::time::Instant;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A finished (or failed) request as the tests see it.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub response: Option<ResponseInfo>,
    pub body: Vec<u8>,
    pub error: Option<String>,
}

pub type Connector =
    Arc<dyn Fn(String, u16) -> Pin<Box<dyn Future<Output = Result<Box<dyn Stream>, String>> + Send>> + Send + Sync>;

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Plain TCP to loopback (what an exit does, without the mixnet).
/// Plain TCP to loopback (what an exit does, without the mixnet); every host name
/// resolves to 127.0.0.1.
pub fn tcp() -> Connector {
    Arc::new(|_host, port| {
        Box::pin(async move {
            TcpStream::connect(("127.0.0.1", port))
                .await
                .map(|s| Box::new(s) as Box<dyn Stream>)
                .map_err(|e| e.to_string())
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
            let sleep =
                fetcher.poll_timeout().map(|t| Duration::from_micros(t.as_micros().saturating_sub(now().as_micros())));
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
