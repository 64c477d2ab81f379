//! The exit service's driver: a `Messenger` attached to the gateway as an in-process
//! client, `ExitStreams` for the stream protocol, and one TCP connection per stream
//! (DNS resolved here, every resolved address checked against the exit policy).

use std::collections::HashMap;
use std::time::Duration;

use mixnet_core::message::{ClientKeys, Delivery, Event as MsgEvent, Messenger, MessengerConfig, Transmit};
use mixnet_core::policy::ExitPolicy;
use mixnet_core::sphinx::NodeSecret;
use mixnet_core::stream::{ExitAction, ExitKey, ExitStreams};
use mixnet_core::time::Instant;
use mixnet_core::topology::{Routes, Topology};
use rand_chacha::ChaCha20Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::ExitConfig;
use crate::actor::Event;

/// What a TCP task reports to the actor.
pub(crate) enum TcpEvent {
    Connected { key: ExitKey, writer: mpsc::UnboundedSender<WriteCmd>, credit: mpsc::Sender<()> },
    ConnectFailed { key: ExitKey, reason: String },
    Read { key: ExitKey, data: Vec<u8> },
    Eof { key: ExitKey, error: Option<String> },
}

pub(crate) enum WriteCmd {
    Data(Vec<u8>),
    Shutdown,
}

struct Conn {
    writer: mpsc::UnboundedSender<WriteCmd>,
    credit: mpsc::Sender<()>,
}

/// Counters of the exit.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(crate) struct ExitStats {
    pub(crate) streams_opened: u64,
    pub(crate) connect_failures: u64,
    pub(crate) policy_denials: u64,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
}

pub(crate) struct ExitService {
    pub(crate) messenger: Messenger<ChaCha20Rng>,
    streams: ExitStreams,
    config: ExitConfig,
    conns: HashMap<ExitKey, Conn>,
    events: mpsc::Sender<Event>,
    pub(crate) stats: ExitStats,
}

impl ExitService {
    pub(crate) fn new(
        identity: [u8; 32],
        encryption: NodeSecret,
        gateway: [u8; 32],
        config: ExitConfig,
        events: mpsc::Sender<Event>,
    ) -> Self {
        let mc = MessengerConfig { mode: config.mode, ..MessengerConfig::default() };
        let keys = ClientKeys { identity, encryption };
        Self {
            messenger: Messenger::new(mc, keys, gateway, nodenet::os_rng()),
            streams: ExitStreams::default(),
            config,
            conns: HashMap::new(),
            events,
            stats: ExitStats::default(),
        }
    }

    pub(crate) fn set_topology(&mut self, t: &Topology) {
        match Routes::new(t.clone()) {
            Ok(r) => self.messenger.set_routes(r),
            Err(e) => tracing::warn!(error = %e, "exit: unusable topology"),
        }
    }

    pub(crate) fn handle_delivery(&mut self, now: Instant, delivery: Delivery) {
        self.messenger.handle_delivery(now, delivery);
        self.process(now);
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.messenger.handle_timeout(now);
        self.process(now);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.messenger.poll_timeout()
    }

