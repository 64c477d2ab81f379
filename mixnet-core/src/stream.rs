//! Byte streams through an exit: `Open(host, port)`, `Data(seq)`, `Close(seq)`,
//! `Credit(written)`, carried as messages. The client's messages carry SURBs; the exit
//! answers only through them, so it never learns the client's address. Messages
//! may arrive in any order, so each direction numbers its data and the receiver
//! reorders.
//!
//! **Flow control.** Downloads: the exit keeps at most a window of reply bytes
//! unacknowledged per stream (and in total), pausing its reads from the server.
//! Uploads: the exit buffers a bounded number of bytes per stream, so the client
//! keeps at most [`Streams::window`] bytes beyond what the exit has reported written
//! to the server (`Credit`), and holds the rest until credit arrives.
//!
//! [`Streams`] is the client's side; the exit's is [`crate::exit::Exit`].

use std::collections::{BTreeMap, HashMap, VecDeque};

use rand_core::CryptoRng;

use crate::address::Recipient;
use crate::message::{Messenger, ReceivedMessage, SendError};
use crate::time::Instant;

/// Identifies a stream; chosen at random by the client.
pub type StreamId = u64;
/// Largest data chunk per message.
pub const MAX_CHUNK: usize = 32 * 1024;
/// Default upload window: bytes a client sends beyond the exit's last credit.
pub const DEFAULT_WINDOW: usize = 512 * 1024;
/// Out-of-order bytes a client buffers per stream before giving the stream up (the
/// exit keeps at most its reply window in flight, far less).
const CLIENT_MAX_PENDING: usize = 8 << 20;
const MAGIC: &[u8; 4] = b"MXS1";

/// A stream protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    /// Client → exit: connect to `host:port`.
    Open {
        /// The stream, numbered by the client that opened it.
        id: StreamId,
        /// DNS name or IP literal, resolved at the exit.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// Exit → client: connected.
    Opened {
        /// The stream, numbered by the client that opened it.
        id: StreamId,
    },
    /// Exit → client: could not connect (or refused by policy).
    OpenFailed {
        /// The stream, numbered by the client that opened it.
        id: StreamId,
        /// Why, as a code an application can act on (on the wire after the reason,
        /// so a client that predates it reads [`OpenFailure::Other`]).
        failure: OpenFailure,
        /// The exit's reason (policy, resolution, connection), for the application.
        reason: String,
    },
    /// Bytes, numbered per direction from 0.
    Data {
        /// The stream, numbered by the client that opened it.
        id: StreamId,
        /// Position among this direction's data messages.
        seq: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// No more data in this direction after `seq` data messages.
    Close {
        /// The stream, numbered by the client that opened it.
        id: StreamId,
        /// Number of data messages sent before this.
        seq: u64,
        /// Set when the stream ended abnormally.
        error: Option<String>,
    },
    /// Exit → client: this many bytes of the stream were written to the server
    /// (cumulative): the client may send that much more.
    Credit {
        /// The stream, numbered by the client that opened it.
        id: StreamId,
        /// Bytes written so far.
        written: u64,
    },
}

/// Longest string a message carries (host names, reasons); longer ones are cut at a
/// character boundary.
const MAX_STR: usize = 1024;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(MAX_STR);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    out.extend_from_slice(&(end as u16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..end]);
}

fn get_str(b: &[u8]) -> Option<(String, &[u8])> {
    let len = usize::from(u16::from_be_bytes(b.get(..2)?.try_into().ok()?));
    let s = std::str::from_utf8(b.get(2..2 + len)?).ok()?.to_owned();
    Some((s, &b[2 + len..]))
}

fn get_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    Some((u64::from_be_bytes(b.get(..8)?.try_into().ok()?), &b[8..]))
}

impl StreamMessage {
    /// The stream it is about.
    pub fn id(&self) -> StreamId {
        match self {
            Self::Open { id, .. }
            | Self::Opened { id }
            | Self::OpenFailed { id, .. }
            | Self::Data { id, .. }
            | Self::Close { id, .. }
            | Self::Credit { id, .. } => *id,
        }
    }

