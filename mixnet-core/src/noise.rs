//! `Noise_NK_25519_ChaChaPoly_SHA256`, the client ↔ gateway handshake: the client
//! knows the gateway's static key from the signed topology and authenticates it; the
//! transport then encrypts every frame with a counter nonce, so replayed, reordered
//! or forged frames fail to decrypt.
//!
//! Written here (about the size of snow's glue code) so the browser build carries one
//! crypto stack and no getrandom; interoperability with `snow` is cross-tested in
//! both directions (`tests/noise_interop.rs`).

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::sphinx::NodeSecret;

/// The protocol name; exactly 32 bytes, so it is the initial hash.
pub const PROTOCOL_NAME: &[u8; 32] = b"Noise_NK_25519_ChaChaPoly_SHA256";
/// AEAD tag bytes.
pub const TAG_LEN: usize = 16;
/// Largest Noise message.
pub const MAX_MESSAGE: usize = 65535;

/// Why a Noise operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseError {
    /// Decryption failed: wrong key, tampering, replay or reordering.
    #[error("noise message failed to decrypt")]
    Decrypt,
    /// The message is shorter than its fixed parts.
    #[error("noise message too short")]
    Truncated,
    /// The message would exceed the Noise limit.
    #[error("noise message too long")]
    TooLong,
    /// The nonce counter is exhausted.
    #[error("nonce exhausted")]
    NonceExhausted,
}

/// One direction of the transport.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct CipherState {
    key: [u8; 32],
    nonce: u64,
}

impl core::fmt::Debug for CipherState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("CipherState").field("nonce", &self.nonce).finish_non_exhaustive()
    }
}

fn nonce(n: u64) -> Nonce {
    let mut b = [0u8; 12];
    b[4..].copy_from_slice(&n.to_le_bytes());
    b.into()
}

impl CipherState {
    fn new(key: [u8; 32]) -> Self {
        Self { key, nonce: 0 }
    }

    /// Messages processed so far in this direction.
    pub fn counter(&self) -> u64 {
        self.nonce
    }

    fn next_nonce(&mut self) -> Result<Nonce, NoiseError> {
        if self.nonce == u64::MAX {
            return Err(NoiseError::NonceExhausted);
        }
        let n = nonce(self.nonce);
        self.nonce += 1;
        Ok(n)
    }

    /// Encrypts `plaintext` with associated data `ad`: `ciphertext || tag`.
    pub fn encrypt_with_ad(&mut self, ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if plaintext.len() + TAG_LEN > MAX_MESSAGE {
            return Err(NoiseError::TooLong);
        }
        let n = self.next_nonce()?;
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let tag = ChaCha20Poly1305::new(&self.key.into())
            .encrypt_inout_detached(&n, ad, out.as_mut_slice().into())
            .map_err(|_| NoiseError::TooLong)?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts `ciphertext || tag`; the counter only advances on success.
    pub fn decrypt_with_ad(&mut self, ad: &[u8], message: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if message.len() < TAG_LEN {
            return Err(NoiseError::Truncated);
        }
        if self.nonce == u64::MAX {
            return Err(NoiseError::NonceExhausted);
        }
        let (ct, tag) = message.split_at(message.len() - TAG_LEN);
        let mut out = ct.to_vec();
        let tag = Tag::try_from(tag).map_err(|_| NoiseError::Truncated)?;
        ChaCha20Poly1305::new(&self.key.into())
            .decrypt_inout_detached(&nonce(self.nonce), ad, out.as_mut_slice().into(), &tag)
            .map_err(|_| NoiseError::Decrypt)?;
        self.nonce += 1;
        Ok(out)
    }

    /// Transport encryption (no associated data).
    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        self.encrypt_with_ad(&[], plaintext)
    }

    /// Transport decryption (no associated data).
    pub fn decrypt(&mut self, message: &[u8]) -> Result<Vec<u8>, NoiseError> {
        self.decrypt_with_ad(&[], message)
    }
}

/// An established session: one cipher per direction and the handshake hash, which
/// both sides share and can sign to bind other credentials to this channel.
#[derive(Debug)]
pub struct Transport {
    /// Encrypts what we send.
    pub send: CipherState,
    /// Decrypts what we receive.
    pub recv: CipherState,
    /// The final handshake hash.
    pub handshake_hash: [u8; 32],
}

#[derive(Zeroize, ZeroizeOnDrop)]
struct SymmetricState {
    ck: [u8; 32],
    h: [u8; 32],
    k: Option<[u8; 32]>,
    n: u64,
}

impl SymmetricState {
    fn new(prologue: &[u8]) -> Self {
        let mut s = Self { ck: *PROTOCOL_NAME, h: *PROTOCOL_NAME, k: None, n: 0 };
        s.mix_hash(prologue);
        s
    }

    fn mix_hash(&mut self, data: &[u8]) {
        let mut d = Sha256::new();
        d.update(self.h);
        d.update(data);
        self.h = d.finalize().into();
    }

