//! The stream protocol's messages and their wire form: a magic, a kind byte, the
//! stream id, then the kind's fields (big-endian integers, strings as a u16 length
//! and UTF-8 bytes of at most [`MAX_STR`]).

use super::{MAX_CHUNK, OpenFailure, StreamId};
use crate::wire::{Reader, Repr, Writer};

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

/// `s` cut to at most [`MAX_STR`] bytes at a character boundary.
fn cut(s: &str) -> &str {
    let mut end = s.len().min(MAX_STR);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_str(w: &mut Writer<'_>, s: &str) {
    let s = cut(s);
    w.u16(s.len() as u16).put(s.as_bytes());
}

fn str_len(s: &str) -> usize {
    2 + cut(s).len()
}

fn get_str(r: &mut Reader<'_>) -> Option<String> {
    let len = usize::from(r.u16()?);
    Some(std::str::from_utf8(r.take(len)?).ok()?.to_owned())
}

/// Bytes that are not a (well-formed) stream message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a stream message")]
pub struct NotStream;

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

    fn kind(&self) -> u8 {
        match self {
            Self::Open { .. } => 1,
            Self::Opened { .. } => 2,
            Self::OpenFailed { .. } => 3,
            Self::Data { .. } => 4,
            Self::Close { .. } => 5,
            Self::Credit { .. } => 6,
        }
    }
}

/// `MXS1`, the kind, the stream id, then the kind's fields.
const HEAD_LEN: usize = MAGIC.len() + 1 + 8;

impl Repr for StreamMessage {
    type Error = NotStream;

    fn parse(b: &[u8]) -> Result<Self, NotStream> {
        Self::read(&mut Reader::new(b)).ok_or(NotStream)
    }

    fn buffer_len(&self) -> usize {
        HEAD_LEN
            + match self {
                Self::Open { host, .. } => str_len(host) + 2,
                Self::Opened { .. } => 0,
                Self::OpenFailed { reason, .. } => str_len(reason) + 1,
                Self::Data { data, .. } => 8 + data.len(),
                Self::Close { error, .. } => 8 + error.as_deref().map_or(0, str_len),
                Self::Credit { .. } => 8,
            }
    }

    fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.put(MAGIC).u8(self.kind()).u64(self.id());
        match self {
            Self::Open { host, port, .. } => {
                put_str(&mut w, host);
                w.u16(*port);
            }
            Self::Opened { .. } => {}
            Self::OpenFailed { failure, reason, .. } => {
                put_str(&mut w, reason);
                w.u8(*failure as u8);
            }
            Self::Data { seq, data, .. } => {
                w.u64(*seq).put(data);
            }
            Self::Close { seq, error, .. } => {
                w.u64(*seq);
                if let Some(e) = error {
                    put_str(&mut w, e);
                }
            }
            Self::Credit { written, .. } => {
                w.u64(*written);
            }
        }
    }
}

impl StreamMessage {
    fn read(r: &mut Reader<'_>) -> Option<Self> {
        if r.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let kind = r.u8()?;
        let id = r.u64()?;
        let m = match kind {
            1 => Self::Open { id, host: get_str(r)?, port: r.u16()? },
            2 => Self::Opened { id },
            3 => {
                let reason = get_str(r)?;
                let failure = match r.rest() {
                    [] => OpenFailure::Other,
                    [code] => OpenFailure::from_code(*code),
                    _ => return None,
                };
                Self::OpenFailed { id, failure, reason }
            }
            4 => {
                let seq = r.u64()?;
                let data = r.rest();
                if data.len() > MAX_CHUNK {
                    return None;
                }
                Self::Data { id, seq, data: data.to_vec() }
            }
            5 => {
                let seq = r.u64()?;
                let error = if r.is_empty() { None } else { Some(get_str(r)?) };
                Self::Close { id, seq, error }
            }
            6 => Self::Credit { id, written: r.u64()? },
            _ => return None,
        };
        // every kind ends exactly at the end of the bytes
        r.is_empty().then_some(m)
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
            assert_eq!(StreamMessage::parse(&m.to_bytes()).ok(), Some(m));
        }
        assert_eq!(StreamMessage::parse(b"MXS1").ok(), None);
        assert_eq!(StreamMessage::parse(b"hello").ok(), None);
        assert_eq!(StreamMessage::parse(b"MXS1\x01\0\0\0\0\0\0\0\x01\xff\xff").ok(), None);
        // a long string is cut at a character boundary, never inside one
        let long = "é".repeat(MAX_STR);
        let Ok(StreamMessage::OpenFailed { reason, .. }) = StreamMessage::parse(
            &StreamMessage::OpenFailed { id: 1, failure: OpenFailure::Other, reason: long }.to_bytes(),
        ) else {
            panic!("decodes")
        };
        assert_eq!(reason.len(), MAX_STR);
        // an exit that predates failure codes: the client reads `Other`; a newer code too
        let mut old = StreamMessage::OpenFailed { id: 9, failure: OpenFailure::Busy, reason: "x".into() }.to_bytes();
        old.pop();
        let other = StreamMessage::OpenFailed { id: 9, failure: OpenFailure::Other, reason: "x".into() };
        assert_eq!(StreamMessage::parse(&old).ok(), Some(other.clone()));
        old.push(200);
        assert_eq!(StreamMessage::parse(&old).ok(), Some(other));
        old.push(0);
        assert_eq!(StreamMessage::parse(&old).ok(), None, "one code, nothing after it");
        for (code, f) in OpenFailure::BY_CODE.iter().enumerate() {
            assert_eq!(*f as usize, code);
            assert_eq!(OpenFailure::from_code(code as u8), *f);
        }
    }
}
