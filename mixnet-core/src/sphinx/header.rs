//! Building and processing Sphinx headers and whole packets.

use aes::Aes128;
use ctr::Ctr64BE;
use ctr::cipher::{KeyIvInit, StreamCipher};
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::montgomery::MontgomeryPoint;
use hmac::{Hmac, KeyInit, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroize;

use super::keys::{ExpandedSecret, NodeSecret, PayloadKey, derive_route_keys};
use super::payload::{decrypt_layer, encapsulate_payload};
use super::{
    DELAY_LENGTH, Delay, Destination, DestinationAddress, FINAL_HOP, FORWARD_HOP, HEADER_MAC_SIZE, HEADER_SIZE,
    HOP_INFO_SIZE, IDENTIFIER_LENGTH, KEYSTREAM_LENGTH, MAX_PATH_LENGTH, MIN_PAYLOAD_SIZE, NODE_ADDRESS_LENGTH,
    NodeAddress, REPLAY_TAG_SIZE, ROUTING_INFO_SIZE, RouteNode, SphinxError, SurbId, VERSION_LENGTH, Version,
};

const ALPHA: core::ops::Range<usize> = 0..32;
const GAMMA: core::ops::Range<usize> = 32..32 + HEADER_MAC_SIZE;
const BETA: core::ops::Range<usize> = 32 + HEADER_MAC_SIZE..HEADER_SIZE;
/// Bytes of the final hop's routing data before its random padding.
const FINAL_META_SIZE: usize = 1 + VERSION_LENGTH + 32 + IDENTIFIER_LENGTH;

/// The fields of one hop's decrypted routing information, by name (as smoltcp names a
/// header's): a forward hop's is exactly [`HOP_INFO_SIZE`] bytes; a final hop's is
/// `FLAG`, `VERSION`, `ADDRESS`, `IDENTIFIER`, then random padding.
mod field {
    use core::ops::Range;

    use super::{DELAY_LENGTH, FINAL_META_SIZE, HEADER_MAC_SIZE, NODE_ADDRESS_LENGTH, VERSION_LENGTH};

    /// [`super::FORWARD_HOP`] or [`super::FINAL_HOP`].
    pub(super) const FLAG: usize = 0;
    pub(super) const VERSION: Range<usize> = 1..1 + VERSION_LENGTH;
    /// The next hop's address, or (final hop) the destination's.
    pub(super) const ADDRESS: Range<usize> = VERSION.end..VERSION.end + NODE_ADDRESS_LENGTH;
    /// Forward hop: how long the next node holds the packet.
    pub(super) const DELAY: Range<usize> = ADDRESS.end..ADDRESS.end + DELAY_LENGTH;
    /// Forward hop: the next node's header MAC (its gamma).
    pub(super) const MAC: Range<usize> = DELAY.end..DELAY.end + HEADER_MAC_SIZE;
    /// Final hop: the SURB or message identifier.
    pub(super) const IDENTIFIER: Range<usize> = ADDRESS.end..FINAL_META_SIZE;
}
const _: () = assert!(field::MAC.end == HOP_INFO_SIZE && field::IDENTIFIER.end <= HOP_INFO_SIZE);

/// AES-128-CTR (64-bit big-endian counter, zero IV) keystream for one hop.
struct Keystream([u8; KEYSTREAM_LENGTH]);

impl Keystream {
    fn new(key: &[u8]) -> Self {
        let mut buf = [0u8; KEYSTREAM_LENGTH];
        let mut cipher = Ctr64BE::<Aes128>::new_from_slices(key, &[0u8; 16]).expect("16-byte key and IV");
        cipher.apply_keystream(&mut buf);
        Self(buf)
    }
}

impl Drop for Keystream {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

fn xor_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d ^= s;
    }
}

fn header_mac(key: &[u8], beta: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(beta);
    mac
}

fn compute_mac(key: &[u8], beta: &[u8]) -> [u8; HEADER_MAC_SIZE] {
    let full = header_mac(key, beta).finalize().into_bytes();
    let mut out = [0u8; HEADER_MAC_SIZE];
    out.copy_from_slice(&full[..HEADER_MAC_SIZE]);
    out
}

