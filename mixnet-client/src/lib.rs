//! The native mixnet client: the core's `Client` (messenger, session, Loopix
//! traffic) and its exit `Streams`, driven over a gateway's WebSocket or WebTransport
//! with tokio. The Rust SDK: [`Client::connect`], then [`Client::send`] /
//! [`Client::recv`] for messages, [`Client::reply`] for anonymous answers through
//! SURBs, and [`Client::open_stream`] for a TCP connection made by an exit
//! (`AsyncRead + AsyncWrite`). The `mixnet-client` binary wraps it: `send`, `listen`
//! and `socks5`, a SOCKS5/SOCKS4a proxy whose CONNECTs become exit streams
//! ([`socks`]).
//!
//! By default it sends real packets as soon as they are built, with no cover traffic
//! ([`LoopixConfig::immediate`]: what tests and services want); set
//! [`ClientConfig::loopix`] to `LoopixConfig::default()` for the Loopix rates the
//! browser client uses.

pub mod socks;
mod transport;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use mixnet_core::address::{ClientIdentity, Recipient};
pub use mixnet_core::client::LoopixConfig;
use mixnet_core::client::{Client as CoreClient, ClientEvent as CoreEvent, ConnectionState};
use mixnet_core::message::{MessageId, MessengerConfig, MessengerStats, ReceivedMessage, SenderTag};
use mixnet_core::stream::{OpenError, StreamError, StreamEvent, StreamId, Streams};
use mixnet_core::topology::{Freshness, GatewayChoiceError, Routes, Topology, TopologyError, directory_key};
use nodenet::directory::{DirectoryClient, DirectoryError};
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
    /// The long-term identity: the address and the gateway inbox across runs (random
    /// if unset). The same 64-byte form as the browser's `generateIdentity()`.
    pub identity: Option<ClientIdentity>,
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
            identity: None,
        }
    }
}

