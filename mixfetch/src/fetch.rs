//! The fetch state machine: requests in, byte-stream actions out, responses back.
//! Sans-IO like the core: the driver opens, writes and closes the byte streams the
//! [`Fetcher`] asks for (through the mixnet's exit, or plain TCP in tests), feeds back
//! what happens to them, and arms one timer.
//!
//! Contract: plain methods for app commands (`fetch`, `abort`), `handle_*` for stream
//! events and the timer, `poll_*` for output. After any call drain
//! [`Fetcher::poll_action`] and [`Fetcher::poll_event`] and re-arm the timer from
//! [`Fetcher::poll_timeout`].
//!
//! Fetch semantics: redirects are followed up to 20 times by the fetch standard's
//! rules (301/302 turn POST into GET, 303 turns anything but HEAD into GET, 307/308
//! keep method and body, `Authorization` is dropped across origins); `redirect:
//! "error"` fails instead, `"manual"` hands the 3xx response back as it is. Up to six
//! connections per origin; a finished keep-alive connection is reused for the next
//! request to its origin (and retried once on a fresh one if the server had closed it).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use mixnet_core::time::Instant;
use rustls::ClientConfig;

use crate::http::{HttpError, Parsed, ResponseHead, ResponseReader, encode_request};
use crate::tls::Tls;
use crate::url::Url;

/// Identifies a request.
pub type FetchId = u64;
/// Identifies a byte stream (one connection).
pub type ConnId = u64;

/// How the fetcher behaves: TLS trust, concurrency, time limits, redirects.
#[derive(Clone)]
pub struct FetchConfig {
    /// TLS configuration (see [`crate::tls::client_config`]).
    pub tls: Arc<ClientConfig>,
    /// Requests in flight at once; more wait their turn.
    pub max_concurrent: usize,
    /// Connections per origin.
    pub max_per_origin: usize,
    /// Time limit of a request until its response head (redirects included), and
    /// then for each gap in its body: a long download is fine while bytes flow.
    pub timeout: Duration,
    /// How long a finished keep-alive connection waits for another request.
    pub idle_timeout: Duration,
    /// Redirects followed at most.
    pub max_redirects: u8,
    /// Follow redirects from `https:` to `http:` (off by default: a secure page's
    /// mixed-content rule refuses them, and the request, cookies included, would
    /// cross the exit in plaintext).
    pub allow_insecure_redirects: bool,
}

impl FetchConfig {
    /// Defaults around `tls`: 20 concurrent requests, 6 connections per origin, 60 s
    /// timeout, 30 s idle connections, 20 redirects.
    pub fn new(tls: Arc<ClientConfig>) -> Self {
        Self {
            tls,
            max_concurrent: 20,
            max_per_origin: 6,
            timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            max_redirects: 20,
            allow_insecure_redirects: false,
        }
    }
}

/// What to do with a redirect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Redirect {
    /// Follow it (the default).
    #[default]
    Follow,
    /// Fail the request.
    Error,
    /// Return the 3xx response itself.
    Manual,
}

/// A request.
#[derive(Debug, Clone, Default)]
pub struct FetchRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// Absolute `http:` or `https:` URL.
    pub url: String,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Option<Vec<u8>>,
    /// Redirect mode.
    pub redirect: Redirect,
    /// Overrides [`FetchConfig::timeout`].
    pub timeout: Option<Duration>,
    /// The content codings the application decodes (`Accept-Encoding`; none sent if
    /// `None`). The body is handed over as the server sent it: decoding is the
    /// application's (the browser shim's `DecompressionStream`).
    pub accept_encoding: Option<String>,
}

