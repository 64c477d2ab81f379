//! Byte streams through an exit: `Open(host, port)`, `Data(seq)`, `Close(seq)`,
//! carried as messages. The client's messages carry SURBs; the exit answers only
//! through them, so it never learns the client's address. Messages may arrive in
//! any order, so each direction numbers its data and the receiver reorders.
//!
//! [`Streams`] is the client's side, [`ExitStreams`] the exit's; both drive a
//! [`Messenger`] and leave sockets and DNS to their driver.

use std::collections::{BTreeMap, HashMap, VecDeque};

use rand_core::CryptoRng;

use crate::address::Recipient;
use crate::message::{Event, MessageId, Messenger, ReceivedMessage, SendError, SenderTag};
use crate::time::Instant;

/// Identifies a stream; chosen at random by the client.
pub type StreamId = u64;
/// Largest data chunk per message.
pub const MAX_CHUNK: usize = 32 * 1024;
/// Most out-of-order messages buffered per stream direction.
const MAX_PENDING: usize = 4096;
/// Most streams an exit holds whose `Open` has not arrived yet.
const MAX_UNOPENED: usize = 1024;
const MAGIC: &[u8; 4] = b"MXS1";

/// A stream protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamMessage {
    /// Client → exit: connect to `host:port`.
    Open {
        /// Stream.
        id: StreamId,
        /// DNS name or IP literal, resolved at the exit.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// Exit → client: connected.
    Opened {
        /// Stream.
        id: StreamId,
    },
    /// Exit → client: could not connect (or refused by policy).
    OpenFailed {
        /// Stream.
        id: StreamId,
        /// Why.
        reason: String,
    },
    /// Bytes, numbered per direction from 0.
    Data {
        /// Stream.
        id: StreamId,
        /// Position among this direction's data messages.
        seq: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// No more data in this direction after `seq` data messages.
    Close {
        /// Stream.
        id: StreamId,
        /// Number of data messages sent before this.
        seq: u64,
        /// Set when the stream ended abnormally.
        error: Option<String>,
    },
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
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
            Self::OpenFailed { id, reason } => {
                out.push(3);
                out.extend_from_slice(&id.to_be_bytes());
                put_str(&mut out, reason);
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
            3 => Self::OpenFailed { id, reason: get_str(rest)?.0 },
            4 => {
                let (seq, data) = get_u64(rest)?;
                Self::Data { id, seq, data: data.to_vec() }
            }
            5 => {
                let (seq, rest) = get_u64(rest)?;
                let error = if rest.is_empty() { None } else { Some(get_str(rest)?.0) };
                Self::Close { id, seq, error }
            }
            _ => return None,
        })
    }
}

/// Reorders one direction of a stream.
#[derive(Debug, Default)]
struct Inbound {
    next: u64,
    pending: BTreeMap<u64, Vec<u8>>,
    close: Option<(u64, Option<String>)>,
    finished: bool,
}

enum Ordered {
    Data(Vec<u8>),
    End(Option<String>),
}

