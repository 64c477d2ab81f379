//! Per-hop key material: X25519 shared secrets, their HKDF expansion, and the
//! client's linear derivation.
//!
//! The reference derives hop `i`'s shared secret by re-running a chain of `i + 1`
//! X25519 operations (`x`, then every earlier blinding factor). We multiply the
//! clamped scalars together mod ℓ instead and do one multiplication per hop, so a
//! route costs one fixed-base plus one multiplication per hop.
//!
//! X25519 clamps every scalar to a multiple of 8, which kills the small-order part
//! of a point; a product mod ℓ does not. For a node key `Y` with any torsion
//! component we therefore compute `[c·8⁻¹ mod ℓ]·(8Y)`, which equals the reference's
//! `c·Y` for `c` a product of clamped scalars. Keys on the twist (no Edwards form)
//! fall back to the reference's chain.

use std::sync::{Arc, OnceLock};

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{EdwardsBasepointTable, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::{Scalar, clamp_integer};
use curve25519_dalek::traits::BasepointTable;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::{PAYLOAD_KEY_SEED_SIZE, PAYLOAD_KEY_SIZE, REPLAY_TAG_SIZE, Version};

/// `info` of the per-hop HKDF; kept for compatibility with the reference.
const EXPANDED_SECRET_INFO: &[u8] =
    b"Dwste mou enan moxlo arketa makru kai ena upomoxlio gia na ton topothetisw kai tha kinisw thn gh.";
const PAYLOAD_KEY_INFO: &[u8] = b"sphinx-payload-key-V01-CS01-HKDF:SHA256-INFO";
const PAYLOAD_KEY_SALT: &[u8] = b"sphinx-payload-key-V01-CS01-HKDF:SHA256-SALT";

const STREAM_KEY: core::ops::Range<usize> = 0..16;
const MAC_KEY: core::ops::Range<usize> = 16..32;
const LEGACY_PAYLOAD_KEY: core::ops::Range<usize> = 32..32 + PAYLOAD_KEY_SIZE;
const PAYLOAD_SEED: core::ops::Range<usize> = 32..32 + PAYLOAD_KEY_SEED_SIZE;
const BLINDING: core::ops::Range<usize> = 224..256;
const REPLAY_TAG: core::ops::Range<usize> = 256..256 + REPLAY_TAG_SIZE;
/// Length of the expanded secret: stream key, MAC key, payload key, blinding factor, replay tag.
pub const EXPANDED_SECRET_LENGTH: usize = 288;

/// 8⁻¹ mod ℓ, little-endian.
const INV8_BYTES: [u8; 32] = [
    0x79, 0x2f, 0xdc, 0xe2, 0x29, 0xe5, 0x06, 0x61, 0xd0, 0xda, 0x1c, 0x7d, 0xb3, 0x9d, 0xd3, 0x07, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06,
];

fn inv8() -> Scalar {
    Scalar::from_bytes_mod_order(INV8_BYTES)
}

/// The output of every random oracle for one hop (HKDF-SHA256 of the shared secret).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ExpandedSecret([u8; EXPANDED_SECRET_LENGTH]);

impl core::fmt::Debug for ExpandedSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ExpandedSecret(<redacted>)")
    }
}

