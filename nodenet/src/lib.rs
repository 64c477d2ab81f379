//! What every node process needs: Noise links to other nodes ([`link`]), key files
//! ([`keys`]), the directory client ([`directory`]), Prometheus metrics ([`metrics`])
//! and what a node process does at start ([`node`]: start errors, config, listeners).

pub mod directory;
pub mod keys;
pub mod link;
pub mod membership;
pub mod metrics;
pub mod node;
pub mod replay;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

/// A CSPRNG seeded from the operating system, for the core's state machines.
pub fn os_rng() -> ChaCha20Rng {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).expect("the operating system provides randomness");
    ChaCha20Rng::from_seed(seed)
}

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The core's time for a tokio driver: microseconds since `start`.
pub fn core_now(start: tokio::time::Instant) -> mixnet_core::time::Instant {
    mixnet_core::time::Instant::from_micros(start.elapsed().as_micros() as u64)
}

/// Accepts connections until dropped, running `handle` for each (with `TCP_NODELAY`
/// set). Connections live in a `JoinSet` owned by this future, so stopping the
/// listener stops them too.
pub async fn accept_each<F, Fut>(listener: tokio::net::TcpListener, mut handle: F)
where
    F: FnMut(tokio::net::TcpStream, std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let Ok((stream, peer)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        conns.spawn(handle(stream, peer));
    }
}