fn check_route(hops: usize, delays: usize) -> Result<(), SphinxError> {
    if hops == 0 || hops > MAX_PATH_LENGTH {
        return Err(SphinxError::InvalidRouteLength(hops));
    }
    if delays != hops {
        return Err(SphinxError::DelayCountMismatch { hops, delays });
    }
    Ok(())
}

/// Builds a header from `initial_secret` and returns it with every hop's expanded secret.
///
/// The final hop's routing information is padded with random bytes from `rng`
/// (against the Kuhn et al. attack), as the reference does.
pub fn build_header<R: CryptoRng + ?Sized>(
    rng: &mut R,
    initial_secret: &[u8; 32],
    route: &[RouteNode],
    delays: &[Delay],
    destination: &Destination,
    version: Version,
) -> Result<([u8; HEADER_SIZE], Vec<ExpandedSecret>), SphinxError> {
    check_route(route.len(), delays.len())?;
    let n = route.len();
    let keys: Vec<_> = route.iter().map(|r| &r.key).collect();
    let route_keys = derive_route_keys(initial_secret, &keys);
    let streams: Vec<Keystream> = route_keys.hops.iter().map(|h| Keystream::new(h.stream_key())).collect();

    // filler: what the hops' decryptions will append, so the final MAC covers it
    let mut filler = vec![0u8; HOP_INFO_SIZE * (n - 1)];
    for (i, stream) in streams.iter().take(n - 1).enumerate() {
        let len = HOP_INFO_SIZE * (i + 1);
        xor_into(&mut filler[..len], &stream.0[KEYSTREAM_LENGTH - len..]);
    }

    // the final hop: flag, version, destination, identifier, random padding, then the filler
    let mut beta = [0u8; ROUTING_INFO_SIZE];
    let final_len = ROUTING_INFO_SIZE - filler.len();
    beta[field::FLAG] = FINAL_HOP;
    beta[field::VERSION].copy_from_slice(&version.to_bytes());
    beta[field::ADDRESS].copy_from_slice(&destination.address.0);
    beta[field::IDENTIFIER].copy_from_slice(&destination.identifier);
    rng.fill_bytes(&mut beta[FINAL_META_SIZE..final_len]);
    xor_into(&mut beta[..final_len], &streams[n - 1].0[..final_len]);
    beta[final_len..].copy_from_slice(&filler);
    let mut gamma = compute_mac(route_keys.hops[n - 1].mac_key(), &beta);

    // forward hops, from the inside out
    for i in (0..n - 1).rev() {
        let mut next = [0u8; ROUTING_INFO_SIZE];
        next[field::FLAG] = FORWARD_HOP;
        next[field::VERSION].copy_from_slice(&version.to_bytes());
        next[field::ADDRESS].copy_from_slice(&route[i + 1].address.0);
        next[field::DELAY].copy_from_slice(&delays[i].0.to_be_bytes());
        next[field::MAC].copy_from_slice(&gamma);
        next[HOP_INFO_SIZE..].copy_from_slice(&beta[..ROUTING_INFO_SIZE - HOP_INFO_SIZE]);
        xor_into(&mut next, &streams[i].0[..ROUTING_INFO_SIZE]);
        beta = next;
        gamma = compute_mac(route_keys.hops[i].mac_key(), &beta);
    }

    let mut header = [0u8; HEADER_SIZE];
    header[ALPHA].copy_from_slice(&route_keys.alpha);
    header[GAMMA].copy_from_slice(&gamma);
    header[BETA].copy_from_slice(&beta);
    Ok((header, route_keys.hops))
}

/// Builds a packet with a fresh initial secret from `rng`.
///
/// `payload_size` is the Sphinx payload length (e.g. [`super::PacketSize::payload_len`]).
pub fn build_packet<R: CryptoRng + ?Sized>(
    rng: &mut R,
    route: &[RouteNode],
    destination: &Destination,
    delays: &[Delay],
    message: &[u8],
    payload_size: usize,
) -> Result<Vec<u8>, SphinxError> {
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let built =
        build_packet_with_secret(rng, &secret, route, destination, delays, message, payload_size, Version::CURRENT);
    secret.zeroize();
    built.map(|(packet, _)| packet)
}

