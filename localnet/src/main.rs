//! `cargo run -p localnet -- [--mode fast|mixnet]`: the whole network on loopback,
//! the demo's publishing service and the demo site. Writes what a browser client
//! needs to a JSON file and prints it; Ctrl-C (or SIGTERM) stops it.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use demo_services::publish::PublishService;
use localnet::web::{self, WebConfig};
use localnet::{Localnet, LocalnetConfig};
use mixnet_core::message::RouteMode;

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Three mix layers with delays and cover traffic.
    Mixnet,
    /// Straight to the egress gateway: no delays, no cover.
    Fast,
}

#[derive(Parser)]
#[command(version, about = "Directory, 3 layers of mixes, entry and exit gateways on loopback")]
struct Cli {
    /// Route mode clients should use.
    #[arg(long, value_enum, default_value = "mixnet")]
    mode: Mode,
    /// Mix nodes per layer.
    #[arg(long, default_value_t = 2)]
    mixes_per_layer: usize,
    /// Keep keys and inboxes here (a temporary directory otherwise).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where to write the client info JSON.
    #[arg(long, default_value = "localnet.json")]
    out: PathBuf,
    /// Where the demo site is served (`host:port`; if the port is taken, another is chosen).
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: String,
    /// The built demo site (any directory of static files).
    #[arg(long, default_value = "demo-site/dist")]
    site: PathBuf,
    /// Serve no site: only `/localnet.json` (what @mixnet/localnet does without `site`).
    #[arg(long, conflicts_with = "site")]
    no_site: bool,
    /// Serve `POST /_control/gateways/{i}/{stop|start|close-webtransport|blackhole-webtransport}`
    /// and `POST /_control/mixes/{i}/kill` (for test suites).
    #[arg(long)]
    control: bool,
    /// Gateways listen only for WebSocket (by default they also offer WebTransport).
    #[arg(long)]
    no_webtransport: bool,
    /// The exit may also connect to private addresses (RFC 1918, ULA, link-local…): a
    /// test's own servers on a LAN or container network. Loopback is always allowed.
    #[arg(long)]
    exit_allow_private: bool,
    /// Derive the nodes' and the directory's long-term keys from this number: the same
    /// identities and directory key on every run (with a fresh data directory).
    #[arg(long)]
    seed: Option<u64>,
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("localnet: {what}: {e}");
    std::process::exit(1);
}

async fn terminated() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

#[tokio::main]
async fn main() {
    nodenet::node::cli::init_tracing("warn");
    let cli = Cli::parse();
    let config = LocalnetConfig {
        mode: match cli.mode {
            Mode::Mixnet => RouteMode::Mixnet,
            Mode::Fast => RouteMode::Fast,
        },
        mixes_per_layer: cli.mixes_per_layer.max(1),
        data_dir: cli.data_dir,
        webtransport: !cli.no_webtransport,
        seed: cli.seed,
        exit_policy: mixnet_core::policy::ExitPolicy {
            allow_private: cli.exit_allow_private,
            ..mixnet_core::policy::ExitPolicy::localnet()
        },
        ..LocalnetConfig::default()
    };
    let net = Localnet::start(config).await.unwrap_or_else(|e| fail("failed to start", e));
    let mut info = net.info();
    let mut service_config = net.client_config(1);
    service_config.topology_refresh = std::time::Duration::from_secs(5);
    let publish = PublishService::start(service_config).await.unwrap_or_else(|e| fail("publishing service", e));
    info.publish_service = Some(publish.address.to_string());
    let pki = demo_services::origin::pki();
    let https =
        demo_services::origin::server(Some(pki.server.clone())).await.unwrap_or_else(|e| fail("demo origin", e));
    let http = demo_services::origin::server(None).await.unwrap_or_else(|e| fail("demo origin", e));
    info.demo_origin = Some(localnet::DemoOrigin {
        https: format!("https://localhost:{}/", https.port),
        http: format!("http://127.0.0.1:{}/", http.port),
        ca: pki.ca_pem.clone(),
    });
    let mixes = net.mixes.len();
    let listener = match tokio::net::TcpListener::bind(&cli.http).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let host = cli.http.rsplit_once(':').map_or("127.0.0.1", |(h, _)| h);
            eprintln!("localnet: {} is taken; serving the demo on another port", cli.http);
            tokio::net::TcpListener::bind(format!("{host}:0")).await.unwrap_or_else(|e| fail("web server", e))
        }
        Err(e) => fail(&format!("web server on {}", cli.http), e),
    };
    let demo_url = format!("http://{}/", listener.local_addr().unwrap_or_else(|e| fail("web server", e)));
    info.demo = Some(demo_url.clone());
    let net = Arc::new(tokio::sync::Mutex::new(net));
    let web_config = WebConfig { site: (!cli.no_site).then(|| cli.site.clone()), control: cli.control };
    let web = web::start(listener, web_config, net.clone(), info.clone(), Some(Arc::new(publish)))
        .unwrap_or_else(|e| fail("web server", e));
    let text = serde_json::to_string_pretty(&info).expect("serialisable");
    if let Err(e) = std::fs::write(&cli.out, &text) {
        fail(&format!("cannot write {}", cli.out.display()), e);
    }
    println!("{text}");
    println!("localnet is up ({mixes} mix nodes, entry and exit gateways); info written to {}", cli.out.display());
    println!("demo site: {demo_url}");
    println!("press Ctrl-C to stop");
    terminated().await;
    println!("stopping…");
    drop(web);
    drop((https, http));
    match Arc::try_unwrap(net) {
        Ok(net) => net.into_inner().shutdown().await,
        Err(_) => eprintln!("localnet: still in use at shutdown; exiting"),
    }
}
