//! The browser driver of the mixnet client. All protocol logic is in
//! `mixnet_core::client::Client`; this crate only moves bytes between it and a
//! WebTransport session or a WebSocket (`transport.rs`), arms one timer (gloo-timers)
//! for the core's next deadline, reads time from `performance.now()`, fetches and
//! verifies the topology, and turns the core's events into JavaScript objects.
//!
//! Single-threaded, for a WebWorker. No panic is expected on any input (the core is
//! fuzzed); should one happen anyway it is reported as a `fatal` event before the
//! instance stops.

pub mod js;
pub mod options;
pub mod report;
mod transport;

use std::cell::RefCell;
use std::rc::Rc;

use ed25519_dalek::VerifyingKey;
use gloo_timers::callback::{Interval, Timeout};
use js::error;
use js_sys::{Array, Function, Uint8Array};
use mixnet_core::address::{ClientIdentity, Recipient, encode_key};
use mixnet_core::client::{Client, ClientEvent, ConnectionState, PacketKind};
use mixnet_core::message::{RouteMode, SenderTag};
use mixnet_core::sphinx::NodeSecret;
use mixnet_core::time::Instant;
use mixnet_core::topology::WebTransportEndpoint;
use mixnet_core::topology::{Freshness, Routes, SignedTopology, Topology, directory_key};
use options::TransportChoice;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use report::{
    DeliveredEvent, DroppedEvent, FailedEvent, FatalEvent, HopLayer, ProgressEvent, ReceivedEvent, RouteHop,
    RouteRecord, StateEvent, Stats, ThrottledEvent, ToJs, TransportEvent,
};
use transport::{Conn, Kind, Target};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

pub use options::ClientOptions;

/// The core client as this driver runs it.
pub type CoreClient = Client<ChaCha20Rng>;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
    #[wasm_bindgen(js_name = fetch)]
    fn fetch(url: &str) -> js_sys::Promise;
}

fn seeded_rng() -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    // crypto.getRandomValues never fails in browsers and workers. The error is not
    // formatted: its Debug links std's text for every I/O error kind (~400 B of gzip).
    if getrandom::fill(&mut seed).is_err() {
        panic!("crypto.getRandomValues is unavailable");
    }
    ChaCha20Rng::from_seed(seed)
}

fn invalid(e: impl std::fmt::Display) -> JsValue {
    error("invalid-argument", e)
}

fn directory_error(e: impl std::fmt::Display) -> JsValue {
    error("directory", e)
}

/// A JavaScript error's message, without the wasm stack a `Debug` print carries.
fn js_message(e: &JsValue) -> String {
    match e.dyn_ref::<js_sys::Error>() {
        Some(err) => String::from(err.message()),
        None => e.as_string().unwrap_or_else(|| "unknown error".into()),
    }
}

async fn fetch_text(url: &str) -> Result<String, String> {
    let resp = wasm_bindgen_futures::JsFuture::from(fetch(url)).await.map_err(|e| {
        // the browser says only "Failed to fetch": name what was fetched and the usual causes
        format!(
            "cannot fetch {url} ({}): the directory is unreachable, or the page's CSP `connect-src` \
             does not allow it, or the directory does not send CORS headers",
            js_message(&e)
        )
    })?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "fetch returned no Response".to_string())?;
    if !resp.ok() {
        return Err(format!("fetching {url}: HTTP {}", resp.status()));
    }
    let text = wasm_bindgen_futures::JsFuture::from(resp.text().map_err(|e| js_message(&e))?)
        .await
        .map_err(|e| format!("reading {url}: {}", js_message(&e)))?;
    text.as_string().ok_or_else(|| "response is not text".into())
}

/// Fetches the topology and verifies the directory's signature.
async fn fetch_topology(directory: &str, key: &VerifyingKey) -> Result<Topology, String> {
    let text = fetch_text(&format!("{}/v1/topology", directory.trim_end_matches('/'))).await?;
    let signed: SignedTopology = serde_json::from_str(&text).map_err(|e| format!("topology is not valid JSON: {e}"))?;
    signed.verify(key).map_err(|e| e.to_string())
}

/// The gateway's identity, Noise key and client endpoints.
type GatewayEntry = ([u8; 32], [u8; 32], Option<String>, Option<WebTransportEndpoint>);