    pub(crate) fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.messenger.poll_transmit(now)
    }

    pub(crate) fn open_streams(&self) -> usize {
        self.streams.len()
    }

    fn give_credit(&mut self, key: &ExitKey) {
        if self.streams.read_budget(key) > 0
            && let Some(c) = self.conns.get(key)
        {
            let _ = c.credit.try_send(());
        }
    }

    fn process(&mut self, now: Instant) {
        while let Some(e) = self.messenger.poll_event() {
            self.streams.handle_messenger_event(&e);
            match e {
                MsgEvent::Received(m) => self.streams.handle_message(m),
                MsgEvent::Dropped(err) => tracing::debug!(error = %err, "exit dropped inbound data"),
                MsgEvent::Failed { reason, .. } => tracing::debug!(%reason, "exit reply failed"),
                MsgEvent::Delivered(_) => {}
            }
        }
        while let Some(a) = self.streams.poll_action() {
            match a {
                ExitAction::Connect { key, host, port } => {
                    self.stats.streams_opened += 1;
                    tokio::spawn(connect(
                        key,
                        host,
                        port,
                        self.config.policy.clone(),
                        Duration::from_millis(self.config.connect_timeout_ms),
                        self.events.clone(),
                    ));
                }
                ExitAction::Write { key, data } => {
                    self.stats.bytes_out += data.len() as u64;
                    if let Some(c) = self.conns.get(&key) {
                        let _ = c.writer.send(WriteCmd::Data(data));
                    }
                }
                ExitAction::ShutdownWrite { key } => {
                    if let Some(c) = self.conns.get(&key) {
                        let _ = c.writer.send(WriteCmd::Shutdown);
                    }
                }
                ExitAction::Abort { key } => {
                    self.conns.remove(&key);
                }
                ExitAction::ReadReady { key } => self.give_credit(&key),
            }
        }
        let _ = now;
    }

    pub(crate) fn handle_tcp(&mut self, now: Instant, ev: TcpEvent) {
        match ev {
            TcpEvent::Connected { key, writer, credit } => {
                self.conns.insert(key, Conn { writer, credit });
                self.streams.connected(&mut self.messenger, now, key);
                self.give_credit(&key);
            }
            TcpEvent::ConnectFailed { key, reason } => {
                if reason.contains("exit policy") {
                    self.stats.policy_denials += 1;
                } else {
                    self.stats.connect_failures += 1;
                }
                self.streams.connect_failed(&mut self.messenger, now, key, &reason);
            }
            TcpEvent::Read { key, data } => {
                self.stats.bytes_in += data.len() as u64;
                self.streams.read(&mut self.messenger, now, key, &data);
                self.give_credit(&key);
            }
            TcpEvent::Eof { key, error } => {
                self.streams.eof(&mut self.messenger, now, key, error);
            }
        }
        self.process(now);
    }
}

async fn connect(
    key: ExitKey,
    host: String,
    port: u16,
    policy: ExitPolicy,
    timeout: Duration,
    events: mpsc::Sender<Event>,
) {
    let report = |e: TcpEvent| {
        let events = events.clone();
        async move {
            let _ = events.send(Event::Tcp(e)).await;
        }
    };
    let addrs = match tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), port))).await {
        Ok(Ok(a)) => a.collect::<Vec<_>>(),
        Ok(Err(e)) => {
            return report(TcpEvent::ConnectFailed { key, reason: format!("cannot resolve {host}: {e}") }).await;
        }
        Err(_) => return report(TcpEvent::ConnectFailed { key, reason: format!("resolving {host} timed out") }).await,
    };
    let mut last = format!("{host} has no addresses");
    let mut stream = None;
    for addr in addrs {
        if let Err(denied) = policy.check(addr.ip(), port) {
            last = denied.to_string();
            continue;
        }
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(e)) => last = format!("connecting to {addr}: {e}"),
            Err(_) => last = format!("connecting to {addr} timed out"),
        }
    }
    let Some(stream) = stream else {
        return report(TcpEvent::ConnectFailed { key, reason: last }).await;
    };
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let (writer, mut wrx) = mpsc::unbounded_channel::<WriteCmd>();
    let (credit, mut crx) = mpsc::channel::<()>(1);
    report(TcpEvent::Connected { key, writer, credit }).await;
    let wevents = events.clone();
    tokio::spawn(async move {
        while let Some(cmd) = wrx.recv().await {
            let r = match cmd {
                WriteCmd::Data(d) => w.write_all(&d).await,
                WriteCmd::Shutdown => w.shutdown().await,
            };
            if let Err(e) = r {
                let _ =
                    wevents.send(Event::Tcp(TcpEvent::Eof { key, error: Some(format!("write failed: {e}")) })).await;
                return;
            }
        }
    });
    let mut buf = vec![0u8; mixnet_core::stream::MAX_CHUNK];
    while crx.recv().await.is_some() {
        match r.read(&mut buf).await {
            Ok(0) => return report(TcpEvent::Eof { key, error: None }).await,
            Ok(n) => report(TcpEvent::Read { key, data: buf[..n].to_vec() }).await,
            Err(e) => return report(TcpEvent::Eof { key, error: Some(format!("read failed: {e}")) }).await,
        }
    }
}
