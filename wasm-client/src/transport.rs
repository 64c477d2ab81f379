//! The two ways to the gateway: a WebSocket (one protocol message per WebSocket
//! message), and WebTransport (one bidirectional stream of length-prefixed records,
//! `mixnet_core::framing`, with the certificate pinned by the hash the topology
//! publishes). Both report to their owner through the same four calls of
//! [`Listener`], which the client's state implements in `lib.rs`; this module knows
//! nothing else of it. Which one to open, and the fallback from WebTransport to
//! WebSocket, is decided there (`choose_transport`).

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use gloo_timers::callback::Timeout;
use js_sys::Uint8Array;
use mixnet_core::framing::{self, Record};
use mixnet_core::topology::WebTransportEndpoint;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    BinaryType, CloseEvent, MessageEvent, ReadableStreamDefaultReader, ReadableStreamReadResult, WebSocket,
    WebTransport, WebTransportBidirectionalStream, WebTransportHash, WebTransportOptions, WritableStreamDefaultWriter,
};

/// What a connection reports, to the owner it holds weakly (a report after the owner
/// is gone is dropped).
pub(crate) trait Listener: 'static {
    /// The connection is open.
    fn on_open(this: &Rc<Self>, kind: Kind);
    /// A protocol message arrived.
    fn on_message(this: &Rc<Self>, bytes: &[u8]);
    /// An open connection ended.
    fn on_closed(this: &Rc<Self>, reason: &str);
    /// The connection never opened.
    fn on_open_failed(this: &Rc<Self>, kind: Kind, reason: &str);
}

/// Which transport a connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    WebSocket,
    WebTransport,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::WebSocket => "websocket",
            Self::WebTransport => "webtransport",
        }
    }
}

/// Where to connect.
pub(crate) enum Target {
    Ws(String),
    Wt(WebTransportEndpoint),
}

/// Whether this browser (or worker) has the WebTransport API.
pub(crate) fn webtransport_supported() -> bool {
    js_sys::Reflect::has(&js_sys::global(), &JsValue::from_str("WebTransport")).unwrap_or(false)
}

/// One connection to the gateway; dropping it closes it and silences its callbacks.
pub(crate) enum Conn {
    Ws(Socket),
    Wt(WtConn),
}

impl Conn {
    pub(crate) fn open<L: Listener>(shared: &Rc<L>, target: &Target, wt_timeout_ms: u32) -> Result<Self, String> {
        match target {
            Target::Ws(url) => open_socket(shared, url).map(Self::Ws),
            Target::Wt(endpoint) => open_wt(shared, endpoint, wt_timeout_ms).map(Self::Wt),
        }
    }

    /// Not open yet (its own open or failure callback will tell the driver), or never
    /// was (when asked in the failure callback).
    pub(crate) fn opening(&self) -> bool {
        match self {
            Self::Ws(s) => !s.opened.get(),
            Self::Wt(w) => w.state.writer.borrow().is_none(),
        }
    }

    pub(crate) fn send(&self, message: &[u8]) -> Result<(), String> {
        match self {
            Self::Ws(s) if s.ws.ready_state() == WebSocket::OPEN => {
                s.ws.send_with_u8_array(message).map_err(|e| format!("{e:?}"))
            }
            Self::Ws(_) => Err("not connected".into()),
            Self::Wt(w) => {
                let writer = w.state.writer.borrow();
                let writer = writer.as_ref().ok_or("not connected")?;
                let framed = framing::encode(message).map_err(|e| e.to_string())?;
                // writes are queued in order by the stream; a failed one also fails the
                // stream, and the reader reports that, so the promise only needs a catch
                let promise = writer.write_with_chunk(&Uint8Array::from(framed.as_slice()));
                IGNORE.with(|ignore| {
                    let _ = promise.catch(ignore);
                });
                Ok(())
            }
        }
    }
}

pub(crate) struct Socket {
    ws: WebSocket,
    opened: Rc<Cell<bool>>,
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

fn open_socket<L: Listener>(shared: &Rc<L>, url: &str) -> Result<Socket, String> {
    let ws = WebSocket::new(url).map_err(|e| format!("cannot open {url}: {e:?}"))?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let weak = Rc::downgrade(shared);
    let opened = Rc::new(Cell::new(false));
    let flag = opened.clone();
    let on_open_cb = Closure::<dyn FnMut(JsValue)>::new(move |_| {
        flag.set(true);
        if let Some(s) = weak.upgrade() {
            L::on_open(&s, Kind::WebSocket);
        }
    });
    let weak = Rc::downgrade(shared);
    let on_message_cb = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        if let Some(s) = weak.upgrade() {
            L::on_message(&s, &Uint8Array::new(&e.data()).to_vec());
        }
    });
    let weak = Rc::downgrade(shared);
    let (flag, url) = (opened.clone(), url.to_owned());
    let on_close_cb = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
        if let Some(s) = weak.upgrade() {
            // a socket that never opened: the browser says no more than 1006 (gateway
            // down or unreachable, or refused by the page's CSP `connect-src`)
            let reason = match (flag.get(), e.reason().is_empty()) {
                (false, _) => format!("WebSocket to {url} could not be opened ({})", e.code()),
                (true, true) => format!("connection closed ({})", e.code()),
                (true, false) => format!("connection closed ({}): {}", e.code(), e.reason()),
            };
            L::on_closed(&s, &reason);
        }
    });
    ws.set_onopen(Some(on_open_cb.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message_cb.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close_cb.as_ref().unchecked_ref()));
    Ok(Socket { ws, opened, _on_open: on_open_cb, _on_message: on_message_cb, _on_close: on_close_cb })
}

