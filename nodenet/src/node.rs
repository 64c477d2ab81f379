//! What a node process does at start, shared by the mix node, the directory and
//! the gateway: its start errors, reading its TOML config, binding its listeners,
//! checking its limits, and the command-line plumbing (logging, signals).

/// Prints a config error and what the file should look like.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Reading or parsing the configuration failed.
    #[error("configuration: {0}")]
    Config(String),
    /// Binding a listener failed.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        error: std::io::Error,
    },
    /// Key files could not be read or written.
    #[error("keys: {0}")]
    Keys(std::io::Error),
    /// The directory could not be reached.
    #[error("directory: {0}")]
    Directory(String),
}

/// Reads a TOML config file into `T`, naming the file in errors.
pub fn load_config<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T, StartError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| StartError::Config(format!("reading {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| StartError::Config(format!("{}: {e}", path.display())))
}

/// Binds a TCP listener, naming the address in errors.
pub async fn bind(addr: &str) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|error| StartError::Bind { addr: addr.to_owned(), error })
}

/// The first address a listen address (`host:port`) resolves to, naming it in errors.
pub async fn resolve(addr: &str) -> Result<std::net::SocketAddr, StartError> {
    let fail = |error: std::io::Error| StartError::Bind { addr: addr.to_owned(), error };
    tokio::net::lookup_host(addr)
        .await
        .map_err(fail)?
        .next()
        .ok_or_else(|| fail(std::io::Error::other("the name resolves to no address")))
}

/// Binds `addr` without listening: the port is the node's (it can be announced) while
/// connection attempts are refused until [`tokio::net::TcpSocket::listen`], so a client
/// cannot get into a half-started server's backlog.
pub async fn reserve(addr: &str) -> Result<tokio::net::TcpSocket, StartError> {
    let fail = |error: std::io::Error| StartError::Bind { addr: addr.to_owned(), error };
    let resolved = resolve(addr).await?;
    let socket = if resolved.is_ipv4() { tokio::net::TcpSocket::new_v4() } else { tokio::net::TcpSocket::new_v6() }
        .map_err(fail)?;
    // as TcpListener::bind does: a restarted node takes its port back at once
    #[cfg(unix)]
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(resolved).map_err(fail)?;
    Ok(socket)
}

/// Checks that each named limit is at least 1 (a zero bound cannot carry anything
/// and some would panic, e.g. a channel of capacity 0).
pub fn require_positive(limits: &[(&str, u64)]) -> Result<(), StartError> {
    match limits.iter().find(|(_, v)| *v == 0) {
        Some((name, _)) => Err(StartError::Config(format!("`{name}` must be at least 1"))),
        None => Ok(()),
    }
}

/// Checks that a node's config names its directory.
pub fn require_directory(url: &str, key: &str) -> Result<(), StartError> {
    if url.is_empty() {
        return Err(StartError::Config("`directory` (the directory's URL) is not set".into()));
    }
    if key.is_empty() {
        return Err(StartError::Config("`directory_key` (the key the directory prints at start) is not set".into()));
    }
    Ok(())
}

/// What the command-line entry points share.
pub mod cli {
    /// Logs to stderr, filtered by `RUST_LOG` (default `default`).
    pub fn init_tracing(default: &str) {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()))
            .with_writer(std::io::stderr)
            .init();
    }

    /// Waits for Ctrl-C or SIGTERM (what systemd and container runtimes send).
    pub async fn shutdown_signal() {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }

    /// Prints `error: …` and exits with status 1.
    pub fn fail(e: impl std::fmt::Display) -> ! {
        eprintln!("error: {e}");
        std::process::exit(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Config {
        listen: String,
    }

    #[test]
    fn config_errors_name_the_file_and_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        let e = load_config::<Config>(&missing).unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "listen = 5\n").unwrap();
        let e = load_config::<Config>(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("listen"), "{e}");
        let good = dir.path().join("good.toml");
        std::fs::write(&good, "listen = \"127.0.0.1:0\"\n").unwrap();
        assert_eq!(load_config::<Config>(&good).unwrap().listen, "127.0.0.1:0");

        let e = require_positive(&[("link_queue", 5), ("max_delay_ms", 0)]).unwrap_err().to_string();
        assert_eq!(e, "configuration: `max_delay_ms` must be at least 1");
        assert!(require_positive(&[("a", 1)]).is_ok());
        assert!(require_directory("", "k").unwrap_err().to_string().contains("`directory`"));
        assert!(require_directory("http://d", "").unwrap_err().to_string().contains("`directory_key`"));
    }

    #[tokio::test]
    async fn a_reserved_port_refuses_connections_until_it_listens() {
        let socket = reserve("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        let listener = socket.listen(16).unwrap();
        let (client, server) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        assert!(client.is_ok() && server.is_ok());
    }

    #[tokio::test]
    async fn a_taken_port_is_named_in_the_error() {
        let held = bind("127.0.0.1:0").await.unwrap();
        let addr = held.local_addr().unwrap().to_string();
        let e = bind(&addr).await.unwrap_err().to_string();
        assert!(e.starts_with(&format!("cannot listen on {addr}:")), "{e}");
    }
}
