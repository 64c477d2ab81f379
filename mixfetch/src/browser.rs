//! The browser driver of MixFetch: a [`Fetcher`] riding on the wasm client as a
//! [`Layer`], its byte streams carried by the core's exit [`Streams`]. JavaScript
//! sees `MixFetch.create`, `fetch`, `abort`, and events
//! (`fetch-response`, `fetch-body`, `fetch-end`, `fetch-error`) beside the client's.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use js_sys::{Array, Function, Uint8Array};
use mixnet_core::address::Recipient;
use mixnet_core::client::ClientEvent;
use mixnet_core::stream::Streams;
use mixnet_core::time::Instant;
use rustls::pki_types::UnixTime;
use rustls::time_provider::TimeProvider;
use serde::Deserialize;

use crate::events::{FetchBodyEvent, FetchEndEvent, FetchErrorEvent, FetchResponseEvent};
use crate::options::FetchOptions;
use wasm_bindgen::prelude::*;
use wasm_client::js::error;
use wasm_client::report::ToJs;
use wasm_client::{CoreClient, Layer, MixnetClient};

use crate::fetch::{FetchConfig, FetchError, FetchEvent, FetchRequest, Fetcher, Redirect};
use crate::tls::client_config;

/// rustls's clock in the browser (`std::time::SystemTime` does not work in wasm).
#[derive(Debug)]
struct JsClock;

impl TimeProvider for JsClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_millis(js_sys::Date::now() as u64)))
    }
}

/// A time limit in milliseconds, as given by the application.
fn timeout(ms: f64) -> Result<Duration, String> {
    match wasm_client::options::duration_ms(ms) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err("must be a number of milliseconds above 0 and at most 86400000 (a day)".into()),
    }
}

/// One request, as the worker passes it (JSON; the body separately).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestJson {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    redirect: Option<String>,
    timeout_ms: Option<f64>,
    /// What the page decodes (`gzip, deflate`), sent as `Accept-Encoding`.
    accept_encoding: Option<String>,
}

fn error_code(e: &FetchError) -> &'static str {
    match e {
        FetchError::Invalid(_) => "invalid-argument",
        FetchError::Connect { .. } => "connect",
        FetchError::Tls { .. } | FetchError::TruncatedTls => "tls",
        FetchError::Http(_) | FetchError::Closed(_) => "http",
        FetchError::Timeout(_) | FetchError::Stalled(_) => "timeout",
        FetchError::Aborted => "aborted",
        FetchError::TooManyRedirects(_) | FetchError::Redirected(_) | FetchError::InsecureRedirect(_) => "redirect",
    }
}

fn event_to_js(e: FetchEvent) -> JsValue {
    match e {
        FetchEvent::Response(id, info) => FetchResponseEvent {
            id: id as f64,
            status: info.status.into(),
            status_text: info.status_text,
            headers: info.headers.into_iter().map(|(k, v)| Array::of2(&k.into(), &v.into())).collect(),
            url: info.url,
            redirected: info.redirected,
        }
        .to_js(),
        FetchEvent::Body(id, data) => FetchBodyEvent { id: id as f64, data: Uint8Array::from(data.as_slice()) }.to_js(),
        FetchEvent::End(id) => FetchEndEvent { id: id as f64 }.to_js(),
        FetchEvent::Failed(id, e) => {
            FetchErrorEvent { id: id as f64, code: error_code(&e), message: e.to_string() }.to_js()
        }
    }
}

/// The fetch layer: the fetcher and the exit streams under it.
struct FetchLayer {
    fetcher: Fetcher,
    streams: Streams,
    exit: Recipient,
}

impl FetchLayer {
    /// Moves actions to streams, stream events to the fetcher, fetch events out.
    fn pump(&mut self, client: &mut CoreClient, now: Instant, out: &mut Vec<JsValue>) -> bool {
        let mut streams = self.streams.with(client, now);
        crate::carry::pump(&mut self.fetcher, &mut streams, self.exit, |e| out.push(event_to_js(e)))
    }
}

/// What the driver holds: the layer is shared with [`MixFetch`]'s calls.
struct LayerHandle(Rc<RefCell<FetchLayer>>);

impl Layer for LayerHandle {
    fn handle_event(&mut self, client: &mut CoreClient, now: Instant, event: &ClientEvent) -> bool {
        match event {
            ClientEvent::Message(m) => self.0.borrow_mut().streams.with(client, now).handle_message(m),
            _ => false,
        }
    }