fn pick_gateway(t: &Topology, wanted: Option<&str>) -> Result<GatewayEntry, String> {
    let g = t
        .choose_gateway(wanted, "WebSocket or WebTransport", |g| g.client_ws.is_some() || g.client_wt.is_some())
        .map_err(|e| e.to_string())?;
    Ok((g.identity.0, g.noise_key.0, g.client_ws.clone(), g.client_wt.clone()))
}

struct ClientState {
    client: Client<ChaCha20Rng>,
    /// The topology in force (for labelling route hops by layer).
    topology: Topology,
    mode: &'static str,
    directory: String,
    directory_key: VerifyingKey,
    gateway: [u8; 32],
    gateway_ws: Option<String>,
    gateway_wt: Option<WebTransportEndpoint>,
    /// `auto`, `websocket` or `webtransport`.
    transport: TransportChoice,
    /// How long a WebTransport connection may take to open.
    wt_timeout_ms: u32,
    /// Why WebTransport failed, if it did and WebSocket has not failed since (`auto`
    /// uses WebSocket meanwhile).
    wt_failure: Option<String>,
    /// The transport of the current or last connection.
    last_transport: Option<Kind>,
    conn: Option<Conn>,
    /// Events from the driver itself (the transport in use), emitted after the core's.
    driver_events: Vec<JsValue>,
    /// The one protocol timer (dropping it cancels it).
    timer: Option<Timeout>,
    /// The topology refresh.
    refresh: Option<Interval>,
    /// Refuses topologies older than the one in use, or expired (replays).
    freshness: Freshness,
    on_event: Function,
    started: f64,
    stopped: bool,
    /// Inputs handled and the time spent on them (core and driver), for `stats`.
    inputs: u64,
    busy_ms: f64,
    /// A protocol riding on the client's messages (MixFetch), if any.
    layer: Option<Box<dyn Layer>>,
}

/// A protocol that rides on the client's messages, such as MixFetch's streams through
/// an exit. The driver hands it every client event first, runs it after every input,
/// and arms the timer for it too; it talks to the network only through the client.
pub trait Layer {
    /// An event from the client: return `true` to consume it (e.g. stream traffic).
    fn handle_event(&mut self, client: &mut CoreClient, now: Instant, event: &ClientEvent) -> bool;
    /// After every input: move things along (streams act through
    /// `Streams::with(client, now)`, which flushes the client) and push events for
    /// JavaScript; `true` if anything happened.
    fn poll(&mut self, client: &mut CoreClient, now: Instant, events: &mut Vec<JsValue>) -> bool;
    /// The layer's timer fired (or any timer: check deadlines against `now`).
    fn handle_timeout(&mut self, client: &mut CoreClient, now: Instant);
    /// When the layer next needs [`Layer::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
}

type StateCell = Rc<RefCell<ClientState>>;

impl ClientState {
    fn now(&self) -> Instant {
        Instant::from_micros(((performance_now() - self.started).max(0.0) * 1000.0) as u64)
    }
}

/// Feeds one input to the core, then runs [`step`]; counts the time it took.
fn drive<T>(shared: &StateCell, input: impl FnOnce(&mut ClientState, Instant) -> T) -> T {
    let started = performance_now();
    let out = {
        let mut inner = shared.borrow_mut();
        let now = inner.now();
        input(&mut inner, now)
    };
    step(shared);
    let mut inner = shared.borrow_mut();
    inner.inputs += 1;
    inner.busy_ms += performance_now() - started;
    out
}

