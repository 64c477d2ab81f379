//! `ws-gateway --config gateway.toml` runs a gateway (`--example-config` prints one).

use std::path::PathBuf;

use clap::Parser;
use mix_node::cli::{fail, init_tracing};

#[derive(Parser)]
#[command(version, about = "Gateway of the mixnet: WebSocket clients, inbox, exit role")]
struct Cli {
    /// TOML configuration file.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print an example configuration and exit.
    #[arg(long)]
    example_config: bool,
}

const EXAMPLE: &str = r#"# gateway
listen = "0.0.0.0:1790"               # Noise links from mix nodes
announce = "gw1.example.org:1790"
ws_listen = "0.0.0.0:9000"            # browsers
ws_url = "wss://gw1.example.org/ws"   # what the topology publishes (behind a TLS proxy)
wt_listen = "0.0.0.0:4433"            # WebTransport (UDP); leave out to offer WebSocket only
wt_url = "https://gw1.example.org:4433/mixnet"
wt_cert = "/etc/mixnet/gw1-fullchain.pem"  # a certificate browsers trust; without these two,
wt_key = "/etc/mixnet/gw1-key.pem"         # a self-signed one (13 days) is pinned by its hash
metrics_listen = "127.0.0.1:9102"
directory = "http://directory.example.org:8000"
directory_key = "<base58 ed25519 key printed by the directory>"
data_dir = "/var/lib/mixnet/gw1"      # keys and inbox.sqlite
rate_per_sec = 2000                   # packets per second per client
burst = 4000
inbox_per_client = 100000
inbox_max_age_secs = 86400
heartbeat_ms = 10000

# remove this section for a gateway without the exit role
[exit]
mode = "mixnet"
connect_timeout_ms = 10000
[exit.policy]
allowed_ports = [[80, 80], [443, 443]]
allow_loopback = false
allow_private = false
"#;

#[tokio::main]
async fn main() {
    init_tracing("info");
    let cli = Cli::parse();
    if cli.example_config {
        print!("{EXAMPLE}");
        return;
    }
    let path = cli.config.unwrap_or_else(|| fail("--config is required (see --example-config)"));
    let config: ws_gateway::GatewayConfig = mix_node::load_config(&path).unwrap_or_else(|e| fail(e));
    let gw = ws_gateway::start(config).await.unwrap_or_else(|e| fail(e));
    let wt = gw.wt.as_ref().map(|(_, e)| format!(" and {}", e.url)).unwrap_or_default();
    println!("gateway {} — clients: {}{wt} — nodes: {}", gw.address, gw.ws_url, gw.mix_addr);
    if let Some(exit) = gw.exit {
        println!("exit address: {exit}");
    }
    mix_node::cli::shutdown_signal().await;
    gw.shutdown().await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_config_parses() {
        let c: ws_gateway::GatewayConfig = toml::from_str(super::EXAMPLE).expect("the example is valid");
        assert_eq!(c.wt_listen.as_deref(), Some("0.0.0.0:4433"));
        assert!(c.exit.is_some());
    }
}