/// A response's head, as `Response` exposes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseInfo {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub status_text: String,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// The final URL.
    pub url: String,
    /// Whether redirects were followed.
    pub redirected: bool,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// Bad URL, method, header or body.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The exit could not (or would not) connect.
    #[error("could not connect to {host}:{port}: {reason}")]
    Connect {
        /// Host name or IP literal, as in the URL.
        host: String,
        /// TCP port.
        port: u16,
        /// What the exit (or the network) said.
        reason: String,
    },
    /// The TLS handshake or a record failed (certificate problems say which).
    #[error("TLS with {host} failed: {reason}")]
    Tls {
        /// Host name or IP literal, as in the URL.
        host: String,
        /// What rustls said (certificate problems name the check that failed).
        reason: String,
    },
    /// The server's HTTP was malformed.
    #[error("bad HTTP response: {0}")]
    Http(#[from] HttpError),
    /// No response head within the time limit.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The body stopped arriving for the time limit.
    #[error("the response body stalled: no data for {0} ms")]
    Stalled(u64),
    /// Aborted by the caller.
    #[error("aborted")]
    Aborted,
    /// More than the allowed number of redirects.
    #[error("too many redirects (more than {0})")]
    TooManyRedirects(u8),
    /// A redirect with `redirect: "error"`.
    #[error("redirected to {0} while the redirect mode is \"error\"")]
    Redirected(String),
    /// The connection ended before the response did.
    #[error("the connection closed: {0}")]
    Closed(String),
    /// A redirect from `https:` to `http:` (see `FetchConfig::allow_insecure_redirects`).
    #[error("refused an insecure redirect from https to {0}")]
    InsecureRedirect(String),
    /// A TLS connection ended without `close_notify` where only it could mark the end
    /// of the body: anyone on the path could have cut the response short.
    #[error(
        "the TLS connection closed without close_notify before the end of the body was certain (possible truncation)"
    )]
    TruncatedTls,
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    /// The response head arrived (body events follow).
    Response(FetchId, ResponseInfo),
    /// Body bytes.
    Body(FetchId, Vec<u8>),
    /// The body is complete.
    End(FetchId),
    /// The request failed (before or after its response head).
    Failed(FetchId, FetchError),
}

