//! Message boundaries on a byte stream (the WebTransport session of `PROTOCOL.md`):
//! every session message is sent as a 2-byte big-endian length, then the message.
//! WebSocket has its own message boundaries and needs none of this.
//!
//! The decoder is sans-IO: push whatever chunks the stream hands over, pop whole
//! messages. Its memory is bounded by one message (at most 65 535 bytes) plus the
//! chunk being pushed.

/// The largest message a 2-byte length can describe.
pub const MAX_MESSAGE: usize = u16::MAX as usize;

/// The message is too large for a 2-byte length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a message of {0} bytes does not fit a 2-byte length (at most {MAX_MESSAGE})")]
pub struct TooLarge(pub usize);

/// `len (2, big-endian) ‖ message`.
pub fn encode(message: &[u8]) -> Result<Vec<u8>, TooLarge> {
    let len = u16::try_from(message.len()).map_err(|_| TooLarge(message.len()))?;
    let mut out = Vec::with_capacity(2 + message.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(out)
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

    /// The next whole message, if one has arrived.
    pub fn next_message(&mut self) -> Option<Vec<u8>> {
        let rest = &self.buf[self.pos..];
        let len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
        let body = rest.get(2..2 + len)?.to_vec();
        self.pos += 2 + len;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        Some(body)
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
            let stream: Vec<u8> = messages.iter().flat_map(|m| encode(m).unwrap()).collect();
            let mut d = Decoder::new();
            let mut got = Vec::new();
            let mut i = 0;
            while i < stream.len() {
                let n = 1 + (rng.next_u32() as usize % 5000).min(stream.len() - i - 1);
                d.push(&stream[i..i + n]);
                i += n;
                while let Some(m) = d.next_message() {
                    got.push(m);
                }
                assert!(d.pending() <= 2 + MAX_MESSAGE + 5000);
            }
            assert_eq!(got, messages);
            assert_eq!(d.pending(), 0);
        }
    }

    #[test]
    fn incomplete_and_oversize() {
        let mut d = Decoder::new();
        d.push(&[0x00]);
        assert_eq!(d.next_message(), None);
        d.push(&[0x03, 1, 2]);
        assert_eq!(d.next_message(), None);
        assert_eq!(d.pending(), 4);
        d.push(&[3, 0, 0]);
        assert_eq!(d.next_message(), Some(vec![1, 2, 3]));
        assert_eq!(d.next_message(), Some(vec![]));
        assert_eq!(d.pending(), 0);
        assert_eq!(encode(&vec![0; MAX_MESSAGE + 1]), Err(TooLarge(MAX_MESSAGE + 1)));
    }
}
