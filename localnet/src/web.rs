//! The demo web server: the built demo site, `/localnet.json` (what a page needs to
//! join this network), `/posts` (what the publishing service has published), and,
//! when enabled for test suites, `/_control/…` to stop and start gateways
//! and close their WebTransport ports.
//!
//! Every response carries a strict Content-Security-Policy, so the demo also proves
//! that the client works on such pages (no inline script, wasm from a URL).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use tokio::sync::Mutex;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::{Localnet, LocalnetInfo};
use demo_services::publish::PublishService;

/// The policy every page is served with: scripts, workers and wasm only from this
/// origin; connections to loopback (the directory and the gateways), and images from
/// loopback (what MixFetch's service-worker mode carries in the tests).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
     worker-src 'self'; connect-src 'self' http://127.0.0.1:* ws://127.0.0.1:* https://127.0.0.1:*; \
     style-src 'self'; img-src 'self' data: http://127.0.0.1:*; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/// How to serve.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The built demo site (or any static files); `None`: only the JSON endpoints.
    pub site: Option<PathBuf>,
    /// Whether `/_control/gateways/{i}/{stop|start|close-webtransport|blackhole-webtransport}`
    /// is served (test suites only).
    pub control: bool,
}

struct WebState {
    net: Arc<Mutex<Localnet>>,
    info: Mutex<LocalnetInfo>,
    publish: Option<Arc<PublishService>>,
}

/// A running web server.
pub struct RunningWeb {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl RunningWeb {
    /// `http://addr/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for RunningWeb {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn get_info(State(s): State<Arc<WebState>>) -> Json<LocalnetInfo> {
    Json(s.info.lock().await.clone())
}

async fn posts(State(s): State<Arc<WebState>>) -> Response {
    match &s.publish {
        Some(p) => Json(p.posts()).into_response(),
        None => (StatusCode::NOT_FOUND, "the publishing service is not running").into_response(),
    }
}

async fn control_mix(State(s): State<Arc<WebState>>, Path((i, action)): Path<(usize, String)>) -> Response {
    let mut net = s.net.lock().await;
    if i >= net.mixes.len() {
        return (StatusCode::NOT_FOUND, format!("no mix {i} (there are {})", net.mixes.len())).into_response();
    }
    match action.as_str() {
        "kill" => match net.kill_mix(i) {
            Some(_) => (StatusCode::OK, "killed (the directory drops it once its heartbeat lapses)").into_response(),
            None => (StatusCode::CONFLICT, "already killed").into_response(),
        },
        other => (StatusCode::NOT_FOUND, format!("unknown action {other:?}: kill")).into_response(),
    }
}

async fn control(State(s): State<Arc<WebState>>, Path((i, action)): Path<(usize, String)>) -> Response {
    let mut net = s.net.lock().await;
    if i >= net.gateways.len() {
        return (StatusCode::NOT_FOUND, format!("no gateway {i} (there are {})", net.gateways.len())).into_response();
    }
    match action.as_str() {
        "stop" => {
            net.stop_gateway(i).await;
            (StatusCode::OK, "stopped").into_response()
        }
        "start" if net.gateways[i].is_some() => (StatusCode::CONFLICT, "already running").into_response(),
        "start" => match net.start_gateway(i).await {
            Ok(()) => (StatusCode::OK, "started").into_response(),
            Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        },
        "close-webtransport" => match net.close_webtransport(i).await {
            true => (StatusCode::OK, "webtransport port closed").into_response(),
            false => (StatusCode::CONFLICT, "the gateway is down or has no webtransport listener").into_response(),
        },
        "blackhole-webtransport" => match net.blackhole_webtransport(i).await {
            Ok(()) => (StatusCode::OK, "webtransport port closed; packets to it are dropped silently").into_response(),
            Err(e) => (StatusCode::CONFLICT, e).into_response(),
        },
        other => (
            StatusCode::NOT_FOUND,
            format!("unknown action {other:?}: stop, start, close-webtransport or blackhole-webtransport"),
        )
            .into_response(),
    }
}

async fn not_built() -> Response {
    (
        StatusCode::NOT_FOUND,
        "The demo site is not built. `npm start` builds it; or run `npm run build` and restart localnet.",
    )
        .into_response()
}

async fn no_site() -> Response {
    (StatusCode::NOT_FOUND, "This localnet serves no site: /localnet.json has the network's details.").into_response()
}

/// Starts serving on `listener`. `info` is what `/localnet.json` returns.
pub fn start(
    listener: tokio::net::TcpListener,
    config: WebConfig,
    net: Arc<Mutex<Localnet>>,
    info: LocalnetInfo,
    publish: Option<Arc<PublishService>>,
) -> std::io::Result<RunningWeb> {
    let addr = listener.local_addr()?;
    let shared = Arc::new(WebState { net, info: Mutex::new(info), publish });
    let mut app = Router::new().route("/localnet.json", get(get_info)).route("/posts", get(posts));
    if config.control {
        app = app
            .route("/_control/gateways/{i}/{action}", post(control))
            .route("/_control/mixes/{i}/{action}", post(control_mix));
    }
    let app = match &config.site {
        Some(site) if site.join("index.html").is_file() => app.fallback_service(ServeDir::new(site)),
        Some(site) => {
            tracing::warn!(site = %site.display(), "demo site not built; serving only the JSON endpoints");
            app.fallback(not_built)
        }
        None => app.fallback(no_site),
    };
    let app = app
        .with_state(shared)
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-cache")));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(RunningWeb { addr, task })
}
