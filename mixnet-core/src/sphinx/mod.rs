//! Sphinx packets, byte-compatible with crates.io `sphinx-packet` 0.8.0 (version 260).
//!
//! Wire format: `header (348 B) || payload`, header = `α (32) || γ (16) || β (300)`.
//! Payload = Lioness(ChaCha20, BLAKE2b) layers over `0^16 || message || 0x01 || 0*`.
//! The differences from the reference are internal: the client derives every hop's
//! shared secret with one scalar multiplication (see [`keys`]), keystreams are
//! generated once per hop, and nothing here reads a clock or an ambient RNG.

mod header;
pub mod keys;
mod payload;
mod surb;

pub use header::{
    ForwardHop, Processed, ProcessedFinal, build_header, build_packet, build_packet_with_secret, header_mac_ok,
    process_packet, process_packet_with_secret,
};
pub use keys::{ExpandedSecret, NodeKey, NodeSecret, PayloadKey};
pub use payload::{encapsulate_payload, recover_plaintext};
pub use surb::{Surb, SurbRecovery, create_surb};

use core::fmt;
use core::time::Duration;

/// `k` in the Sphinx paper, in bytes.
pub const SECURITY_PARAMETER: usize = 16;
/// The longest route a header can carry (`r`).
pub const MAX_PATH_LENGTH: usize = 5;
/// Bytes of a node address inside the routing information.
pub const NODE_ADDRESS_LENGTH: usize = 32;
/// Bytes of the final destination address.
pub const DESTINATION_ADDRESS_LENGTH: usize = 32;
/// Bytes of the SURB identifier delivered with the destination.
pub const IDENTIFIER_LENGTH: usize = 16;
/// Bytes of the per-hop header MAC (γ).
pub const HEADER_MAC_SIZE: usize = 16;
/// Bytes of the encoded delay.
pub const DELAY_LENGTH: usize = 8;
/// Bytes of the encoded version (`[0, hi, lo]`).
pub const VERSION_LENGTH: usize = 3;
/// Per-hop routing metadata: flag, version, address, delay.
pub const NODE_META_SIZE: usize = 1 + VERSION_LENGTH + NODE_ADDRESS_LENGTH + DELAY_LENGTH;
/// One hop's share of β: metadata plus the next hop's MAC.
pub const HOP_INFO_SIZE: usize = NODE_META_SIZE + HEADER_MAC_SIZE;
/// β, the encrypted routing information.
pub const ROUTING_INFO_SIZE: usize = HOP_INFO_SIZE * MAX_PATH_LENGTH;
/// Keystream generated per hop: β plus one hop's worth of padding.
pub const KEYSTREAM_LENGTH: usize = HOP_INFO_SIZE * (MAX_PATH_LENGTH + 1);
/// The whole header: α, γ, β.
pub const HEADER_SIZE: usize = 32 + HEADER_MAC_SIZE + ROUTING_INFO_SIZE;
/// What the payload encoding adds to a message: 16 zero bytes and the 0x01 marker.
pub const PAYLOAD_OVERHEAD: usize = SECURITY_PARAMETER + 1;
/// Bytes of a payload key seed (version ≥ 259).
pub const PAYLOAD_KEY_SEED_SIZE: usize = 16;
/// Bytes of a Lioness key.
pub const PAYLOAD_KEY_SIZE: usize = 192;
/// Bytes of the replay tag derived per hop.
pub const REPLAY_TAG_SIZE: usize = 32;
/// Smallest payload Lioness accepts (its left half is 32 bytes).
pub const MIN_PAYLOAD_SIZE: usize = 33;

const FORWARD_HOP: u8 = 1;
const FINAL_HOP: u8 = 2;

/// Fixed packet sizes. Every packet on our wire is [`PacketSize::Regular`] unless a
/// deployment opts into small acks (distinguishable on the wire; see ARCHITECTURE.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PacketSize {
    /// 2048 B of data; 2413 B on the wire.
    Regular,
    /// 48 B of data; an opt-in size for acknowledgements only.
    Ack,
}

impl PacketSize {
    /// Message bytes the payload carries.
    pub const fn data_len(self) -> usize {
        match self {
            Self::Regular => 2048,
            Self::Ack => 48,
        }
    }

    /// Bytes of the Sphinx payload.
    pub const fn payload_len(self) -> usize {
        self.data_len() + PAYLOAD_OVERHEAD
    }

    /// Bytes of the whole packet.
    pub const fn packet_len(self) -> usize {
        HEADER_SIZE + self.payload_len()
    }

    /// The size whose packets are `len` bytes long, if any.
    pub fn from_packet_len(len: usize) -> Option<Self> {
        [Self::Regular, Self::Ack].into_iter().find(|s| s.packet_len() == len)
    }
}

/// Packet format version carried in every hop's routing information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(pub u16);

impl Version {
    /// First legacy release (`[0, 0, 1]`).
    pub const INITIAL_LEGACY: Self = Self(1);
    /// Second legacy release (`[0, 1, 1]`).
    pub const UPDATED_LEGACY: Self = Self(257);
    /// X25519 with explicit (192-byte) payload keys.
    pub const EXPLICIT_PAYLOAD_KEYS: Self = Self(258);
    /// Payload keys derived from 16-byte seeds.
    pub const PAYLOAD_KEY_SEEDS: Self = Self(259);
    /// SURBs hand out only the last hop's seed; the creator recovers the reply.
    pub const SINGLE_SEED_SURB: Self = Self(260);
    /// What we build.
    pub const CURRENT: Self = Self::SINGLE_SEED_SURB;

