//! The Sphinx payload: Lioness (ChaCha20, keyed BLAKE2b-256) layers over
//! `0^16 || message || 0x01 || 0*`. The 16 leading zeros act as an integrity check:
//! Lioness is a wide-block cipher, so any change garbles them.

use blake2::Blake2bMac;
use blake2::digest::consts::U32;
use chacha20::ChaCha20;
use lioness_rs::{KeyInit, Lioness};

use super::keys::PayloadKey;
use super::{MIN_PAYLOAD_SIZE, PAYLOAD_OVERHEAD, SECURITY_PARAMETER, SphinxError};

type PayloadCipher = Lioness<ChaCha20, Blake2bMac<U32>>;

fn cipher(key: &PayloadKey) -> PayloadCipher {
    PayloadCipher::new(&key.0.into())
}

/// Adds one layer (what the sender does for each hop, last hop first).
pub(super) fn encrypt_layer(payload: &mut [u8], key: &PayloadKey) {
    // callers guarantee len ≥ MIN_PAYLOAD_SIZE (> the 32-byte left half), so this cannot fail
    let _ = cipher(key).encrypt_block(payload);
}

/// Removes one layer (what each hop does).
pub(super) fn decrypt_layer(payload: &mut [u8], key: &PayloadKey) {
    let _ = cipher(key).decrypt_block(payload);
}

/// Encodes `message` into a payload of `payload_size` bytes and adds one layer per key,
/// the last key's layer first (so the first hop removes the outermost).
pub fn encapsulate_payload(message: &[u8], keys: &[PayloadKey], payload_size: usize) -> Result<Vec<u8>, SphinxError> {
    if payload_size < MIN_PAYLOAD_SIZE {
        return Err(SphinxError::PayloadTooSmall(payload_size));
    }
    let max = payload_size - PAYLOAD_OVERHEAD;
    if message.len() > max {
        return Err(SphinxError::MessageTooLong { len: message.len(), max });
    }
    let mut payload = vec![0u8; payload_size];
    payload[SECURITY_PARAMETER..SECURITY_PARAMETER + message.len()].copy_from_slice(message);
    payload[SECURITY_PARAMETER + message.len()] = 1;
    for key in keys.iter().rev() {
        encrypt_layer(&mut payload, key);
    }
    Ok(payload)
}

/// The message inside a fully decrypted payload.
pub fn recover_plaintext(payload: &[u8]) -> Result<&[u8], SphinxError> {
    if payload.len() < PAYLOAD_OVERHEAD || payload[..SECURITY_PARAMETER].iter().any(|&b| b != 0) {
        return Err(SphinxError::MalformedPayload);
    }
    let body = &payload[SECURITY_PARAMETER..];
    let end = body.iter().rposition(|&b| b == 1).ok_or(SphinxError::MalformedPayload)?;
    Ok(&body[..end])
}