/// What the WebTransport connection's task and its owner share.
struct WtState {
    /// Set once the stream is open.
    writer: RefCell<Option<WritableStreamDefaultWriter>>,
    /// The owner dropped the connection: the task must not report anything more.
    dropped: Cell<bool>,
    /// The opening took too long and was abandoned.
    timed_out: Cell<bool>,
}

thread_local! {
    /// The rejection handler of stream writes. It must outlive every write promise,
    /// which may settle after its connection is gone (a dropped closure called from
    /// JavaScript is an error, and an unhandled one stops the client), so it is never
    /// dropped: one for the worker's lifetime.
    static IGNORE: Closure<dyn FnMut(JsValue)> = Closure::new(|_: JsValue| {});
}

pub(crate) struct WtConn {
    wt: WebTransport,
    state: Rc<WtState>,
    _timeout: Timeout,
}

impl Drop for WtConn {
    fn drop(&mut self) {
        self.state.dropped.set(true);
        self.wt.close();
    }
}

fn describe(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>().map_or_else(|| format!("{e:?}"), |e| String::from(e.message()))
}

fn open_wt<L: Listener>(shared: &Rc<L>, endpoint: &WebTransportEndpoint, timeout_ms: u32) -> Result<WtConn, String> {
    let options = WebTransportOptions::new();
    if let Some(pinned) = endpoint.cert_hash().map_err(|e| e.to_string())? {
        let hash = WebTransportHash::new();
        hash.set_algorithm("sha-256");
        hash.set_value_u8_array(&Uint8Array::from(pinned.as_slice()));
        options.set_server_certificate_hashes(&[hash]);
    }
    let url = endpoint.url.clone();
    let wt =
        WebTransport::new_with_options(&url, &options).map_err(|e| format!("cannot open {url}: {}", describe(&e)))?;
    let state = Rc::new(WtState { writer: RefCell::new(None), dropped: Cell::new(false), timed_out: Cell::new(false) });
    wasm_bindgen_futures::spawn_local(run(Rc::downgrade(shared), wt.clone(), state.clone(), url, timeout_ms));
    let timeout = {
        let (state, wt) = (state.clone(), wt.clone());
        Timeout::new(timeout_ms, move || {
            if state.writer.borrow().is_none() && !state.dropped.get() {
                // UDP blocked or the port closed without an answer: give up on it
                state.timed_out.set(true);
                wt.close();
            }
        })
    };
    Ok(WtConn { wt, state, _timeout: timeout })
}

/// Opens the stream, then reads records until the session ends.
async fn run<L: Listener>(shared: Weak<L>, wt: WebTransport, state: Rc<WtState>, url: String, timeout_ms: u32) {
    let opened = async {
        JsFuture::from(wt.ready()).await?;
        let bidi: WebTransportBidirectionalStream =
            JsFuture::from(wt.create_bidirectional_stream()).await?.unchecked_into();
        let writer = bidi.writable().get_writer()?;
        let reader: ReadableStreamDefaultReader = bidi.readable().get_reader().unchecked_into();
        Ok::<_, JsValue>((writer, reader))
    }
    .await;
    let live = |state: &WtState| (!state.dropped.get()).then(|| shared.upgrade()).flatten();
    let reader = match opened {
        Ok((writer, reader)) => {
            let Some(s) = live(&state) else { return };
            *state.writer.borrow_mut() = Some(writer);
            L::on_open(&s, Kind::WebTransport);
            reader
        }
        Err(e) => {
            let Some(s) = live(&state) else { return };
            let why = if state.timed_out.get() { format!("no answer within {timeout_ms} ms") } else { describe(&e) };
            L::on_open_failed(&s, Kind::WebTransport, &format!("WebTransport to {url} failed: {why}"));
            return;
        }
    };
    let mut decoder = framing::Decoder::new();
    let reason = 'read: loop {
        let chunk = match JsFuture::from(reader.read()).await {
            Ok(v) => v.unchecked_into::<ReadableStreamReadResult>(),
            Err(e) => break format!("connection closed: {}", describe(&e)),
        };
        if chunk.get_done().unwrap_or(false) {
            break "the gateway ended the stream".to_string();
        }
        decoder.push(&Uint8Array::new(&chunk.get_value()).to_vec());
        while let Some(record) = decoder.next_record() {
            let Some(s) = live(&state) else { return };
            match record {
                Record::Message(m) => L::on_message(&s, &m),
                Record::Close { code, reason } => break 'read format!("connection closed ({code}): {reason}"),
            }
        }
    };
    if let Some(s) = live(&state) {
        L::on_closed(&s, &reason);
    }
}
