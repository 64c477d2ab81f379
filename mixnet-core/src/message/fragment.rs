//! Fixed-size fragments of a message.

use super::ReceiveError;

/// Bytes of an encoded fragment.
pub const FRAGMENT_LEN: usize = 1604;

/// The header's fields by name (smoltcp's shape): all big-endian.
mod field {
    use core::ops::Range;

    /// [`super::FragmentKind`].
    pub(super) const KIND: usize = 0;
    pub(super) const MESSAGE_ID: Range<usize> = 1..9;
    pub(super) const COUNT: Range<usize> = 9..13;
    pub(super) const INDEX: Range<usize> = 13..17;
    /// Bytes of data that follow (the rest is zero padding).
    pub(super) const LEN: Range<usize> = 17..19;
}
const HEADER_LEN: usize = field::LEN.end;
/// Message bytes one fragment carries.
pub const FRAGMENT_DATA: usize = FRAGMENT_LEN - HEADER_LEN;

/// What a fragment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragmentKind {
    /// Cover traffic: dropped by the recipient.
    Cover = 0,
    /// Part of a message.
    Data = 1,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// Random per message, chosen by the sender.
    pub message_id: u64,
    /// Number of fragments in the message (≥ 1).
    pub count: u32,
    /// This fragment's position (< count).
    pub index: u32,
    /// Up to [`FRAGMENT_DATA`] bytes.
    pub data: Vec<u8>,
}

impl Fragment {
    /// Encodes to exactly [`FRAGMENT_LEN`] bytes, zero-padded.
    pub fn encode(&self) -> [u8; FRAGMENT_LEN] {
        let mut out = [0u8; FRAGMENT_LEN];
        let len = self.data.len().min(FRAGMENT_DATA);
        out[field::KIND] = FragmentKind::Data as u8;
        out[field::MESSAGE_ID].copy_from_slice(&self.message_id.to_be_bytes());
        out[field::COUNT].copy_from_slice(&self.count.to_be_bytes());
        out[field::INDEX].copy_from_slice(&self.index.to_be_bytes());
        out[field::LEN].copy_from_slice(&(len as u16).to_be_bytes());
        out[HEADER_LEN..HEADER_LEN + len].copy_from_slice(&self.data[..len]);
        out
    }

    /// An encoded cover fragment (random content is not needed: it is sealed).
    pub fn cover() -> [u8; FRAGMENT_LEN] {
        [0u8; FRAGMENT_LEN]
    }

    /// Decodes; `Ok(None)` for cover.
    pub fn decode(bytes: &[u8]) -> Result<Option<Self>, ReceiveError> {
        // a checked view: every field below is within these FRAGMENT_LEN bytes
        let bytes: &[u8; FRAGMENT_LEN] = bytes
            .get(..FRAGMENT_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(ReceiveError::MalformedFragment("short"))?;
        match bytes[field::KIND] {
            0 => return Ok(None),
            1 => {}
            _ => return Err(ReceiveError::MalformedFragment("unknown kind")),
        }
        // (the ranges are constants within the array: these conversions cannot fail)
        let message_id = u64::from_be_bytes(bytes[field::MESSAGE_ID].try_into().unwrap_or_default());
        let count = u32::from_be_bytes(bytes[field::COUNT].try_into().unwrap_or_default());
        let index = u32::from_be_bytes(bytes[field::INDEX].try_into().unwrap_or_default());
        let len = usize::from(u16::from_be_bytes(bytes[field::LEN].try_into().unwrap_or_default()));
        if count == 0 || index >= count {
            return Err(ReceiveError::MalformedFragment("index out of range"));
        }
        if len > FRAGMENT_DATA {
            return Err(ReceiveError::MalformedFragment("length exceeds capacity"));
        }
        if index + 1 < count && len != FRAGMENT_DATA {
            return Err(ReceiveError::MalformedFragment("only the last fragment may be short"));
        }
        Ok(Some(Self { message_id, count, index, data: bytes[HEADER_LEN..HEADER_LEN + len].to_vec() }))
    }
}

/// Splits `message` into fragments (one, empty, for an empty message).
pub fn split_message(message_id: u64, message: &[u8]) -> Vec<Fragment> {
    let count = message.len().div_ceil(FRAGMENT_DATA).max(1);
    let count32 = u32::try_from(count).unwrap_or(u32::MAX);
    (0..count)
        .map(|i| Fragment {
            message_id,
            count: count32,
            index: i as u32,
            data: message[i * FRAGMENT_DATA..((i + 1) * FRAGMENT_DATA).min(message.len())].to_vec(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn splits_and_encodes_round_trip() {
        for len in [0, 1, FRAGMENT_DATA - 1, FRAGMENT_DATA, FRAGMENT_DATA + 1, 5 * FRAGMENT_DATA + 7] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let frags = split_message(42, &msg);
            assert_eq!(frags.len(), len.div_ceil(FRAGMENT_DATA).max(1));
            let mut joined = vec![];
            for f in &frags {
                let decoded = Fragment::decode(&f.encode()).unwrap().unwrap();
                assert_eq!(&decoded, f);
                joined.extend_from_slice(&decoded.data);
            }
            assert_eq!(joined, msg);
        }
        assert_eq!(Fragment::decode(&Fragment::cover()).unwrap(), None);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_inconsistent_headers() {
        let mut f = split_message(1, &[1, 2, 3])[0].encode();
        f[field::INDEX].copy_from_slice(&5u32.to_be_bytes());
        assert!(Fragment::decode(&f).is_err());
        let mut f = split_message(1, &[1, 2, 3])[0].encode();
        f[field::LEN].copy_from_slice(&2000u16.to_be_bytes());
        assert!(Fragment::decode(&f).is_err());
        assert!(Fragment::decode(&[1u8; 10]).is_err());
    }
}