/// Runs after every input: opens a connection when wanted, sends what is queued,
/// re-arms the timer, then (with no borrow held) emits events to JavaScript.
fn step(shared: &StateCell) {
    let (events, on_event) = {
        let mut guard = shared.borrow_mut();
        let inner = &mut *guard;
        if inner.stopped {
            return;
        }
        let now = inner.now();
        // the core gave up on an open connection (bad session): close it. A connection
        // still opening is our own attempt; its open or failure callback tells the core.
        if inner.client.state() == ConnectionState::Disconnected && inner.conn.as_ref().is_some_and(|c| !c.opening()) {
            inner.conn = None;
        }
        if inner.conn.is_none() && inner.client.wants_connection(now) {
            match choose_transport(inner).and_then(|target| Conn::open(shared, &target, inner.wt_timeout_ms)) {
                Ok(c) => inner.conn = Some(c),
                Err(e) => inner.client.handle_disconnected(now, &e),
            }
        }
        // the application's events; a layer (MixFetch's streams) sees them first and
        // may answer by sending more, so go round until it is quiet
        let mut events: Vec<JsValue> = Vec::new();
        loop {
            let mut progressed = false;
            while let Some(e) = inner.client.poll_event() {
                progressed = true;
                if inner.layer.as_mut().is_some_and(|l| l.handle_event(&mut inner.client, now, &e)) {
                    continue;
                }
                events.push(event_to_js(e));
            }
            if let Some(layer) = inner.layer.as_mut() {
                progressed |= layer.poll(&mut inner.client, now, &mut events);
            }
            if !progressed {
                break;
            }
        }
        while let Some(m) = inner.client.poll_transmit() {
            let sent = inner.conn.as_ref().map_or_else(|| Err("not connected".into()), |c| c.send(&m));
            if let Err(e) = sent {
                inner.client.handle_disconnected(now, &format!("send failed: {e}"));
                inner.conn = None;
                break;
            }
        }
        // the disconnection above, if any
        while let Some(e) = inner.client.poll_event() {
            events.push(event_to_js(e));
        }
        events.append(&mut inner.driver_events);
        let deadline = [inner.client.poll_timeout(), inner.layer.as_ref().and_then(|l| l.poll_timeout())]
            .into_iter()
            .flatten()
            .min();
        inner.timer = deadline.map(|at| {
            // setTimeout has millisecond resolution; round up so the deadline has passed
            let delay_ms =
                (at.saturating_duration_since(now).as_micros().div_ceil(1000)).min(u128::from(u32::MAX)) as u32;
            let weak = Rc::downgrade(shared);
            Timeout::new(delay_ms, move || {
                if let Some(shared) = weak.upgrade() {
                    drive(&shared, |inner, now| {
                        inner.client.handle_timeout(now);
                        if let Some(layer) = inner.layer.as_mut() {
                            layer.handle_timeout(&mut inner.client, now);
                        }
                    });
                }
            })
        });
        (events, inner.on_event.clone())
    };
    for e in events {
        let _ = on_event.call1(&JsValue::NULL, &e);
    }
}

impl transport::Listener for RefCell<ClientState> {
    /// A connection opened (the WebSocket is open, or the WebTransport stream is).
    fn on_open(shared: &StateCell, kind: Kind) {
        drive(shared, |inner, now| {
            inner.last_transport = Some(kind);
            let e = TransportEvent { transport: kind.name(), fallback_reason: inner.wt_failure.clone() };
            inner.driver_events.push(e.to_js());
            inner.client.handle_connected(now);
        });
    }

    /// A message from the gateway.
    fn on_message(shared: &StateCell, bytes: &[u8]) {
        drive(shared, |inner, now| inner.client.handle_message(now, bytes));
    }

    /// The connection ended, or could not be opened (a WebSocket refused): the core backs
    /// off before the next attempt. A WebSocket that could not open either means the
    /// gateway itself is unreachable (down, restarting), not that UDP is blocked, so the
    /// next attempt tries WebTransport again.
    fn on_closed(shared: &StateCell, reason: &str) {
        drive(shared, |inner, now| {
            if inner.conn.take().is_some_and(|c| c.opening()) {
                inner.wt_failure = None;
                inner.driver_events.push(progress("transport-failed", Some(Kind::WebSocket), Some(reason)));
            }
            inner.client.handle_disconnected(now, reason);
        });
    }

    /// A WebTransport connection failed before its stream opened. With `transport: auto`
    /// the client switches to WebSocket at once, and stays on it while WebSocket works;
    /// forced, it backs off and tries again.
    fn on_open_failed(shared: &StateCell, kind: Kind, reason: &str) {
        drive(shared, |inner, now| {
            inner.conn = None;
            inner.driver_events.push(progress("transport-failed", Some(kind), Some(reason)));
            if kind == Kind::WebTransport && inner.transport == TransportChoice::Auto && inner.gateway_ws.is_some() {
                inner.wt_failure = Some(reason.to_owned());
            } else {
                inner.client.handle_disconnected(now, reason);
            }
        });
    }
}

