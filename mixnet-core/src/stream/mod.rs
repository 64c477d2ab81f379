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
//! [`Streams`] is the client's side; the exit's is [`crate::exit::Exit`]. A client's
//! streams are acted on through [`Streams::with`], a view that borrows them and the
//! [`Client`] whose messages carry them, and moves what they queued when it goes.

use std::collections::{HashMap, VecDeque};

use rand_core::CryptoRng;

use crate::address::Recipient;
use crate::client::Client;
use crate::message::{Messenger, ReceivedMessage, SendError};
use crate::time::Instant;
use crate::wire::Repr;

mod inbound;
mod message;

pub(crate) use inbound::{Inbound, Ordered};
pub use message::StreamMessage;

/// Identifies a stream; chosen at random by the client.
pub type StreamId = u64;
/// Largest data chunk per message.
pub const MAX_CHUNK: usize = 32 * 1024;
/// Default upload window: bytes a client sends beyond the exit's last credit.
pub const DEFAULT_WINDOW: usize = 512 * 1024;
/// Out-of-order bytes a client buffers per stream before giving the stream up (the
/// exit keeps at most its reply window in flight, far less).
const CLIENT_MAX_PENDING: usize = 8 << 20;

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
    /// These streams acting through `client` at `now`: the one way to open, write,
    /// close and reset them and to offer them what arrives.
    pub fn with<'a, R: CryptoRng>(&'a mut self, client: &'a mut Client<R>, now: Instant) -> StreamsMut<'a, R> {
        StreamsMut { streams: self, client, now }
    }

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
    fn open<R: CryptoRng>(
        &mut self,
        m: &mut Messenger<R>,
        now: Instant,
        exit: Recipient,
        host: &str,
        port: u16,
        id: StreamId,
    ) -> Result<StreamId, StreamError> {
        let msg = StreamMessage::Open { id, host: host.to_owned(), port };
        m.send(now, exit, &msg.to_bytes(), self.surbs_with_open)?;
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
    fn write<R: CryptoRng>(
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
            m.send(now, s.exit, &msg.to_bytes(), surbs)?;
            s.sent += 1;
            s.sent_bytes += chunk.len() as u64;
            s.unsent.pop_front();
        }
        if s.write_closed && s.unsent.is_empty() && !s.close_sent {
            s.close_sent = true;
            let msg = StreamMessage::Close { id, seq: s.sent, error: None };
            m.send(now, s.exit, &msg.to_bytes(), surbs)?;
        }
        self.finish_if_done(id);
        Ok(())
    }

    /// Closes our write side once what was written has gone (the exit then shuts
    /// down its write to the server).
    fn close<R: CryptoRng>(&mut self, m: &mut Messenger<R>, now: Instant, id: StreamId) -> Result<(), StreamError> {
        let s = self.streams.get_mut(&id).ok_or(StreamError::Unknown(id))?;
        if s.write_closed {
            return Ok(());
        }
        s.write_closed = true;
        self.send_unsent(m, now, id)
    }

    /// Aborts a stream: the exit drops its connection at once (no more data comes
    /// back), and we forget the stream.
    fn reset<R: CryptoRng>(
        &mut self,
        m: &mut Messenger<R>,
        now: Instant,
        id: StreamId,
        reason: &str,
    ) -> Result<(), StreamError> {
        let s = self.streams.remove(&id).ok_or(StreamError::Unknown(id))?;
        let msg = StreamMessage::Close { id, seq: s.sent, error: Some(reason.to_owned()) };
        // one SURB: the exit knows our streams by the tag that comes with SURBs
        m.send(now, s.exit, &msg.to_bytes(), 1)?;
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
    fn handle_message<R: CryptoRng>(&mut self, m: &mut Messenger<R>, now: Instant, msg: &ReceivedMessage) -> bool {
        let Ok(sm) = StreamMessage::parse(&msg.data) else { return false };
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

/// [`Streams`] acting through a [`Client`] at one instant (from [`Streams::with`]).
/// What its calls queue moves when it goes: it flushes the client on drop, so no
/// caller can leave a packet waiting for a forgotten flush.
pub struct StreamsMut<'a, R: CryptoRng> {
    streams: &'a mut Streams,
    client: &'a mut Client<R>,
    now: Instant,
}

impl<R: CryptoRng> StreamsMut<'_, R> {
    /// The instant it acts at.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Asks `exit` to connect to `host:port` on a new stream `id` (random, chosen by
    /// the caller), attaching [`Streams::surbs_with_open`] SURBs for its answers.
    pub fn open(&mut self, exit: Recipient, host: &str, port: u16, id: StreamId) -> Result<StreamId, StreamError> {
        self.streams.open(self.client.messenger_mut(), self.now, exit, host, port, id)
    }

    /// Sends bytes on stream `id` (in chunks of at most [`MAX_CHUNK`]); what exceeds
    /// the window waits for the exit's credit.
    pub fn write(&mut self, id: StreamId, data: &[u8]) -> Result<(), StreamError> {
        self.streams.write(self.client.messenger_mut(), self.now, id, data)
    }

    /// Closes our write side of `id` once what was written has gone (the exit then
    /// shuts down its write to the server).
    pub fn close(&mut self, id: StreamId) -> Result<(), StreamError> {
        self.streams.close(self.client.messenger_mut(), self.now, id)
    }

    /// Aborts `id`: the exit drops its connection at once (no more data comes back),
    /// and we forget the stream.
    pub fn reset(&mut self, id: StreamId, reason: &str) -> Result<(), StreamError> {
        self.streams.reset(self.client.messenger_mut(), self.now, id, reason)
    }

    /// Offers a received message; `false` if it is not for a stream of ours. Credit
    /// from the exit lets held data go, so this may send.
    pub fn handle_message(&mut self, msg: &ReceivedMessage) -> bool {
        self.streams.handle_message(self.client.messenger_mut(), self.now, msg)
    }

    /// The next stream event.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.streams.poll_event()
    }
}

impl<R: CryptoRng> Drop for StreamsMut<'_, R> {
    fn drop(&mut self) {
        self.client.flush(self.now);
    }
}