impl Inbound {
    /// Adds a data message; returns what can now be delivered in order.
    fn data(&mut self, seq: u64, data: Vec<u8>) -> Result<Vec<Ordered>, &'static str> {
        if seq >= self.next && !self.finished {
            if self.pending.len() >= MAX_PENDING {
                return Err("too many out-of-order messages");
            }
            self.pending.insert(seq, data);
        }
        Ok(self.drain())
    }

    fn close(&mut self, seq: u64, error: Option<String>) -> Vec<Ordered> {
        if self.close.is_none() && !self.finished {
            self.close = Some((seq, error));
        }
        self.drain()
    }

    fn drain(&mut self) -> Vec<Ordered> {
        let mut out = Vec::new();
        while let Some(d) = self.pending.remove(&self.next) {
            self.next += 1;
            out.push(Ordered::Data(d));
        }
        if let Some((seq, _)) = &self.close
            && *seq <= self.next
            && !self.finished
        {
            self.finished = true;
            self.pending.clear();
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

/// What happened on a client's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The exit connected.
    Opened(StreamId),
    /// The exit could not connect.
    OpenFailed(StreamId, String),
    /// Bytes, in order.
    Data(StreamId, Vec<u8>),
    /// The exit's side ended (with an error, if abnormal).
    Closed(StreamId, Option<String>),
}

struct ClientStream {
    exit: Recipient,
    opened: bool,
    sent: u64,
    write_closed: bool,
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
}

impl Default for Streams {
    fn default() -> Self {
        Self { streams: HashMap::new(), events: VecDeque::new(), surbs_per_message: 8, surbs_with_open: 32 }
    }
}

impl Streams {
    /// Streams not yet finished in both directions.
    pub fn open_streams(&self) -> usize {
        self.streams.len()
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
            ClientStream { exit, opened: false, sent: 0, write_closed: false, inbound: Inbound::default() },
        );
        Ok(id)
    }

    /// Sends bytes on a stream (split into chunks of at most [`MAX_CHUNK`]).
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
        for chunk in data.chunks(MAX_CHUNK) {
            let msg = StreamMessage::Data { id, seq: s.sent, data: chunk.to_vec() };
            m.send(now, s.exit, &msg.encode(), self.surbs_per_message)?;
            s.sent += 1;
        }
        Ok(())
    }

    /// Closes our write side (the exit shuts down its write to the server).
    pub fn close<R: CryptoRng>(&mut self, m: &mut Messenger<R>, now: Instant, id: StreamId) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown(id))?;
        if s.write_closed {
            return Ok(());
        }
        s.write_closed = true;
        let msg = StreamMessage::Close { id, seq: s.sent, error: None };
        m.send(now, s.exit, &msg.encode(), self.surbs_per_message)?;
        self.finish_if_done(id);
        Ok(())
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
        if self.streams.get(&id).is_some_and(|s| s.write_closed && s.inbound.finished) {
            self.streams.remove(&id);
        }
    }

    /// Offers a received message; returns false if it is not for a stream of ours.
    pub fn handle_message(&mut self, msg: &ReceivedMessage) -> bool {
        let Some(sm) = StreamMessage::decode(&msg.data) else { return false };
        let (StreamMessage::Opened { id }
        | StreamMessage::OpenFailed { id, .. }
        | StreamMessage::Data { id, .. }
        | StreamMessage::Close { id, .. }
        | StreamMessage::Open { id, .. }) = &sm;
        let id = *id;
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
            StreamMessage::Opened { .. } => vec![],
            StreamMessage::OpenFailed { reason, .. } => {
                self.streams.remove(&id);
                self.events.push_back(StreamEvent::OpenFailed(id, reason));
                return true;
            }
            StreamMessage::Data { seq, data, .. } => match s.inbound.data(seq, data) {
                Ok(o) => o,
                Err(e) => vec![Ordered::End(Some(e.to_owned()))],
            },
            StreamMessage::Close { seq, error, .. } => s.inbound.close(seq, error),
            StreamMessage::Open { .. } => vec![],
        };
        for o in ordered {
            self.events.push_back(match o {
                Ordered::Data(d) => StreamEvent::Data(id, d),
                Ordered::End(e) => StreamEvent::Closed(id, e),
            });
        }
        self.finish_if_done(id);
        true
    }

    /// The next stream event.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }
}

/// An exit stream: the client's tag and its stream id.
pub type ExitKey = (SenderTag, StreamId);

/// What the exit's driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitAction {
    /// Resolve `host`, check the exit policy, connect; report with
    /// [`ExitStreams::connected`] or [`ExitStreams::connect_failed`].
    Connect {
        /// Stream.
        key: ExitKey,
        /// Host as the client gave it.
        host: String,
        /// Port.
        port: u16,
    },
    /// Write bytes to the server, in order.
    Write {
        /// Stream.
        key: ExitKey,
        /// Bytes.
        data: Vec<u8>,
    },
    /// The client finished sending: shut down our write side.
    ShutdownWrite {
        /// Stream.
        key: ExitKey,
    },
    /// Drop the connection (the client went away or the stream broke).
    Abort {
        /// Stream.
        key: ExitKey,
    },
    /// Reading may resume: replies in flight dropped below the window.
    ReadReady {
        /// Stream.
        key: ExitKey,
    },
}

struct ExitStream {
    inbound: Inbound,
    /// In-order client data not yet handed to the driver (it waits for the connection).
    ready: VecDeque<Ordered>,
    /// `Open` arrived (messages may overtake it).
    opened: bool,
    sent: u64,
    in_flight: usize,
    connected: bool,
    read_closed: bool,
    write_closed: bool,
    paused: bool,
}

/// The exit's streams.
pub struct ExitStreams {
    streams: HashMap<ExitKey, ExitStream>,
    replies: HashMap<MessageId, (ExitKey, usize)>,
    actions: VecDeque<ExitAction>,
    /// Reply bytes in flight per stream before reading pauses.
    pub window: usize,
    /// Streams opened, for metrics.
    pub opened_total: u64,
}