impl ExpandedSecret {
    /// Expands a 32-byte X25519 shared secret.
    pub fn expand(shared_secret: &[u8; 32]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b""), shared_secret);
        let mut out = [0u8; EXPANDED_SECRET_LENGTH];
        // 288 ≤ 255·32, so expansion cannot fail
        let _ = hkdf.expand(EXPANDED_SECRET_INFO, &mut out);
        Self(out)
    }

    /// All 288 bytes, for cross-tests against the reference.
    pub fn as_bytes(&self) -> &[u8; EXPANDED_SECRET_LENGTH] {
        &self.0
    }

    pub(super) fn stream_key(&self) -> &[u8] {
        &self.0[STREAM_KEY]
    }

    pub(super) fn mac_key(&self) -> &[u8] {
        &self.0[MAC_KEY]
    }

    /// The seed hops derive their payload key from (version ≥ 259).
    pub fn payload_key_seed(&self) -> [u8; PAYLOAD_KEY_SEED_SIZE] {
        let mut s = [0u8; PAYLOAD_KEY_SEED_SIZE];
        s.copy_from_slice(&self.0[PAYLOAD_SEED]);
        s
    }

    /// The 32 bytes that, clamped, blind α for the next hop.
    pub(super) fn blinding_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b.copy_from_slice(&self.0[BLINDING]);
        b
    }

    /// Tag a mix stores to detect replays of this packet.
    pub fn replay_tag(&self) -> [u8; REPLAY_TAG_SIZE] {
        let mut t = [0u8; REPLAY_TAG_SIZE];
        t.copy_from_slice(&self.0[REPLAY_TAG]);
        t
    }

    /// The Lioness key this hop uses on the payload under `version`.
    pub(super) fn payload_key(&self, version: Version) -> PayloadKey {
        if version.uses_legacy_payload_keys() {
            let mut k = PayloadKey([0u8; PAYLOAD_KEY_SIZE]);
            k.0.copy_from_slice(&self.0[LEGACY_PAYLOAD_KEY]);
            k
        } else {
            PayloadKey::from_seed(&self.payload_key_seed())
        }
    }
}

/// A 192-byte Lioness key.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PayloadKey(pub(super) [u8; PAYLOAD_KEY_SIZE]);

impl PayloadKey {
    /// HKDF-SHA256 expansion of a 16-byte seed, as the reference does.
    pub fn from_seed(seed: &[u8; PAYLOAD_KEY_SEED_SIZE]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(PAYLOAD_KEY_SALT), seed);
        let mut out = [0u8; PAYLOAD_KEY_SIZE];
        // 192 ≤ 255·32, so expansion cannot fail
        let _ = hkdf.expand(PAYLOAD_KEY_INFO, &mut out);
        Self(out)
    }
}

/// A node's X25519 secret Sphinx key. Zeroized on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct NodeSecret([u8; 32]);

impl core::fmt::Debug for NodeSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("NodeSecret(<redacted>)")
    }
}

impl NodeSecret {
    /// Wraps 32 secret bytes (clamped on use, as X25519 does).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh key from the injected RNG.
    pub fn random<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut b = [0u8; 32];
        rng.fill_bytes(&mut b);
        Self(b)
    }

    /// The raw secret bytes (for persisting keys; handle with care).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The public key, a Montgomery u-coordinate.
    pub fn public_key(&self) -> [u8; 32] {
        mul_base_clamped(self.0)
    }

    /// X25519 with `point`.
    pub fn diffie_hellman(&self, point: &[u8; 32]) -> [u8; 32] {
        MontgomeryPoint(*point).mul_clamped(self.0).to_bytes()
    }
}

/// The basepoint's table, built on first use. curve25519-dalek can embed one
/// (`precomputed-tables`), but that adds 38 KB of incompressible constants to the
/// browser client; building it takes well under a millisecond.
fn basepoint_table() -> &'static EdwardsBasepointTable {
    static TABLE: OnceLock<EdwardsBasepointTable> = OnceLock::new();
    TABLE.get_or_init(|| EdwardsBasepointTable::create(&ED25519_BASEPOINT_POINT))
}

/// X25519 of the basepoint: the basepoint has prime order, so reducing the clamped
/// scalar mod ℓ gives the same point as X25519's unreduced one.
fn mul_base_clamped(secret: [u8; 32]) -> [u8; 32] {
    let mut k = Scalar::from_bytes_mod_order(clamp_integer(secret));
    let out = basepoint_table().mul_base(&k).to_montgomery().to_bytes();
    k.zeroize();
    out
}

/// A node's public Sphinx key, prepared for the client's linear derivation.
///
/// `prepared()` adds a precomputed table (30 KB) so that each use costs about a
/// fixed-base multiplication; do that for keys used more than a couple of times
/// (node keys are static for an epoch).
#[derive(Clone)]
pub struct NodeKey {
    bytes: [u8; 32],
    /// `8·Y` on the Edwards curve, `None` for keys on the twist.
    cleared: Option<CofactorCleared>,
}

#[derive(Clone)]
enum CofactorCleared {
    Point(EdwardsPoint),
    Table(Arc<EdwardsBasepointTable>),
}

impl core::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "NodeKey({})", bs58::encode(&self.bytes).into_string())
    }
}

