//! The gateway's event loop: feeds the core `Gateway` (and the exit service) with
//! what arrives on channels, carries out their outputs, arms their timers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mixnet_core::gateway::{ConnId, Gateway, GatewayAction, GatewayConfig as CoreConfig, GatewayStats, Storage};
use mixnet_core::mix::NodeKeys;
use mixnet_core::sphinx::{NodeAddress, NodeSecret};
use mixnet_core::topology::Topology;
use nodenet::link::{LinkStats, Links};
use nodenet::metrics::{Counter, Exposition};
use nodenet::replay::ReplayStore;
use rand_chacha::ChaCha20Rng;
use tokio::sync::{mpsc, oneshot};

use crate::exit::{ExitService, TcpEvent};
use crate::inbox::{self, InboxLimits, InboxReply};
use crate::{ExitConfig, GatewayConfig};
use mixnet_core::exit::ExitStats;

/// Driver-level counters (the protocol's own are `GatewayStats`).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Link counters.
    pub links: std::sync::Arc<LinkStats>,
    /// WebSocket connections accepted.
    pub ws_connections: Counter,
    /// WebSocket messages that were not binary, or over the size limit; WebTransport
    /// streams that ended inside a message.
    pub ws_bad_messages: Counter,
    /// WebTransport sessions with their stream open.
    pub wt_connections: Counter,
    /// WebTransport sessions that failed before their stream was open.
    pub wt_failed_sessions: Counter,
    /// Node packets dropped because the gateway was overloaded.
    pub dropped_overload: Counter,
    /// WebSocket upgrades that did not complete in time.
    pub ws_upgrade_timeouts: Counter,
}

/// A message for a client's socket task.
pub(crate) enum WsOut {
    Binary(Vec<u8>),
    Close(u16, String),
}

/// Closes a connection ahead of whatever is queued for it (a client too slow to
/// drain its queue would never reach a close put at the end).
#[derive(Default)]
pub(crate) struct Kill {
    reason: std::sync::Mutex<Option<(u16, String)>>,
    notify: tokio::sync::Notify,
}

impl Kill {
    fn kill(&self, code: u16, reason: String) {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some((code, reason));
        self.notify.notify_waiters();
    }

    /// The next thing a connection's writer does: the kill's close first, else what
    /// is queued; `None` once the queue is closed.
    pub(crate) async fn next(&self, queue: &mut mpsc::Receiver<WsOut>) -> Option<WsOut> {
        tokio::select! {
            biased;
            (code, reason) = self.killed() => Some(WsOut::Close(code, reason)),
            out = queue.recv() => out,
        }
    }

    /// Waits until [`Kill::kill`] (every waiter wakes); returns the code and reason.
    pub(crate) async fn killed(&self) -> (u16, String) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(r) = self.reason.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                return r;
            }
            notified.await;
        }
    }
}

/// A client connection's way out: a WebSocket sink, or a WebTransport stream.
pub(crate) trait ClientWriter: Send + 'static {
    /// Writes one session message; `false` if the connection is gone.
    fn send(&mut self, message: Vec<u8>) -> impl Future<Output = bool> + Send;
    /// Tells the client why (4000 + `code`, `reason`) and closes.
    fn close(self, code: u16, reason: String) -> impl Future<Output = ()> + Send;
}

/// Writes what the actor queues for one connection until it closes, or the kill
/// closes it: the one writer loop of both transports.
pub(crate) async fn write_loop(mut writer: impl ClientWriter, closing: Arc<Kill>, mut queue: mpsc::Receiver<WsOut>) {
    loop {
        let Some(out) = closing.next(&mut queue).await else { return };
        match out {
            WsOut::Binary(b) => {
                // a client that stops reading blocks this write: the kill ends it
                let sent = tokio::select! {
                    biased;
                    _ = closing.killed() => continue,
                    sent = writer.send(b) => sent,
                };
                if !sent {
                    return;
                }
            }
            WsOut::Close(code, reason) => return writer.close(code, reason).await,
        }
    }
}

/// The actor's handle on a client connection's writer.
pub(crate) struct ClientTx {
    queue: mpsc::Sender<WsOut>,
    kill: Arc<Kill>,
}

