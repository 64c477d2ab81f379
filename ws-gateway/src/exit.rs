//! The exit's driver: the core's [`Exit`] (attached to the gateway as an in-process
//! client) decides; this file resolves names, connects, and moves bytes between
//! sockets and the state machine. No protocol decisions here: the policy, the
//! choice of address, every bound and timeout but the connect timeout are the core's.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use mixnet_core::exit::{ConnectError, Exit, ExitAction, ExitConfig as CoreExitConfig, ExitKey, ResolveError};
use mixnet_core::message::{ClientKeys, Delivery, MessengerConfig, Transmit};
use mixnet_core::sphinx::NodeSecret;
use mixnet_core::time::Instant;
use mixnet_core::topology::{Routes, Topology};
use rand_chacha::ChaCha20Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ExitConfig;

/// What a socket task reports (read by the actor through [`ExitService::next_event`]).
pub(crate) enum TcpEvent {
    Resolved { key: ExitKey, result: Result<Vec<IpAddr>, ResolveError> },
    Connected { key: ExitKey, stream: TcpStream },
    ConnectFailed { key: ExitKey, error: ConnectError },
    Read { key: ExitKey, data: Vec<u8> },
    Written { key: ExitKey, n: usize },
    Eof { key: ExitKey, error: Option<String> },
}

enum WriteCmd {
    Data(Vec<u8>),
    Shutdown,
}

/// One connection's tasks. The bytes queued to `writer` are bounded by the core
/// (its per-stream, per-sender and total upload buffers).
struct Conn {
    writer: mpsc::UnboundedSender<WriteCmd>,
    /// How many bytes the reader may read next.
    credit: mpsc::Sender<usize>,
    tasks: [JoinHandle<()>; 2],
}

pub(crate) struct ExitService {
    pub(crate) exit: Exit<ChaCha20Rng>,
    connect_timeout: Duration,
    conns: HashMap<ExitKey, Conn>,
    /// Resolve and connect tasks in progress (at most the core's `max_connecting`).
    pending: HashMap<ExitKey, JoinHandle<()>>,
    /// The socket tasks' reports: each task holds a sender, the actor reads `reports`.
    events: mpsc::Sender<TcpEvent>,
    reports: mpsc::Receiver<TcpEvent>,
}

impl ExitService {
    pub(crate) fn new(identity: [u8; 32], encryption: NodeSecret, gateway: [u8; 32], config: ExitConfig) -> Self {
        // as many reports as the actor's own queue held when they shared it
        let (events, reports) = mpsc::channel(65_536);
        let messenger = MessengerConfig {
            mode: config.mode,
            max_surb_senders: config.surb_senders,
            max_surbs_total: config.surbs_total,
            ..MessengerConfig::default()
        };
        let core = CoreExitConfig { messenger, policy: config.policy, limits: config.limits };
        let keys = ClientKeys { identity, encryption };
        Self {
            exit: Exit::new(core, keys, gateway, nodenet::os_rng()),
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
            conns: HashMap::new(),
            pending: HashMap::new(),
            events,
            reports,
        }
    }

    /// The next socket task report (never `None`: the service holds a sender).
    pub(crate) async fn next_event(&mut self) -> Option<TcpEvent> {
        self.reports.recv().await
    }

    pub(crate) fn set_topology(&mut self, t: &Topology) {
        match Routes::new(t.clone()) {
            Ok(r) => self.exit.set_routes(r),
            Err(e) => tracing::warn!(error = %e, "exit: unusable topology"),
        }
    }

