//! Counters and gauges in the Prometheus text format, without a registry crate:
//! each server lists its own values when scraped.

use std::fmt::Write;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Builds a Prometheus text exposition.
#[derive(Debug, Default)]
pub struct Exposition(String);

impl Exposition {
    /// Adds a counter.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> &mut Self {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        self
    }

    /// Adds a counter with one label, one sample per value.
    pub fn labelled(&mut self, name: &str, help: &str, label: &str, samples: &[(&str, u64)]) -> &mut Self {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} counter");
        for (v, n) in samples {
            let _ = writeln!(self.0, "{name}{{{label}=\"{v}\"}} {n}");
        }
        self
    }

    /// Adds a gauge.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        self
    }

    /// The text.
    pub fn finish(self) -> String {
        self.0
    }
}

/// Reads one sample from an exposition (for tests and benches).
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

/// Serves `GET /metrics` on `listener` with what `render` gives, until the task is
/// aborted (when the node stops). Every response closes its connection: a scrape is one
/// request, and a kept-alive connection would outlive the node, since aborting the
/// server does not end the connection tasks it spawned (a test saw a stopped mix still
/// answer its scraper).
pub fn serve<F, Fut>(listener: tokio::net::TcpListener, render: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = String> + Send + 'static,
{
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let render = render.clone();
            async move { ([(axum::http::header::CONNECTION, "close")], render().await) }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A scrape's connection ends with its response, so nothing of the server is left
    /// serving once its task stops (a kept-alive connection outlived a killed mix).
    #[tokio::test]
    async fn a_scrape_closes_its_connection_and_nothing_serves_after_the_stop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = super::serve(listener, || async { "up 1\n".to_string() });
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut response = String::new();
        // ends (EOF) although HTTP/1.1 would keep the connection: the server closed it
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_string(&mut response)).await;
        read.expect("the server closes the connection after its response").unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.to_ascii_lowercase().contains("connection: close"), "{response}");
        assert!(response.ends_with("up 1\n"), "{response}");
        server.abort();
        let _ = server.await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is closed");
    }
}