/// Why the client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The directory could not be reached, refused, or sent a topology that does not
    /// verify.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The directory key is malformed, or the topology is unusable (older than the
    /// one held, expired, a layer empty).
    #[error("topology: {0}")]
    Topology(#[from] TopologyError),
    /// No usable gateway.
    #[error("no gateway: {0}")]
    NoGateway(#[from] GatewayChoiceError),
    /// Connecting or the session failed (the transport's or the gateway's words).
    #[error("gateway connection: {0}")]
    Connect(String),
    /// The messenger refused.
    #[error(transparent)]
    Send(#[from] mixnet_core::message::SendError),
    /// This client could not start a stream (unknown, already closed, or the
    /// messenger refused its first message).
    #[error("stream: {0}")]
    StreamRefused(#[from] StreamError),
    /// The exit could not open the stream: why (a code) and its words.
    #[error("stream: {0}")]
    OpenFailed(OpenError),
    /// Packets were still waiting to be sent when `close`'s time ran out.
    #[error("packets still waiting to be sent after {0:?}")]
    Undrained(Duration),
    /// The client was shut down.
    #[error("client stopped")]
    Stopped,
}

enum Request {
    Send(Recipient, Vec<u8>, u16, oneshot::Sender<Result<MessageId, ClientError>>),
    Reply(SenderTag, Vec<u8>, oneshot::Sender<Result<MessageId, ClientError>>),
    Open(Recipient, String, u16, oneshot::Sender<Result<MixStream, ClientError>>),
    Write(StreamId, Vec<u8>),
    Close(StreamId),
    /// The application dropped the stream before both directions finished.
    Reset(StreamId),
    Stats(oneshot::Sender<MessengerStats>),
    Exits(oneshot::Sender<Vec<Recipient>>),
    /// Answered once nothing waits to be sent (packets, owed acknowledgements).
    Drain(oneshot::Sender<()>),
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
    handle: ClientHandle,
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
    let t = dir.topology().await?;
    freshness.check(&t, nodenet::unix_ms())?;
    Ok(t)
}

/// The gateway's identity, its Noise key and where to connect.
fn pick_gateway(
    t: &Topology,
    wanted: Option<&str>,
    transport: Transport,
) -> Result<([u8; 32], [u8; 32], Target), ClientError> {
    let g = t.choose_gateway(wanted, transport.name(), |g| Target::of(g, transport).is_ok())?;
    let target = Target::of(g, transport).expect("choose_gateway checked that the gateway offers the transport");
    Ok((g.identity.0, g.noise_key.0, target))
}

impl Client {
    /// Fetches the topology, connects to a gateway and authenticates.
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        let key = directory_key(&config.directory_key)?;
        let dir = DirectoryClient::new(&config.directory, key);
        let mut freshness = Freshness::new();
        let topology = fetch_topology(&dir, &mut freshness).await?;
        let (gateway, gateway_key, _) = pick_gateway(&topology, config.gateway.as_deref(), config.transport)?;
        let mut rng = nodenet::os_rng();
        let (signing, encryption) = match &config.identity {
            Some(id) => id.secrets(),
            None => ClientIdentity::generate(&mut rng).secrets(),
        };
        let client = CoreClient::new(
            config.messenger.clone(),
            config.loopix.clone(),
            signing,
            encryption,
            gateway,
            gateway_key,
            nodenet::os_rng(),
            nodenet::os_rng(),
        );
        let address = client.self_address();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
        let mut driver = ClientTask {
            config,
            dir,
            freshness,
            rng,
            client,
            exits: Vec::new(),
            streams: Streams::default(),
            stream_tx: HashMap::new(),
            gates: Gates::default(),
            pending_open: HashMap::new(),
            events: ev_tx,
            start: tokio::time::Instant::now(),
            cmd_loopback: cmd_tx.clone(),
            drain_waiters: Vec::new(),
        };
        driver.set_topology(topology)?;
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
            handle: ClientHandle { cmd: cmd_tx },
            events: replay_rx,
            received: Default::default(),
            outcomes: HashMap::new(),
            task,
        })
    }

    /// A handle for sending and opening streams from other tasks.
    pub fn handle(&self) -> ClientHandle {
        self.handle.clone()
    }

    /// Sends `data` to `to`, attaching `reply_surbs` SURBs for an anonymous answer.
    pub async fn send(&self, to: Recipient, data: Vec<u8>, reply_surbs: u16) -> Result<MessageId, ClientError> {
        self.handle.send(to, data, reply_surbs).await
    }

    /// Answers an anonymous sender through its SURBs.
    pub async fn reply(&self, tag: SenderTag, data: Vec<u8>) -> Result<MessageId, ClientError> {
        self.handle.reply(tag, data).await
    }

    /// Opens a TCP stream to `host:port` through `exit`.
    pub async fn open_stream(&self, exit: Recipient, host: &str, port: u16) -> Result<MixStream, ClientError> {
        self.handle.open_stream(exit, host, port).await
    }

    /// The exits the topology in force offers (addresses of their services).
    pub async fn exits(&self) -> Result<Vec<Recipient>, ClientError> {
        self.handle.exits().await
    }

    /// The messenger's counters.
    pub async fn stats(&self) -> Result<MessengerStats, ClientError> {
        self.handle.stats().await
    }

    /// Stops gracefully: waits (at most `timeout`) until every packet built so far has
    /// gone to the gateway and the acknowledgements we owe for replies received have
    /// left, so no replier is left retransmitting to a client that is gone.
    pub async fn close(self, timeout: Duration) -> Result<(), ClientError> {
        match tokio::time::timeout(timeout, self.handle.ask(Request::Drain)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Undrained(timeout)),
        }
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

/// A cloneable handle on a running [`Client`]: sends, replies and opens streams from
/// any task (events and received messages stay with the `Client`).
#[derive(Clone)]
pub struct ClientHandle {
    cmd: mpsc::UnboundedSender<Request>,
}

impl ClientHandle {
    async fn ask<T>(&self, f: impl FnOnce(oneshot::Sender<T>) -> Request) -> Result<T, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(f(tx)).map_err(|_| ClientError::Stopped)?;
        rx.await.map_err(|_| ClientError::Stopped)
    }

    /// Sends `data` to `to`, attaching `reply_surbs` SURBs for an anonymous answer.
    pub async fn send(&self, to: Recipient, data: Vec<u8>, reply_surbs: u16) -> Result<MessageId, ClientError> {
        self.ask(|tx| Request::Send(to, data, reply_surbs, tx)).await?
    }

    /// Answers an anonymous sender through its SURBs.
    pub async fn reply(&self, tag: SenderTag, data: Vec<u8>) -> Result<MessageId, ClientError> {
        self.ask(|tx| Request::Reply(tag, data, tx)).await?
    }

    /// Opens a TCP stream to `host:port` through `exit`.
    pub async fn open_stream(&self, exit: Recipient, host: &str, port: u16) -> Result<MixStream, ClientError> {
        self.ask(|tx| Request::Open(exit, host.to_owned(), port, tx)).await?
    }

    /// The exits the topology in force offers (addresses of their services).
    pub async fn exits(&self) -> Result<Vec<Recipient>, ClientError> {
        self.ask(Request::Exits).await
    }

    /// The messenger's counters.
    pub async fn stats(&self) -> Result<MessengerStats, ClientError> {
        self.ask(Request::Stats).await
    }
}

