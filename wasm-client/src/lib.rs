//! The browser driver of the mixnet client. All protocol logic is in
//! `mixnet_core::client::Client`; this crate only moves bytes between it and a
//! WebSocket, arms one timer (gloo-timers) for the core's next deadline, reads time from
//! `performance.now()`, fetches and verifies the
//! topology, and turns the core's events into JavaScript objects.
//!
//! Single-threaded, for a WebWorker. No panic is expected on any input (the core is
//! fuzzed); should one happen anyway it is reported as a `fatal` event before the
//! instance stops.

mod options;

use std::cell::RefCell;
use std::rc::Rc;

use ed25519_dalek::VerifyingKey;
use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use mixnet_core::address::{Recipient, encode_key};
use mixnet_core::client::{Client, ClientEvent, ConnectionState, PacketKind};
use mixnet_core::message::{RouteMode, SenderTag};
use mixnet_core::sphinx::NodeSecret;
use mixnet_core::time::Instant;
use mixnet_core::topology::{Routes, SignedTopology, Topology, directory_key};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use gloo_timers::callback::{Interval, Timeout};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

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
    // crypto.getRandomValues never fails in browsers and workers
    getrandom::fill(&mut seed).expect("crypto.getRandomValues is available");
    ChaCha20Rng::from_seed(seed)
}

/// A JavaScript `Error` whose `name` is one of the worker protocol's error codes
/// (`invalid-argument`, `directory`, `send-failed`), so the worker can classify it.
fn error(code: &str, e: impl std::fmt::Display) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name(code);
    err.into()
}

fn invalid(e: impl std::fmt::Display) -> JsValue {
    error("invalid-argument", e)
}

fn directory_error(e: impl std::fmt::Display) -> JsValue {
    error("directory", e)
}

fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    let _ = Reflect::set(o, &JsValue::from_str(k), &v.into());
}

async fn fetch_text(url: &str) -> Result<String, String> {
    let resp = wasm_bindgen_futures::JsFuture::from(fetch(url)).await.map_err(|e| format!("fetching {url}: {e:?}"))?;
    let resp: web_sys::Response = resp.dyn_into().map_err(|_| "fetch returned no Response".to_string())?;
    if !resp.ok() {
        return Err(format!("fetching {url}: HTTP {}", resp.status()));
    }
    let text = wasm_bindgen_futures::JsFuture::from(resp.text().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("reading {url}: {e:?}"))?;
    text.as_string().ok_or_else(|| "response is not text".into())
}

/// Fetches the topology and verifies the directory's signature.
async fn fetch_topology(directory: &str, key: &VerifyingKey) -> Result<Topology, String> {
    let text = fetch_text(&format!("{}/v1/topology", directory.trim_end_matches('/'))).await?;
    let signed: SignedTopology = serde_json::from_str(&text).map_err(|e| format!("topology is not valid JSON: {e}"))?;
    signed.verify(key).map_err(|e| e.to_string())
}

fn pick_gateway(t: &Topology, wanted: Option<&str>) -> Result<([u8; 32], [u8; 32], String), String> {
    let g = match wanted {
        Some(id) => {
            let key = mixnet_core::address::decode_key(id, "gateway").map_err(|e| e.to_string())?;
            t.gateway(&key).ok_or_else(|| format!("gateway {id} is not in the topology"))?
        }
        None => t.gateways.iter().find(|g| g.client_ws.is_some()).ok_or("no gateway offers WebSocket")?,
    };
    let url = g.client_ws.clone().ok_or("the gateway has no WebSocket URL")?;
    Ok((g.identity.0, g.noise_key.0, url))
}

struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(JsValue)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        // clear the handlers first: a closure called after being dropped is an error
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        let _ = self.ws.close();
    }
}

struct Inner {
    client: Client<ChaCha20Rng>,
    /// The topology in force (for labelling route hops by layer).
    topology: Topology,
    mode: &'static str,
    directory: String,
    directory_key: VerifyingKey,
    gateway: [u8; 32],
    gateway_url: String,
    socket: Option<Socket>,
    /// The one protocol timer (dropping it cancels it).
    timer: Option<Timeout>,
    /// The topology refresh.
    refresh: Option<Interval>,
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
    /// After every input: move things along (call `client.flush(now)` after using its
    /// messenger) and push events for JavaScript; `true` if anything happened.
    fn poll(&mut self, client: &mut CoreClient, now: Instant, events: &mut Vec<JsValue>) -> bool;
    /// The layer's timer fired (or any timer: check deadlines against `now`).
    fn handle_timeout(&mut self, client: &mut CoreClient, now: Instant);
    /// When the layer next needs [`Layer::handle_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
}

