//! A native mixnet client: the core's `Messenger`, `ClientSession` and `Streams`
//! driven over a real WebSocket with tokio. Used by the integration tests, by
//! services running on localnet, and as a reference for the browser driver.
//!
//! It sends real packets as soon as they are built (no Poisson streams or cover
//! traffic: that is the browser client's job).

mod transport;

use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use mixnet_core::address::Recipient;
use mixnet_core::client::{Client as CoreClient, ClientEvent as CoreEvent, ConnectionState, LoopixConfig};
use mixnet_core::message::{MessageId, MessengerConfig, MessengerStats, ReceivedMessage, SenderTag};
use mixnet_core::sphinx::NodeSecret;
use mixnet_core::stream::{StreamEvent, StreamId, Streams};
use mixnet_core::topology::{Freshness, Routes, Topology, directory_key};
use nodenet::directory::DirectoryClient;
use rand_chacha::ChaCha20Rng;
use rand_core::Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{mpsc, oneshot};
use transport::{Conn, Target};

pub use transport::Transport;

/// How to reach the network.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Directory URL.
    pub directory: String,
    /// The directory's base58 key.
    pub directory_key: String,
    /// Which gateway (identity, base58); the first offering the transport if unset.
    pub gateway: Option<String>,
    /// WebSocket (default) or WebTransport.
    pub transport: Transport,
    /// Messenger tunables (mode, delays, retransmission…).
    pub messenger: MessengerConfig,
    /// Traffic shaping (default: send immediately, no cover — this client serves
    /// tests and services; browsers use the Loopix defaults).
    pub loopix: LoopixConfig,
    /// How often the topology is re-fetched.
    pub topology_refresh: Duration,
    /// 32-byte seed of the long-term identity (random if unset).
    pub identity_seed: Option<[u8; 32]>,
    /// 32-byte X25519 encryption secret (random if unset).
    pub encryption_seed: Option<[u8; 32]>,
}

impl ClientConfig {
    /// Defaults for the given directory.
    pub fn new(directory: &str, directory_key: &str) -> Self {
        Self {
            directory: directory.into(),
            directory_key: directory_key.into(),
            gateway: None,
            transport: Transport::WebSocket,
            messenger: MessengerConfig::default(),
            loopix: LoopixConfig::immediate(),
            topology_refresh: Duration::from_secs(30),
            identity_seed: None,
            encryption_seed: None,
        }
    }
}

/// Why the client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Directory or topology problem.
    #[error("directory: {0}")]
    Directory(String),
    /// No usable gateway.
    #[error("no gateway: {0}")]
    NoGateway(String),
    /// Connecting or the session failed.
    #[error("gateway connection: {0}")]
    Connect(String),
    /// The messenger refused.
    #[error(transparent)]
    Send(#[from] mixnet_core::message::SendError),
    /// A stream failed to open.
    #[error("stream: {0}")]
    Stream(String),
    /// The client was shut down.
    #[error("client stopped")]
    Stopped,
}

enum Cmd {
    Send(Recipient, Vec<u8>, u16, oneshot::Sender<Result<MessageId, ClientError>>),
    Reply(SenderTag, Vec<u8>, oneshot::Sender<Result<MessageId, ClientError>>),
    Open(Recipient, String, u16, oneshot::Sender<Result<MixStream, ClientError>>),
    Write(StreamId, Vec<u8>),
    Close(StreamId),
    Stats(oneshot::Sender<MessengerStats>),
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A message (not stream traffic).
    Received(ReceivedMessage),
    /// A message was acknowledged.
    Delivered(MessageId),
    /// A message was given up.
    Failed(MessageId, String),
    /// The gateway connection is up (stored deliveries follow).
    Connected,
    /// The gateway connection dropped; the client reconnects.
    Disconnected(String),
}