    pub(crate) fn handle_delivery(&mut self, now: Instant, delivery: Delivery) {
        self.exit.handle_delivery(now, delivery);
        self.carry_out();
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.exit.handle_timeout(now);
        self.carry_out();
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.exit.poll_timeout()
    }

    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.exit.poll_transmit(now)
    }

    pub(crate) fn handle_tcp(&mut self, now: Instant, ev: TcpEvent) {
        match ev {
            TcpEvent::Resolved { key, result } => {
                self.pending.remove(&key);
                self.exit.handle_resolved(now, key, result);
            }
            TcpEvent::Connected { key, stream } => {
                self.pending.remove(&key);
                self.conns.insert(key, spawn_conn(key, stream, self.events.clone()));
                self.exit.handle_connected(now, key);
            }
            TcpEvent::ConnectFailed { key, error } => {
                self.pending.remove(&key);
                self.exit.handle_connect_failed(now, key, error);
            }
            TcpEvent::Read { key, data } => {
                self.exit.handle_read(now, key, &data);
                self.give_credit(key);
            }
            TcpEvent::Written { key, n } => self.exit.handle_written(now, key, n),
            TcpEvent::Eof { key, error } => self.exit.handle_eof(now, key, error),
        }
        self.carry_out();
    }

    fn give_credit(&mut self, key: ExitKey) {
        let budget = self.exit.read_budget(&key);
        if budget > 0
            && let Some(c) = self.conns.get(&key)
        {
            let _ = c.credit.try_send(budget);
        }
    }

    fn carry_out(&mut self) {
        while let Some(a) = self.exit.poll_action() {
            match a {
                ExitAction::Resolve { key, host, port } => {
                    let task = tokio::spawn(resolve(key, host, port, self.connect_timeout, self.events.clone()));
                    self.pending.insert(key, task);
                }
                ExitAction::Connect { key, addr } => {
                    let (events, timeout) = (self.events.clone(), self.connect_timeout);
                    let task = tokio::spawn(async move {
                        let ev = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                            Ok(Ok(stream)) => TcpEvent::Connected { key, stream },
                            Ok(Err(e)) => TcpEvent::ConnectFailed { key, error: connect_error(&e) },
                            Err(_) => TcpEvent::ConnectFailed { key, error: ConnectError::TimedOut },
                        };
                        let _ = events.send(ev).await;
                    });
                    self.pending.insert(key, task);
                }
                ExitAction::Write { key, data } => {
                    if let Some(c) = self.conns.get(&key) {
                        let _ = c.writer.send(WriteCmd::Data(data));
                    }
                }
                ExitAction::ShutdownWrite { key } => {
                    if let Some(c) = self.conns.get(&key) {
                        let _ = c.writer.send(WriteCmd::Shutdown);
                    }
                }
                ExitAction::ReadReady { key } => self.give_credit(key),
                ExitAction::Abort { key } => {
                    if let Some(t) = self.pending.remove(&key) {
                        t.abort();
                    }
                    if let Some(c) = self.conns.remove(&key) {
                        for t in c.tasks {
                            t.abort();
                        }
                    }
                }
                // the writer finishes what is queued, then both tasks end
                ExitAction::Release { key } => {
                    self.conns.remove(&key);
                }
            }
        }
    }
}

fn connect_error(e: &std::io::Error) -> ConnectError {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => ConnectError::Refused,
        TimedOut => ConnectError::TimedOut,
        HostUnreachable | NetworkUnreachable | AddrNotAvailable => ConnectError::Unreachable,
        _ => ConnectError::Failed,
    }
}

async fn resolve(key: ExitKey, host: String, port: u16, timeout: Duration, events: mpsc::Sender<TcpEvent>) {
    let result = match tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port))).await {
        Ok(Ok(addrs)) => {
            let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            if ips.is_empty() { Err(ResolveError::NotFound) } else { Ok(ips) }
        }
        Ok(Err(_)) => Err(ResolveError::NotFound),
        Err(_) => Err(ResolveError::TimedOut),
    };
    let _ = events.send(TcpEvent::Resolved { key, result }).await;
}

/// Starts the reader (reads only as much as the core's credit allows) and the writer
/// (reports every write, so the core can credit the client).
fn spawn_conn(key: ExitKey, stream: TcpStream, events: mpsc::Sender<TcpEvent>) -> Conn {
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let (writer, mut wrx) = mpsc::unbounded_channel::<WriteCmd>();
    let (credit, mut crx) = mpsc::channel::<usize>(1);
    let wevents = events.clone();
    let write_task = tokio::spawn(async move {
        while let Some(cmd) = wrx.recv().await {
            let (r, n) = match cmd {
                WriteCmd::Data(d) => (w.write_all(&d).await, d.len()),
                WriteCmd::Shutdown => (w.shutdown().await, 0),
            };
            let ev = match r {
                Ok(()) if n > 0 => TcpEvent::Written { key, n },
                Ok(()) => continue,
                Err(e) => TcpEvent::Eof { key, error: Some(format!("write failed: {}", e.kind())) },
            };
            let failed = matches!(ev, TcpEvent::Eof { .. });
            let _ = wevents.send(ev).await;
            if failed {
                return;
            }
        }
    });
    let read_task = tokio::spawn(async move {
        let mut buf = vec![0u8; mixnet_core::stream::MAX_CHUNK];
        while let Some(budget) = crx.recv().await {
            let n = budget.min(buf.len());
            let ev = match r.read(&mut buf[..n]).await {
                Ok(0) => TcpEvent::Eof { key, error: None },
                Ok(n) => TcpEvent::Read { key, data: buf[..n].to_vec() },
                Err(e) => TcpEvent::Eof { key, error: Some(format!("read failed: {}", e.kind())) },
            };
            let end = matches!(ev, TcpEvent::Eof { .. });
            let _ = events.send(ev).await;
            if end {
                return;
            }
        }
    });
    Conn { writer, credit, tasks: [write_task, read_task] }
}