    /// Encodes as a message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        match self {
            Self::Open { id, host, port } => {
                out.push(1);
                out.extend_from_slice(&id.to_be_bytes());
                put_str(&mut out, host);
                out.extend_from_slice(&port.to_be_bytes());
            }
            Self::Opened { id } => {
                out.push(2);
                out.extend_from_slice(&id.to_be_bytes());
            }
            Self::OpenFailed { id, failure, reason } => {
                out.push(3);
                out.extend_from_slice(&id.to_be_bytes());
                put_str(&mut out, reason);
                out.push(*failure as u8);
            }
            Self::Data { id, seq, data } => {
                out.push(4);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(data);
            }
            Self::Close { id, seq, error } => {
                out.push(5);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&seq.to_be_bytes());
                if let Some(e) = error {
                    put_str(&mut out, e);
                }
            }
            Self::Credit { id, written } => {
                out.push(6);
                out.extend_from_slice(&id.to_be_bytes());
                out.extend_from_slice(&written.to_be_bytes());
            }
        }
        out
    }

    /// Decodes a message body; `None` if it is not a (well-formed) stream message.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let rest = b.strip_prefix(MAGIC)?;
        let (&kind, rest) = rest.split_first()?;
        let (id, rest) = get_u64(rest)?;
        Some(match kind {
            1 => {
                let (host, rest) = get_str(rest)?;
                if rest.len() != 2 {
                    return None;
                }
                Self::Open { id, host, port: u16::from_be_bytes([rest[0], rest[1]]) }
            }
            2 if rest.is_empty() => Self::Opened { id },
            3 => {
                let (reason, rest) = get_str(rest)?;
                let failure = match rest {
                    [] => OpenFailure::Other,
                    [code] => OpenFailure::from_code(*code),
                    _ => return None,
                };
                Self::OpenFailed { id, failure, reason }
            }
            4 => {
                let (seq, data) = get_u64(rest)?;
                if data.len() > MAX_CHUNK {
                    return None;
                }
                Self::Data { id, seq, data: data.to_vec() }
            }
            5 => {
                let (seq, rest) = get_u64(rest)?;
                let error = if rest.is_empty() { None } else { Some(get_str(rest)?.0) };
                Self::Close { id, seq, error }
            }
            6 => {
                let (written, rest) = get_u64(rest)?;
                if !rest.is_empty() {
                    return None;
                }
                Self::Credit { id, written }
            }
            _ => return None,
        })
    }
}

/// Reorders one direction of a stream, holding at most `max_bytes` out of order.
#[derive(Debug)]
pub(crate) struct Inbound {
    next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    bytes: usize,
    max_bytes: usize,
    close: Option<(u64, Option<String>)>,
    finished: bool,
}

/// In-order output of [`Inbound`].
pub(crate) enum Ordered {
    Data(Vec<u8>),
    End(Option<String>),
}

impl Inbound {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self { next: 0, pending: BTreeMap::new(), bytes: 0, max_bytes, close: None, finished: false }
    }

    /// Bytes held out of order.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the direction ended (its `Close` and every message before it arrived).
    pub(crate) fn finished(&self) -> bool {
        self.finished
    }

    /// Adds a data message; returns what can now be delivered in order.
    pub(crate) fn data(&mut self, seq: u64, data: Vec<u8>) -> Result<Vec<Ordered>, &'static str> {
        if seq >= self.next && !self.finished && !self.pending.contains_key(&seq) {
            if self.close.as_ref().is_some_and(|(end, _)| seq >= *end) {
                return Err("data after the end of the stream");
            }
            // in-order data leaves at once; only what waits for a gap counts
            if seq > self.next && self.bytes + data.len() > self.max_bytes {
                return Err("too much out-of-order data");
            }
            self.bytes += data.len();
            self.pending.insert(seq, data);
        }
        Ok(self.drain())
    }

    pub(crate) fn close(&mut self, seq: u64, error: Option<String>) -> Vec<Ordered> {
        if self.close.is_none() && !self.finished {
            self.close = Some((seq, error));
        }
        self.drain()
    }

    fn drain(&mut self) -> Vec<Ordered> {
        let mut out = Vec::new();
        while let Some(d) = self.pending.remove(&self.next) {
            self.next += 1;
            self.bytes -= d.len();
            out.push(Ordered::Data(d));
        }
        if let Some((seq, _)) = &self.close
            && *seq <= self.next
            && !self.finished
        {
            self.finished = true;
            self.pending.clear();
            self.bytes = 0;
            out.push(Ordered::End(self.close.take().and_then(|c| c.1)));
        }
        out
    }
}

/// Why a stream operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// No such stream (never opened, or already finished).
    #[error("unknown stream {0}")]
    Unknown(StreamId),
    /// The write side was closed.
    #[error("stream {0} is closed for writing")]
    Closed(StreamId),
    /// The messenger refused the message.
    #[error(transparent)]
    Send(#[from] SendError),
}