/// A running client.
pub struct Client {
    /// Our address.
    pub address: Recipient,
    cmd: mpsc::UnboundedSender<Cmd>,
    events: mpsc::UnboundedReceiver<ClientEvent>,
    /// Events read while waiting for something else, so `recv` and `delivered`
    /// do not lose each other's events.
    received: std::collections::VecDeque<ReceivedMessage>,
    outcomes: HashMap<MessageId, Option<String>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The signed topology, verified, and refused if older than the one in use or expired.
async fn fetch_topology(dir: &DirectoryClient, freshness: &mut Freshness) -> Result<Topology, ClientError> {
    let t = dir.topology().await.map_err(|e| ClientError::Directory(e.to_string()))?;
    freshness.check(&t, nodenet::unix_ms()).map_err(|e| ClientError::Directory(e.to_string()))?;
    Ok(t)
}

fn pick_gateway(
    t: &Topology,
    wanted: Option<&str>,
    transport: Transport,
) -> Result<(Recipient, [u8; 32], Target), ClientError> {
    let g = match wanted {
        Some(id) => {
            let key =
                mixnet_core::address::decode_key(id, "gateway").map_err(|e| ClientError::NoGateway(e.to_string()))?;
            t.gateway(&key).ok_or_else(|| ClientError::NoGateway(format!("{id} is not in the topology")))?
        }
        None => t
            .gateways
            .iter()
            .find(|g| Target::of(g, transport).is_ok())
            .ok_or_else(|| ClientError::NoGateway(format!("no gateway offers {transport:?}")))?,
    };
    let target = Target::of(g, transport).map_err(ClientError::NoGateway)?;
    let placeholder = Recipient { identity: [0; 32], encryption: [0; 32], gateway: g.identity.0 };
    Ok((placeholder, g.noise_key.0, target))
}

impl Client {
    /// Fetches the topology, connects to a gateway and authenticates.
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        let key = directory_key(&config.directory_key).map_err(|e| ClientError::Directory(e.to_string()))?;
        let dir = DirectoryClient::new(&config.directory, key);
        let mut freshness = Freshness::new();
        let topology = fetch_topology(&dir, &mut freshness).await?;
        let (gw, gateway_key, _) = pick_gateway(&topology, config.gateway.as_deref(), config.transport)?;
        let mut rng = nodenet::os_rng();
        let seed = config.identity_seed.unwrap_or_else(|| {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            s
        });
        let signing = NodeSecret::from_bytes(seed);
        let encryption = NodeSecret::from_bytes(config.encryption_seed.unwrap_or_else(|| {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            s
        }));
        let mut client = CoreClient::new(
            config.messenger.clone(),
            config.loopix.clone(),
            signing,
            encryption,
            gw.gateway,
            gateway_key,
            nodenet::os_rng(),
            nodenet::os_rng(),
        );
        client.set_routes(Routes::new(topology.clone()).map_err(|e| ClientError::Directory(e.to_string()))?);
        let address = client.self_address();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            config,
            dir,
            freshness,
            rng,
            client,
            streams: Streams::default(),
            stream_tx: HashMap::new(),
            pending_open: HashMap::new(),
            events: ev_tx,
            start: tokio::time::Instant::now(),
            cmd_loopback: cmd_tx.clone(),
        };
        let task = tokio::spawn(driver.run(cmd_rx));
        // wait for the first authentication
        let mut early = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ev_rx.recv()).await {
                Ok(Some(ClientEvent::Connected)) => {
                    early.push(ClientEvent::Connected);
                    break;
                }
                Ok(Some(ClientEvent::Disconnected(reason))) => {
                    task.abort();
                    return Err(ClientError::Connect(reason));
                }
                Ok(Some(other)) => early.push(other),
                Ok(None) => return Err(ClientError::Stopped),
                Err(_) => {
                    task.abort();
                    return Err(ClientError::Connect("gateway did not accept us within 10 s".into()));
                }
            }
        }
        // keep what arrived before `connect` returned
        let (replay_tx, replay_rx) = mpsc::unbounded_channel();
        for e in early {
            let _ = replay_tx.send(e);
        }
        tokio::spawn(async move {
            while let Some(e) = ev_rx.recv().await {
                if replay_tx.send(e).is_err() {
                    return;
                }
            }
        });
        Ok(Self {
            address,
            cmd: cmd_tx,
            events: replay_rx,
            received: Default::default(),
            outcomes: HashMap::new(),
            task,
        })
    }

    async fn ask<T>(&self, f: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(f(tx)).map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)
    }

    /// Sends `data` to `to`, attaching `reply_surbs` SURBs for an anonymous answer.
    pub async fn send(&self, to: Recipient, data: Vec<u8>, reply_surbs: u16) -> Result<MessageId, ClientError> {
        self.ask(|tx| Cmd::Send(to, data, reply_surbs, tx)).await?
    }

    /// Answers an anonymous sender through its SURBs.
    pub async fn reply(&self, tag: SenderTag, data: Vec<u8>) -> Result<MessageId, ClientError> {
        self.ask(|tx| Cmd::Reply(tag, data, tx)).await?
    }

    /// Opens a TCP stream to `host:port` through `exit`.
    pub async fn open_stream(&self, exit: Recipient, host: &str, port: u16) -> Result<MixStream, ClientError> {
        self.ask(|tx| Cmd::Open(exit, host.to_owned(), port, tx)).await?
    }

    /// The messenger's counters.
    pub async fn stats(&self) -> Result<MessengerStats, ClientError> {
        self.ask(Cmd::Stats).await
    }

    /// The next event (messages and outcomes already buffered by `recv` /
    /// `delivered` are not repeated here).
    pub async fn next_event(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    fn keep(&mut self, e: ClientEvent) {
        match e {
            ClientEvent::Received(m) => self.received.push_back(m),
            ClientEvent::Delivered(id) => {
                self.outcomes.insert(id, None);
            }
            ClientEvent::Failed(id, why) => {
                self.outcomes.insert(id, Some(why));
            }
            ClientEvent::Connected | ClientEvent::Disconnected(_) => {}
        }
    }

    /// The next received message, waiting at most `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Option<ReceivedMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(m) = self.received.pop_front() {
                return Some(m);
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => self.keep(e),
                _ => return None,
            }
        }
    }

    /// Waits until message `id` is acknowledged (true) or fails / times out (false).
    pub async fn delivered(&mut self, id: MessageId, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(outcome) = self.outcomes.remove(&id) {
                return outcome.is_none();
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => self.keep(e),
                _ => return false,
            }
        }
    }
}

