//! Message boundaries on a byte stream (the WebTransport session of `PROTOCOL.md`):
//! every session message is sent as a 2-byte big-endian length, then the message.
//! WebSocket has its own message boundaries and close frames, and needs none of this.
//!
//! The length `0xFFFF` is reserved for the gateway's **close record**, the stream's
//! equivalent of a WebSocket close frame: `0xFFFF ‖ len (2) ‖ code (2) ‖ reason (UTF-8)`,
//! with the same code (4000 + the protocol's error code) and reason. (A QUIC
//! application close carries a code and reason too, but browsers do not pass them to
//! pages, and wtransport cannot send a WebTransport session close.)
//!
//! The decoder is sans-IO: push whatever chunks the stream hands over, pop whole
//! records. Its memory is bounded by one record (at most 65 536 bytes) plus the chunk
//! being pushed.

/// The largest message: a 2-byte length, less the value reserved for close records.
pub const MAX_MESSAGE: usize = u16::MAX as usize - 1;
/// The length value that introduces a close record.
const CLOSE: u16 = u16::MAX;
/// Longest close reason sent, in bytes (as in a WebSocket close frame).
pub const MAX_REASON: usize = 123;

/// The message is too large for a 2-byte length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a message of {0} bytes does not fit a 2-byte length (at most {MAX_MESSAGE})")]
pub struct TooLarge(pub usize);

/// What the stream carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A session message.
    Message(Vec<u8>),
    /// The gateway is closing the session: `code` is 4000 + the protocol's error code.
    Close {
        /// As in the WebSocket close frame.
        code: u16,
        /// Why (lossily decoded UTF-8).
        reason: String,
    },
}

/// `len (2, big-endian) ‖ message`.
pub fn encode(message: &[u8]) -> Result<Vec<u8>, TooLarge> {
    if message.len() > MAX_MESSAGE {
        return Err(TooLarge(message.len()));
    }
    let mut out = Vec::with_capacity(2 + message.len());
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
    Ok(out)
}

/// `0xFFFF ‖ len (2) ‖ code (2) ‖ reason`, the reason cut to [`MAX_REASON`] bytes on a
/// character boundary.
pub fn encode_close(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let reason = &reason.as_bytes()[..end];
    let mut out = Vec::with_capacity(6 + reason.len());
    out.extend_from_slice(&CLOSE.to_be_bytes());
    out.extend_from_slice(&(2 + reason.len() as u16).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason);
    out
}

/// Splits a byte stream back into messages.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Where the unread bytes of `buf` start.
    pos: usize,
}

impl Decoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        // drop what was consumed before growing, so the buffer stays one message long
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole record, if one has arrived.
    pub fn next_record(&mut self) -> Option<Record> {
        let rest = &self.buf[self.pos..];
        let len = u16::from_be_bytes([*rest.first()?, *rest.get(1)?]);
        let (record, used) = if len == CLOSE {
            let body_len = usize::from(u16::from_be_bytes([*rest.get(2)?, *rest.get(3)?]));
            let body = rest.get(4..4 + body_len)?;
            let code = match body {
                [a, b, ..] => u16::from_be_bytes([*a, *b]),
                _ => 0,
            };
            let reason = String::from_utf8_lossy(body.get(2..).unwrap_or_default()).into_owned();
            (Record::Close { code, reason }, 4 + body_len)
        } else {
            let len = usize::from(len);
            (Record::Message(rest.get(2..2 + len)?.to_vec()), 2 + len)
        };
        self.pos += used;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        Some(record)
    }

    /// Bytes of an incomplete message still waiting for the rest (non-zero when the
    /// stream ends mid-message).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::{Rng, SeedableRng};

    #[test]
    fn round_trip_over_random_chunking() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for _ in 0..50 {
            let messages: Vec<Vec<u8>> = (0..20)
                .map(|_| {
                    let len = match rng.next_u32() % 4 {
                        0 => 0,
                        1 => MAX_MESSAGE,
                        _ => (rng.next_u32() % 3000) as usize,
                    };
                    let mut m = vec![0u8; len];
                    rng.fill_bytes(&mut m);
                    m
                })
                .collect();
            let mut stream: Vec<u8> = messages.iter().flat_map(|m| encode(m).unwrap()).collect();
            stream.extend(encode_close(4005, "shutting down"));
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let mut i = 0;
            while i < stream.len() {
                let n = 1 + (rng.next_u32() as usize % 5000).min(stream.len() - i - 1);
                d.push(&stream[i..i + n]);
                i += n;
                while let Some(r) = d.next_record() {
                    got.push(r);
                }
                assert!(d.pending() <= 2 + MAX_MESSAGE + 5000);
            }
            let mut want: Vec<Record> = messages.into_iter().map(Record::Message).collect();
            want.push(Record::Close { code: 4005, reason: "shutting down".into() });
            assert_eq!(got, want);
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn garbage_never_panics_and_stays_bounded() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let mut d = Decoder::new();
        for _ in 0..2000 {
            let mut chunk = vec![0u8; (rng.next_u32() % 700) as usize];
            rng.fill_bytes(&mut chunk);
            d.push(&chunk);
            while d.next_record().is_some() {}
            // at most one unfinished record (≤ 4 + 65 535 bytes) stays buffered
            assert!(d.pending() < 4 + 65_536, "{}", d.pending());
        }
    }

    #[test]
    fn incomplete_and_oversize() {
        let mut d = Decoder::new();
        d.push(&[0x00]);
        assert_eq!(d.next_record(), None);
        d.push(&[0x03, 1, 2]);
        assert_eq!(d.next_record(), None);
        assert_eq!(d.pending(), 4);
        d.push(&[3, 0, 0]);
        assert_eq!(d.next_record(), Some(Record::Message(vec![1, 2, 3])));
        assert_eq!(d.next_record(), Some(Record::Message(vec![])));
        assert_eq!(d.pending(), 0);
        assert_eq!(encode(&vec![0; MAX_MESSAGE + 1]), Err(TooLarge(MAX_MESSAGE + 1)));
        // close records: reasons cut on a character boundary; a body too short for a
        // code still decodes
        let long = "é".repeat(100);
        d.push(&encode_close(4001, &long));
        match d.next_record() {
            Some(Record::Close { code: 4001, reason }) => assert_eq!(reason, "é".repeat(61)),
            other => panic!("{other:?}"),
        }
        d.push(&[0xff, 0xff, 0, 1, 7]);
        assert_eq!(d.next_record(), Some(Record::Close { code: 0, reason: String::new() }));
    }
}