/// Why the exit could not open a stream, as a code for programs to act on (the native
/// SOCKS proxy picks its reply code from it; the reason's words are for people).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenFailure {
    /// Anything else (or an exit that does not say).
    Other = 0,
    /// The exit's policy refuses the destination.
    Policy = 1,
    /// The name does not resolve (or to no address).
    NotFound = 2,
    /// The server refused the connection.
    Refused = 3,
    /// No route to the host.
    Unreachable = 4,
    /// No answer in time (resolving or connecting).
    TimedOut = 5,
    /// The exit is at one of its limits: try again later.
    Busy = 6,
}

impl OpenFailure {
    /// Every failure, indexed by its code.
    const BY_CODE: [Self; 7] =
        [Self::Other, Self::Policy, Self::NotFound, Self::Refused, Self::Unreachable, Self::TimedOut, Self::Busy];

    /// The code's meaning; unknown codes (from a newer exit) are [`Self::Other`].
    pub fn from_code(code: u8) -> Self {
        Self::BY_CODE.get(usize::from(code)).copied().unwrap_or(Self::Other)
    }
}

/// The exit's answer to an `Open` it could not carry out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct OpenError {
    /// What kind of failure.
    pub failure: OpenFailure,
    /// The exit's words, for people.
    pub reason: String,
}

impl OpenError {
    /// A failure and its reason.
    pub fn new(failure: OpenFailure, reason: impl Into<String>) -> Self {
        Self { failure, reason: reason.into() }
    }
}

/// What happened on a client's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The exit connected.
    Opened(StreamId),
    /// The exit could not connect.
    OpenFailed(StreamId, OpenError),
    /// Bytes, in order.
    Data(StreamId, Vec<u8>),
    /// The exit's side ended (with an error, if abnormal).
    Closed(StreamId, Option<String>),
}

struct ClientStream {
    exit: Recipient,
    opened: bool,
    /// Data messages sent.
    sent: u64,
    /// Data bytes sent.
    sent_bytes: u64,
    /// Bytes the exit reported written to the server.
    credited: u64,
    /// Chunks waiting for window.
    unsent: VecDeque<Vec<u8>>,
    /// The application closed its side; `Close` goes after the last unsent chunk.
    write_closed: bool,
    close_sent: bool,
    inbound: Inbound,
}

/// The client's streams.
pub struct Streams {
    streams: HashMap<StreamId, ClientStream>,
    events: VecDeque<StreamEvent>,
    /// SURBs attached to each message the client sends, so the exit can answer.
    pub surbs_per_message: u16,
    /// SURBs attached to `Open`: the exit's first answers use them.
    pub surbs_with_open: u16,
    /// Upload window: bytes sent beyond the exit's last credit (at most the exit's
    /// per-stream buffer, [`crate::exit::ExitLimits::stream_buffer`]).
    pub window: usize,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            streams: HashMap::new(),
            events: VecDeque::new(),
            surbs_per_message: 8,
            surbs_with_open: 32,
            window: DEFAULT_WINDOW,
        }
    }
}