type Shared = Rc<RefCell<Inner>>;

impl Inner {
    fn now(&self) -> Instant {
        Instant::from_micros(((performance_now() - self.started).max(0.0) * 1000.0) as u64)
    }
}

/// Feeds one input to the core, then runs [`step`]; counts the time it took.
fn drive<T>(shared: &Shared, input: impl FnOnce(&mut Inner, Instant) -> T) -> T {
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
fn step(shared: &Shared) {
    let (events, on_event) = {
        let mut guard = shared.borrow_mut();
        let inner = &mut *guard;
        if inner.stopped {
            return;
        }
        let now = inner.now();
        // the core gave up on an open connection (bad session): close it. A socket still
        // opening is our own attempt; its open or close event tells the core.
        if inner.client.state() == ConnectionState::Disconnected
            && inner.socket.as_ref().is_some_and(|s| s.ws.ready_state() != WebSocket::CONNECTING)
        {
            inner.socket = None;
        }
        if inner.socket.is_none() && inner.client.wants_connection(now) {
            match open_socket(shared, &inner.gateway_url) {
                Ok(s) => inner.socket = Some(s),
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
            let sent = match &inner.socket {
                Some(s) if s.ws.ready_state() == WebSocket::OPEN => s.ws.send_with_u8_array(&m).map_err(|e| format!("{e:?}")),
                _ => Err("not connected".into()),
            };
            if let Err(e) = sent {
                inner.client.handle_disconnected(now, &format!("send failed: {e}"));
                inner.socket = None;
                break;
            }
        }
        // the disconnection above, if any
        while let Some(e) = inner.client.poll_event() {
            events.push(event_to_js(e));
        }
        let deadline = [inner.client.poll_timeout(), inner.layer.as_ref().and_then(|l| l.poll_timeout())].into_iter().flatten().min();
        inner.timer = deadline.map(|at| {
            // setTimeout has millisecond resolution; round up so the deadline has passed
            let delay_ms = (at.saturating_duration_since(now).as_micros().div_ceil(1000)).min(u128::from(u32::MAX)) as u32;
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

fn open_socket(shared: &Shared, url: &str) -> Result<Socket, String> {
    let ws = WebSocket::new(url).map_err(|e| format!("cannot open {url}: {e:?}"))?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let weak = Rc::downgrade(shared);
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        if let Some(s) = weak.upgrade() {
            drive(&s, |inner, now| inner.client.handle_connected(now));
        }
    });
    let weak = Rc::downgrade(shared);
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        if let Some(s) = weak.upgrade() {
            let bytes = Uint8Array::new(&e.data()).to_vec();
            drive(&s, |inner, now| inner.client.handle_message(now, &bytes));
        }
    });
    let weak = Rc::downgrade(shared);
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
        if let Some(s) = weak.upgrade() {
            let reason = if e.reason().is_empty() {
                format!("connection closed ({})", e.code())
            } else {
                format!("connection closed ({}): {}", e.code(), e.reason())
            };
            drive(&s, |inner, now| {
                if inner.client.state() != ConnectionState::Disconnected {
                    inner.client.handle_disconnected(now, &reason);
                }
                inner.socket = None;
            });
        }
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    Ok(Socket { ws, _on_open: on_open, _on_message: on_message, _on_close: on_close })
}

fn state_name(s: ConnectionState) -> &'static str {
    match s {
        ConnectionState::Connected => "connected",
        ConnectionState::Connecting => "connecting",
        ConnectionState::Disconnected => "disconnected",
    }
}

fn event_to_js(e: ClientEvent) -> JsValue {
    let o = Object::new();
    match e {
        ClientEvent::Message(m) => {
            set(&o, "type", "message");
            set(&o, "data", Uint8Array::from(m.data.as_slice()));
            set(&o, "senderTag", m.sender_tag.map(|t| bs58::encode(t).into_string()).map_or(JsValue::NULL, JsValue::from));
            set(&o, "replyFrom", m.reply_from.map(|r| r.to_string()).map_or(JsValue::NULL, JsValue::from));
        }
        ClientEvent::Delivered(id) => {
            set(&o, "type", "delivered");
            set(&o, "id", id as f64);
        }
        ClientEvent::Failed { id, reason } => {
            set(&o, "type", "failed");
            set(&o, "id", id as f64);
            set(&o, "reason", reason);
        }
        ClientEvent::State(state, reason) => {
            set(&o, "type", "state");
            set(&o, "state", state_name(state));
            set(&o, "reason", reason.map_or(JsValue::NULL, JsValue::from));
        }
        ClientEvent::Throttled(m) => {
            set(&o, "type", "throttled");
            set(&o, "message", m);
        }
        ClientEvent::Dropped(r) => {
            set(&o, "type", "dropped");
            set(&o, "reason", r);
        }
    }
    o.into()
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
                let o = Object::new();
                set(&o, "type", "fatal");
                set(&o, "message", info.to_string());
                let _ = cb.call1(&JsValue::NULL, &o);
            }
        });
    }));
}