/// A connection's writer side: the handle for the actor, and what the socket task
/// reads (queued messages, and the kill switch to watch first).
pub(crate) fn client_channel(size: usize) -> (ClientTx, mpsc::Receiver<WsOut>, Arc<Kill>) {
    let (queue, rx) = mpsc::channel(size.max(1));
    let kill = Arc::new(Kill::default());
    (ClientTx { queue, kill: kill.clone() }, rx, kill)
}

/// Everything the actor reacts to.
pub(crate) enum Event {
    Connected { conn: ConnId, tx: ClientTx },
    Message { conn: ConnId, data: Vec<u8> },
    Disconnected { conn: ConnId },
    NodePacket(Vec<u8>),
    Inbox(InboxReply),
    Rotate(u64, NodeSecret, NodeSecret),
    Topology(Topology),
    Tcp(TcpEvent),
    Metrics(oneshot::Sender<String>),
    Shutdown,
}

pub(crate) struct ExitKeys {
    pub(crate) identity: [u8; 32],
    pub(crate) encryption: NodeSecret,
}

pub(crate) struct Actor {
    gateway: Gateway<ChaCha20Rng>,
    start: tokio::time::Instant,
    conns: HashMap<ConnId, ClientTx>,
    links: Links,
    inbox: std::sync::mpsc::Sender<Storage>,
    metrics: std::sync::Arc<Metrics>,
    exit: Option<ExitService>,
    exit_identity: Option<[u8; 32]>,
    rx: mpsc::Receiver<Event>,
}

