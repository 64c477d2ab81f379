//! The sans-IO `Fetcher` over the simulated mixnet: its streams are the core's
//! `Streams` through the core's `Exit` (`sim::mixnet::SimExit`), with seeded loss,
//! duplication and reordering on every link and simulated time, against an HTTPS
//! server (rustls) and an HTTP server living in the simulator, through the same glue
//! as the browser's (`mixfetch::carry::pump`), without a browser.

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use demo_services::origin::{TestPki, pattern, pki};
use mixfetch::tls::client_config;
use mixfetch::{FetchConfig, FetchEvent, FetchRequest, Fetcher, Redirect};
use mixnet_core::address::Recipient;
use mixnet_core::client::ClientEvent;
use mixnet_core::exit::{ExitConfig, ExitLimits};
use mixnet_core::message::{MessengerConfig, RouteMode};
use mixnet_core::policy::ExitPolicy;
use mixnet_core::sim::LinkConfig;
use mixnet_core::sim::mixnet::{SimApp, SimMixnet, SimServer};
use mixnet_core::stream::Streams;
use rustls::pki_types::UnixTime;

static PKI: OnceLock<TestPki> = OnceLock::new();

/// An HTTP/1.1 server for one connection: answers `GET /bytes/N` with N pattern bytes
/// (`Content-Length`, then it closes), anything else with 404.
#[derive(Default)]
struct Http {
    request: Vec<u8>,
    answered: bool,
}

impl Http {
    /// The response once the request head is complete.
    fn respond(&mut self, data: &[u8]) -> Vec<u8> {
        self.request.extend_from_slice(data);
        if self.answered || !self.request.windows(4).any(|w| w == b"\r\n\r\n") {
            return Vec::new();
        }
        self.answered = true;
        let head = String::from_utf8_lossy(&self.request);
        let path = head.split(' ').nth(1).unwrap_or("");
        match path.strip_prefix("/bytes/").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => {
                let mut out =
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\nConnection: close\r\n\r\n").into_bytes();
                out.extend(pattern(n));
                out
            }
            None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
        }
    }
}

impl SimApp for Http {
    fn on_data(&mut self, data: &[u8]) -> Vec<u8> {
        self.respond(data)
    }
}

/// The same server behind TLS (rustls, the test CA's certificate for `localhost`).
struct Https {
    tls: rustls::ServerConnection,
    http: Http,
}

impl SimApp for Https {
    fn on_data(&mut self, mut data: &[u8]) -> Vec<u8> {
        while !data.is_empty() {
            self.tls.read_tls(&mut data).expect("rustls takes the client's records");
            self.tls.process_new_packets().expect("the client speaks TLS");
        }
        let mut plain = Vec::new();
        let _ = self.tls.reader().read_to_end(&mut plain);
        let answer = self.http.respond(&plain);
        if !answer.is_empty() {
            self.tls.writer().write_all(&answer).unwrap();
            self.tls.send_close_notify();
        }
        let mut out = Vec::new();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut out).unwrap();
        }
        out
    }
}

fn http_app() -> Box<dyn SimApp> {
    Box::new(Http::default())
}

fn https_app() -> Box<dyn SimApp> {
    let config = PKI.get().expect("the test set up the PKI").server.clone();
    let mut tls = rustls::ServerConnection::new(config).unwrap();
    // the whole response is written at once; the exit reads it within its window
    tls.set_buffer_limit(None);
    Box::new(Https { tls, http: Http::default() })
}

/// What one fetch came to.
#[derive(Debug, Default)]
struct Outcome {
    status: Option<u16>,
    body: Vec<u8>,
    error: Option<String>,
    done: bool,
}