/// Bytes a [`MixStream`] may have written that have not yet left for the exit (in
/// the driver's queue or waiting for the stream's window); writes wait beyond it.
pub const MAX_UNSENT: usize = 1 << 20;

/// The largest piece of one `poll_write`: memory per stream stays under
/// [`MAX_UNSENT`] plus this.
const MAX_WRITE: usize = 64 * 1024;

/// Shared by a [`MixStream`] (which adds what it writes) and the driver (which takes
/// off what has left): backpressure from the stream's window to the writer.
#[derive(Default)]
struct WriteGate {
    outstanding: std::sync::atomic::AtomicUsize,
    /// The stream is gone (reset, failed, or the client stopped): writes fail.
    closed: std::sync::atomic::AtomicBool,
    waker: futures_util::task::AtomicWaker,
}

impl WriteGate {
    fn close(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::Release);
        self.waker.wake();
    }
}

/// The driver's side of the gates: each stream's gate and the bytes it last saw
/// held in the stream's window queue. Dropped with the driver: writers are released.
#[derive(Default)]
struct Gates(HashMap<StreamId, (Arc<WriteGate>, usize)>);

impl Drop for Gates {
    fn drop(&mut self) {
        for (gate, _) in self.0.values() {
            gate.close();
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
    cmd: mpsc::UnboundedSender<Request>,
    rx: mpsc::UnboundedReceiver<StreamItem>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
    /// Our write side was shut down.
    shut: bool,
    gate: Arc<WriteGate>,
}

impl Drop for MixStream {
    fn drop(&mut self) {
        if !(self.done && self.shut) {
            let _ = self.cmd.send(Request::Reset(self.id));
        }
    }
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
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        use std::sync::atomic::Ordering;
        let gate = &self.gate;
        let ready = || gate.closed.load(Ordering::Acquire) || gate.outstanding.load(Ordering::Acquire) < MAX_UNSENT;
        if !ready() {
            gate.waker.register(cx.waker());
            if !ready() {
                return Poll::Pending;
            }
        }
        if gate.closed.load(Ordering::Acquire) {
            return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the stream is closed")));
        }
        let n = data.len().min(MAX_WRITE);
        gate.outstanding.fetch_add(n, Ordering::AcqRel);
        match self.cmd.send(Request::Write(self.id, data[..n].to_vec())) {
            Ok(()) => Poll::Ready(Ok(n)),
            Err(_) => Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client stopped"))),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.shut {
            self.shut = true;
            let _ = self.cmd.send(Request::Close(self.id));
        }
        Poll::Ready(Ok(()))
    }
}

struct ClientTask {
    config: ClientConfig,
    dir: DirectoryClient,
    freshness: Freshness,
    rng: ChaCha20Rng,
    client: CoreClient<ChaCha20Rng>,
    /// The exits of the topology in force.
    exits: Vec<Recipient>,
    streams: Streams,
    stream_tx: HashMap<StreamId, mpsc::UnboundedSender<StreamItem>>,
    gates: Gates,
    pending_open: HashMap<StreamId, (oneshot::Sender<Result<MixStream, ClientError>>, MixStream)>,
    events: mpsc::UnboundedSender<ClientEvent>,
    start: tokio::time::Instant,
    /// Given to streams so their writes reach this driver.
    cmd_loopback: mpsc::UnboundedSender<Request>,
    /// `Client::close` calls waiting for everything to leave.
    drain_waiters: Vec<oneshot::Sender<()>>,
}

impl ClientTask {
    fn now(&self) -> mixnet_core::time::Instant {
        nodenet::core_now(self.start)
    }

    /// Routes from `topology`, and its exits; an unusable one is refused and the
    /// last good one kept.
    fn set_topology(&mut self, topology: Topology) -> Result<(), TopologyError> {
        let exits = topology.exits().map(|(_, r)| r).collect();
        self.client.set_routes(Routes::new(topology)?);
        self.exits = exits;
        Ok(())
    }

    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.client.poll_timeout().map(|t| self.start + Duration::from_micros(t.as_micros()))
    }

