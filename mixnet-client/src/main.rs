//! `mixnet-client`: the native client on the command line.
//!
//! ```text
//! mixnet-client --localnet http://127.0.0.1:8080 listen
//! mixnet-client --localnet http://127.0.0.1:8080 send <address> "hello"
//! mixnet-client --localnet http://127.0.0.1:8080 socks5 --listen 127.0.0.1:1080
//! curl --socks5-hostname 127.0.0.1:1080 https://example.org/
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use mixnet_client::socks::{self, SocksConfig};
use mixnet_client::{Client, ClientConfig, ClientEvent, LoopixConfig, Transport};
use mixnet_core::address::{ClientIdentity, Recipient};
use mixnet_core::message::{MessengerConfig, RouteMode};

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Three mix layers with per-hop delays.
    Mixnet,
    /// Straight to the exit's gateway (no anonymity: for development).
    Fast,
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    Websocket,
    Webtransport,
}

#[derive(Parser)]
#[command(version, about = "The mixnet's native client: send and receive messages, or proxy TCP through an exit")]
struct Cli {
    /// A running localnet (its base URL or its `localnet.json` file): takes the
    /// directory, its key and the route mode from it.
    #[arg(long, conflicts_with_all = ["directory", "directory_key"])]
    localnet: Option<String>,
    /// Directory URL.
    #[arg(long, requires = "directory_key")]
    directory: Option<String>,
    /// The directory's public key (base58).
    #[arg(long)]
    directory_key: Option<String>,
    /// Route mode (default: mixnet, or localnet's).
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// Gateway identity (base58); the first gateway offering the transport if unset.
    #[arg(long)]
    gateway: Option<String>,
    /// How to reach the gateway.
    #[arg(long, value_enum, default_value = "websocket")]
    transport: TransportArg,
    /// Keep the identity (address and gateway inbox) in this file: read if it
    /// exists, created (mode 0600) if not. The same 64-byte base58 form as the
    /// browser's `generateIdentity()`. A fresh identity per run if unset.
    #[arg(long)]
    identity: Option<PathBuf>,
    /// Send at the Loopix rates with loop cover traffic (as browsers do), not
    /// every packet at once.
    #[arg(long)]
    cover: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print this client's address and exit.
    Address,
    /// Send a message (the argument, or standard input) and wait for its acknowledgement.
    Send {
        /// The recipient's address (`identity.encryption@gateway`).
        to: String,
        /// The message; standard input if absent.
        message: Option<String>,
        /// Attach this many reply SURBs (the recipient can answer without knowing us).
        #[arg(long, default_value_t = 0)]
        surbs: u16,
        /// After the acknowledgement, wait for one reply and print it.
        #[arg(long, requires = "surbs")]
        wait_reply: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Print our address, then every message received, one per line.
    Listen {
        /// Answer each message that carries SURBs with this text.
        #[arg(long)]
        reply: Option<String>,
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<usize>,
    },
    /// A SOCKS5/SOCKS4a proxy: each CONNECT becomes a TCP connection made by the exit.
    Socks5 {
        /// Where to listen.
        #[arg(long, default_value = "127.0.0.1:1080")]
        listen: String,
        /// The exit's address; the topology's first exit if unset.
        #[arg(long)]
        exit: Option<String>,
        /// Proxied connections at once.
        #[arg(long, default_value_t = 256)]
        max_connections: usize,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mixnet-client: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let config = client_config(&cli).await?;
    let mut client = Client::connect(config).await.map_err(|e| e.to_string())?;
    match cli.command {
        Command::Address => {
            println!("{}", client.address);
            Ok(())
        }
        Command::Send { to, message, surbs, wait_reply, timeout } => {
            let to: Recipient = to.parse().map_err(|e| format!("recipient: {e}"))?;
            let data = match message {
                Some(m) => m.into_bytes(),
                None => {
                    let mut buf = Vec::new();
                    std::io::stdin().read_to_end(&mut buf).map_err(|e| format!("standard input: {e}"))?;
                    buf
                }
            };
            let timeout = Duration::from_secs(timeout);
            let id = client.send(to, data, surbs).await.map_err(|e| e.to_string())?;
            if !client.delivered(id, timeout).await {
                return Err(format!("message {id:?} was not acknowledged within {timeout:?}"));
            }
            eprintln!("delivered");
            if wait_reply {
                let m = client.recv(timeout).await.ok_or_else(|| format!("no reply within {timeout:?}"))?;
                print_message(&m.data);
            }
            // the acknowledgement of that reply leaves before we do
            client.close(Duration::from_secs(10)).await.map_err(|e| e.to_string())
        }
        Command::Listen { reply, count } => {
            println!("{}", client.address);
            let _ = std::io::stdout().flush();
            let mut seen = 0;
            let mut last_reply = None;
            while count.is_none_or(|c| seen < c) {
                match client.next_event().await {
                    Some(ClientEvent::Received(m)) => {
                        print_message(&m.data);
                        seen += 1;
                        if let (Some(text), Some(tag)) = (&reply, m.sender_tag) {
                            let id = client.reply(tag, text.clone().into_bytes()).await.map_err(|e| e.to_string())?;
                            last_reply = Some(id);
                        }
                    }
                    Some(ClientEvent::Disconnected(why)) => {
                        tracing::warn!(%why, "gateway connection lost; reconnecting")
                    }
                    Some(_) => {}
                    None => return Err("the client stopped".into()),
                }
            }
            // the last reply is acknowledged before we go
            if let Some(id) = last_reply
                && !client.delivered(id, Duration::from_secs(60)).await
            {
                return Err("the last reply was not acknowledged within 60 s".into());
            }
            client.close(Duration::from_secs(10)).await.map_err(|e| e.to_string())
        }
        Command::Socks5 { listen, exit, max_connections } => {
            let exit = match exit {
                Some(e) => e.parse().map_err(|e| format!("exit: {e}"))?,
                None => client
                    .exits()
                    .await
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .next()
                    .ok_or("the topology offers no exit; give one with --exit")?,
            };
            let listener =
                tokio::net::TcpListener::bind(&listen).await.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            // the address on stdout (a script waits for this line), the rest on stderr
            println!("socks5://{addr}");
            let _ = std::io::stdout().flush();
            tracing::info!(%exit, "SOCKS proxy on {addr}: each CONNECT is made by this exit");
            let config = SocksConfig { max_connections, ..SocksConfig::new(exit) };
            let handle = client.handle();
            tokio::select! {
                r = socks::serve(listener, handle, config) => r.map_err(|e| e.to_string()),
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
    }
}

fn print_message(data: &[u8]) {
    match std::str::from_utf8(data) {
        Ok(text) => println!("{text}"),
        Err(_) => println!("({} bytes, not UTF-8)", data.len()),
    }
    let _ = std::io::stdout().flush();
}

async fn client_config(cli: &Cli) -> Result<ClientConfig, String> {
    let (directory, key, localnet_mode) = match (&cli.localnet, &cli.directory, &cli.directory_key) {
        (Some(l), _, _) => {
            let info = localnet_info(l).await?;
            let field = |name: &str| {
                info.get(name).and_then(|v| v.as_str()).map(str::to_owned).ok_or(format!("{l}: no '{name}' field"))
            };
            let mode = match info.get("mode").and_then(|v| v.as_str()) {
                Some("fast") => Some(RouteMode::Fast),
                _ => Some(RouteMode::Mixnet),
            };
            (field("directory")?, field("directoryKey")?, mode)
        }
        (None, Some(d), Some(k)) => (d.clone(), k.clone(), None),
        _ => return Err("say where the network is: --localnet URL, or --directory URL --directory-key KEY".into()),
    };
    let mut c = ClientConfig::new(&directory, &key);
    c.gateway = cli.gateway.clone();
    c.transport = match cli.transport {
        TransportArg::Websocket => Transport::WebSocket,
        TransportArg::Webtransport => Transport::WebTransport,
    };
    let mode = match cli.mode {
        Some(Mode::Mixnet) => RouteMode::Mixnet,
        Some(Mode::Fast) => RouteMode::Fast,
        None => localnet_mode.unwrap_or(RouteMode::Mixnet),
    };
    c.messenger = MessengerConfig { mode, ..MessengerConfig::default() };
    if cli.cover {
        c.loopix = LoopixConfig::default();
    }
    if let Some(path) = &cli.identity {
        c.identity = Some(load_or_create_identity(path)?);
    }
    Ok(c)
}

/// `localnet.json`'s contents, from a file or from `<url>/localnet.json`.
async fn localnet_info(place: &str) -> Result<serde_json::Value, String> {
    let text = if place.starts_with("http://") || place.starts_with("https://") {
        let url = if place.ends_with(".json") {
            place.to_owned()
        } else {
            format!("{}/localnet.json", place.trim_end_matches('/'))
        };
        let r = reqwest::get(&url).await.map_err(|e| format!("{url}: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("{url}: HTTP {}", r.status()));
        }
        r.text().await.map_err(|e| format!("{url}: {e}"))?
    } else {
        std::fs::read_to_string(place).map_err(|e| format!("{place}: {e}"))?
    };
    serde_json::from_str(&text).map_err(|e| format!("{place}: not localnet.json: {e}"))
}

fn load_or_create_identity(path: &Path) -> Result<ClientIdentity, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => ClientIdentity::parse(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = ClientIdentity::generate(&mut nodenet::os_rng());
            nodenet::keys::write_secret(path, id.to_base58().as_bytes())
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