impl Default for ExitStreams {
    fn default() -> Self {
        Self {
            streams: HashMap::new(),
            replies: HashMap::new(),
            actions: VecDeque::new(),
            window: 512 * 1024,
            opened_total: 0,
        }
    }
}

impl ExitStreams {
    /// Streams alive.
    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Whether no stream is alive.
    pub fn is_empty(&self) -> bool {
        self.streams.is_empty()
    }

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<ExitAction> {
        self.actions.pop_front()
    }

    /// How many bytes may be read from the server now (0: wait for `ReadReady`).
    pub fn read_budget(&mut self, key: &ExitKey) -> usize {
        match self.streams.get_mut(key) {
            Some(s) if s.in_flight < self.window => (self.window - s.in_flight).min(MAX_CHUNK),
            Some(s) => {
                s.paused = true;
                0
            }
            None => 0,
        }
    }

    fn entry(&mut self, key: ExitKey) -> Option<&mut ExitStream> {
        if !self.streams.contains_key(&key) {
            let unopened = self.streams.values().filter(|s| !s.opened).count();
            if unopened >= MAX_UNOPENED {
                return None;
            }
            self.streams.insert(
                key,
                ExitStream {
                    inbound: Inbound::default(),
                    ready: VecDeque::new(),
                    opened: false,
                    sent: 0,
                    in_flight: 0,
                    connected: false,
                    read_closed: false,
                    write_closed: false,
                    paused: false,
                },
            );
        }
        self.streams.get_mut(&key)
    }

    /// A message for the exit (from [`Messenger`]); malformed ones are ignored.
    /// Messages may overtake the `Open`: they wait for it, and data waits for the
    /// connection.
    pub fn handle_message(&mut self, msg: ReceivedMessage) {
        let (Some(tag), Some(sm)) = (msg.sender_tag, StreamMessage::decode(&msg.data)) else { return };
        match sm {
            StreamMessage::Open { id, host, port } => {
                let key = (tag, id);
                let Some(s) = self.entry(key) else { return };
                if s.opened {
                    return;
                }
                s.opened = true;
                self.opened_total += 1;
                self.actions.push_back(ExitAction::Connect { key, host, port });
            }
            StreamMessage::Data { id, seq, data } => {
                let key = (tag, id);
                let Some(s) = self.entry(key) else { return };
                match s.inbound.data(seq, data) {
                    Ok(ordered) => self.apply(key, ordered),
                    Err(_) => self.fail(key),
                }
            }
            StreamMessage::Close { id, seq, error } => {
                let key = (tag, id);
                let Some(s) = self.entry(key) else { return };
                let ordered = s.inbound.close(seq, error);
                self.apply(key, ordered);
            }
            StreamMessage::Opened { .. } | StreamMessage::OpenFailed { .. } => {}
        }
    }

    /// Queues in-order items, and hands them to the driver once connected.
    fn apply(&mut self, key: ExitKey, ordered: Vec<Ordered>) {
        let Some(s) = self.streams.get_mut(&key) else { return };
        s.ready.extend(ordered);
        if !s.connected {
            return;
        }
        while let Some(o) = s.ready.pop_front() {
            match o {
                Ordered::Data(data) => self.actions.push_back(ExitAction::Write { key, data }),
                Ordered::End(None) => {
                    s.write_closed = true;
                    self.actions.push_back(ExitAction::ShutdownWrite { key });
                }
                Ordered::End(Some(_)) => {
                    // the client reset the stream: the connection goes, and so does the stream
                    self.streams.remove(&key);
                    self.actions.push_back(ExitAction::Abort { key });
                    return;
                }
            }
        }
        self.forget_if_done(key);
    }

    fn forget_if_done(&mut self, key: ExitKey) {
        if self.streams.get(&key).is_some_and(|s| s.write_closed && s.read_closed) {
            self.streams.remove(&key);
        }
    }

    fn reply<R: CryptoRng>(&mut self, m: &mut Messenger<R>, now: Instant, key: ExitKey, msg: StreamMessage) {
        let len = msg.encode().len();
        match m.reply(now, key.0, &msg.encode()) {
            Ok(mid) => {
                self.replies.insert(mid, (key, len));
                if let Some(s) = self.streams.get_mut(&key) {
                    s.in_flight += len;
                }
            }
            Err(_) => self.fail(key),
        }
    }