    /// Waits (handling commands and timers) until the core wants a connection; `false`
    /// when the application went away.
    async fn wait_for_connect(&mut self, cmds: &mut mpsc::UnboundedReceiver<Request>) -> bool {
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

    async fn run(mut self, mut cmds: mpsc::UnboundedReceiver<Request>) {
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
            // a refused topology keeps the routes in force
            let _ = self.set_topology(topology);
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
    async fn session(&mut self, mut conn: Conn, cmds: &mut mpsc::UnboundedReceiver<Request>) -> Result<(), String> {
        let now = self.now();
        self.client.handle_connected(now);
        let mut refresh = tokio::time::interval(self.config.topology_refresh);
        refresh.tick().await;
        loop {
            while let Some(m) = self.client.poll_transmit() {
                conn.send(m).await?;
            }
            self.pump_events();
            let m = self.client.messenger();
            if !self.drain_waiters.is_empty() && !m.has_queued() && !m.owes_acks() {
                for w in self.drain_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
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
                    if let Ok(t) = fetch_topology(&self.dir, &mut self.freshness).await {
                        let _ = self.set_topology(t);
                    }
                }
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                    let now = self.now();
                    self.client.handle_timeout(now);
                }
            }
        }
    }

    fn handle_cmd(&mut self, c: Request) {
        let now = self.now();
        match c {
            Request::Send(to, data, surbs, reply) => {
                let _ = reply.send(self.client.send(now, to, &data, surbs).map_err(ClientError::from));
            }
            Request::Reply(tag, data, reply) => {
                let _ = reply.send(self.client.reply(now, tag, &data).map_err(ClientError::from));
            }
            Request::Open(exit, host, port, reply) => {
                let id = self.rng.next_u64();
                match self.streams.with(&mut self.client, now).open(exit, &host, port, id) {
                    Ok(_) => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        self.stream_tx.insert(id, tx);
                        let gate = Arc::new(WriteGate::default());
                        self.gates.0.insert(id, (gate.clone(), 0));
                        let stream = MixStream {
                            id,
                            cmd: self.cmd_loopback.clone(),
                            rx,
                            buf: Vec::new(),
                            pos: 0,
                            done: false,
                            shut: false,
                            gate,
                        };
                        self.pending_open.insert(id, (reply, stream));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(ClientError::StreamRefused(e)));
                    }
                }
            }
            Request::Write(id, data) => {
                if let Some((_, held)) = self.gates.0.get_mut(&id) {
                    *held += data.len();
                }
                if let Err(e) = self.streams.with(&mut self.client, now).write(id, &data) {
                    if let Some(tx) = self.stream_tx.remove(&id) {
                        let _ = tx.send(StreamItem::End(Some(e.to_string())));
                    }
                    // the stream may outlive a refused write (the messenger's refusal):
                    // its writer is done all the same
                    if let Some((gate, _)) = self.gates.0.remove(&id) {
                        gate.close();
                    }
                }
            }
            Request::Close(id) => {
                let _ = self.streams.with(&mut self.client, now).close(id);
            }
            Request::Reset(id) => {
                // its gate goes with the stream (settle_gates)
                self.stream_tx.remove(&id);
                let _ = self.streams.with(&mut self.client, now).reset(id, "closed by the application");
            }
            Request::Stats(reply) => {
                let _ = reply.send(self.client.stats().messenger);
            }
            Request::Exits(reply) => {
                let _ = reply.send(self.exits.clone());
            }
            Request::Drain(reply) => self.drain_waiters.push(reply),
        }
        self.settle_gates();
    }

    /// Takes off each stream's gate what has left its window queue since last time,
    /// releasing writers that were over [`MAX_UNSENT`].
    fn settle_gates(&mut self) {
        use std::sync::atomic::Ordering;
        let streams = &self.streams;
        self.gates.0.retain(|id, (gate, _)| {
            // a stream that is gone (finished, reset, failed) takes no more writes
            let open = streams.contains(*id);
            if !open {
                gate.close();
            }
            open
        });
        for (id, (gate, held)) in &mut self.gates.0 {
            let now_held = self.streams.unsent_bytes(*id);
            if now_held < *held {
                let left = *held - now_held;
                *held = now_held;
                if gate.outstanding.fetch_sub(left, Ordering::AcqRel).saturating_sub(left) < MAX_UNSENT {
                    gate.waker.wake();
                }
            }
        }
    }

    fn pump_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            let out = match e {
                CoreEvent::Message(m) => {
                    let now = self.now();
                    if self.streams.with(&mut self.client, now).handle_message(&m) {
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
                        let _ = reply.send(Err(ClientError::OpenFailed(reason)));
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
        self.settle_gates();
    }
}