/// Which transport the next connection uses (`PROTOCOL.md`, section 6).
fn choose_transport(inner: &ClientState) -> Result<Target, String> {
    let ws = inner.gateway_ws.clone().map(Target::Ws);
    let wt = || {
        if !transport::webtransport_supported() {
            return Err("this browser has no WebTransport".to_string());
        }
        inner.gateway_wt.clone().map(Target::Wt).ok_or_else(|| "the gateway offers no WebTransport".to_string())
    };
    match inner.transport {
        TransportChoice::WebSocket => ws.ok_or_else(|| "the gateway offers no WebSocket".into()),
        TransportChoice::WebTransport => wt(),
        TransportChoice::Auto => match (inner.wt_failure.is_none(), ws) {
            (true, ws) => wt().or_else(|e| ws.ok_or(e)),
            (false, Some(ws)) => Ok(ws),
            (false, None) => wt(),
        },
    }
}

fn state_name(s: ConnectionState) -> &'static str {
    match s {
        ConnectionState::Connected => "connected",
        ConnectionState::Connecting => "connecting",
        ConnectionState::Disconnected => "disconnected",
    }
}

fn event_to_js(e: ClientEvent) -> JsValue {
    match e {
        ClientEvent::Message(m) => ReceivedEvent {
            data: Uint8Array::from(m.data.as_slice()),
            sender_tag: m.sender_tag.map(|t| bs58::encode(t).into_string()),
            reply_from: m.reply_from.map(|r| r.to_string()),
        }
        .to_js(),
        ClientEvent::Delivered(id) => DeliveredEvent { id: id as f64 }.to_js(),
        ClientEvent::Failed { id, reason } => FailedEvent { id: id as f64, reason }.to_js(),
        ClientEvent::State(state, reason) => StateEvent { state: state_name(state), reason }.to_js(),
        ClientEvent::Handshake => progress("handshake", None, None),
        ClientEvent::Throttled(message) => ThrottledEvent { message }.to_js(),
        ClientEvent::Dropped(reason) => DroppedEvent { reason }.to_js(),
    }
}

/// A connection-progress event (see [`ProgressEvent`]).
fn progress(stage: &'static str, transport: Option<Kind>, reason: Option<&str>) -> JsValue {
    ProgressEvent { stage, transport: transport.map(Kind::name), reason: reason.map(str::to_owned) }.to_js()
}

fn decode_tag(s: &str) -> Result<SenderTag, JsValue> {
    let v = bs58::decode(s).into_vec().map_err(|_| invalid("senderTag is not base58"))?;
    v.try_into().map_err(|_| invalid("senderTag must be 16 bytes"))
}

thread_local! {
    static FATAL: RefCell<Option<Function>> = const { RefCell::new(None) };
}

fn install_panic_hook(on_event: &Function) {
    FATAL.with(|f| *f.borrow_mut() = Some(on_event.clone()));
    std::panic::set_hook(Box::new(|info| {
        FATAL.with(|f| {
            if let Some(cb) = f.borrow().as_ref() {
                let _ = cb.call1(&JsValue::NULL, &FatalEvent { message: info.to_string() }.to_js());
            }
        });
    }));
}

/// A mixnet client running in this worker.
#[wasm_bindgen]
#[derive(Clone)]
pub struct MixnetClient {
    shared: StateCell,
    address: Recipient,
}

#[wasm_bindgen]
impl MixnetClient {
    /// Fetches and verifies the topology, then starts connecting. `options` is the
    /// JSON of [`ClientOptions`]; `on_event` receives event objects
    /// (`{type: 'state' | 'message' | 'delivered' | 'failed' | 'throttled' | 'dropped' | 'fatal', …}`).
    pub async fn create(options: String, on_event: Function) -> Result<Self, JsValue> {
        Self::start(&options, on_event, None).await
    }

    /// Our address, `identity.encryption@gateway`.
    #[wasm_bindgen(getter, js_name = selfAddress)]
    pub fn self_address(&self) -> String {
        self.address.to_string()
    }

    /// Queues `data` for `recipient`, attaching `reply_surbs` SURBs; returns the message id.
    pub fn send(&self, recipient: &str, data: &[u8], reply_surbs: u16) -> Result<f64, JsValue> {
        let to: Recipient = recipient.parse().map_err(|e| invalid(format!("recipient: {e}")))?;
        if self.shared.borrow().stopped {
            return Err(error("not-ready", "the client is disconnected"));
        }
        let id = drive(&self.shared, |inner, now| inner.client.send(now, to, data, reply_surbs));
        Ok(id.map_err(|e| error("send-failed", e))? as f64)
    }