/// A mixnet client running in this worker.
#[wasm_bindgen]
#[derive(Clone)]
pub struct MixnetClient {
    shared: Shared,
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
        let o = Object::new();
        set(&o, "state", state_name(inner.client.state()));
        set(&o, "mode", inner.mode);
        let loopix = inner.client.loopix();
        let mean_ms = |d: Option<std::time::Duration>| d.map_or(JsValue::NULL, |d| JsValue::from(d.as_secs_f64() * 1000.0));
        set(&o, "sendDelayMs", mean_ms(loopix.send_delay_mean));
        set(&o, "loopCoverMs", mean_ms(loopix.loop_cover_mean));
        for (k, v) in [
            ("realSent", s.real_sent),
            ("coverSent", s.cover_sent),
            ("deliveries", s.deliveries),
            ("connections", s.connections),
            ("retransmissions", s.messenger.retransmissions),
            ("acksReceived", s.messenger.acks_received),
            ("coverReceived", s.messenger.cover_received),
            ("messagesReceived", s.messenger.messages_received),
            ("messagesDelivered", s.messenger.messages_delivered),
            ("messagesFailed", s.messenger.messages_failed),
            ("dropped", s.messenger.dropped),
        ] {
            set(&o, k, v as f64);
        }
        set(&o, "uptimeMs", performance_now() - inner.started);
        set(&o, "inputs", inner.inputs as f64);
        set(&o, "busyMs", inner.busy_ms);
        let routes = Array::new();
        for r in inner.client.recent_routes() {
            let ro = Object::new();
            set(&ro, "atMs", r.at.as_micros() as f64 / 1000.0);
            set(&ro, "kind", if r.kind == PacketKind::Real { "real" } else { "cover" });
            let hops = Array::new();
            for h in &r.hops {
                let hop = Object::new();
                set(&hop, "id", encode_key(&h.0));
                match inner.topology.mixes.iter().find(|m| m.identity.0 == h.0) {
                    Some(m) => set(&hop, "layer", m.layer),
                    None => set(&hop, "layer", "gateway"),
                }
                hops.push(&hop);
            }
            set(&ro, "hops", hops);
            routes.push(&ro);
        }
        set(&o, "routes", routes);
        o.into()
    }

    /// Closes the connection and stops all timers.
    pub fn disconnect(&self) {
        let mut inner = self.shared.borrow_mut();
        inner.stopped = true;
        inner.socket = None;
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
        let (gateway, gateway_key, gateway_url) = pick_gateway(&topology, o.gateway.as_deref()).map_err(directory_error)?;
        let mut rng = seeded_rng();
        let (signing, encryption) = match &o.identity {
            Some(s) => {
                let bytes = bs58::decode(s).into_vec().map_err(|_| invalid("identity is not base58"))?;
                if bytes.len() != 64 {
                    return Err(invalid("identity must be 64 bytes (from generateIdentity())"));
                }
                let mut a = [0u8; 32];
                let mut b = [0u8; 32];
                a.copy_from_slice(&bytes[..32]);
                b.copy_from_slice(&bytes[32..]);
                (NodeSecret::from_bytes(a), NodeSecret::from_bytes(b))
            }
            None => (NodeSecret::random(&mut rng), NodeSecret::random(&mut rng)),
        };
        let mut client = Client::new(o.messenger(), o.loopix(), signing, encryption, gateway, gateway_key, rng, seeded_rng());
        client.set_routes(Routes::new(topology.clone()).map_err(directory_error)?);
        let address = client.self_address();
        let shared = Rc::new(RefCell::new(Inner {
            client,
            topology,
            mode: match o.mode {
                RouteMode::Mixnet => "mixnet",
                RouteMode::Fast => "fast",
            },
            directory: o.directory.clone(),
            directory_key: key,
            gateway,
            gateway_url,
            socket: None,
            timer: None,
            refresh: None,
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

fn start_refresh(shared: &Shared, every_ms: f64) {
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
            let found = t.gateway(&gateway).map(|g| (g.noise_key.0, g.client_ws.clone()));
            {
                let mut i = shared.borrow_mut();
                if let Some((noise, url)) = found {
                    i.client.set_gateway_key(noise);
                    if let Some(url) = url {
                        i.gateway_url = url;
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
    use mixnet_core::sphinx::{self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, PacketSize, RouteNode};
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
