//! `cargo run -p localnet -- [--mode fast|mixnet]`: the whole network on loopback.
//! Writes what a browser client needs to a JSON file and prints it; Ctrl-C stops it.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
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
}

#[tokio::main]
async fn main() {
    mix_node::cli::init_tracing("warn");
    let cli = Cli::parse();
    let config = LocalnetConfig {
        mode: match cli.mode {
            Mode::Mixnet => RouteMode::Mixnet,
            Mode::Fast => RouteMode::Fast,
        },
        mixes_per_layer: cli.mixes_per_layer.max(1),
        data_dir: cli.data_dir,
        ..LocalnetConfig::default()
    };
    let net = match Localnet::start(config).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("localnet failed to start: {e}");
            std::process::exit(1);
        }
    };
    let info = serde_json::to_string_pretty(&net.info()).expect("serialisable");
    if let Err(e) = std::fs::write(&cli.out, &info) {
        eprintln!("cannot write {}: {e}", cli.out.display());
        std::process::exit(1);
    }
    println!("{info}");
    println!("localnet is up ({} mix nodes, entry and exit gateways); info written to {}", net.mixes.len(), cli.out.display());
    println!("press Ctrl-C to stop");
    let _ = tokio::signal::ctrl_c().await;
    println!("stopping…");
    net.shutdown().await;
}
