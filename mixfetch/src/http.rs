//! HTTP/1.1 on the wire: request heads out, responses in (httparse for the head;
//! `Content-Length`, chunked and close-delimited bodies; interim 1xx responses skipped;
//! no body for `HEAD`, 204 and 304). Incremental: bytes are fed as they arrive and
//! body data comes out as soon as it is framed.

use crate::url::Url;

/// Largest response head accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most response headers accepted.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size or trailer line.
const MAX_LINE: usize = 4096;

/// Malformed or unacceptable HTTP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The response head did not parse.
    #[error("malformed response head: {0}")]
    Head(String),
    /// The head is larger than [`MAX_HEAD`].
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// A bad `Content-Length` or chunk size.
    #[error("malformed body framing: {0}")]
    Framing(&'static str),
    /// The connection closed before the response was complete.
    #[error("the connection closed before the response was complete")]
    Truncated,
    /// A request header that cannot go on the wire.
    #[error("invalid request header {0:?}")]
    BadHeader(String),
    /// A method that is not a token.
    #[error("invalid method {0:?}")]
    BadMethod(String),
}

/// A response's status line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    /// Headers in order (values decoded as Latin-1, as browsers do).
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection may carry another request afterwards.
    pub fn keep_alive(&self) -> bool {
        if self.has_token("connection", "close") {
            return false;
        }
        self.minor_version >= 1 || self.has_token("connection", "keep-alive")
    }
}

/// What the reader produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The final (non-1xx) response head.
    Head(ResponseHead),
    /// Body bytes.
    Data(Vec<u8>),
    /// The response is complete.
    End,
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Headers the client sets itself; a caller's are ignored (as `fetch` ignores forbidden ones).
const CONTROLLED: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "accept-encoding",
    "proxy-connection",
];

/// Encodes a request head for `url` with the caller's headers (validated), the
/// headers the client controls, and `Content-Length` when there is a body.
/// `accept_encoding` lists the content codings the application decodes (`gzip, deflate`
/// from the browser's `DecompressionStream`); as a browser does, a request with a
/// `Range` asks for `identity` instead (a byte range of compressed bytes is no use).
pub fn encode_request(
    method: &str,
    url: &Url,
    headers: &[(String, String)],
    body_len: Option<usize>,
    accept_encoding: Option<&str>,
) -> Result<Vec<u8>, HttpError> {
    if !is_token(method) {
        return Err(HttpError::BadMethod(method.into()));
    }
    let mut out = format!("{method} {} HTTP/1.1\r\nHost: {}\r\n", url.path, url.authority()).into_bytes();
    let mut has_accept = false;
    let mut has_agent = false;
    let mut has_range = false;
    for (name, value) in headers {
        if !is_token(name) || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(HttpError::BadHeader(name.clone()));
        }
        let lower = name.to_ascii_lowercase();
        if CONTROLLED.contains(&lower.as_str()) || lower.starts_with("proxy-") {
            continue;
        }
        has_accept |= lower == "accept";
        has_agent |= lower == "user-agent";
        has_range |= lower == "range";
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.trim().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has_accept {
        out.extend_from_slice(b"Accept: */*\r\n");
    }
    if !has_agent {
        // one string for every user: nothing to tell them apart by
        out.extend_from_slice(b"User-Agent: mixfetch/0.1\r\n");
    }
    match accept_encoding {
        Some(v) if v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) => {
            return Err(HttpError::BadHeader("Accept-Encoding".into()));
        }
        Some(_) if has_range => out.extend_from_slice(b"Accept-Encoding: identity\r\n"),
        Some(v) if !v.is_empty() => out.extend_from_slice(format!("Accept-Encoding: {v}\r\n").as_bytes()),
        _ => {}
    }
    if let Some(n) = body_len {
        out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// This many bytes of chunk data left.
    Data(u64),
    /// The CRLF after chunk data.
    DataEnd,
    /// Trailer lines until an empty one.
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Head,
    Body(Body),
    Done,
}

/// Reads one response off a connection.
#[derive(Debug)]
pub struct ResponseReader {
    state: State,
    buf: Vec<u8>,
    head_request: bool,
    keep_alive: bool,
    /// Whether any byte of the response arrived.
    started: bool,
}

impl ResponseReader {
    /// A reader for the response to a request; `head_request` when the method was `HEAD`.
    pub fn new(head_request: bool) -> Self {
        Self { state: State::Head, buf: Vec::new(), head_request, keep_alive: false, started: false }
    }

    /// Whether the response is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether any byte of the response has arrived.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Whether the connection can be reused after this (complete) response.
    pub fn reusable(&self) -> bool {
        self.is_done() && self.keep_alive && self.buf.is_empty()
    }

