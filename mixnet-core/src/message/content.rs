//! What a reassembled message says: data (optionally with reply SURBs), a reply,
//! or SURB supply control.

use super::ReceiveError;
use crate::sphinx::{Surb, SurbId};
use crate::wire::{Reader, Repr, Writer};

/// Identifies an anonymous sender to a recipient, so replies can use its SURBs.
/// Random per (sender, recipient); reveals nothing about the sender.
pub type SenderTag = [u8; 16];

const DATA: u8 = 0;
const DATA_WITH_SURBS: u8 = 1;
const REPLY: u8 = 2;
const SURB_REQUEST: u8 = 3;
const SURB_TOP_UP: u8 = 4;
const ACKS: u8 = 5;
/// Most ack identifiers in one [`Content::Acks`] (one fragment's worth).
pub(crate) const MAX_ACKS: usize = 96;

/// A message's meaning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Data from an anonymous sender who cannot be answered.
    Data(Vec<u8>),
    /// Data with SURBs the recipient can answer through.
    DataWithSurbs {
        /// Which anonymous sender.
        tag: SenderTag,
        /// Reply blocks.
        surbs: Vec<Surb>,
        /// The data.
        body: Vec<u8>,
    },
    /// An answer that came back through one of our SURBs.
    Reply(Vec<u8>),
    /// Through one of our SURBs: the replier needs this many more.
    SurbRequest(u16),
    /// More SURBs for replies to `tag`.
    SurbTopUp {
        /// Which anonymous sender.
        tag: SenderTag,
        /// Reply blocks.
        surbs: Vec<Surb>,
    },
    /// To a replier: these replies of yours arrived (their ack identifiers), in one
    /// message instead of one SURB-ack packet each.
    Acks(Vec<SurbId>),
}

fn put_surbs(w: &mut Writer<'_>, tag: &SenderTag, surbs: &[Surb]) {
    let n = surbs.len().min(usize::from(u16::MAX));
    w.put(tag).u16(n as u16);
    for s in &surbs[..n] {
        let len = s.buffer_len();
        s.emit(&mut w.rest()[..len]);
        w.skip(len);
    }
}

fn surbs_len(surbs: &[Surb]) -> usize {
    16 + 2 + surbs.iter().take(usize::from(u16::MAX)).map(Surb::buffer_len).sum::<usize>()
}

fn take_surbs(r: &mut Reader<'_>) -> Result<(SenderTag, Vec<Surb>), ReceiveError> {
    const TRUNCATED: ReceiveError = ReceiveError::MalformedContent("truncated SURB list");
    let tag: SenderTag = r.array().ok_or(TRUNCATED)?;
    let n = usize::from(r.u16().ok_or(TRUNCATED)?);
    let len = Surb::encoded_len(1);
    let surbs = r
        .take(n * len)
        .ok_or(TRUNCATED)?
        .chunks_exact(len)
        .map(Surb::from_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ReceiveError::MalformedContent("malformed SURB"))?;
    Ok((tag, surbs))
}

impl Repr for Content {
    type Error = ReceiveError;

    /// Reads a reassembled message.
    fn parse(bytes: &[u8]) -> Result<Self, ReceiveError> {
        let mut r = Reader::new(bytes);
        let kind = r.u8().ok_or(ReceiveError::MalformedContent("empty"))?;
        match kind {
            DATA => Ok(Self::Data(r.rest().to_vec())),
            REPLY => Ok(Self::Reply(r.rest().to_vec())),
            DATA_WITH_SURBS => {
                let (tag, surbs) = take_surbs(&mut r)?;
                Ok(Self::DataWithSurbs { tag, surbs, body: r.rest().to_vec() })
            }
            SURB_TOP_UP => {
                let (tag, surbs) = take_surbs(&mut r)?;
                if !r.is_empty() {
                    return Err(ReceiveError::MalformedContent("trailing bytes after SURBs"));
                }
                Ok(Self::SurbTopUp { tag, surbs })
            }
            SURB_REQUEST if bytes.len() == 3 => Ok(Self::SurbRequest(r.u16().expect("two bytes"))),
            SURB_REQUEST => Err(ReceiveError::MalformedContent("SURB request length")),
            ACKS if (bytes.len() - 1).is_multiple_of(16) && bytes.len() - 1 <= MAX_ACKS * 16 => {
                Ok(Self::Acks(r.rest().chunks_exact(16).map(|c| c.try_into().expect("chunks of 16")).collect()))
            }
            ACKS => Err(ReceiveError::MalformedContent("ack list length")),
            _ => Err(ReceiveError::MalformedContent("unknown kind")),
        }
    }

    fn buffer_len(&self) -> usize {
        1 + match self {
            Self::Data(body) | Self::Reply(body) => body.len(),
            Self::DataWithSurbs { surbs, body, .. } => surbs_len(surbs) + body.len(),
            Self::SurbRequest(_) => 2,
            Self::SurbTopUp { surbs, .. } => surbs_len(surbs),
            Self::Acks(ids) => 16 * ids.len().min(MAX_ACKS),
        }
    }

    fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        match self {
            Self::Data(body) => {
                w.u8(DATA).put(body);
            }
            Self::DataWithSurbs { tag, surbs, body } => {
                w.u8(DATA_WITH_SURBS);
                put_surbs(&mut w, tag, surbs);
                w.put(body);
            }
            Self::Reply(body) => {
                w.u8(REPLY).put(body);
            }
            Self::SurbRequest(n) => {
                w.u8(SURB_REQUEST).u16(*n);
            }
            Self::SurbTopUp { tag, surbs } => {
                w.u8(SURB_TOP_UP);
                put_surbs(&mut w, tag, surbs);
            }
            Self::Acks(ids) => {
                w.u8(ACKS);
                for id in ids.iter().take(MAX_ACKS) {
                    w.put(id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn ack_lists_round_trip_and_bad_lengths_are_refused() {
        let ids: Vec<SurbId> = (0..MAX_ACKS as u8).map(|i| [i; 16]).collect();
        let c = Content::Acks(ids);
        assert_eq!(Content::parse(&c.to_bytes()).unwrap(), c);
        assert_eq!(Content::parse(&[ACKS]).unwrap(), Content::Acks(vec![]));
        assert!(Content::parse(&[ACKS; 18]).is_err());
        assert!(Content::parse(&[&[ACKS][..], &[0u8; (MAX_ACKS + 1) * 16]].concat()).is_err());
    }
}
