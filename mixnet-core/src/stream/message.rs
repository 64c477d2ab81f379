//! The stream protocol's messages and their wire form: a magic, a kind byte, the
//! stream id, then the kind's fields (big-endian integers, strings as a u16 length
//! and UTF-8 bytes of at most [`MAX_STR`]).

use super::{MAX_CHUNK, OpenFailure, StreamId};

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
}
