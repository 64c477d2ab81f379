//! `ws-gateway --config gateway.toml` runs a gateway (`--example-config` prints one).

use std::path::PathBuf;

use clap::Parser;
use nodenet::node::cli::{fail, init_tracing};

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
data_dir = "/var/lib/mixnet/gw1"      # keys, replay filters and inbox.sqlite
rate_per_sec = 2000                   # frames per second per client (packets, acks, pings)
burst = 4000
max_connections = 10000               # more are closed at once (code 4007, busy)
client_queue = 4096                   # messages queued to a client before it counts as too slow
max_clients = 1000000                 # identities with an inbox (only those that authenticated here)
inbox_per_client = 100000             # entries
inbox_bytes_per_client = 67108864     # 64 MiB
inbox_total_bytes = 4294967296        # 4 GiB: the disk the inbox may fill
inbox_page = 256                      # deliveries pushed before the client must acknowledge
inbox_max_age_secs = 86400
heartbeat_ms = 10000

[replay]                              # one Bloom filter per held key (3 held): 48 MiB each
capacity = 10000000
false_positive = 1e-6

# remove this section (and its subsections) for a gateway without the exit role
[exit]
mode = "mixnet"
connect_timeout_ms = 10000            # for resolving, and for each connection attempt
surb_senders = 4096                   # anonymous senders whose SURBs are kept
surbs_total = 100000                  # SURBs kept in total
[exit.policy]
allowed_ports = [[80, 80], [443, 443]]
allow_loopback = false
allow_private = false
[exit.limits]
max_streams = 4096
max_streams_per_sender = 64
max_connecting = 256                  # resolving or connecting at once
max_unopened_per_sender = 8           # streams whose messages came before their Open
max_unopened = 1024
unopened_ttl_ms = 30000
unopened_buffer = 33554432
stream_buffer = 1048576               # upload bytes buffered per stream (clients keep a window below)
sender_buffer = 8388608
total_buffer = 268435456
reply_window = 524288                 # reply bytes in flight per stream before reading pauses
total_reply_window = 134217728
idle_timeout_ms = 300000
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
    let config: ws_gateway::GatewayConfig = nodenet::node::load_config(&path).unwrap_or_else(|e| fail(e));
    let gw = ws_gateway::start(config).await.unwrap_or_else(|e| fail(e));
    let wt = gw.wt.as_ref().map(|(_, e)| format!(" and {}", e.url)).unwrap_or_default();
    println!("gateway {} — clients: {}{wt} — nodes: {}", gw.address, gw.ws_url, gw.mix_addr);
    if let Some(exit) = gw.exit {
        println!("exit address: {exit}");
    }
    nodenet::node::cli::shutdown_signal().await;
    gw.shutdown().await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_config_parses() {
        let c: ws_gateway::GatewayConfig = toml::from_str(super::EXAMPLE).expect("the example is valid");
        assert_eq!(c.wt_listen.as_deref(), Some("0.0.0.0:4433"));
        c.core().expect("its limits are valid");
        // the example spells out the defaults
        let d = ws_gateway::GatewayConfig::default();
        let exit = c.exit.expect("an exit section");
        assert_eq!(exit.limits, mixnet_core::exit::ExitLimits::default());
        assert_eq!((c.inbox_total_bytes, c.max_clients, c.replay), (d.inbox_total_bytes, d.max_clients, d.replay));
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        for (name, c) in [
            ("link_queue", ws_gateway::GatewayConfig { link_queue: 0, ..Default::default() }),
            ("client_queue", ws_gateway::GatewayConfig { client_queue: 0, ..Default::default() }),
            ("inbox_page", ws_gateway::GatewayConfig { inbox_page: 0, ..Default::default() }),
        ] {
            let e = c.core().unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }
}
