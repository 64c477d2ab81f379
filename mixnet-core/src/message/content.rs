//! What a reassembled message says: data (optionally with reply SURBs), a reply,
//! or SURB supply control.

use super::ReceiveError;
use crate::sphinx::{Surb, SurbId};

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

fn put_surbs(out: &mut Vec<u8>, tag: &SenderTag, surbs: &[Surb]) {
    out.extend_from_slice(tag);
    out.extend_from_slice(&u16::try_from(surbs.len()).unwrap_or(u16::MAX).to_be_bytes());
    for s in surbs.iter().take(usize::from(u16::MAX)) {
        out.extend_from_slice(&s.to_bytes());
    }
}

fn take_surbs(bytes: &[u8]) -> Result<(SenderTag, Vec<Surb>, &[u8]), ReceiveError> {
    if bytes.len() < 18 {
        return Err(ReceiveError::MalformedContent("truncated SURB list"));
    }
    let tag: SenderTag = bytes[..16].try_into().expect("16 bytes");
    let n = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    let len = Surb::encoded_len(1);
    let rest = &bytes[18..];
    if rest.len() < n * len {
        return Err(ReceiveError::MalformedContent("truncated SURB list"));
    }
    let surbs = rest[..n * len]
        .chunks_exact(len)
        .map(Surb::from_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ReceiveError::MalformedContent("malformed SURB"))?;
    Ok((tag, surbs, &rest[n * len..]))
}

impl Content {
    /// Encodes for fragmentation.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Data(body) => {
                out.push(DATA);
                out.extend_from_slice(body);
            }
            Self::DataWithSurbs { tag, surbs, body } => {
                out.push(DATA_WITH_SURBS);
                put_surbs(&mut out, tag, surbs);
                out.extend_from_slice(body);
            }
            Self::Reply(body) => {
                out.push(REPLY);
                out.extend_from_slice(body);
            }
            Self::SurbRequest(n) => {
                out.push(SURB_REQUEST);
                out.extend_from_slice(&n.to_be_bytes());
            }
            Self::SurbTopUp { tag, surbs } => {
                out.push(SURB_TOP_UP);
                put_surbs(&mut out, tag, surbs);
            }
            Self::Acks(ids) => {
                out.push(ACKS);
                for id in ids.iter().take(MAX_ACKS) {
                    out.extend_from_slice(id);
                }
            }
        }
        out
    }

    /// Decodes a reassembled message.
    pub fn decode(mut bytes: Vec<u8>) -> Result<Self, ReceiveError> {
        let Some(&kind) = bytes.first() else {
            return Err(ReceiveError::MalformedContent("empty"));
        };
        match kind {
            DATA => {
                bytes.remove(0);
                Ok(Self::Data(bytes))
            }
            REPLY => {
                bytes.remove(0);
                Ok(Self::Reply(bytes))
            }
            DATA_WITH_SURBS => {
                let (tag, surbs, body) = take_surbs(&bytes[1..])?;
                Ok(Self::DataWithSurbs { tag, surbs, body: body.to_vec() })
            }
            SURB_TOP_UP => {
                let (tag, surbs, rest) = take_surbs(&bytes[1..])?;
                if !rest.is_empty() {
                    return Err(ReceiveError::MalformedContent("trailing bytes after SURBs"));
                }
                Ok(Self::SurbTopUp { tag, surbs })
            }
            SURB_REQUEST if bytes.len() == 3 => Ok(Self::SurbRequest(u16::from_be_bytes([bytes[1], bytes[2]]))),
            SURB_REQUEST => Err(ReceiveError::MalformedContent("SURB request length")),
            ACKS if (bytes.len() - 1).is_multiple_of(16) && bytes.len() - 1 <= MAX_ACKS * 16 => {
                Ok(Self::Acks(bytes[1..].chunks_exact(16).map(|c| c.try_into().expect("chunks of 16")).collect()))
            }
            ACKS => Err(ReceiveError::MalformedContent("ack list length")),
            _ => Err(ReceiveError::MalformedContent("unknown kind")),
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
        assert_eq!(Content::decode(c.encode()).unwrap(), c);
        assert_eq!(Content::decode(vec![ACKS]).unwrap(), Content::Acks(vec![]));
        assert!(Content::decode(vec![ACKS; 18]).is_err());
        assert!(Content::decode([&[ACKS][..], &[0u8; (MAX_ACKS + 1) * 16]].concat()).is_err());
    }
}
