//! End-to-end sealing of a forward packet's fragment to the recipient's X25519 key,
//! so that its gateway (the final Sphinx hop) cannot read it.
//!
//! `ephemeral public key (32) || ChaCha20-Poly1305(key, nonce 0, fragment) (+16)`
//! with `key = HKDF-SHA256(salt, X25519(e, recipient), info = epk || recipient)`;
//! a fresh ephemeral key per packet makes the zero nonce safe.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroize;

use super::ReceiveError;
use super::fragment::FRAGMENT_LEN;
use crate::sphinx::{NodeKey, NodeSecret};

/// Bytes sealing adds.
pub const SEAL_OVERHEAD: usize = 32 + 16;
const SALT: &[u8] = b"mixnet-e2e-v1";

fn cipher(shared: &[u8; 32], epk: &[u8; 32], recipient: &[u8; 32]) -> ChaCha20Poly1305 {
    let mut info = [0u8; 64];
    info[..32].copy_from_slice(epk);
    info[32..].copy_from_slice(recipient);
    let mut key = [0u8; 32];
    // 32 ≤ 255·32: cannot fail
    let _ = Hkdf::<Sha256>::new(Some(SALT), shared).expand(&info, &mut key);
    let c = ChaCha20Poly1305::new(&key.into());
    key.zeroize();
    c
}

/// Seals `fragment` to `recipient`. `None` if the recipient key is degenerate
/// (a small-order point, whose shared secret would be predictable).
pub fn seal<R: CryptoRng + ?Sized>(
    rng: &mut R,
    recipient: &NodeKey,
    fragment: &[u8; FRAGMENT_LEN],
) -> Option<[u8; FRAGMENT_LEN + SEAL_OVERHEAD]> {
    let mut e = [0u8; 32];
    rng.fill_bytes(&mut e);
    let epk = NodeSecret::from_bytes(e).public_key();
    let mut shared = recipient.diffie_hellman(&e);
    e.zeroize();
    if shared == [0u8; 32] {
        return None;
    }
    let mut out = [0u8; FRAGMENT_LEN + SEAL_OVERHEAD];
    out[..32].copy_from_slice(&epk);
    out[32..32 + FRAGMENT_LEN].copy_from_slice(fragment);
    let c = cipher(&shared, &epk, recipient.as_bytes());
    shared.zeroize();
    let tag = c.encrypt_inout_detached(&Nonce::default(), b"", (&mut out[32..32 + FRAGMENT_LEN]).into()).ok()?;
    out[32 + FRAGMENT_LEN..].copy_from_slice(&tag);
    Some(out)
}

/// Opens a sealed fragment with our encryption secret.
pub fn open(secret: &NodeSecret, sealed: &[u8]) -> Result<[u8; FRAGMENT_LEN], ReceiveError> {
    if sealed.len() < FRAGMENT_LEN + SEAL_OVERHEAD {
        return Err(ReceiveError::Unsealable);
    }
    let epk: [u8; 32] = sealed[..32].try_into().expect("32 bytes");
    let mut shared = secret.diffie_hellman(&epk);
    let c = cipher(&shared, &epk, &secret.public_key());
    shared.zeroize();
    let mut out = [0u8; FRAGMENT_LEN];
    out.copy_from_slice(&sealed[32..32 + FRAGMENT_LEN]);
    let tag =
        Tag::try_from(&sealed[32 + FRAGMENT_LEN..32 + FRAGMENT_LEN + 16]).map_err(|_| ReceiveError::Unsealable)?;
    c.decrypt_inout_detached(&Nonce::default(), b"", (&mut out[..]).into(), &tag)
        .map_err(|_| ReceiveError::Unsealable)?;
    Ok(out)
}