/// Builds a packet from an explicit initial secret and version; also returns every
/// hop's expanded secret. For cross-tests and tools; prefer [`build_packet`].
#[allow(clippy::too_many_arguments)]
pub fn build_packet_with_secret<R: CryptoRng + ?Sized>(
    rng: &mut R,
    initial_secret: &[u8; 32],
    route: &[RouteNode],
    destination: &Destination,
    delays: &[Delay],
    message: &[u8],
    payload_size: usize,
    version: Version,
) -> Result<(Vec<u8>, Vec<ExpandedSecret>), SphinxError> {
    // validate the cheap things before the expensive header
    if payload_size < MIN_PAYLOAD_SIZE {
        return Err(SphinxError::PayloadTooSmall(payload_size));
    }
    let (header, hops) = build_header(rng, initial_secret, route, delays, destination, version)?;
    let keys: Vec<PayloadKey> = hops.iter().map(|h| h.payload_key(version)).collect();
    let payload = encapsulate_payload(message, &keys, payload_size)?;
    let mut packet = Vec::with_capacity(HEADER_SIZE + payload_size);
    packet.extend_from_slice(&header);
    packet.extend_from_slice(&payload);
    Ok((packet, hops))
}

/// A packet to forward after its delay.
#[derive(Debug)]
pub struct ForwardHop {
    /// Where to send it.
    pub next_hop: NodeAddress,
    /// How long to hold it first.
    pub delay: Delay,
    /// The re-encoded packet (same length as the input).
    pub packet: Vec<u8>,
}

/// A packet that reached its final hop.
#[derive(Debug)]
pub struct ProcessedFinal {
    /// The client to deliver to.
    pub destination: DestinationAddress,
    /// Zero for forward packets; the SURB identifier for replies.
    pub identifier: SurbId,
    /// The payload after this hop's layer: plaintext-encoded for forward packets,
    /// still sealed for single-seed SURB replies.
    pub payload: Vec<u8>,
}

/// The result of processing a packet at one hop.
#[derive(Debug)]
pub enum Processed {
    /// Forward to the next hop.
    Forward(ForwardHop),
    /// Deliver to the destination.
    Final(ProcessedFinal),
}

impl NodeSecret {
    /// The expanded secret a packet shares with this node (carries the replay tag).
    /// Check the tag against the replay filter before [`process_packet_with_secret`].
    pub fn packet_secret(&self, packet: &[u8]) -> Result<ExpandedSecret, SphinxError> {
        Ok(self.packet_secret_and_alpha(packet)?.0)
    }

    /// The expanded secret and α as an Edwards point (if α is on the curve), so the
    /// blinding multiplication can reuse the decompression.
    fn packet_secret_and_alpha(&self, packet: &[u8]) -> Result<(ExpandedSecret, Alpha), SphinxError> {
        if packet.len() < HEADER_SIZE + MIN_PAYLOAD_SIZE {
            return Err(SphinxError::PacketTooShort(packet.len()));
        }
        let alpha = Alpha::new(&packet[ALPHA]);
        let mut shared = alpha.mul_clamped(self.to_bytes());
        let expanded = ExpandedSecret::expand(&shared);
        shared.zeroize();
        Ok((expanded, alpha))
    }
}

/// α as received. X25519 multiplies by clamped integers, so on the curve the same
/// u-coordinate comes out of an Edwards multiplication (vectorised where the CPU
/// allows) as out of the Montgomery ladder; points on the twist use the ladder.
struct Alpha {
    u: [u8; 32],
    edwards: Option<EdwardsPoint>,
}

impl Alpha {
    fn new(bytes: &[u8]) -> Self {
        let mut u = [0u8; 32];
        u.copy_from_slice(bytes);
        Self { u, edwards: MontgomeryPoint(u).to_edwards(0) }
    }