    fn fail(&mut self, key: ExitKey) {
        if self.streams.remove(&key).is_some() {
            self.actions.push_back(ExitAction::Abort { key });
        }
    }

    /// The connection for `key` is up.
    pub fn connected<R: CryptoRng>(&mut self, m: &mut Messenger<R>, now: Instant, key: ExitKey) {
        let Some(s) = self.streams.get_mut(&key) else { return };
        s.connected = true;
        self.reply(m, now, key, StreamMessage::Opened { id: key.1 });
        self.apply(key, vec![]);
    }

    /// The connection for `key` could not be made (or the policy refused it).
    pub fn connect_failed<R: CryptoRng>(&mut self, m: &mut Messenger<R>, now: Instant, key: ExitKey, reason: &str) {
        if self.streams.remove(&key).is_none() {
            return;
        }
        let msg = StreamMessage::OpenFailed { id: key.1, reason: reason.to_owned() };
        let _ = m.reply(now, key.0, &msg.encode());
    }

    /// Bytes read from the server.
    pub fn read<R: CryptoRng>(&mut self, m: &mut Messenger<R>, now: Instant, key: ExitKey, data: &[u8]) {
        for chunk in data.chunks(MAX_CHUNK) {
            let Some(s) = self.streams.get_mut(&key) else { return };
            let seq = s.sent;
            s.sent += 1;
            self.reply(m, now, key, StreamMessage::Data { id: key.1, seq, data: chunk.to_vec() });
        }
    }

    /// The server closed its side (`error` if the connection broke).
    pub fn eof<R: CryptoRng>(&mut self, m: &mut Messenger<R>, now: Instant, key: ExitKey, error: Option<String>) {
        let Some(s) = self.streams.get_mut(&key) else { return };
        if s.read_closed {
            return;
        }
        s.read_closed = true;
        let seq = s.sent;
        self.reply(m, now, key, StreamMessage::Close { id: key.1, seq, error });
        self.forget_if_done(key);
    }

    /// A reply of ours was acknowledged: the read window opens.
    pub fn delivered(&mut self, id: MessageId) {
        let Some((key, len)) = self.replies.remove(&id) else { return };
        let Some(s) = self.streams.get_mut(&key) else { return };
        s.in_flight = s.in_flight.saturating_sub(len);
        if s.paused && s.in_flight < self.window {
            s.paused = false;
            self.actions.push_back(ExitAction::ReadReady { key });
        }
    }

    /// A reply of ours was given up: its stream is broken.
    pub fn failed(&mut self, id: MessageId) {
        if let Some((key, _)) = self.replies.remove(&id) {
            self.fail(key);
        }
    }

    /// Feeds a messenger event ([`Self::delivered`] / [`Self::failed`]).
    pub fn handle_messenger_event(&mut self, event: &Event) {
        match event {
            Event::Delivered(id) => self.delivered(*id),
            Event::Failed { id, .. } => self.failed(*id),
            _ => {}
        }
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
            StreamMessage::OpenFailed { id: 3, reason: "denied".into() },
            StreamMessage::Data { id: 4, seq: 9, data: vec![1, 2, 3] },
            StreamMessage::Close { id: 5, seq: 10, error: None },
            StreamMessage::Close { id: 6, seq: 11, error: Some("reset".into()) },
        ];
        for m in msgs {
            assert_eq!(StreamMessage::decode(&m.encode()), Some(m));
        }
        assert_eq!(StreamMessage::decode(b"MXS1"), None);
        assert_eq!(StreamMessage::decode(b"hello"), None);
        assert_eq!(StreamMessage::decode(b"MXS1\x01\0\0\0\0\0\0\0\x01\xff\xff"), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn inbound_reorders_and_ends_after_the_last_data() {
        let mut i = Inbound::default();
        assert!(i.close(3, None).is_empty());
        assert!(i.data(2, b"c".to_vec()).unwrap().is_empty());
        assert!(i.data(1, b"b".to_vec()).unwrap().is_empty());
        let out = i.data(0, b"a".to_vec()).unwrap();
        let got: Vec<_> = out
            .into_iter()
            .map(|o| match o {
                Ordered::Data(d) => String::from_utf8(d).unwrap(),
                Ordered::End(_) => "END".into(),
            })
            .collect();
        assert_eq!(got, ["a", "b", "c", "END"]);
        // duplicates after the end are ignored
        assert!(i.data(1, b"b".to_vec()).unwrap().is_empty());
    }
}