impl Streams {
    /// Streams not yet finished in both directions.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
    }

    /// Bytes written by the application and not yet sent (waiting for credit).
    pub fn unsent_bytes(&self, id: StreamId) -> usize {
        self.streams.get(&id).map_or(0, |s| s.unsent.iter().map(Vec::len).sum())
    }

    /// Whether stream `id` is still ours (open, opening, or finishing).
    pub fn contains(&self, id: StreamId) -> bool {
        self.streams.contains_key(&id)
    }

    /// Asks `exit` to connect to `host:port` on a new stream `id` (random, chosen by
    /// the caller), attaching [`Self::surbs_with_open`] SURBs for its answers.
    pub fn open<R: CryptoRng>(
        &mut self,
        m: &mut Messenger<R>,
        now: Instant,
        exit: Recipient,
        host: &str,
        port: u16,
        id: StreamId,
    ) -> Result<StreamId, StreamError> {
        let msg = StreamMessage::Open { id, host: host.to_owned(), port };
        m.send(now, exit, &msg.encode(), self.surbs_with_open)?;
        self.streams.insert(
            id,
            ClientStream {
                exit,
                opened: false,
                sent: 0,
                sent_bytes: 0,
                credited: 0,
                unsent: VecDeque::new(),
                write_closed: false,
                close_sent: false,
                inbound: Inbound::new(CLIENT_MAX_PENDING),
            },
        );
        Ok(id)
    }

    /// Sends bytes on a stream (in chunks of at most [`MAX_CHUNK`]); what exceeds the
    /// window waits here for the exit's credit.
    pub fn write<R: CryptoRng>(
        &mut self,
        m: &mut Messenger<R>,
        now: Instant,
        id: StreamId,
        data: &[u8],
    ) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown(id))?;
        if s.write_closed {
            return Err(StreamError::Closed(id));
        }
        s.unsent.extend(data.chunks(MAX_CHUNK).map(<[u8]>::to_vec));
        self.send_unsent(m, now, id)
    }

    /// Sends what the window allows, then the `Close` once everything went.
    fn send_unsent<R: CryptoRng>(
        &mut self,
        m: &mut Messenger<R>,
        now: Instant,
        id: StreamId,
    ) -> Result<(), StreamError> {
        let window = self.window as u64;
        let surbs = self.surbs_per_message;
        let Some(s) = self.streams.get_mut(&id) else { return Ok(()) };
        while let Some(chunk) = s.unsent.front() {
            let in_flight = s.sent_bytes.saturating_sub(s.credited);
            // one chunk always goes when nothing is in flight, whatever the window
            if in_flight > 0 && in_flight + chunk.len() as u64 > window {
                break;
            }
            let msg = StreamMessage::Data { id, seq: s.sent, data: chunk.clone() };
            m.send(now, s.exit, &msg.encode(), surbs)?;
            s.sent += 1;
            s.sent_bytes += chunk.len() as u64;
            s.unsent.pop_front();
        }
        if s.write_closed && s.unsent.is_empty() && !s.close_sent {
            s.close_sent = true;
            let msg = StreamMessage::Close { id, seq: s.sent, error: None };
            m.send(now, s.exit, &msg.encode(), surbs)?;
        }
        self.finish_if_done(id);
        Ok(())
    }

    /// Closes our write side once what was written has gone (the exit then shuts
    /// down its write to the server).
    pub fn close<R: CryptoRng>(&mut self, m: &mut Messenger<R>, now: Instant, id: StreamId) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown(id))?;
        if s.write_closed {
            return Ok(());
        }
        s.write_closed = true;
        self.send_unsent(m, now, id)
    }

    /// Aborts a stream: the exit drops its connection at once (no more data comes
    /// back), and we forget the stream.
    pub fn reset<R: CryptoRng>(
        &mut self,
        m: &mut Messenger<R>,
        now: Instant,
        id: StreamId,
        reason: &str,
    ) -> Result<(), StreamError> {
        let s = self.streams.remove(&id).ok_or(StreamError::Unknown(id))?;
        let msg = StreamMessage::Close { id, seq: s.sent, error: Some(reason.to_owned()) };
        // one SURB: the exit knows our streams by the tag that comes with SURBs
        m.send(now, s.exit, &msg.encode(), 1)?;
        Ok(())
    }

    /// Forgets a stream locally (after an error, or when the app no longer cares).
    pub fn abort(&mut self, id: StreamId) {
        self.streams.remove(&id);
    }

    fn finish_if_done(&mut self, id: StreamId) {
        if self.streams.get(&id).is_some_and(|s| s.close_sent && s.inbound.finished()) {
            self.streams.remove(&id);
        }
    }

    /// Offers a received message; returns false if it is not for a stream of ours.
    /// Credit from the exit lets held data go, so this may send.
    pub fn handle_message<R: CryptoRng>(&mut self, m: &mut Messenger<R>, now: Instant, msg: &ReceivedMessage) -> bool {
        let Some(sm) = StreamMessage::decode(&msg.data) else { return false };
        let id = sm.id();
        let Some(s) = self.streams.get_mut(&id) else { return true };
        if msg.reply_from != Some(s.exit) {
            return false;
        }
        // data can overtake `Opened`; report it first either way
        if matches!(sm, StreamMessage::Opened { .. } | StreamMessage::Data { .. } | StreamMessage::Close { .. })
            && !s.opened
        {
            s.opened = true;
            self.events.push_back(StreamEvent::Opened(id));
        }
        let ordered = match sm {
            StreamMessage::Opened { .. } | StreamMessage::Open { .. } => vec![],
            StreamMessage::OpenFailed { failure, reason, .. } => {
                self.streams.remove(&id);
                self.events.push_back(StreamEvent::OpenFailed(id, OpenError { failure, reason }));
                return true;
            }
            StreamMessage::Data { seq, data, .. } => match s.inbound.data(seq, data) {
                Ok(o) => o,
                Err(e) => vec![Ordered::End(Some(e.to_owned()))],
            },
            StreamMessage::Close { seq, error, .. } => s.inbound.close(seq, error),
            StreamMessage::Credit { written, .. } => {
                // never more than was sent: a confused exit cannot open the window wider
                s.credited = s.credited.max(written.min(s.sent_bytes));
                if let Err(e) = self.send_unsent(m, now, id) {
                    self.streams.remove(&id);
                    self.events.push_back(StreamEvent::Closed(id, Some(e.to_string())));
                }
                return true;
            }
        };
        for o in ordered {
            if let Ordered::End(Some(_)) = &o {
                // an abnormal end: the exit forgot the stream, so must we
                self.streams.remove(&id);
            }
            self.events.push_back(match o {
                Ordered::Data(d) => StreamEvent::Data(id, d),
                Ordered::End(e) => StreamEvent::Closed(id, e),
            });
        }
        self.finish_if_done(id);
        true
    }

    /// The next stream event.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn messages_round_trip_and_junk_is_not_a_stream_message() {
        let msgs = [
            StreamMessage::Open { id: 1, host: "example.com".into(), port: 443 },
            StreamMessage::Opened { id: 2 },
            StreamMessage::OpenFailed { id: 3, failure: OpenFailure::Policy, reason: "denied".into() },
            StreamMessage::Data { id: 4, seq: 9, data: vec![1, 2, 3] },
            StreamMessage::Close { id: 5, seq: 10, error: None },
            StreamMessage::Close { id: 6, seq: 11, error: Some("reset".into()) },
            StreamMessage::Credit { id: 7, written: 1 << 40 },
        ];
        for m in msgs {
            assert_eq!(StreamMessage::decode(&m.encode()), Some(m));
        }
        assert_eq!(StreamMessage::decode(b"MXS1"), None);
        assert_eq!(StreamMessage::decode(b"hello"), None);
        assert_eq!(StreamMessage::decode(b"MXS1\x01\0\0\0\0\0\0\0\x01\xff\xff"), None);
        // a long string is cut at a character boundary, never inside one
        let long = "é".repeat(MAX_STR);
        let Some(StreamMessage::OpenFailed { reason, .. }) = StreamMessage::decode(
            &StreamMessage::OpenFailed { id: 1, failure: OpenFailure::Other, reason: long }.encode(),
        ) else {
            panic!("decodes")
        };
        assert_eq!(reason.len(), MAX_STR);
        // an exit that predates failure codes: the client reads `Other`; a newer code too
        let mut old = StreamMessage::OpenFailed { id: 9, failure: OpenFailure::Busy, reason: "x".into() }.encode();
        old.pop();
        let other = StreamMessage::OpenFailed { id: 9, failure: OpenFailure::Other, reason: "x".into() };
        assert_eq!(StreamMessage::decode(&old), Some(other.clone()));
        old.push(200);
        assert_eq!(StreamMessage::decode(&old), Some(other));
        old.push(0);
        assert_eq!(StreamMessage::decode(&old), None, "one code, nothing after it");
        for (code, f) in OpenFailure::BY_CODE.iter().enumerate() {
            assert_eq!(*f as usize, code);
            assert_eq!(OpenFailure::from_code(code as u8), *f);
        }
    }

    fn texts(out: Vec<Ordered>) -> Vec<String> {
        out.into_iter()
            .map(|o| match o {
                Ordered::Data(d) => String::from_utf8(d).unwrap(),
                Ordered::End(_) => "END".into(),
            })
            .collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn inbound_reorders_ends_after_the_last_data_and_bounds_what_it_holds() {
        let mut i = Inbound::new(2);
        assert!(i.close(3, None).is_empty());
        assert!(i.data(2, b"c".to_vec()).unwrap().is_empty());
        assert!(i.data(2, b"c".to_vec()).unwrap().is_empty(), "a duplicate is not counted twice");
        assert!(i.data(1, b"b".to_vec()).unwrap().is_empty());
        assert_eq!(i.bytes(), 2);
        assert_eq!(i.data(5, b"x".to_vec()).err(), Some("data after the end of the stream"));
        assert_eq!(texts(i.data(0, b"a".to_vec()).unwrap()), ["a", "b", "c", "END"]);
        assert_eq!(i.bytes(), 0);
        // duplicates after the end are ignored
        assert!(i.data(1, b"b".to_vec()).unwrap().is_empty());
        let mut j = Inbound::new(3);
        j.data(1, b"xx".to_vec()).unwrap();
        assert_eq!(j.data(2, b"yy".to_vec()).err(), Some("too much out-of-order data"));
    }
}