    fn hkdf2(&self, ikm: &[u8]) -> ([u8; 32], [u8; 32]) {
        let mut okm = [0u8; 64];
        // 64 ≤ 255·32: cannot fail
        let _ = Hkdf::<Sha256>::new(Some(&self.ck), ikm).expand(&[], &mut okm);
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        a.copy_from_slice(&okm[..32]);
        b.copy_from_slice(&okm[32..]);
        okm.zeroize();
        (a, b)
    }

    fn mix_key(&mut self, ikm: &[u8]) {
        let (mut ck, mut k) = self.hkdf2(ikm);
        self.ck = ck;
        self.k = Some(k);
        self.n = 0;
        ck.zeroize();
        k.zeroize();
    }

    /// Mixes a Diffie-Hellman output in, then wipes it.
    fn mix_dh(&mut self, mut dh: [u8; 32]) {
        self.mix_key(&dh);
        dh.zeroize();
    }

    fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let out = match self.k {
            Some(k) => {
                let mut c = CipherState { key: k, nonce: self.n };
                let out = c.encrypt_with_ad(&self.h, plaintext).unwrap_or_default();
                self.n = c.nonce;
                out
            }
            None => plaintext.to_vec(),
        };
        self.mix_hash(&out);
        out
    }

    fn decrypt_and_hash(&mut self, message: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let out = match self.k {
            Some(k) => {
                let mut c = CipherState { key: k, nonce: self.n };
                let out = c.decrypt_with_ad(&self.h, message)?;
                self.n = c.nonce;
                out
            }
            None => message.to_vec(),
        };
        self.mix_hash(message);
        Ok(out)
    }

    fn split(&self) -> (CipherState, CipherState) {
        let (a, b) = self.hkdf2(&[]);
        (CipherState::new(a), CipherState::new(b))
    }
}

/// The client's half-finished handshake, after sending message 1.
pub struct Initiator {
    state: SymmetricState,
    ephemeral: NodeSecret,
}

impl Initiator {
    /// Starts a handshake with the gateway whose static key is `remote_static`;
    /// returns the state and message 1 (`e || encrypted payload`).
    pub fn start<R: CryptoRng + ?Sized>(
        rng: &mut R,
        prologue: &[u8],
        remote_static: &[u8; 32],
        payload: &[u8],
    ) -> (Self, Vec<u8>) {
        let mut state = SymmetricState::new(prologue);
        state.mix_hash(remote_static);
        let ephemeral = NodeSecret::random(rng);
        let e = ephemeral.public_key();
        state.mix_hash(&e);
        state.mix_dh(ephemeral.diffie_hellman(remote_static));
        let mut message = e.to_vec();
        message.extend_from_slice(&state.encrypt_and_hash(payload));
        (Self { state, ephemeral }, message)
    }

    /// Reads message 2; returns the transport and the responder's payload.
    pub fn finish(mut self, message: &[u8]) -> Result<(Transport, Vec<u8>), NoiseError> {
        if message.len() < 32 + TAG_LEN {
            return Err(NoiseError::Truncated);
        }
        let re: [u8; 32] = message[..32].try_into().map_err(|_| NoiseError::Truncated)?;
        self.state.mix_hash(&re);
        self.state.mix_dh(self.ephemeral.diffie_hellman(&re));
        let payload = self.state.decrypt_and_hash(&message[32..])?;
        let (send, recv) = self.state.split();
        Ok((Transport { send, recv, handshake_hash: self.state.h }, payload))
    }
}

/// The gateway's side: reads message 1 and answers with message 2.
pub fn respond<R: CryptoRng + ?Sized>(
    rng: &mut R,
    prologue: &[u8],
    static_secret: &NodeSecret,
    message: &[u8],
    payload: &[u8],
) -> Result<(Transport, Vec<u8>, Vec<u8>), NoiseError> {
    if message.len() < 32 + TAG_LEN {
        return Err(NoiseError::Truncated);
    }
    let mut state = SymmetricState::new(prologue);
    state.mix_hash(&static_secret.public_key());
    let re: [u8; 32] = message[..32].try_into().map_err(|_| NoiseError::Truncated)?;
    state.mix_hash(&re);
    state.mix_dh(static_secret.diffie_hellman(&re));
    let received = state.decrypt_and_hash(&message[32..])?;
    let ephemeral = NodeSecret::random(rng);
    let e = ephemeral.public_key();
    state.mix_hash(&e);
    state.mix_dh(ephemeral.diffie_hellman(&re));
    let mut reply = e.to_vec();
    reply.extend_from_slice(&state.encrypt_and_hash(payload));
    let (initiator_to_responder, responder_to_initiator) = state.split();
    let transport = Transport { send: responder_to_initiator, recv: initiator_to_responder, handshake_hash: state.h };
    Ok((transport, reply, received))
}