/// Fetches `url` through the simulated network with `loss` on every link.
fn fetch_over_the_sim(seed: u64, mode: RouteMode, loss: f64, url: &str) -> Outcome {
    let pki = PKI.get_or_init(pki);
    let link = LinkConfig {
        latency: Duration::from_millis(5),
        jitter: Duration::from_millis(20),
        loss,
        duplicate: 0.02,
        corrupt: 0.0,
    };
    let messenger =
        MessengerConfig { mode, ack_wait_addition: Duration::from_millis(300), ..MessengerConfig::default() };
    let mut net = SimMixnet::new(seed, link, 2, 2);
    let client: Recipient = net.add_client(0, messenger.clone());
    let exit = net.add_exit(1, ExitConfig { messenger, policy: ExitPolicy::localnet(), limits: ExitLimits::default() });
    let x = net.exit_mut(exit.gateway);
    x.dns.insert("localhost".into(), vec![[127, 0, 0, 1].into()]);
    x.servers.insert(([127, 0, 0, 1], 443).into(), SimServer::App(https_app));
    x.servers.insert(([127, 0, 0, 1], 80).into(), SimServer::App(http_app));

    // rustls checks certificates against the wall clock: the simulated time starts at 0
    let tls = client_config(pki.ca_pem.as_bytes(), Arc::new(WallClock)).unwrap();
    let mut fetcher = Fetcher::new(FetchConfig::new(tls), 1);
    let mut streams = Streams::default();
    let request = FetchRequest {
        method: "GET".into(),
        url: url.into(),
        headers: Vec::new(),
        body: None,
        redirect: Redirect::Follow,
        timeout: Some(Duration::from_secs(300)),
        accept_encoding: None,
    };
    let id = fetcher.fetch(net.net.now(), request).unwrap();
    let mut outcome = Outcome::default();
    let mut seen = 0;
    let limit = net.net.now() + Duration::from_secs(600);
    while !outcome.done && net.net.now() < limit {
        let now = net.net.now();
        // the client's messages into its streams
        let events: Vec<ClientEvent> = net.client(&client).events[seen..].to_vec();
        seen += events.len();
        let mut streams = streams.with(&mut net.client_mut(&client).client, now);
        for e in events {
            if let ClientEvent::Message(m) = e {
                assert!(streams.handle_message(&m), "a message that is not stream traffic");
            }
        }
        // fetcher <-> streams until nothing moves (the browser's glue, mixfetch::carry)
        mixfetch::carry::pump(&mut fetcher, &mut streams, exit, |e| match e {
            FetchEvent::Response(i, info) if i == id => outcome.status = Some(info.status),
            FetchEvent::Body(i, data) if i == id => outcome.body.extend_from_slice(&data),
            FetchEvent::End(i) if i == id => outcome.done = true,
            FetchEvent::Failed(i, e) if i == id => {
                outcome.error = Some(e.to_string());
                outcome.done = true;
            }
            _ => {}
        });
        drop(streams);
        if fetcher.poll_timeout().is_some_and(|t| t <= now) {
            fetcher.handle_timeout(now);
        }
        if !net.net.step() {
            break;
        }
    }
    outcome
}

/// rustls's clock: the certificates were made now, in wall-clock time.
#[derive(Debug)]
struct WallClock;

impl rustls::time_provider::TimeProvider for WallClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::now())
    }
}

#[test]
fn https_and_http_through_a_lossy_reordering_mixnet_arrive_whole() {
    for (seed, mode) in [(70, RouteMode::Mixnet), (71, RouteMode::Fast)] {
        let o = fetch_over_the_sim(seed, mode, 0.05, "https://localhost/bytes/300000");
        assert_eq!((o.status, o.error.as_deref()), (Some(200), None), "{mode:?} https");
        assert!(o.body == pattern(300_000), "{mode:?}: {} bytes, not the pattern", o.body.len());
        let o = fetch_over_the_sim(seed + 10, mode, 0.05, "http://localhost/bytes/100000");
        assert_eq!((o.status, o.error.as_deref()), (Some(200), None), "{mode:?} http");
        assert!(o.body == pattern(100_000), "{mode:?}: {} bytes, not the pattern", o.body.len());
    }
}

#[test]
fn a_refused_connection_fails_the_fetch_with_the_exits_reason() {
    let o = fetch_over_the_sim(72, RouteMode::Fast, 0.0, "http://localhost:81/");
    assert_eq!(o.status, None);
    let e = o.error.unwrap();
    assert!(e.contains("connection refused"), "{e}");
}