    /// Whether hops use the 192 bytes of the expanded secret directly as the payload key.
    pub fn uses_legacy_payload_keys(self) -> bool {
        self == Self::INITIAL_LEGACY || self == Self::UPDATED_LEGACY || self == Self::EXPLICIT_PAYLOAD_KEYS
    }

    fn to_bytes(self) -> [u8; VERSION_LENGTH] {
        let [hi, lo] = self.0.to_be_bytes();
        [0, hi, lo]
    }

    /// Like the reference, the first byte is ignored.
    fn from_bytes(bytes: &[u8]) -> Self {
        Self(u16::from_be_bytes([bytes[1], bytes[2]]))
    }
}

impl Default for Version {
    fn default() -> Self {
        Self::CURRENT
    }
}

/// A node's address inside routing information (our nodes use their identity key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeAddress(pub [u8; NODE_ADDRESS_LENGTH]);

/// The final destination (a client's identity key).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationAddress(pub [u8; DESTINATION_ADDRESS_LENGTH]);

/// Identifier delivered with the destination; non-zero for SURB replies.
pub type SurbId = [u8; IDENTIFIER_LENGTH];

macro_rules! base58_debug {
    ($t:ty) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", bs58::encode(&self.0).into_string())
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}
base58_debug!(NodeAddress);
base58_debug!(DestinationAddress);

/// Where the final hop delivers: an address and a SURB identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    /// Who receives the payload at the final hop.
    pub address: DestinationAddress,
    /// Zero for forward packets; the SURB identifier for replies.
    pub identifier: SurbId,
}

/// A hop of a route: its address and prepared Sphinx key.
#[derive(Clone)]
pub struct RouteNode {
    /// Address written into the previous hop's routing information.
    pub address: NodeAddress,
    /// The node's X25519 Sphinx key for the current epoch.
    pub key: NodeKey,
}

impl fmt::Debug for RouteNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteNode").field("address", &self.address).finish_non_exhaustive()
    }
}

/// How long a hop holds a packet, in nanoseconds (the reference's unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Delay(pub u64);

/// A uniform sample in (0, 1] from 53 random bits: what exponential sampling (per-hop
/// delays here, the client's Poisson streams) inverts.
pub(crate) fn unit_interval<R: rand_core::Rng + ?Sized>(rng: &mut R) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

impl Delay {
    /// A delay of `d`, saturating at `u64::MAX` nanoseconds.
    pub fn from_duration(d: Duration) -> Self {
        Self(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The delay as a duration.
    pub const fn to_duration(self) -> Duration {
        Duration::from_nanos(self.0)
    }

    /// Samples `n` exponential delays with the given mean, as `sphinx-packet` does
    /// (rounded to whole nanoseconds), from the injected RNG.
    pub fn sample_exponential<R: rand_core::Rng + ?Sized>(rng: &mut R, mean: Duration, n: usize) -> Vec<Self> {
        let mean_ns = mean.as_nanos() as f64;
        (0..n)
            .map(|_| {
                if mean_ns <= 0.0 {
                    return Self(0);
                }
                // inverse CDF on a uniform in (0, 1]
                let x = -mean_ns * unit_interval(rng).ln();
                Self(x.round().min(u64::MAX as f64) as u64)
            })
            .collect()
    }
}

/// Sum of delays, saturating.
pub fn total_delay(delays: &[Delay]) -> Duration {
    Duration::from_nanos(delays.iter().fold(0u64, |acc, d| acc.saturating_add(d.0)))
}

/// Everything that can go wrong building or processing a Sphinx packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SphinxError {
    /// A route must have 1 to 5 hops.
    #[error("route of {0} hops; Sphinx routes have 1 to {MAX_PATH_LENGTH} hops")]
    InvalidRouteLength(usize),
    /// One delay per hop is required.
    #[error("route has {hops} hops but {delays} delays were given")]
    DelayCountMismatch {
        /// Route length.
        hops: usize,
        /// Number of delays given.
        delays: usize,
    },
    /// The message does not fit the payload.
    #[error("message of {len} B does not fit a payload carrying at most {max} B")]
    MessageTooLong {
        /// Message length.
        len: usize,
        /// Capacity of the payload.
        max: usize,
    },
    /// The requested payload size is below what Lioness accepts.
    #[error("payload size {0} B is below the minimum of {MIN_PAYLOAD_SIZE} B")]
    PayloadTooSmall(usize),
    /// The input is too short to be a Sphinx packet.
    #[error("{0} B is too short for a Sphinx packet (at least {min} B)", min = HEADER_SIZE + MIN_PAYLOAD_SIZE)]
    PacketTooShort(usize),
    /// The header MAC did not verify: wrong key, corruption or tampering.
    #[error("header integrity MAC does not verify")]
    InvalidMac,
    /// The routing information decrypted to an unknown flag.
    #[error("unknown routing flag {0}")]
    UnknownRoutingFlag(u8),
    /// After decryption the payload lacks the zero prefix or the 0x01 marker.
    #[error("payload padding is malformed (wrong keys or tampered payload)")]
    MalformedPayload,
    /// SURBs carry a non-zero identifier so the reply can be matched to its recovery material.
    #[error("a SURB needs a non-zero identifier")]
    ZeroSurbIdentifier,
    /// SURB bytes are malformed.
    #[error("malformed SURB: {0}")]
    MalformedSurb(&'static str),
    /// The reply's identifier does not match the recovery material.
    #[error("reply identifier does not match the recovery material")]
    SurbIdentifierMismatch,
}
