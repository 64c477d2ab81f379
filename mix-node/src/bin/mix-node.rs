//! `mix-node mix --config mix.toml` runs a mix node; `mix-node directory --config
//! directory.toml` runs the directory authority. `--example-config` prints a config.
//! `mix-node identity --data-dir DIR --role mix|gateway` prints (creating it if
//! needed) a node's identity as the `[[allow]]` entry the directory needs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use mix_node::{directory, mix};
use nodenet::node::cli::{fail, init_tracing};
use nodenet::node::load_config;

#[derive(Parser)]
#[command(version, about = "Mix node and directory authority of the mixnet")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a mix node.
    Mix {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print an example configuration and exit.
        #[arg(long)]
        example_config: bool,
    },
    /// Print a node's identity (creating its keys in DATA_DIR if missing) as the
    /// directory's `[[allow]]` entry for it.
    Identity {
        /// The node's data directory (`data_dir` of its configuration).
        #[arg(long)]
        data_dir: PathBuf,
        /// `mix` or `gateway`.
        #[arg(long, default_value = "mix")]
        role: String,
    },
    /// Run the directory authority.
    Directory {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print an example configuration and exit.
        #[arg(long)]
        example_config: bool,
    },
}

const MIX_EXAMPLE: &str = r#"# mix node
listen = "0.0.0.0:1789"            # Noise links from other nodes
announce = "mix1.example.org:1789" # what the topology publishes
metrics_listen = "127.0.0.1:9101"  # GET /metrics
directory = "http://directory.example.org:8000"
directory_key = "<base58 ed25519 key printed by the directory>"
data_dir = "/var/lib/mixnet/mix1"  # identity, Noise and per-epoch Sphinx keys, replay filters
workers = 0                        # crypto threads; 0 = one per core
worker_queue = 4096
link_queue = 8192
heartbeat_ms = 10000
max_queue = 100000                 # packets held for their delay, at most
max_queue_bytes = 268435456        # and bytes (256 MiB)
max_delay_ms = 60000               # longer per-hop delays are dropped

[replay]                           # one Bloom filter per held key (3 held): 48 MiB each
capacity = 10000000                # packets expected per key epoch
false_positive = 1e-6              # chance a fresh packet is taken for a replay
"#;

const DIRECTORY_EXAMPLE: &str = r#"# directory authority
listen = "0.0.0.0:8000"
data_dir = "/var/lib/mixnet/directory" # its signing key
epoch_ms = 3600000                     # layers re-assigned, Sphinx keys rotated
node_ttl_ms = 30000                    # nodes silent this long leave the topology
max_clock_skew_ms = 300000
min_register_interval_ms = 100         # per identity
max_registrations_per_sec = 200        # from everyone

# the nodes admitted: `mix-node identity --data-dir <node's data_dir> --role <role>` prints each entry
[[allow]]
identity = "<base58 identity of mix1>"
role = "mix"
[[allow]]
identity = "<base58 identity of gw1>"
role = "gateway"
"#;

#[tokio::main]
async fn main() {
    init_tracing("info");
    match Cli::parse().command {
        Command::Mix { example_config: true, .. } => print!("{MIX_EXAMPLE}"),
        Command::Directory { example_config: true, .. } => print!("{DIRECTORY_EXAMPLE}"),
        Command::Identity { data_dir, role } => {
            if role != "mix" && role != "gateway" {
                fail(format!("--role must be mix or gateway, not {role:?}"));
            }
            let id = nodenet::keys::NodeIdentity::load_or_create(Some(&data_dir)).unwrap_or_else(|e| fail(e));
            println!("[[allow]]\nidentity = \"{}\"\nrole = \"{role}\"", id.address());
        }
        Command::Mix { config, .. } => {
            let path = config.unwrap_or_else(|| fail("--config is required (see --example-config)"));
            let config: mix::MixConfig = load_config(&path).unwrap_or_else(|e| fail(e));
            let node = mix::start(config).await.unwrap_or_else(|e| fail(e));
            println!("mix node {} listening on {}", node.address, node.mix_addr);
            nodenet::node::cli::shutdown_signal().await;
            node.stop();
        }
        Command::Directory { config, .. } => {
            let config: directory::DirectoryConfig = match config {
                Some(p) => load_config(&p).unwrap_or_else(|e| fail(e)),
                None => fail("--config is required (see --example-config)"),
            };
            let dir = directory::start(config).await.unwrap_or_else(|e| fail(e));
            println!(
                "directory listening on {} with key {}",
                dir.url(),
                mixnet_core::address::encode_key(&dir.key.to_bytes())
            );
            nodenet::node::cli::shutdown_signal().await;
            dir.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_configs_parse() {
        let mix: mix_node::mix::MixConfig = toml::from_str(super::MIX_EXAMPLE).unwrap();
        mix.validate().unwrap();
        let d: mix_node::directory::DirectoryConfig = toml::from_str(super::DIRECTORY_EXAMPLE).unwrap();
        assert_eq!(d.allow.len(), 2);
    }

    /// On 117647c `link_queue = 0` panicked (a channel of capacity 0).
    #[test]
    fn zero_limits_are_refused_by_name() {
        let mix = mix_node::mix::MixConfig { link_queue: 0, ..mix_node::mix::MixConfig::default() };
        let e = mix.validate().unwrap_err().to_string();
        assert!(e.contains("link_queue"), "{e}");
    }
}