    /// Answers the anonymous sender `sender_tag` through its SURBs; returns the message id.
    pub fn reply(&self, sender_tag: &str, data: &[u8]) -> Result<f64, JsValue> {
        let tag = decode_tag(sender_tag)?;
        if self.shared.borrow().stopped {
            return Err(error("not-ready", "the client is disconnected"));
        }
        let id = drive(&self.shared, |inner, now| inner.client.reply(now, tag, data));
        Ok(id.map_err(|e| error("send-failed", e))? as f64)
    }

    /// Counters, the traffic shaping in force and the routes of recent packets
    /// (each hop labelled with its mix layer, or as the gateway).
    pub fn stats(&self) -> JsValue {
        let inner = self.shared.borrow();
        let s = inner.client.stats();
        let m = &s.messenger;
        let loopix = inner.client.loopix();
        let mean_ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
        let routes = Array::new();
        for r in inner.client.recent_routes() {
            let hops = Array::new();
            for h in &r.hops {
                let layer = match inner.topology.mixes.iter().find(|m| m.identity.0 == h.0) {
                    Some(m) => HopLayer::Mix(m.layer),
                    None => HopLayer::Gateway,
                };
                hops.push(&RouteHop { id: encode_key(&h.0), layer }.to_js());
            }
            let kind = if r.kind == PacketKind::Real { "real" } else { "cover" };
            routes.push(&RouteRecord { at_ms: r.at.as_micros() as f64 / 1000.0, kind, hops }.to_js());
        }
        Stats {
            state: state_name(inner.client.state()),
            mode: inner.mode,
            transport: inner.last_transport.map(Kind::name),
            web_transport_failure: inner.wt_failure.clone(),
            send_delay_ms: mean_ms(loopix.send_delay_mean),
            loop_cover_ms: mean_ms(loopix.loop_cover_mean),
            real_sent: s.real_sent as f64,
            cover_sent: s.cover_sent as f64,
            deliveries: s.deliveries as f64,
            connections: s.connections as f64,
            retransmissions: m.retransmissions as f64,
            acks_received: m.acks_received as f64,
            cover_received: m.cover_received as f64,
            messages_received: m.messages_received as f64,
            messages_delivered: m.messages_delivered as f64,
            messages_failed: m.messages_failed as f64,
            dropped: m.dropped as f64,
            uptime_ms: performance_now() - inner.started,
            inputs: inner.inputs as f64,
            busy_ms: inner.busy_ms,
            routes,
        }
        .to_js()
    }

    /// Closes the connection and stops all timers.
    pub fn disconnect(&self) {
        let mut inner = self.shared.borrow_mut();
        inner.stopped = true;
        inner.conn = None;
        inner.timer = None;
        inner.refresh = None;
    }
}

/// The Rust side of the client, for crates that build on it (MixFetch).
impl MixnetClient {
    /// Like `create`, with a [`Layer`] riding on the client's messages.
    pub async fn start(options: &str, on_event: Function, layer: Option<Box<dyn Layer>>) -> Result<Self, JsValue> {
        install_panic_hook(&on_event);
        let started = performance_now();
        let o = ClientOptions::parse(options).map_err(invalid)?;
        let key = directory_key(&o.directory_key).map_err(|e| invalid(format!("directoryKey: {e}")))?;
        let topology = fetch_topology(&o.directory, &key).await.map_err(directory_error)?;
        let mut freshness = Freshness::new();
        freshness.check(&topology, js_sys::Date::now() as u64).map_err(|e| directory_error(e.to_string()))?;
        let (gateway, gateway_key, gateway_ws, gateway_wt) =
            pick_gateway(&topology, o.gateway.as_deref()).map_err(directory_error)?;
        let mut rng = seeded_rng();
        let identity = match &o.identity {
            Some(s) => ClientIdentity::parse(s).map_err(|e| invalid(e.to_string()))?,
            None => ClientIdentity::generate(&mut rng),
        };
        let (signing, encryption) = identity.secrets();
        let mut client =
            Client::new(o.messenger(), o.loopix(), signing, encryption, gateway, gateway_key, rng, seeded_rng());
        client.set_routes(Routes::new(topology.clone()).map_err(directory_error)?);
        let address = client.self_address();
        let shared = Rc::new(RefCell::new(ClientState {
            client,
            topology,
            mode: match o.mode {
                RouteMode::Mixnet => "mixnet",
                RouteMode::Fast => "fast",
            },
            directory: o.directory.clone(),
            directory_key: key,
            gateway,
            gateway_ws,
            gateway_wt,
            transport: o.transport,
            wt_timeout_ms: o.web_transport_timeout_ms.min(f64::from(u32::MAX)) as u32,
            wt_failure: None,
            last_transport: None,
            conn: None,
            driver_events: vec![progress("topology", None, None)],
            timer: None,
            refresh: None,
            freshness,
            on_event,
            started,
            stopped: false,
            inputs: 0,
            busy_ms: 0.0,
            layer,
        }));
        start_refresh(&shared, o.topology_refresh_ms);
        step(&shared);
        Ok(Self { shared, address })
    }

