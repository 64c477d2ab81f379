//! Counters and gauges in the Prometheus text format, without a registry crate:
//! each server lists its own values when scraped.

use std::fmt::Write;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// Scrapes served at once: a connection beyond them is closed at accept, and counted in
/// `metrics_scrapes_refused_total` (which every scrape lists after the node's own).
pub const MAX_SCRAPES: usize = 16;

/// How long a scrape may take: its request head, and the whole exchange.
#[derive(Debug, Clone, Copy)]
struct ScrapeLimits {
    connections: usize,
    head: Duration,
    total: Duration,
}

const SCRAPE_LIMITS: ScrapeLimits =
    ScrapeLimits { connections: MAX_SCRAPES, head: Duration::from_secs(5), total: Duration::from_secs(30) };

/// Serves `GET /metrics` on `listener` with what `render` gives, until the task is
/// aborted (when the node stops): its connections stop with it. Anyone who reaches the
/// port is bounded: [`MAX_SCRAPES`] connections at once, 5 s to send a request, 30 s for
/// the whole scrape, one request per connection (each response closes it).
pub fn serve<F, Fut>(listener: tokio::net::TcpListener, render: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = String> + Send + 'static,
{
    serve_with(listener, SCRAPE_LIMITS, render)
}

fn serve_with<F, Fut>(listener: tokio::net::TcpListener, limits: ScrapeLimits, render: F) -> tokio::task::JoinHandle<()>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = String> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    let refused = Arc::new(Counter::default());
    tokio::spawn(crate::accept_each(listener, move |stream, peer| {
        let slot = slots.clone().try_acquire_owned();
        let (render, refused) = (render.clone(), refused.clone());
        async move {
            let Ok(_slot) = slot else {
                refused.inc();
                tracing::debug!(%peer, "too many metrics scrapes: refused");
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let (render, refused) = (render.clone(), refused.clone());
                async move { Ok::<_, std::convert::Infallible>(respond(&req, render, &refused).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.head)
                .keep_alive(false)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.total, conn).await;
        }
    }))
}

async fn respond<F, Fut>(
    req: &hyper::Request<hyper::body::Incoming>,
    render: F,
    refused: &Counter,
) -> hyper::Response<String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = String>,
{
    let mut res = if req.method() == hyper::Method::GET && req.uri().path() == "/metrics" {
        let mut text = render().await;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        let mut e = Exposition::default();
        e.counter("metrics_scrapes_refused_total", "Scrapes refused at the connection bound.", refused.get());
        text.push_str(&e.finish());
        hyper::Response::new(text)
    } else {
        let mut res = hyper::Response::new("only GET /metrics\n".to_owned());
        *res.status_mut() = hyper::StatusCode::NOT_FOUND;
        res
    };
    res.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    res
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::ScrapeLimits;

    async fn scrape(s: &mut TcpStream) -> String {
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut response = String::new();
        // ends (EOF) although HTTP/1.1 would keep the connection: the server closed it
        let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut response)).await;
        read.expect("the server closes the connection after its response").unwrap();
        response
    }

    /// A scrape's connection ends with its response, so nothing of the server is left
    /// serving once its task stops (a kept-alive connection outlived a killed mix).
    #[tokio::test]
    async fn a_scrape_closes_its_connection_and_nothing_serves_after_the_stop() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = super::serve(listener, || async { "up 1\n".to_string() });
        let response = scrape(&mut TcpStream::connect(addr).await.unwrap()).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.to_ascii_lowercase().contains("connection: close"), "{response}");
        assert!(response.contains("\r\n\r\nup 1\n"), "{response}");
        assert!(response.ends_with("metrics_scrapes_refused_total 0\n"), "{response}");
        server.abort();
        let _ = server.await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the port is closed");
    }

    /// Whoever reaches the port holds at most the connection bound (one more is closed
    /// at once, and counted), and a connection that sends nothing is closed when its
    /// time for the request head runs out.
    #[tokio::test]
    async fn scrapes_past_the_bound_are_refused_and_counted_and_silent_ones_time_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ScrapeLimits { connections: 2, head: Duration::from_millis(300), total: Duration::from_secs(30) };
        let server = super::serve_with(listener, limits, || async { "up 1\n".to_string() });
        // two connections hold both slots (accepted in order, before the third)
        let mut held = TcpStream::connect(addr).await.unwrap();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let mut third = TcpStream::connect(addr).await.unwrap();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), third.read_to_end(&mut buf)).await;
        assert_eq!(read.expect("refused at once").unwrap(), 0, "closed without a response");
        // a held connection still scrapes, and sees the refusal counted
        let response = scrape(&mut held).await;
        assert!(response.ends_with("metrics_scrapes_refused_total 1\n"), "{response}");
        // the one that says nothing is closed when its head time runs out
        let read = tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut buf)).await;
        read.expect("closed for silence").unwrap();
        server.abort();
        let _ = server.await;
    }
}
