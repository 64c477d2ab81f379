//! Single-use reply blocks, version 260: the SURB hands out only the last hop's
//! payload seed; its creator keeps every hop's seed ([`SurbRecovery`]) and is the
//! only one who can read the reply.

use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::wire::{Repr, Writer};

use super::header::build_header;
use super::keys::PayloadKey;
use super::payload::{decrypt_layer, encapsulate_payload, encrypt_layer, recover_plaintext};
use super::{
    Delay, Destination, HEADER_SIZE, IDENTIFIER_LENGTH, MAX_PATH_LENGTH, MIN_PAYLOAD_SIZE, NODE_ADDRESS_LENGTH,
    NodeAddress, PAYLOAD_KEY_SEED_SIZE, RouteNode, SphinxError, SurbId, Version,
};

type Seed = [u8; PAYLOAD_KEY_SEED_SIZE];

/// A single-use reply block: `header || first hop address || seeds`.
#[derive(Clone, PartialEq, Eq)]
pub struct Surb {
    header: [u8; HEADER_SIZE],
    first_hop: NodeAddress,
    seeds: Vec<Seed>,
}

impl core::fmt::Debug for Surb {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Surb").field("first_hop", &self.first_hop).field("seeds", &self.seeds.len()).finish()
    }
}

fn parse_seeds(bytes: &[u8]) -> Result<Vec<Seed>, SphinxError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(PAYLOAD_KEY_SEED_SIZE) {
        return Err(SphinxError::MalformedSurb("seeds are not a non-empty multiple of 16 bytes"));
    }
    if bytes.len() / PAYLOAD_KEY_SEED_SIZE > MAX_PATH_LENGTH {
        return Err(SphinxError::MalformedSurb("more seeds than hops in a route"));
    }
    Ok(bytes
        .chunks_exact(PAYLOAD_KEY_SEED_SIZE)
        .map(|c| {
            let mut s = [0u8; PAYLOAD_KEY_SEED_SIZE];
            s.copy_from_slice(c);
            s
        })
        .collect())
}

impl Surb {
    /// Encoded length of a SURB with `seeds` payload seeds (one for version 260).
    pub const fn encoded_len(seeds: usize) -> usize {
        HEADER_SIZE + NODE_ADDRESS_LENGTH + seeds * PAYLOAD_KEY_SEED_SIZE
    }

    /// The node the reply is sent to first.
    pub fn first_hop(&self) -> NodeAddress {
        self.first_hop
    }

    /// `header || first hop || seeds`, as the reference encodes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        Repr::to_bytes(self)
    }

    /// Parses the reference's encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SphinxError> {
        if bytes.len() < Self::encoded_len(1) {
            return Err(SphinxError::MalformedSurb("too short"));
        }
        let mut header = [0u8; HEADER_SIZE];
        header.copy_from_slice(&bytes[..HEADER_SIZE]);
        let mut first_hop = [0u8; NODE_ADDRESS_LENGTH];
        first_hop.copy_from_slice(&bytes[HEADER_SIZE..HEADER_SIZE + NODE_ADDRESS_LENGTH]);
        let seeds = parse_seeds(&bytes[HEADER_SIZE + NODE_ADDRESS_LENGTH..])?;
        Ok(Self { header, first_hop: NodeAddress(first_hop), seeds })
    }

    /// Builds the reply packet: `message` under the SURB's seed(s), behind its header.
    /// Returns the packet and the first hop to send it to.
    pub fn use_surb(&self, message: &[u8], payload_size: usize) -> Result<(Vec<u8>, NodeAddress), SphinxError> {
        let keys: Vec<PayloadKey> = self.seeds.iter().map(PayloadKey::from_seed).collect();
        let payload = encapsulate_payload(message, &keys, payload_size)?;
        let mut packet = Vec::with_capacity(HEADER_SIZE + payload.len());
        packet.extend_from_slice(&self.header);
        packet.extend_from_slice(&payload);
        Ok((packet, self.first_hop))
    }
}

impl Repr for Surb {
    type Error = SphinxError;

    fn parse(bytes: &[u8]) -> Result<Self, SphinxError> {
        Self::from_bytes(bytes)
    }

    fn buffer_len(&self) -> usize {
        Self::encoded_len(self.seeds.len())
    }

    fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.put(&self.header).put(&self.first_hop.0);
        for s in &self.seeds {
            w.put(s);
        }
    }
}

/// What a SURB's creator keeps to read the reply: the identifier and every hop's seed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SurbRecovery {
    identifier: SurbId,
    seeds: Vec<Seed>,
}

impl core::fmt::Debug for SurbRecovery {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SurbRecovery").field("hops", &self.seeds.len()).finish_non_exhaustive()
    }
}

impl SurbRecovery {
    /// The identifier the reply arrives with.
    pub fn identifier(&self) -> &SurbId {
        &self.identifier
    }

    /// `identifier || seeds`, as the reference encodes it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.identifier.to_vec();
        for s in &self.seeds {
            out.extend_from_slice(s);
        }
        out
    }

    /// Parses the reference's encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SphinxError> {
        if bytes.len() < IDENTIFIER_LENGTH + PAYLOAD_KEY_SEED_SIZE {
            return Err(SphinxError::MalformedSurb("recovery material too short"));
        }
        let mut identifier = [0u8; IDENTIFIER_LENGTH];
        identifier.copy_from_slice(&bytes[..IDENTIFIER_LENGTH]);
        Ok(Self { identifier, seeds: parse_seeds(&bytes[IDENTIFIER_LENGTH..])? })
    }

    /// Undoes the network's work on a reply payload in place: re-adds every hop's
    /// layer (last hop first), then removes the one layer the replier added.
    pub fn unseal(&self, payload: &mut [u8]) -> Result<(), SphinxError> {
        if payload.len() < MIN_PAYLOAD_SIZE {
            return Err(SphinxError::PayloadTooSmall(payload.len()));
        }
        let keys: Vec<PayloadKey> = self.seeds.iter().map(PayloadKey::from_seed).collect();
        for key in keys.iter().rev() {
            encrypt_layer(payload, key);
        }
        if let Some(last) = keys.last() {
            decrypt_layer(payload, last);
        }
        Ok(())
    }

    /// [`Self::unseal`] and then the message; fails on wrong material or tampering.
    pub fn recover_plaintext(&self, mut payload: Vec<u8>) -> Result<Vec<u8>, SphinxError> {
        self.unseal(&mut payload)?;
        let message = recover_plaintext(&payload)?.to_vec();
        payload.zeroize();
        Ok(message)
    }
}

/// Creates a version-260 SURB for `route` ending at `destination` (whose identifier
/// must be non-zero), with a fresh initial secret from `rng`.
pub fn create_surb<R: CryptoRng + ?Sized>(
    rng: &mut R,
    route: &[RouteNode],
    delays: &[Delay],
    destination: &Destination,
) -> Result<(Surb, SurbRecovery), SphinxError> {
    if destination.identifier == [0u8; IDENTIFIER_LENGTH] {
        return Err(SphinxError::ZeroSurbIdentifier);
    }
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let built = build_header(rng, &secret, route, delays, destination, Version::SINGLE_SEED_SURB);
    secret.zeroize();
    let (header, hops) = built?;
    let seeds: Vec<Seed> = hops.iter().map(|h| h.payload_key_seed()).collect();
    let last = *seeds.last().ok_or(SphinxError::InvalidRouteLength(0))?;
    let surb = Surb { header, first_hop: route[0].address, seeds: vec![last] };
    Ok((surb, SurbRecovery { identifier: destination.identifier, seeds }))
}