    /// The exits the topology offers (addresses of their services).
    pub fn exits(&self) -> Vec<Recipient> {
        self.shared.borrow().topology.exits().map(|(_, r)| r).collect()
    }

    /// Runs `f` on the core client as one input (the driver then moves everything along).
    pub fn drive<T>(&self, f: impl FnOnce(&mut CoreClient, Instant) -> T) -> Result<T, JsValue> {
        if self.shared.borrow().stopped {
            return Err(error("not-ready", "the client is disconnected"));
        }
        Ok(drive(&self.shared, |inner, now| f(&mut inner.client, now)))
    }
}

fn start_refresh(shared: &StateCell, every_ms: f64) {
    if every_ms <= 0.0 {
        return;
    }
    let weak = Rc::downgrade(shared);
    let interval = Interval::new(every_ms.min(f64::from(u32::MAX)) as u32, move || {
        let Some(shared) = weak.upgrade() else { return };
        let (dir, key, gateway) = {
            let i = shared.borrow();
            (i.directory.clone(), i.directory_key, i.gateway)
        };
        wasm_bindgen_futures::spawn_local(async move {
            let Ok(t) = fetch_topology(&dir, &key).await else { return };
            let found = t.gateway(&gateway).map(|g| (g.noise_key.0, g.client_ws.clone(), g.client_wt.clone()));
            {
                let mut i = shared.borrow_mut();
                // an older or expired document (a replay) is not installed, and is said
                if let Err(e) = i.freshness.check(&t, js_sys::Date::now() as u64) {
                    i.driver_events.push(event_to_js(ClientEvent::Dropped(format!("topology refused: {e}"))));
                    drop(i);
                    step(&shared);
                    return;
                }
                if let Some((noise, ws, wt)) = found {
                    i.client.set_gateway_key(noise);
                    // keep what we had if the gateway stops offering both
                    if ws.is_some() || wt.is_some() {
                        i.gateway_ws = ws;
                        i.gateway_wt = wt;
                    }
                }
                if let Ok(r) = Routes::new(t.clone()) {
                    i.client.set_routes(r);
                    i.topology = t;
                }
            }
            step(&shared);
        });
    });
    shared.borrow_mut().refresh = Some(interval);
}

/// Builds `n` 4-hop Sphinx packets with 2048 B of data (keys prepared, as the client
/// does) and returns packets per second, for the in-browser benchmark.
#[wasm_bindgen(js_name = benchBuildPackets)]
pub fn bench_build_packets(n: u32) -> f64 {
    use mixnet_core::sphinx::{
        self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, PacketSize, RouteNode,
    };
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let route: Vec<RouteNode> = (0..4u8)
        .map(|i| RouteNode {
            address: NodeAddress([i; 32]),
            key: NodeKey::prepared(NodeSecret::from_bytes([i + 1; 32]).public_key()),
        })
        .collect();
    let dest = Destination { address: DestinationAddress([9; 32]), identifier: [0; 16] };
    let delays = [Delay(15_000_000); 4];
    let data = [0x42u8; 2048];
    let start = performance_now();
    for _ in 0..n {
        let p = sphinx::build_packet(&mut rng, &route, &dest, &delays, &data, PacketSize::Regular.payload_len());
        std::hint::black_box(p.ok());
    }
    f64::from(n) / ((performance_now() - start) / 1000.0)
}