    /// Feeds bytes from the connection; returns what they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Parsed>, HttpError> {
        self.started |= !bytes.is_empty();
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        loop {
            let progressed = match self.state.clone() {
                State::Done => false,
                State::Head => self.parse_head(&mut out)?,
                State::Body(Body::Length(left)) => {
                    let n = (left.min(self.buf.len() as u64)) as usize;
                    if n > 0 {
                        out.push(Parsed::Data(self.buf.drain(..n).collect()));
                    }
                    let left = left - n as u64;
                    if left == 0 {
                        self.finish(&mut out);
                        true
                    } else {
                        self.state = State::Body(Body::Length(left));
                        false
                    }
                }
                State::Body(Body::UntilClose) => {
                    if !self.buf.is_empty() {
                        out.push(Parsed::Data(std::mem::take(&mut self.buf)));
                    }
                    false
                }
                State::Body(Body::Chunked(c)) => self.parse_chunked(c, &mut out)?,
            };
            if !progressed {
                return Ok(out);
            }
        }
    }

    /// The connection closed: completes a close-delimited body, or reports truncation.
    pub fn eof(&mut self) -> Result<Vec<Parsed>, HttpError> {
        match self.state {
            State::Body(Body::UntilClose) => {
                let mut out = Vec::new();
                if !self.buf.is_empty() {
                    out.push(Parsed::Data(std::mem::take(&mut self.buf)));
                }
                self.keep_alive = false;
                self.state = State::Done;
                out.push(Parsed::End);
                Ok(out)
            }
            State::Done => Ok(Vec::new()),
            _ => Err(HttpError::Truncated),
        }
    }

    fn finish(&mut self, out: &mut Vec<Parsed>) {
        self.state = State::Done;
        out.push(Parsed::End);
    }

    fn parse_head(&mut self, out: &mut Vec<Parsed>) -> Result<bool, HttpError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let used = match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => return Err(HttpError::HeadTooLarge),
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(e) => return Err(HttpError::Head(e.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        let head = ResponseHead {
            status,
            reason: resp.reason.unwrap_or("").to_owned(),
            minor_version: resp.version.unwrap_or(1),
            headers: resp
                .headers
                .iter()
                .map(|h| (h.name.to_owned(), h.value.iter().map(|&b| char::from(b)).collect()))
                .collect(),
        };
        self.buf.drain(..used);
        if (100..200).contains(&status) {
            // interim (100 Continue, 103 Early Hints): the real response follows
            return Ok(true);
        }
        let body = self.framing(&head)?;
        self.keep_alive = head.keep_alive() && body != Some(Body::UntilClose);
        out.push(Parsed::Head(head));
        match body {
            None | Some(Body::Length(0)) => self.finish(out),
            Some(b) => self.state = State::Body(b),
        }
        Ok(true)
    }

    fn framing(&self, head: &ResponseHead) -> Result<Option<Body>, HttpError> {
        if self.head_request || head.status == 204 || head.status == 304 {
            return Ok(None);
        }
        if head.has_token("transfer-encoding", "chunked") {
            return Ok(Some(Body::Chunked(Chunk::Size)));
        }
        if head.header("transfer-encoding").is_some() {
            // another coding without chunked: the body ends with the connection
            return Ok(Some(Body::UntilClose));
        }
        let mut lengths = head
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .flat_map(|(_, v)| v.split(','));
        match lengths.next() {
            None => Ok(Some(Body::UntilClose)),
            Some(first) => {
                let n: u64 = first.trim().parse().map_err(|_| HttpError::Framing("Content-Length is not a number"))?;
                if lengths.any(|v| v.trim().parse::<u64>() != Ok(n)) {
                    return Err(HttpError::Framing("conflicting Content-Length values"));
                }
                Ok(Some(Body::Length(n)))
            }
        }
    }

    fn take_line(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        match self.buf.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                Ok(Some(line))
            }
            None if self.buf.len() > MAX_LINE => Err(HttpError::Framing("chunk line too long")),
            None => Ok(None),
        }
    }

    fn parse_chunked(&mut self, c: Chunk, out: &mut Vec<Parsed>) -> Result<bool, HttpError> {
        match c {
            Chunk::Size => {
                let Some(line) = self.take_line()? else { return Ok(false) };
                let text = std::str::from_utf8(&line).map_err(|_| HttpError::Framing("chunk size is not ASCII"))?;
                let hex = text.split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(hex, 16).map_err(|_| HttpError::Framing("chunk size is not hex"))?;
                self.state = State::Body(Body::Chunked(if size == 0 { Chunk::Trailers } else { Chunk::Data(size) }));
                Ok(true)
            }
            Chunk::Data(left) => {
                let n = (left.min(self.buf.len() as u64)) as usize;
                if n == 0 {
                    return Ok(false);
                }
                out.push(Parsed::Data(self.buf.drain(..n).collect()));
                let left = left - n as u64;
                self.state = State::Body(Body::Chunked(if left == 0 { Chunk::DataEnd } else { Chunk::Data(left) }));
                Ok(true)
            }
            Chunk::DataEnd => {
                if self.buf.len() < 2 {
                    return Ok(false);
                }
                if &self.buf[..2] != b"\r\n" {
                    return Err(HttpError::Framing("chunk data not followed by CRLF"));
                }
                self.buf.drain(..2);
                self.state = State::Body(Body::Chunked(Chunk::Size));
                Ok(true)
            }
            Chunk::Trailers => {
                let Some(line) = self.take_line()? else { return Ok(false) };
                if line.is_empty() {
                    self.finish(out);
                }
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(
        reader: &mut ResponseReader,
        input: &[u8],
        step: usize,
    ) -> Result<(Option<ResponseHead>, Vec<u8>, bool), HttpError> {
        let mut head = None;
        let mut body = Vec::new();
        let mut done = false;
        for chunk in input.chunks(step.max(1)) {
            for p in reader.feed(chunk)? {
                match p {
                    Parsed::Head(h) => head = Some(h),
                    Parsed::Data(d) => body.extend(d),
                    Parsed::End => done = true,
                }
            }
        }
        Ok((head, body, done))
    }

    #[test]
    fn frames_bodies_every_way_and_at_any_split() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello", true),
            (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n", b"hello world", true),
            (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", b"", true),
            (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", b"", true),
            (b"HTTP/1.0 200 OK\r\n\r\nuntil close", b"until close", false),
        ];
        for step in [1, 2, 3, 7, 1000] {
            for (input, want, done) in cases {
                let mut r = ResponseReader::new(false);
                let (head, body, finished) = read_all(&mut r, input, step).unwrap();
                assert!(head.is_some());
                assert_eq!((&body[..], finished), (*want, *done), "step {step}: {}", String::from_utf8_lossy(input));
            }
        }
        let mut r = ResponseReader::new(false);
        read_all(&mut r, b"HTTP/1.0 200 OK\r\n\r\nabc", 2).unwrap();
        assert_eq!(r.eof().unwrap(), vec![Parsed::End]);
        assert!(!r.reusable());
    }

    #[test]
    fn head_requests_have_no_body_and_keep_alive_follows_the_version() {
        let mut r = ResponseReader::new(true);
        let (_, body, done) = read_all(&mut r, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 5).unwrap();
        assert!(body.is_empty() && done && r.reusable());
        let mut r = ResponseReader::new(false);
        read_all(&mut r, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 5).unwrap();
        assert!(r.is_done() && !r.reusable());
    }

    #[test]
    fn bad_responses_are_errors_not_panics() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY",
            b"NOT HTTP\r\n\r\n",
        ] {
            assert!(ResponseReader::new(false).feed(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let mut r = ResponseReader::new(false);
        r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").unwrap();
        assert_eq!(r.eof(), Err(HttpError::Truncated));
        let huge = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(
            ResponseReader::new(false).feed(&[b"HTTP/1.1 200 OK\r\nX: ", &huge[..]].concat()),
            Err(HttpError::HeadTooLarge)
        );
    }

    #[test]
    fn requests_carry_controlled_headers_only_once() {
        let url = Url::parse("http://example.com:8080/p?q=1").unwrap();
        let headers = vec![("Host".to_string(), "evil".to_string()), ("X-A".to_string(), "1".to_string())];
        let req = String::from_utf8(encode_request("POST", &url, &headers, Some(3), None).unwrap()).unwrap();
        assert_eq!(
            req,
            "POST /p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\nX-A: 1\r\nAccept: */*\r\nUser-Agent: mixfetch/0.1\r\nContent-Length: 3\r\n\r\n"
        );
        assert!(encode_request("GE T", &url, &[], None, None).is_err());
        assert!(encode_request("GET", &url, &[("X".into(), "a\r\nInjected: 1".into())], None, None).is_err());
    }

    #[test]
    fn accept_encoding_is_the_clients_and_identity_for_ranges() {
        let url = Url::parse("http://example.com/f").unwrap();
        let head = |headers: &[(String, String)], ae| {
            String::from_utf8(encode_request("GET", &url, headers, None, ae).unwrap()).unwrap()
        };
        // the caller's own Accept-Encoding is ignored, as fetch forbids it
        let callers = vec![("Accept-Encoding".to_string(), "br".to_string())];
        assert!(head(&callers, Some("gzip, deflate")).contains("\r\nAccept-Encoding: gzip, deflate\r\n"));
        assert!(!head(&callers, None).contains("Accept-Encoding"));
        assert!(!head(&callers, None).contains("br"));
        let range = vec![("Range".to_string(), "bytes=0-99".to_string())];
        assert!(head(&range, Some("gzip, deflate")).contains("\r\nAccept-Encoding: identity\r\n"));
        assert!(encode_request("GET", &url, &[], None, Some("gzip\r\nX: 1")).is_err());
    }
}