impl PartialEq for NodeKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl NodeKey {
    /// A key without a precomputed table.
    pub fn new(bytes: [u8; 32]) -> Self {
        let cleared = MontgomeryPoint(bytes).to_edwards(0).map(|p| CofactorCleared::Point(p.mul_by_cofactor()));
        Self { bytes, cleared }
    }

    /// A key with a precomputed table of multiples of `8·Y`.
    pub fn prepared(bytes: [u8; 32]) -> Self {
        let mut key = Self::new(bytes);
        key.prepare();
        key
    }

    /// Adds the precomputed table if it is not there yet.
    pub fn prepare(&mut self) {
        if let Some(CofactorCleared::Point(p)) = &self.cleared {
            self.cleared = Some(CofactorCleared::Table(Arc::new(EdwardsBasepointTable::create(p))));
        }
    }

    /// Whether a table is attached.
    pub fn is_prepared(&self) -> bool {
        matches!(self.cleared, Some(CofactorCleared::Table(_)))
    }

    /// The Montgomery u-coordinate as published.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// X25519(`secret`, this key), using the table when there is one.
    pub fn diffie_hellman(&self, secret: &[u8; 32]) -> [u8; 32] {
        let mut k = Scalar::from_bytes_mod_order(clamp_integer(*secret)) * inv8();
        let out = match &self.cleared {
            Some(CofactorCleared::Table(t)) => t.mul_base(&k).to_montgomery().to_bytes(),
            Some(CofactorCleared::Point(p)) => (p * k).to_montgomery().to_bytes(),
            None => MontgomeryPoint(self.bytes).mul_clamped(*secret).to_bytes(),
        };
        k.zeroize();
        out
    }
}

/// Key material for one route: α₀ and every hop's expanded secret.
pub(super) struct RouteKeys {
    pub(super) alpha: [u8; 32],
    pub(super) hops: Vec<ExpandedSecret>,
}

/// Derives α₀ and every hop's expanded secret from the initial secret `x`.
pub(super) fn derive_route_keys(initial_secret: &[u8; 32], route: &[&NodeKey]) -> RouteKeys {
    let alpha = mul_base_clamped(*initial_secret);
    // product of clamped scalars so far, mod ℓ, and the raw clamped factors for the twist fallback
    let mut product = Scalar::from_bytes_mod_order(clamp_integer(*initial_secret));
    let mut factors: Vec<[u8; 32]> = vec![*initial_secret];
    let inv8 = inv8();
    let mut hops = Vec::with_capacity(route.len());
    for (i, key) in route.iter().enumerate() {
        let mut k = product * inv8;
        let mut shared = match &key.cleared {
            Some(CofactorCleared::Table(t)) => t.mul_base(&k).to_montgomery().to_bytes(),
            Some(CofactorCleared::Point(p)) => (p * k).to_montgomery().to_bytes(),
            None => factors.iter().fold(MontgomeryPoint(key.bytes), |acc, f| acc.mul_clamped(*f)).to_bytes(),
        };
        k.zeroize();
        let expanded = ExpandedSecret::expand(&shared);
        shared.zeroize();
        if i + 1 < route.len() {
            let blinding = expanded.blinding_bytes();
            product *= Scalar::from_bytes_mod_order(clamp_integer(blinding));
            factors.push(blinding);
        }
        hops.push(expanded);
    }
    product.zeroize();
    factors.zeroize();
    RouteKeys { alpha, hops }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn inv8_is_the_inverse_of_eight() {
        assert_eq!(inv8() * Scalar::from(8u64), Scalar::ONE);
        assert_eq!(Scalar::from(8u64).invert(), inv8());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn table_diffie_hellman_equals_x25519() {
        let node = NodeSecret::from_bytes([3u8; 32]);
        let public = node.public_key();
        for (i, key) in [NodeKey::new(public), NodeKey::prepared(public)].iter().enumerate() {
            let secret = [i as u8 + 40; 32];
            let expected = NodeSecret::from_bytes(secret).diffie_hellman(&public);
            assert_eq!(key.diffie_hellman(&secret), expected);
            assert_eq!(node.diffie_hellman(&NodeSecret::from_bytes(secret).public_key()), expected);
        }
    }
}