    fn mul_clamped(&self, scalar: [u8; 32]) -> [u8; 32] {
        match &self.edwards {
            Some(p) => p.mul_clamped(scalar).to_montgomery().to_bytes(),
            None => MontgomeryPoint(self.u).mul_clamped(scalar).to_bytes(),
        }
    }
}

/// Processes a packet at a hop: verifies γ, decrypts β and one payload layer.
pub fn process_packet(secret: &NodeSecret, packet: Vec<u8>) -> Result<(Processed, [u8; REPLAY_TAG_SIZE]), SphinxError> {
    let (expanded, alpha) = secret.packet_secret_and_alpha(&packet)?;
    let tag = expanded.replay_tag();
    Ok((process_with(&expanded, &alpha, packet)?, tag))
}

/// Whether the header MAC verifies under `expanded` (constant time).
pub fn header_mac_ok(expanded: &ExpandedSecret, packet: &[u8]) -> bool {
    packet.len() >= HEADER_SIZE + MIN_PAYLOAD_SIZE
        && header_mac(expanded.mac_key(), &packet[BETA]).verify_truncated_left(&packet[GAMMA]).is_ok()
}

/// [`process_packet`] with the secret already derived by [`NodeSecret::packet_secret`].
pub fn process_packet_with_secret(expanded: &ExpandedSecret, packet: Vec<u8>) -> Result<Processed, SphinxError> {
    if packet.len() < HEADER_SIZE + MIN_PAYLOAD_SIZE {
        return Err(SphinxError::PacketTooShort(packet.len()));
    }
    let alpha = Alpha::new(&packet[ALPHA]);
    process_with(expanded, &alpha, packet)
}

fn process_with(expanded: &ExpandedSecret, alpha: &Alpha, mut packet: Vec<u8>) -> Result<Processed, SphinxError> {
    header_mac(expanded.mac_key(), &packet[BETA])
        .verify_truncated_left(&packet[GAMMA])
        .map_err(|_| SphinxError::InvalidMac)?;

    let stream = Keystream::new(expanded.stream_key());
    let mut routing = [0u8; KEYSTREAM_LENGTH];
    routing[..ROUTING_INFO_SIZE].copy_from_slice(&packet[BETA]);
    xor_into(&mut routing, &stream.0);
    let version = Version::from_bytes(&routing[field::VERSION]);
    let payload_key = expanded.payload_key(version);

    let result = match routing[field::FLAG] {
        FORWARD_HOP => {
            let mut next_hop = [0u8; NODE_ADDRESS_LENGTH];
            next_hop.copy_from_slice(&routing[field::ADDRESS]);
            let mut delay = [0u8; DELAY_LENGTH];
            delay.copy_from_slice(&routing[field::DELAY]);
            let blinded = alpha.mul_clamped(expanded.blinding_bytes());
            packet[ALPHA].copy_from_slice(&blinded);
            packet[GAMMA].copy_from_slice(&routing[field::MAC]);
            packet[BETA].copy_from_slice(&routing[HOP_INFO_SIZE..]);
            decrypt_layer(&mut packet[HEADER_SIZE..], &payload_key);
            Processed::Forward(ForwardHop {
                next_hop: NodeAddress(next_hop),
                delay: Delay(u64::from_be_bytes(delay)),
                packet,
            })
        }
        FINAL_HOP => {
            let mut destination = [0u8; 32];
            destination.copy_from_slice(&routing[field::ADDRESS]);
            let mut identifier = [0u8; IDENTIFIER_LENGTH];
            identifier.copy_from_slice(&routing[field::IDENTIFIER]);
            packet.drain(..HEADER_SIZE);
            decrypt_layer(&mut packet, &payload_key);
            Processed::Final(ProcessedFinal {
                destination: DestinationAddress(destination),
                identifier,
                payload: packet,
            })
        }
        flag => {
            routing.zeroize();
            return Err(SphinxError::UnknownRoutingFlag(flag));
        }
    };
    routing.zeroize();
    Ok(result)
}