impl Actor {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        address: NodeAddress,
        noise: NodeSecret,
        keys: NodeKeys,
        core: CoreConfig,
        links: Links,
        metrics: std::sync::Arc<Metrics>,
        exit: Option<(ExitKeys, ExitConfig)>,
        replay: Option<std::sync::Arc<std::sync::Mutex<ReplayStore>>>,
        config: &GatewayConfig,
    ) -> Result<(Self, mpsc::Sender<Event>), String> {
        let (tx, rx) = mpsc::channel(65_536);
        let inbox_tx = tx.clone();
        let limits = InboxLimits { max_age: Duration::from_secs(config.inbox_max_age_secs) };
        let path = config.data_dir.as_ref().map(|d| d.join("inbox.sqlite"));
        let (inbox, known) = inbox::start(path.as_deref(), limits, replay, move |r| {
            let _ = inbox_tx.blocking_send(Event::Inbox(r));
        })?;
        let mut gateway = Gateway::new(core, address, noise, keys, nodenet::os_rng());
        tracing::info!(clients = known.len(), "inbox opened");
        gateway.restore_clients(known);
        let exit_identity = exit.as_ref().map(|(k, _)| k.identity);
        let exit = exit.map(|(keys, cfg)| {
            gateway.attach_local(keys.identity);
            ExitService::new(keys.identity, keys.encryption, address.0, cfg)
        });
        let actor = Self {
            gateway,
            start: tokio::time::Instant::now(),
            conns: HashMap::new(),
            links,
            inbox,
            metrics,
            exit,
            exit_identity,
            rx,
        };
        Ok((actor, tx))
    }

    fn now(&self) -> mixnet_core::time::Instant {
        nodenet::core_now(self.start)
    }

    pub(crate) async fn run(mut self) {
        loop {
            let deadline = [self.gateway.poll_timeout(), self.exit.as_ref().and_then(ExitService::poll_timeout)]
                .into_iter()
                .flatten()
                .min()
                .map(|t| self.start + Duration::from_micros(t.as_micros()));
            let (rx, exit) = (&mut self.rx, &mut self.exit);
            let event = tokio::select! {
                e = rx.recv() => match e {
                    Some(e) => Some(e),
                    None => return,
                },
                Some(e) = async { match exit { Some(x) => x.next_event().await, None => std::future::pending().await } } => Some(Event::Tcp(e)),
                _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => None,
            };
            let now = self.now();
            match event {
                Some(Event::Shutdown) => {
                    self.gateway.shutdown();
                    self.drain();
                    return;
                }
                Some(e) => self.handle(now, e),
                None => {
                    self.gateway.handle_timeout(now);
                    if let Some(x) = self.exit.as_mut() {
                        x.handle_timeout(now);
                    }
                }
            }
            self.drain();
        }
    }

    fn handle(&mut self, now: mixnet_core::time::Instant, event: Event) {
        match event {
            Event::Connected { conn, tx } => {
                self.conns.insert(conn, tx);
                self.gateway.handle_connect(now, conn);
            }
            Event::Message { conn, data } => self.gateway.handle_message(now, conn, &data),
            Event::Disconnected { conn } => {
                self.conns.remove(&conn);
                self.gateway.handle_disconnect(conn);
            }
            Event::NodePacket(p) => self.gateway.handle_node_packet(now, p),
            Event::Inbox(InboxReply::Stored(token, r)) => self.gateway.handle_stored(token, r),
            Event::Inbox(InboxReply::Loaded(conn, entries)) => self.gateway.handle_inbox(conn, entries),
            Event::Inbox(InboxReply::Deleted(client, up_to, n, bytes)) => {
                self.gateway.handle_deleted(client, up_to, n, bytes)
            }
            Event::Inbox(InboxReply::Expired(client, n, bytes)) => self.gateway.handle_expired(client, n, bytes),
            Event::Rotate(epoch, key, next) => {
                self.gateway.keys().rotate(epoch, key, Some(next));
                tracing::info!(epoch, "rotated Sphinx key");
            }
            Event::Topology(t) => {
                self.links.set_peers(&t);
                if let Some(x) = self.exit.as_mut() {
                    x.set_topology(&t);
                }
            }
            Event::Tcp(ev) => {
                if let Some(x) = self.exit.as_mut() {
                    x.handle_tcp(now, ev);
                }
            }
            Event::Metrics(reply) => {
                let _ = reply.send(self.render_metrics());
            }
            Event::Shutdown => {}
        }
    }

    /// Carries out outputs until both state machines are quiet.
    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(t) = self.gateway.poll_transmit() {
                progressed = true;
                self.links.send(t.first_hop, t.packet);
            }
            while let Some(o) = self.gateway.poll_action() {
                progressed = true;
                self.carry_out(o);
            }
            let now = self.now();
            if let Some(x) = self.exit.as_mut() {
                while let Some(t) = x.poll_transmit(now) {
                    progressed = true;
                    self.gateway.handle_local_packet(now, t);
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn carry_out(&mut self, o: GatewayAction) {
        match o {
            GatewayAction::ToClient { conn, message } => {
                if let Some(tx) = self.conns.get(&conn)
                    && tx.queue.try_send(WsOut::Binary(message)).is_err()
                {
                    // a client that does not read: the core closes it with a reason
                    self.gateway.handle_slow(conn);
                }
            }
            GatewayAction::Close { conn, code, reason } => {
                if let Some(tx) = self.conns.remove(&conn)
                    && let Err(mpsc::error::TrySendError::Full(WsOut::Close(code, reason))) =
                        tx.queue.try_send(WsOut::Close(code, reason))
                {
                    tx.kill.kill(code, reason);
                }
            }
            GatewayAction::Storage(request) => {
                let _ = self.inbox.send(request);
            }
            GatewayAction::LocalDeliver { client, delivery } => {
                let now = self.now();
                if Some(client) == self.exit_identity
                    && let Some(x) = self.exit.as_mut()
                {
                    x.handle_delivery(now, delivery);
                }
            }
        }
    }

    fn render_metrics(&self) -> String {
        let s: &GatewayStats = self.gateway.stats();
        let l = &self.metrics.links;
        let exit: ExitStats = self.exit.as_ref().map(|x| x.exit.stats().clone()).unwrap_or_default();
        let (surb_senders, surbs_held, surbs_dropped, buffered, replies) = self
            .exit
            .as_ref()
            .map(|x| {
                let m = x.exit.messenger();
                (
                    m.surb_senders(),
                    m.surbs_held(),
                    m.stats().surbs_dropped,
                    x.exit.buffered_bytes(),
                    x.exit.replies_in_flight(),
                )
            })
            .unwrap_or_default();
        let mut e = Exposition::default();
        e.counter("gateway_sessions_total", "Client sessions authenticated.", s.sessions_opened)
            .gauge("gateway_connections", "Client connections open.", self.gateway.connections() as f64)
            .labelled(
                "gateway_transport_connections_total",
                "Client connections accepted, by transport.",
                "transport",
                &[
                    ("websocket", self.metrics.ws_connections.get()),
                    ("webtransport", self.metrics.wt_connections.get()),
                ],
            )
            .counter(
                "gateway_webtransport_failed_total",
                "WebTransport sessions that failed before their stream was open (TLS, wrong path, no stream).",
                self.metrics.wt_failed_sessions.get(),
            )
            .counter("gateway_client_packets_total", "Packets from clients forwarded.", s.client_packets)
            .counter("gateway_final_hop_packets_total", "Packets accepted as final hop.", s.final_hop_packets)
            .counter("gateway_stored_total", "Deliveries stored in the inbox.", s.stored)
            .counter("gateway_pushed_total", "Deliveries pushed to clients.", s.pushed)
            .counter("gateway_acks_sent_total", "SURB-acks sent.", s.acks_sent)
            .gauge("gateway_clients", "Identities that keep an inbox here.", self.gateway.registered_clients() as f64)
            .gauge("gateway_inbox_entries", "Deliveries stored.", self.gateway.inbox_usage().0 as f64)
            .gauge("gateway_inbox_bytes", "Payload bytes stored.", self.gateway.inbox_usage().1 as f64)
            .counter(
                "gateway_clients_evicted_total",
                "Identities forgotten (with their inboxes) for new ones.",
                s.clients_evicted,
            )
            .labelled(
                "gateway_dropped_total",
                "Input dropped, by reason.",
                "reason",
                &[
                    ("throttled", s.throttled),
                    ("bad_client_message", s.bad_client_messages),
                    ("auth_failure", s.auth_failures),
                    ("replay", s.replays),
                    ("bad_node_packet", s.bad_node_packets),
                    ("store_failure", s.store_failures),
                    ("store_backlog", s.store_backlog),
                    ("unknown_destination", s.unknown_destination),
                    ("inbox_full_client", s.inbox_full_client),
                    ("inbox_full_total", s.inbox_full_total),
                    ("refused_connection", s.refused_connections),
                    ("overload", self.metrics.dropped_overload.get()),
                    ("ws_bad_message", self.metrics.ws_bad_messages.get()),
                    ("ws_upgrade_timeout", self.metrics.ws_upgrade_timeouts.get()),
                    ("slow_client", s.slow_clients),
                    ("link_queue_full", l.dropped_queue_full.get()),
                    ("unknown_next_hop", l.dropped_unknown_peer.get()),
                    ("link_error", l.dropped_link_error.get()),
                ],
            )
            .counter(
                "gateway_bad_frames_total",
                "Node link frames that failed to parse or decrypt.",
                l.bad_frames.get(),
            )
            .counter("exit_streams_total", "Exit streams requested.", exit.streams_opened)
            .gauge(
                "exit_streams_open",
                "Exit streams alive.",
                self.exit.as_ref().map_or(0, |x| x.exit.open_streams()) as f64,
            )
            .counter("exit_policy_denials_total", "Connections refused by the exit policy.", exit.policy_denials)
            .counter("exit_connect_failures_total", "Connections that failed.", exit.connect_failures)
            .counter("exit_resolve_failures_total", "Names that did not resolve.", exit.resolve_failures)
            .labelled(
                "exit_refused_total",
                "Stream work refused or dropped by a bound, by reason.",
                "reason",
                &[
                    ("streams_total", exit.refused_streams_total),
                    ("streams_per_sender", exit.refused_streams_per_sender),
                    ("connecting", exit.refused_connecting),
                    ("unopened_per_sender", exit.unopened_refused),
                    ("unopened_evicted", exit.unopened_evicted),
                    ("unopened_expired", exit.unopened_expired),
                    ("buffer_exceeded", exit.buffer_exceeded),
                    ("idle", exit.idle_closed),
                    ("reply_failed", exit.reply_failures),
                ],
            )
            .gauge("exit_upload_buffered_bytes", "Upload bytes buffered towards servers.", buffered as f64)
            .gauge("exit_replies_in_flight_bytes", "Reply bytes not yet acknowledged.", replies as f64)
            .gauge("exit_surb_senders", "Anonymous senders whose SURBs are held.", surb_senders as f64)
            .gauge("exit_surbs_held", "SURBs held for replies.", surbs_held as f64)
            .counter("exit_surbs_dropped_total", "SURBs dropped unused by a bound or by age.", surbs_dropped)
            .counter("exit_bytes_in_total", "Bytes read from servers.", exit.bytes_in)
            .counter("exit_bytes_out_total", "Bytes written to servers.", exit.bytes_out);
        e.finish()
    }
}