    fn poll(&mut self, client: &mut CoreClient, now: Instant, events: &mut Vec<JsValue>) -> bool {
        self.0.borrow_mut().pump(client, now, events)
    }

    fn handle_timeout(&mut self, _client: &mut CoreClient, now: Instant) {
        self.0.borrow_mut().fetcher.handle_timeout(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.0.borrow().fetcher.poll_timeout()
    }
}

/// fetch over the mixnet, running in this worker.
#[wasm_bindgen]
pub struct MixFetch {
    client: MixnetClient,
    layer: Rc<RefCell<FetchLayer>>,
}

#[wasm_bindgen]
impl MixFetch {
    /// Starts a client (`options`: the client's JSON options) with MixFetch on it
    /// (`fetch_options`: `{exit?, extraRoots?, timeoutMs?, maxConcurrency?, allowInsecureRedirects?}`).
    pub async fn create(options: String, fetch_options: String, on_event: Function) -> Result<Self, JsValue> {
        let fo: FetchOptions = serde_json::from_str(&fetch_options)
            .map_err(|e| error("invalid-argument", format!("invalid MixFetch options: {e}")))?;
        let tls =
            client_config(fo.extra_roots.as_bytes(), Arc::new(JsClock)).map_err(|e| error("invalid-argument", e))?;
        let mut config = FetchConfig::new(tls);
        if let Some(ms) = fo.timeout_ms {
            config.timeout = timeout(ms).map_err(|e| error("invalid-argument", format!("timeoutMs: {e}")))?;
        }
        config.allow_insecure_redirects = fo.allow_insecure_redirects;
        if let Some(n) = fo.max_concurrency.filter(|&n| n > 0) {
            config.max_concurrent = n;
        }
        let explicit_exit = match &fo.exit {
            Some(e) => Some(e.parse::<Recipient>().map_err(|e| error("invalid-argument", format!("exit: {e}")))?),
            None => None,
        };
        let mut first_conn = [0u8; 8];
        getrandom::fill(&mut first_conn).map_err(|e| error("internal", e))?;
        let layer = Rc::new(RefCell::new(FetchLayer {
            fetcher: Fetcher::new(config, u64::from_le_bytes(first_conn) >> 1),
            streams: Streams::default(),
            exit: explicit_exit.unwrap_or(Recipient { identity: [0; 32], encryption: [0; 32], gateway: [0; 32] }),
        }));
        let client = MixnetClient::start(&options, on_event, Some(Box::new(LayerHandle(layer.clone())))).await?;
        if explicit_exit.is_none() {
            let exit =
                client.exits().into_iter().next().ok_or_else(|| error("directory", "the topology offers no exit"))?;
            layer.borrow_mut().exit = exit;
        }
        Ok(Self { client, layer })
    }

    /// Starts a request (`request`: `{method, url, headers: [[name, value]…], redirect?,
    /// timeoutMs?}` as JSON); returns its id. Its response arrives as events.
    pub fn fetch(&self, request: &str, body: Option<Vec<u8>>) -> Result<f64, JsValue> {
        let r: RequestJson =
            serde_json::from_str(request).map_err(|e| error("invalid-argument", format!("invalid request: {e}")))?;
        let redirect = match r.redirect.as_deref() {
            None | Some("follow") => Redirect::Follow,
            Some("error") => Redirect::Error,
            Some("manual") => Redirect::Manual,
            Some(other) => {
                return Err(error(
                    "invalid-argument",
                    format!("redirect must be follow, error or manual, not {other:?}"),
                ));
            }
        };
        let req = FetchRequest {
            method: r.method,
            url: r.url,
            headers: r.headers,
            body,
            redirect,
            timeout: r
                .timeout_ms
                .map(timeout)
                .transpose()
                .map_err(|e| error("invalid-argument", format!("timeoutMs: {e}")))?,
            accept_encoding: r.accept_encoding,
        };
        let layer = self.layer.clone();
        let id = self.client.drive(move |_, now| layer.borrow_mut().fetcher.fetch(now, req))?;
        id.map(|id| id as f64).map_err(|e| error(error_code(&e), e))
    }

    /// Cancels a request; a `fetch-error` with code `aborted` follows.
    pub fn abort(&self, id: f64) -> Result<(), JsValue> {
        let layer = self.layer.clone();
        self.client.drive(move |_, now| layer.borrow_mut().fetcher.abort(now, id as u64))
    }

    /// The client underneath (messages, stats, disconnect).
    #[wasm_bindgen(getter)]
    pub fn client(&self) -> MixnetClient {
        self.client.clone()
    }
}
