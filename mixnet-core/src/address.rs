//! Client addresses: `identity.encryption@gateway`, each part a base58 32-byte key.
//!
//! `identity` is the client's long-term X25519 key (its Sphinx destination address;
//! it also authenticates the client to its gateway), `encryption` its X25519 key for
//! end-to-end payload encryption, `gateway` the identity key of the gateway that
//! holds its inbox.

use core::fmt;
use core::str::FromStr;

use crate::sphinx::{DestinationAddress, NodeAddress};

/// Where a message goes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Recipient {
    /// The client's identity key; the Sphinx destination.
    pub identity: [u8; 32],
    /// The client's X25519 key for end-to-end encryption.
    pub encryption: [u8; 32],
    /// Identity key of the client's gateway.
    pub gateway: [u8; 32],
}

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The `@gateway` part is missing.
    #[error("address has no '@gateway' part (expected identity.encryption@gateway)")]
    MissingGateway,
    /// The `.encryption` part is missing.
    #[error("address has no '.encryption' part (expected identity.encryption@gateway)")]
    MissingEncryptionKey,
    /// A part is not valid base58.
    #[error("{part} is not valid base58")]
    InvalidBase58 {
        /// Which part.
        part: &'static str,
    },
    /// A part does not decode to 32 bytes.
    #[error("{part} decodes to {len} bytes, expected 32")]
    WrongLength {
        /// Which part.
        part: &'static str,
        /// Decoded length.
        len: usize,
    },
}

/// Decodes a base58 32-byte key, naming `part` in errors.
pub fn decode_key(s: &str, part: &'static str) -> Result<[u8; 32], AddressError> {
    let bytes = bs58::decode(s).into_vec().map_err(|_| AddressError::InvalidBase58 { part })?;
    bytes.as_slice().try_into().map_err(|_| AddressError::WrongLength { part, len: bytes.len() })
}

/// Encodes a key in base58.
pub fn encode_key(key: &[u8; 32]) -> String {
    bs58::encode(key).into_string()
}

/// A client's long-term secrets in their one portable form: 64 bytes, the identity
/// secret then the end-to-end encryption secret, base58 in text. The browser's
/// `generateIdentity()` makes one and the worker takes it as `identity`; the native
/// client takes the same string (`mixnet-client --identity FILE`). Zeroized on drop.
#[derive(Clone)]
pub struct ClientIdentity {
    bytes: zeroize::Zeroizing<[u8; 64]>,
}

/// Why a string is not a client identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Not base58.
    #[error("identity is not base58")]
    InvalidBase58,
    /// Not 64 bytes.
    #[error("identity must be 64 bytes (from generateIdentity())")]
    WrongLength,
}

impl ClientIdentity {
    /// A fresh identity.
    pub fn generate<R: rand_core::CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = zeroize::Zeroizing::new([0u8; 64]);
        rng.fill_bytes(bytes.as_mut());
        Self { bytes }
    }

    /// From the two 32-byte secrets.
    pub fn from_parts(identity: [u8; 32], encryption: [u8; 32]) -> Self {
        let mut bytes = zeroize::Zeroizing::new([0u8; 64]);
        bytes[..32].copy_from_slice(&identity);
        bytes[32..].copy_from_slice(&encryption);
        Self { bytes }
    }

    /// Parses the base58 form.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        let decoded =
            zeroize::Zeroizing::new(bs58::decode(s.trim()).into_vec().map_err(|_| IdentityError::InvalidBase58)?);
        let mut bytes = zeroize::Zeroizing::new([0u8; 64]);
        if decoded.len() != 64 {
            return Err(IdentityError::WrongLength);
        }
        bytes.copy_from_slice(&decoded);
        Ok(Self { bytes })
    }

    /// The base58 form (a secret: store it as one).
    pub fn to_base58(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(bs58::encode(self.bytes.as_ref()).into_string())
    }

    /// The identity (signing) secret and the encryption secret.
    pub fn secrets(&self) -> (crate::sphinx::NodeSecret, crate::sphinx::NodeSecret) {
        let mut a = zeroize::Zeroizing::new([0u8; 32]);
        let mut b = zeroize::Zeroizing::new([0u8; 32]);
        a.copy_from_slice(&self.bytes[..32]);
        b.copy_from_slice(&self.bytes[32..]);
        (crate::sphinx::NodeSecret::from_bytes(*a), crate::sphinx::NodeSecret::from_bytes(*b))
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientIdentity(..)")
    }
}

impl Recipient {
    /// The Sphinx destination address.
    pub fn destination(&self) -> DestinationAddress {
        DestinationAddress(self.identity)
    }

    /// The gateway as a Sphinx node address.
    pub fn gateway_address(&self) -> NodeAddress {
        NodeAddress(self.gateway)
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}@{}", encode_key(&self.identity), encode_key(&self.encryption), encode_key(&self.gateway))
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Recipient {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, AddressError> {
        let (client, gateway) = s.trim().split_once('@').ok_or(AddressError::MissingGateway)?;
        let (identity, encryption) = client.split_once('.').ok_or(AddressError::MissingEncryptionKey)?;
        Ok(Self {
            identity: decode_key(identity, "identity key")?,
            encryption: decode_key(encryption, "encryption key")?,
            gateway: decode_key(gateway, "gateway key")?,
        })
    }
}

impl serde::Serialize for Recipient {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Recipient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn round_trips_and_names_the_bad_part() {
        let r = Recipient { identity: [1; 32], encryption: [2; 32], gateway: [3; 32] };
        let s = r.to_string();
        assert_eq!(s.parse::<Recipient>().unwrap(), r);
        assert_eq!("abc".parse::<Recipient>(), Err(AddressError::MissingGateway));
        assert_eq!("abc@def".parse::<Recipient>(), Err(AddressError::MissingEncryptionKey));
        let bad = s.replacen('@', "@0", 1);
        assert_eq!(bad.parse::<Recipient>(), Err(AddressError::InvalidBase58 { part: "gateway key" }));
        let short = format!("{}.{}@{}", encode_key(&[1; 32]), "2222", encode_key(&[3; 32]));
        assert!(matches!(short.parse::<Recipient>(), Err(AddressError::WrongLength { part: "encryption key", .. })));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn identity_round_trips_and_refuses_other_lengths() {
        use rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let id = ClientIdentity::generate(&mut rng);
        let again = ClientIdentity::parse(&format!("{}\n", id.to_base58().as_str())).unwrap();
        let ((a, b), (c, d)) = (id.secrets(), again.secrets());
        assert_eq!((a.public_key(), b.public_key()), (c.public_key(), d.public_key()));
        assert_ne!(a.public_key(), b.public_key());
        assert_eq!(ClientIdentity::parse(&encode_key(&[1; 32])).unwrap_err(), IdentityError::WrongLength);
        assert_eq!(ClientIdentity::parse("0OIl").unwrap_err(), IdentityError::InvalidBase58);
        assert_eq!(format!("{id:?}"), "ClientIdentity(..)");
    }
}