/// What the driver must do with byte streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a stream to `host:port` (DNS resolved at the far end).
    Open {
        /// The new stream.
        conn: ConnId,
        /// Host name or IP literal, as in the URL.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// Send bytes.
    Write {
        /// The stream the fetcher opened.
        conn: ConnId,
        /// The next bytes of the request stream, in order.
        data: Vec<u8>,
    },
    /// Close the stream (the fetcher forgets it at once).
    Close {
        /// The stream the fetcher opened.
        conn: ConnId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Origin {
    https: bool,
    host: String,
    port: u16,
}

impl Origin {
    fn of(url: &Url) -> Self {
        Self { https: url.https, host: url.host.clone(), port: url.port }
    }
}

struct Req {
    method: String,
    url: Url,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    accept_encoding: Option<String>,
    redirect: Redirect,
    redirects: u8,
    timeout: Duration,
    deadline: Instant,
    conn: Option<ConnId>,
    /// Retried once already after a reused connection closed under it.
    retried: bool,
    /// Where to go once the current (redirect) response's body is drained.
    follow: Option<Url>,
    /// Its response head went to the application.
    responded: bool,
}

struct Conn {
    origin: Origin,
    tls: Option<Tls>,
    opened: bool,
    request: Option<FetchId>,
    reader: ResponseReader,
    /// Served a request before (so a close before any response is worth a retry).
    reused: bool,
    idle_until: Option<Instant>,
}

/// The fetch state machine; see the module docs.
pub struct Fetcher {
    config: FetchConfig,
    requests: HashMap<FetchId, Req>,
    queue: VecDeque<FetchId>,
    conns: HashMap<ConnId, Conn>,
    next_id: FetchId,
    next_conn: ConnId,
    actions: VecDeque<Action>,
    events: VecDeque<FetchEvent>,
}

fn normalize_method(m: &str) -> String {
    // the fetch standard upper-cases these six and leaves any other method as given
    for known in ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"] {
        if m.eq_ignore_ascii_case(known) {
            return known.to_owned();
        }
    }
    m.to_owned()
}

const REQUEST_BODY_HEADERS: &[&str] = &["content-type", "content-encoding", "content-language", "content-location"];

impl Fetcher {
    /// A fetcher whose stream ids start at `first_conn` (give it a random start so
    /// ids say nothing about how many streams came before).
    pub fn new(config: FetchConfig, first_conn: ConnId) -> Self {
        Self {
            config,
            requests: HashMap::new(),
            queue: VecDeque::new(),
            conns: HashMap::new(),
            next_id: 1,
            next_conn: first_conn,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Requests not yet finished.
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// Starts a request. Errors here are about the request itself; everything later
    /// arrives as a [`FetchEvent`].
    pub fn fetch(&mut self, now: Instant, req: FetchRequest) -> Result<FetchId, FetchError> {
        let url = Url::parse(&req.url).map_err(|e| FetchError::Invalid(e.to_string()))?;
        let method = normalize_method(&req.method);
        if req.body.is_some() && (method == "GET" || method == "HEAD") {
            return Err(FetchError::Invalid(format!("a {method} request cannot have a body")));
        }
        if ["CONNECT", "TRACE", "TRACK"].iter().any(|m| method.eq_ignore_ascii_case(m)) {
            return Err(FetchError::Invalid(format!("the {method} method is forbidden")));
        }
        encode_request(&method, &url, &req.headers, None, req.accept_encoding.as_deref())
            .map_err(|e| FetchError::Invalid(e.to_string()))?;
        let timeout = req.timeout.unwrap_or(self.config.timeout);
        let id = self.next_id;
        self.next_id += 1;
        self.requests.insert(
            id,
            Req {
                method,
                url,
                headers: req.headers,
                body: req.body,
                accept_encoding: req.accept_encoding,
                redirect: req.redirect,
                redirects: 0,
                timeout,
                deadline: now + timeout,
                conn: None,
                retried: false,
                follow: None,
                responded: false,
            },
        );
        self.queue.push_back(id);
        self.schedule(now);
        Ok(id)
    }

    /// Cancels a request (its connection is closed; a `Failed(Aborted)` follows).
    pub fn abort(&mut self, now: Instant, id: FetchId) {
        self.fail(id, FetchError::Aborted);
        self.schedule(now);
    }

    /// The stream for `conn` is open.
    pub fn handle_opened(&mut self, now: Instant, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        c.opened = true;
        if c.request.is_some() {
            self.send_request(conn);
        } else {
            self.flush(conn);
        }
        self.schedule(now);
    }

    /// The stream for `conn` could not be opened.
    pub fn handle_open_failed(&mut self, now: Instant, conn: ConnId, reason: &str) {
        if let Some(c) = self.conns.remove(&conn)
            && let Some(id) = c.request
        {
            let error = FetchError::Connect { host: c.origin.host, port: c.origin.port, reason: reason.to_owned() };
            self.finish_failed(id, error);
        }
        self.schedule(now);
    }

    /// Bytes arrived on `conn`.
    pub fn handle_data(&mut self, now: Instant, conn: ConnId, data: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let (plain, tls_closed) = match c.tls.as_mut() {
            Some(tls) => match tls.read(data) {
                Ok(r) => r,
                Err(e) => {
                    let host = c.origin.host.clone();
                    self.drop_conn(conn, FetchError::Tls { host, reason: e.to_string() });
                    self.schedule(now);
                    return;
                }
            },
            None => (data.to_vec(), false),
        };
        if !plain.is_empty() {
            match c.request {
                Some(_) => match c.reader.feed(&plain) {
                    Ok(parsed) => self.on_parsed(now, conn, parsed),
                    Err(e) => self.drop_conn(conn, FetchError::Http(e)),
                },
                // bytes nobody asked for on an idle connection: it is not reusable
                None => self.close_conn(conn),
            }
        }
        if tls_closed && self.conns.contains_key(&conn) {
            self.on_eof(now, conn, None, true);
        } else if self.conns.contains_key(&conn) {
            self.flush(conn);
        }
        self.schedule(now);
    }

    /// The far end closed `conn` (`error` when it ended abnormally).
    pub fn handle_closed(&mut self, now: Instant, conn: ConnId, error: Option<&str>) {
        if let Some(c) = self.conns.get(&conn) {
            // over TLS, only close_notify (in `handle_data`) is a clean end
            let clean = c.tls.is_none();
            self.on_eof(now, conn, error, clean);
            // the stream is gone either way: no Close action
            self.conns.remove(&conn);
        }
        self.schedule(now);
    }

    /// Timers: request deadlines and idle connections.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<FetchId> =
            self.requests.iter().filter(|(_, r)| r.deadline <= now).map(|(&id, _)| id).collect();
        for id in expired {
            let Some(r) = self.requests.get(&id) else { continue };
            let ms = r.timeout.as_millis() as u64;
            self.fail(id, if r.responded { FetchError::Stalled(ms) } else { FetchError::Timeout(ms) });
        }
        let idle: Vec<ConnId> =
            self.conns.iter().filter(|(_, c)| c.idle_until.is_some_and(|t| t <= now)).map(|(&id, _)| id).collect();
        for conn in idle {
            self.close_conn(conn);
        }
        self.schedule(now);
    }

    /// The next stream action.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The next event for the application.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_event(&mut self) -> Option<FetchEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] should run next.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.requests.values().map(|r| r.deadline);
        let idle = self.conns.values().filter_map(|c| c.idle_until);
        requests.chain(idle).min()
    }

    fn active(&self) -> usize {
        self.requests.values().filter(|r| r.conn.is_some()).count()
    }

    fn schedule(&mut self, now: Instant) {
        let mut waiting = VecDeque::new();
        while let Some(id) = self.queue.pop_front() {
            let Some(req) = self.requests.get(&id) else { continue };
            if self.active() >= self.config.max_concurrent {
                waiting.push_back(id);
                continue;
            }
            let origin = Origin::of(&req.url);
            let head_request = req.method == "HEAD";
            let idle =
                self.conns.iter().find(|(_, c)| c.origin == origin && c.request.is_none() && c.opened).map(|(&k, _)| k);
            let conn = match idle {
                Some(conn) => conn,
                None if self.conns.values().filter(|c| c.origin == origin).count() < self.config.max_per_origin => {
                    match self.open_conn(&origin) {
                        Ok(conn) => conn,
                        Err(e) => {
                            self.finish_failed(id, e);
                            continue;
                        }
                    }
                }
                None => {
                    // every connection to this origin is busy; an idle one of another
                    // origin may be in the way of the limit, but not of this origin's
                    waiting.push_back(id);
                    continue;
                }
            };
            let c = self.conns.get_mut(&conn).expect("just found or opened");
            c.request = Some(id);
            c.reader = ResponseReader::new(head_request);
            c.idle_until = None;
            if let Some(r) = self.requests.get_mut(&id) {
                r.conn = Some(conn);
            }
            if c.opened {
                self.send_request(conn);
            }
        }
        self.queue = waiting;
        let _ = now;
    }

    fn open_conn(&mut self, origin: &Origin) -> Result<ConnId, FetchError> {
        let tls = if origin.https {
            Some(
                Tls::new(self.config.tls.clone(), &origin.host)
                    .map_err(|e| FetchError::Tls { host: origin.host.clone(), reason: e.to_string() })?,
            )
        } else {
            None
        };
        let conn = self.next_conn;
        self.next_conn = self.next_conn.wrapping_add(1);
        self.conns.insert(
            conn,
            Conn {
                origin: origin.clone(),
                tls,
                opened: false,
                request: None,
                reader: ResponseReader::new(false),
                reused: false,
                idle_until: None,
            },
        );
        self.actions.push_back(Action::Open { conn, host: origin.host.clone(), port: origin.port });
        Ok(conn)
    }

    fn send_request(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let Some(req) = c.request.and_then(|id| self.requests.get(&id)) else { return };
        let head = match encode_request(
            &req.method,
            &req.url,
            &req.headers,
            req.body.as_ref().map(Vec::len).or(
                // a POST/PUT without a body still says so
                (req.method == "POST" || req.method == "PUT").then_some(0),
            ),
            req.accept_encoding.as_deref(),
        ) {
            Ok(h) => h,
            Err(e) => {
                self.drop_conn(conn, FetchError::Invalid(e.to_string()));
                return;
            }
        };
        let mut bytes = head;
        if let Some(b) = &req.body {
            bytes.extend_from_slice(b);
        }
        match c.tls.as_mut() {
            Some(tls) => {
                if let Err(e) = tls.write(&bytes) {
                    let host = c.origin.host.clone();
                    self.drop_conn(conn, FetchError::Tls { host, reason: e.to_string() });
                    return;
                }
                self.flush(conn);
            }
            None => self.actions.push_back(Action::Write { conn, data: bytes }),
        }
    }

    fn flush(&mut self, conn: ConnId) {
        if let Some(tls) = self.conns.get_mut(&conn).and_then(|c| c.tls.as_mut()) {
            let out = tls.take_output();
            if !out.is_empty() {
                self.actions.push_back(Action::Write { conn, data: out });
            }
        }
    }

    fn on_parsed(&mut self, now: Instant, conn: ConnId, parsed: Vec<Parsed>) {
        for p in parsed {
            let Some(id) = self.conns.get(&conn).and_then(|c| c.request) else { return };
            match p {
                Parsed::Head(head) => self.on_head(now, conn, id, head),
                Parsed::Data(d) => {
                    if let Some(r) = self.requests.get_mut(&id).filter(|r| r.responded) {
                        r.deadline = now + r.timeout;
                    }
                    let discarding = self.requests.get(&id).is_some_and(|r| r.follow.is_some());
                    if !discarding && !d.is_empty() {
                        self.events.push_back(FetchEvent::Body(id, d));
                    }
                }
                Parsed::End => self.on_end(now, conn, id),
            }
        }
    }

    fn on_head(&mut self, now: Instant, conn: ConnId, id: FetchId, head: ResponseHead) {
        let max = self.config.max_redirects;
        let allow_insecure = self.config.allow_insecure_redirects;
        let Some(req) = self.requests.get_mut(&id) else { return };
        let location = head.header("location").map(str::to_owned);
        if matches!(head.status, 301 | 302 | 303 | 307 | 308)
            && let Some(location) = location
            && req.redirect != Redirect::Manual
        {
            let refusal = match req.url.join(&location) {
                Err(e) => Some(FetchError::Invalid(format!("redirect to {location:?}: {e}"))),
                Ok(target) if req.redirect == Redirect::Error => Some(FetchError::Redirected(target.to_string())),
                Ok(_) if req.redirects >= max => Some(FetchError::TooManyRedirects(max)),
                Ok(target) if req.url.https && !target.https && !allow_insecure => {
                    Some(FetchError::InsecureRedirect(target.to_string()))
                }
                Ok(target) => {
                    req.redirects += 1;
                    let to_get = ((head.status == 301 || head.status == 302) && req.method == "POST")
                        || (head.status == 303 && req.method != "GET" && req.method != "HEAD");
                    if to_get {
                        req.method = "GET".into();
                        req.body = None;
                        req.headers.retain(|(n, _)| !REQUEST_BODY_HEADERS.iter().any(|h| n.eq_ignore_ascii_case(h)));
                    }
                    if !target.same_origin(&req.url) {
                        req.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
                    }
                    if req.url.https && !target.https {
                        // allowed, but credentials do not go out in plaintext
                        req.headers.retain(|(n, _)| !n.eq_ignore_ascii_case("cookie"));
                    }
                    // the body of this response is read and dropped, then the request goes again
                    req.follow = Some(target);
                    None
                }
            };
            if let Some(e) = refusal {
                self.drop_conn(conn, e);
            }
            return;
        }
        req.responded = true;
        req.deadline = now + req.timeout;
        let info = ResponseInfo {
            status: head.status,
            status_text: head.reason,
            headers: head.headers,
            url: req.url.to_string(),
            redirected: req.redirects > 0,
        };
        self.events.push_back(FetchEvent::Response(id, info));
    }

    fn on_end(&mut self, now: Instant, conn: ConnId, id: FetchId) {
        let reusable = self.conns.get(&conn).is_some_and(|c| c.reader.reusable());
        if let Some(c) = self.conns.get_mut(&conn) {
            c.request = None;
            c.reused = true;
        }
        if reusable {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.idle_until = Some(now + self.config.idle_timeout);
            }
        } else {
            self.close_conn(conn);
        }
        let follow = self.requests.get_mut(&id).and_then(|r| {
            r.conn = None;
            r.follow.take()
        });
        match follow {
            Some(target) => {
                if let Some(r) = self.requests.get_mut(&id) {
                    r.url = target;
                }
                self.queue.push_front(id);
            }
            None => {
                self.requests.remove(&id);
                self.events.push_back(FetchEvent::End(id));
            }
        }
    }

    /// The stream ended (or TLS said close_notify) while `conn` was live; `clean`
    /// when the end is authenticated (close_notify) or there is no TLS.
    fn on_eof(&mut self, now: Instant, conn: ConnId, error: Option<&str>, clean: bool) {
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let Some(id) = c.request else {
            self.conns.remove(&conn);
            return;
        };
        // a body that only the end of the connection delimits is complete only if
        // that end is authenticated
        if error.is_none() && !clean && !c.reader.is_done() && c.reader.started() {
            self.conns.remove(&conn);
            self.finish_failed(id, FetchError::TruncatedTls);
            return;
        }
        if error.is_none() {
            match c.reader.eof() {
                Ok(parsed) if !parsed.is_empty() || c.reader.is_done() => {
                    // a close-delimited body ends here; the connection is spent
                    self.on_parsed(now, conn, parsed);
                    self.conns.remove(&conn);
                    return;
                }
                _ => {}
            }
        }
        let started = c.reader.started();
        let reused = c.reused;
        let retry = !started && reused && self.requests.get(&id).is_some_and(|r| !r.retried);
        self.conns.remove(&conn);
        if retry {
            // the server closed an idle keep-alive connection as we used it: once more, on a new one
            if let Some(r) = self.requests.get_mut(&id) {
                r.retried = true;
                r.conn = None;
            }
            self.queue.push_front(id);
            return;
        }
        let why = match error {
            Some(e) => FetchError::Closed(e.to_owned()),
            None if started => FetchError::Http(HttpError::Truncated),
            None => FetchError::Closed("the server closed the connection without answering".into()),
        };
        self.finish_failed(id, why);
    }

    /// Closes `conn` and fails the request on it (if any) with `error`.
    fn drop_conn(&mut self, conn: ConnId, error: FetchError) {
        let request = self.conns.get(&conn).and_then(|c| c.request);
        self.close_conn(conn);
        if let Some(id) = request {
            self.finish_failed(id, error);
        }
    }

    fn close_conn(&mut self, conn: ConnId) {
        if let Some(mut c) = self.conns.remove(&conn) {
            if let Some(tls) = c.tls.as_mut() {
                tls.close();
                let out = tls.take_output();
                if !out.is_empty() {
                    self.actions.push_back(Action::Write { conn, data: out });
                }
            }
            self.actions.push_back(Action::Close { conn });
        }
    }

    fn fail(&mut self, id: FetchId, error: FetchError) {
        let Some(req) = self.requests.get(&id) else { return };
        if let Some(conn) = req.conn {
            self.close_conn(conn);
        }
        self.queue.retain(|&q| q != id);
        self.finish_failed(id, error);
    }

    fn finish_failed(&mut self, id: FetchId, error: FetchError) {
        if self.requests.remove(&id).is_some() {
            self.events.push_back(FetchEvent::Failed(id, error));
        }
    }
}