enum StreamItem {
    Data(Vec<u8>),
    End(Option<String>),
}

/// A TCP stream through an exit: `AsyncRead + AsyncWrite`.
pub struct MixStream {
    id: StreamId,
    cmd: mpsc::UnboundedSender<Cmd>,
    rx: mpsc::UnboundedReceiver<StreamItem>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl AsyncRead for MixStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        loop {
            if self.pos < self.buf.len() {
                let n = out.remaining().min(self.buf.len() - self.pos);
                let pos = self.pos;
                out.put_slice(&self.buf[pos..pos + n]);
                self.pos += n;
                return Poll::Ready(Ok(()));
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(StreamItem::Data(d))) => {
                    self.buf = d;
                    self.pos = 0;
                }
                Poll::Ready(Some(StreamItem::End(None))) | Poll::Ready(None) => self.done = true,
                Poll::Ready(Some(StreamItem::End(Some(e)))) => {
                    self.done = true;
                    return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, e)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for MixStream {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.cmd.send(Cmd::Write(self.id, data.to_vec())) {
            Ok(()) => Poll::Ready(Ok(data.len())),
            Err(_) => Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client stopped"))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let _ = self.cmd.send(Cmd::Close(self.id));
        Poll::Ready(Ok(()))
    }
}

struct Driver {
    config: ClientConfig,
    dir: DirectoryClient,
    freshness: Freshness,
    rng: ChaCha20Rng,
    client: CoreClient<ChaCha20Rng>,
    streams: Streams,
    stream_tx: HashMap<StreamId, mpsc::UnboundedSender<StreamItem>>,
    pending_open: HashMap<StreamId, (oneshot::Sender<Result<MixStream, ClientError>>, MixStream)>,
    events: mpsc::UnboundedSender<ClientEvent>,
    start: tokio::time::Instant,
    /// Given to streams so their writes reach this driver.
    cmd_loopback: mpsc::UnboundedSender<Cmd>,
}

impl Driver {
    fn now(&self) -> mixnet_core::time::Instant {
        nodenet::core_now(self.start)
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.client.poll_timeout().map(|t| self.start + Duration::from_micros(t.as_micros()))
    }

    /// Waits (handling commands and timers) until the core wants a connection; `false`
    /// when the application went away.
    async fn wait_for_connect(&mut self, cmds: &mut mpsc::UnboundedReceiver<Cmd>) -> bool {
        loop {
            let now = self.now();
            if self.client.wants_connection(now) {
                return true;
            }
            let deadline = self.deadline();
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.handle_cmd(c),
                    None => return false,
                },
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                    let now = self.now();
                    self.client.handle_timeout(now);
                }
            }
            self.pump_events();
        }
    }

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
        loop {
            if !self.wait_for_connect(&mut cmds).await {
                return;
            }
            // look the gateway up again on every connection: its URL or key may have changed
            let gateway = mixnet_core::address::encode_key(&self.client.self_address().gateway);
            let found = fetch_topology(&self.dir, &mut self.freshness).await.and_then(|t| {
                let (_, key, target) = pick_gateway(&t, Some(&gateway), self.config.transport)?;
                Ok((t, key, target))
            });
            let (topology, key, target) = match found {
                Ok(f) => f,
                Err(e) => {
                    let now = self.now();
                    self.client.handle_disconnected(now, &e.to_string());
                    self.pump_events();
                    continue;
                }
            };
            self.client.set_gateway_key(key);
            if let Ok(r) = Routes::new(topology) {
                self.client.set_routes(r);
            }
            let result = match Conn::open(&target).await {
                Ok(conn) => self.session(conn, &mut cmds).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return,
                Err(reason) => {
                    let now = self.now();
                    self.client.handle_disconnected(now, &reason);
                    self.pump_events();
                }
            }
        }
    }

    /// Runs one gateway connection; `Ok` when the application went away.
    async fn session(&mut self, mut conn: Conn, cmds: &mut mpsc::UnboundedReceiver<Cmd>) -> Result<(), String> {
        let now = self.now();
        self.client.handle_connected(now);
        let mut refresh = tokio::time::interval(self.config.topology_refresh);
        refresh.tick().await;
        loop {
            while let Some(m) = self.client.poll_transmit() {
                conn.send(m).await?;
            }
            self.pump_events();
            if self.client.state() == ConnectionState::Disconnected {
                return Err("session ended".into());
            }
            let deadline = self.deadline();
            tokio::select! {
                msg = conn.recv() => {
                    let b = msg?;
                    let now = self.now();
                    self.client.handle_message(now, &b);
                },
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.handle_cmd(c),
                    None => return Ok(()),
                },
                _ = refresh.tick() => {
                    if let Ok(t) = fetch_topology(&self.dir, &mut self.freshness).await
                        && let Ok(r) = Routes::new(t)
                    {
                        self.client.set_routes(r);
                    }
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                    let now = self.now();
                    self.client.handle_timeout(now);
                }
            }
        }
    }

    fn handle_cmd(&mut self, c: Cmd) {
        let now = self.now();
        match c {
            Cmd::Send(to, data, surbs, reply) => {
                let _ = reply.send(self.client.send(now, to, &data, surbs).map_err(ClientError::from));
            }
            Cmd::Reply(tag, data, reply) => {
                let _ = reply.send(self.client.reply(now, tag, &data).map_err(ClientError::from));
            }
            Cmd::Open(exit, host, port, reply) => {
                let id = self.rng.next_u64();
                match self.streams.open(self.client.messenger_mut(), now, exit, &host, port, id) {
                    Ok(_) => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        self.stream_tx.insert(id, tx);
                        let stream =
                            MixStream { id, cmd: self.cmd_loopback.clone(), rx, buf: Vec::new(), pos: 0, done: false };
                        self.pending_open.insert(id, (reply, stream));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(ClientError::Stream(e.to_string())));
                    }
                }
            }
            Cmd::Write(id, data) => {
                if let Err(e) = self.streams.write(self.client.messenger_mut(), now, id, &data)
                    && let Some(tx) = self.stream_tx.remove(&id)
                {
                    let _ = tx.send(StreamItem::End(Some(e.to_string())));
                }
            }
            Cmd::Close(id) => {
                let _ = self.streams.close(self.client.messenger_mut(), now, id);
            }
            Cmd::Stats(reply) => {
                let _ = reply.send(self.client.stats().messenger);
            }
        }
        self.client.flush(now);
    }

    fn pump_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            let out = match e {
                CoreEvent::Message(m) => {
                    let now = self.now();
                    if self.streams.handle_message(self.client.messenger_mut(), now, &m) {
                        // credit from the exit may have let held data go
                        self.client.flush(now);
                        continue;
                    }
                    ClientEvent::Received(m)
                }
                CoreEvent::Delivered(id) => ClientEvent::Delivered(id),
                CoreEvent::Failed { id, reason } => ClientEvent::Failed(id, reason),
                CoreEvent::State(ConnectionState::Connected, _) => ClientEvent::Connected,
                CoreEvent::State(ConnectionState::Disconnected, reason) => {
                    ClientEvent::Disconnected(reason.unwrap_or_default())
                }
                CoreEvent::State(ConnectionState::Connecting, _) | CoreEvent::Handshake => continue,
                CoreEvent::Throttled(m) => {
                    tracing::debug!(%m, "throttled by the gateway");
                    continue;
                }
                CoreEvent::Dropped(e) => {
                    tracing::debug!(error = %e, "client dropped inbound data");
                    continue;
                }
            };
            let _ = self.events.send(out);
        }
        while let Some(e) = self.streams.poll_event() {
            match e {
                StreamEvent::Opened(id) => {
                    if let Some((reply, stream)) = self.pending_open.remove(&id) {
                        let _ = reply.send(Ok(stream));
                    }
                }
                StreamEvent::OpenFailed(id, reason) => {
                    self.stream_tx.remove(&id);
                    if let Some((reply, _)) = self.pending_open.remove(&id) {
                        let _ = reply.send(Err(ClientError::Stream(reason)));
                    }
                }
                StreamEvent::Data(id, data) => {
                    if let Some(tx) = self.stream_tx.get(&id) {
                        let _ = tx.send(StreamItem::Data(data));
                    }
                }
                StreamEvent::Closed(id, error) => {
                    if let Some(tx) = self.stream_tx.remove(&id) {
                        let _ = tx.send(StreamItem::End(error));
                    }
                }
            }
        }
    }
}
