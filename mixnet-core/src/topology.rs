//! The network as the directory publishes it: mix nodes in three layers, gateways,
//! their keys and addresses, signed by the directory per epoch.
//!
//! The signature covers the exact bytes of the JSON document (domain-separated), so
//! verifiers never depend on re-serialising the same way.

use std::collections::HashMap;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand_core::Rng;
use serde::{Deserialize, Serialize};

use crate::address::{AddressError, Recipient, decode_key, encode_key};
use crate::sphinx::{NodeAddress, NodeKey, RouteNode};

/// Number of mix layers.
pub const LAYERS: usize = 3;
const SIGNATURE_CONTEXT: &[u8] = b"mixnet-topology-v1\0";

/// A 32-byte public key, base58 in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key32(pub [u8; 32]);

impl core::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&encode_key(&self.0))
    }
}

impl core::fmt::Display for Key32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&encode_key(&self.0))
    }
}

impl Serialize for Key32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&encode_key(&self.0))
    }
}

impl<'de> Deserialize<'de> for Key32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        decode_key(&s, "key").map(Self).map_err(serde::de::Error::custom)
    }
}

/// A mix node for one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixNode {
    /// ed25519 identity; also its Sphinx node address.
    pub identity: Key32,
    /// X25519 Sphinx key for this epoch.
    pub sphinx_key: Key32,
    /// 1, 2 or 3.
    pub layer: u8,
    /// `host:port` where other nodes reach it (Noise over TCP).
    pub mix_address: String,
    /// X25519 static key of its Noise links.
    pub noise_key: Key32,
}

/// A WebTransport endpoint with the certificate hash browsers pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebTransportEndpoint {
    /// `https://host:port/path`.
    pub url: String,
    /// SHA-256 of the certificate (hex), for `serverCertificateHashes`; absent for
    /// certificates browsers already trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_sha256: Option<String>,
}

impl WebTransportEndpoint {
    /// An endpoint whose certificate is pinned by `hash` (its SHA-256).
    pub fn pinned(url: String, hash: &[u8; 32]) -> Self {
        Self { url, cert_sha256: Some(hash.iter().map(|b| format!("{b:02x}")).collect()) }
    }

    /// The pinned certificate hash as bytes; `None` when nothing is pinned.
    pub fn cert_hash(&self) -> Result<Option<[u8; 32]>, TopologyError> {
        let Some(hex) = &self.cert_sha256 else { return Ok(None) };
        let bad = || TopologyError::Malformed(format!("cert_sha256 must be 64 hex digits, not {hex:?}"));
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut hash = [0u8; 32];
        for (i, byte) in hash.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Some(hash))
    }
}

/// A gateway: entry for its clients, final hop for their packets, and optionally an exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gateway {
    /// ed25519 identity; also its Sphinx node address.
    pub identity: Key32,
    /// X25519 Sphinx key for this epoch.
    pub sphinx_key: Key32,
    /// `host:port` where mix nodes reach it.
    pub mix_address: String,
    /// X25519 static key of its Noise links and of the client handshake.
    pub noise_key: Key32,
    /// WebSocket URL for clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ws: Option<String>,
    /// WebTransport endpoint for clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_wt: Option<WebTransportEndpoint>,
    /// The address of its exit service, if it offers the exit role (TCP streams for
    /// clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Recipient>,
}

/// The network for one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Epoch number; Sphinx keys rotate per epoch.
    pub epoch: u64,
    /// Unix milliseconds after which clients should fetch a new topology.
    pub valid_until_ms: u64,
    /// Mix nodes of all layers.
    pub mixes: Vec<MixNode>,
    /// Gateways: entry for their clients, final hop for their packets, some also exits.
    pub gateways: Vec<Gateway>,
}

/// Why a client found no gateway to connect to ([`Topology::choose_gateway`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayChoiceError {
    /// The identity asked for is not a base58 key.
    #[error(transparent)]
    Key(#[from] AddressError),
    /// The gateway asked for is not in the topology.
    #[error("gateway {0} is not in the topology")]
    Unknown(String),
    /// The gateway asked for does not offer the client's transport.
    #[error("gateway {0} offers no {1}")]
    Lacks(String, &'static str),
    /// No gateway offers the client's transport.
    #[error("no gateway offers {0}")]
    NoneOffers(&'static str),
}

/// Why a topology is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The JSON does not parse.
    #[error("topology document is not valid: {0}")]
    Malformed(String),
    /// The signature is not the directory's.
    #[error("topology signature does not verify against the directory key")]
    BadSignature,
    /// A signature or key has the wrong encoding.
    #[error("topology signature is malformed")]
    MalformedSignature,
    /// A layer has no mixes.
    #[error("mix layer {0} is empty")]
    EmptyLayer(u8),
    /// A mix names a layer other than 1 to 3.
    #[error("mix {0} is in layer {1}; layers are 1 to 3")]
    InvalidLayer(Key32, u8),
    /// The same identity appears twice.
    #[error("node {0} appears more than once")]
    DuplicateNode(Key32),
    /// A gateway the caller asked for is not in the topology.
    #[error("gateway {0} is not in the topology")]
    UnknownGateway(Key32),
    /// A key in the input is malformed.
    #[error(transparent)]
    Key(#[from] AddressError),
    /// The topology is older than one already accepted (a replayed document).
    #[error("topology of epoch {got} is older than epoch {held}, already in use (rollback refused)")]
    Rollback {
        /// The epoch held.
        held: u64,
        /// The epoch offered.
        got: u64,
    },
    /// The topology's validity ended (a replayed document, or this machine's clock is wrong).
    #[error("topology expired at {valid_until_ms} ms; the clock here says {now_ms} ms (stale document or wrong clock)")]
    Expired {
        /// End of its validity, Unix ms.
        valid_until_ms: u64,
        /// Now, Unix ms.
        now_ms: u64,
    },
}

/// How far past its `valid_until_ms` a topology is still accepted: clocks differ, and
/// a directory publishes the next epoch's document only when asked after the boundary.
pub const VALIDITY_GRACE_MS: u64 = 15 * 60 * 1000;

/// Accepts a topology only if its epoch is not older than the last one accepted and
/// it is not past its validity: a replayed (older, still validly signed) document
/// cannot roll a client or node back to keys and nodes it has moved away from.
#[derive(Debug, Clone, Default)]
pub struct Freshness {
    epoch: Option<u64>,
}

impl Freshness {
    /// Nothing accepted yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The newest epoch accepted.
    pub fn epoch(&self) -> Option<u64> {
        self.epoch
    }

    /// Checks `topology` at Unix time `now_ms` and, if fresh, remembers its epoch.
    pub fn check(&mut self, topology: &Topology, now_ms: u64) -> Result<(), TopologyError> {
        if let Some(held) = self.epoch
            && topology.epoch < held
        {
            return Err(TopologyError::Rollback { held, got: topology.epoch });
        }
        if now_ms > topology.valid_until_ms.saturating_add(VALIDITY_GRACE_MS) {
            return Err(TopologyError::Expired { valid_until_ms: topology.valid_until_ms, now_ms });
        }
        self.epoch = Some(self.epoch.map_or(topology.epoch, |e| e.max(topology.epoch)));
        Ok(())
    }
}

impl Topology {
    /// Checks layer numbers and uniqueness. (Empty layers are allowed: fast mode needs
    /// none; mixnet routes report [`TopologyError::EmptyLayer`].)
    pub fn validate(&self) -> Result<(), TopologyError> {
        let mut seen = std::collections::HashSet::new();
        for m in &self.mixes {
            if !(1..=LAYERS as u8).contains(&m.layer) {
                return Err(TopologyError::InvalidLayer(m.identity, m.layer));
            }
            if !seen.insert(m.identity) {
                return Err(TopologyError::DuplicateNode(m.identity));
            }
        }
        for g in &self.gateways {
            if !seen.insert(g.identity) {
                return Err(TopologyError::DuplicateNode(g.identity));
            }
        }
        Ok(())
    }

    /// Gateways that run an exit, with the exit's address.
    pub fn exits(&self) -> impl Iterator<Item = (&Gateway, Recipient)> {
        self.gateways.iter().filter_map(|g| g.exit.map(|e| (g, e)))
    }

    /// The gateway with this identity.
    pub fn gateway(&self, identity: &[u8; 32]) -> Option<&Gateway> {
        self.gateways.iter().find(|g| &g.identity.0 == identity)
    }

    /// The gateway a client connects to: `wanted` (a base58 identity) if given, which
    /// must offer the client's `transport` (as `offers` judges), else the first gateway
    /// that offers it. The browser and the native client both choose through this.
    pub fn choose_gateway(
        &self,
        wanted: Option<&str>,
        transport: &'static str,
        offers: impl Fn(&Gateway) -> bool,
    ) -> Result<&Gateway, GatewayChoiceError> {
        match wanted {
            Some(id) => {
                let key = decode_key(id, "gateway")?;
                let g = self.gateway(&key).ok_or_else(|| GatewayChoiceError::Unknown(id.to_owned()))?;
                if !offers(g) {
                    return Err(GatewayChoiceError::Lacks(id.to_owned(), transport));
                }
                Ok(g)
            }
            None => self.gateways.iter().find(|g| offers(g)).ok_or(GatewayChoiceError::NoneOffers(transport)),
        }
    }

    /// The `host:port` other nodes use to reach the node with this address.
    pub fn mix_address_of(&self, node: &NodeAddress) -> Option<&str> {
        self.mixes
            .iter()
            .find(|m| m.identity.0 == node.0)
            .map(|m| m.mix_address.as_str())
            .or_else(|| self.gateway(&node.0).map(|g| g.mix_address.as_str()))
    }
}

/// A topology document and the directory's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTopology {
    /// The JSON of a [`Topology`], exactly as signed.
    pub document: String,
    /// base58 ed25519 signature over `"mixnet-topology-v1\0" || document`.
    pub signature: String,
}

impl SignedTopology {
    /// Serialises and signs.
    pub fn sign(topology: &Topology, key: &SigningKey) -> Self {
        let document = serde_json::to_string(topology).unwrap_or_default();
        let signature = key.sign(&signed_bytes(&document));
        Self { document, signature: bs58::encode(signature.to_bytes()).into_string() }
    }

    /// Verifies against the directory key, parses and validates.
    pub fn verify(&self, directory: &VerifyingKey) -> Result<Topology, TopologyError> {
        let sig = bs58::decode(&self.signature).into_vec().map_err(|_| TopologyError::MalformedSignature)?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| TopologyError::MalformedSignature)?;
        directory
            .verify(&signed_bytes(&self.document), &Signature::from_bytes(&sig))
            .map_err(|_| TopologyError::BadSignature)?;
        let topology: Topology =
            serde_json::from_str(&self.document).map_err(|e| TopologyError::Malformed(e.to_string()))?;
        topology.validate()?;
        Ok(topology)
    }
}

fn signed_bytes(document: &str) -> Vec<u8> {
    let mut v = SIGNATURE_CONTEXT.to_vec();
    v.extend_from_slice(document.as_bytes());
    v
}

/// Parses a base58 directory key.
pub fn directory_key(s: &str) -> Result<VerifyingKey, TopologyError> {
    let bytes = decode_key(s, "directory key")?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| TopologyError::MalformedSignature)
}

/// Route selection over a topology, with Sphinx keys prepared (precomputed tables)
/// the first time a node is used.
#[derive(Debug, Clone)]
pub struct Routes {
    topology: Topology,
    layers: [Vec<usize>; LAYERS],
    keys: HashMap<[u8; 32], NodeKey>,
}

impl Routes {
    /// Validates `topology` and indexes its layers.
    pub fn new(topology: Topology) -> Result<Self, TopologyError> {
        topology.validate()?;
        let mut layers: [Vec<usize>; LAYERS] = Default::default();
        for (i, m) in topology.mixes.iter().enumerate() {
            layers[usize::from(m.layer - 1)].push(i);
        }
        Ok(Self { topology, layers, keys: HashMap::new() })
    }

    /// The topology routes are drawn from.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    fn hop(&mut self, identity: Key32, sphinx_key: Key32) -> RouteNode {
        let key = self.keys.entry(identity.0).or_insert_with(|| NodeKey::prepared(sphinx_key.0)).clone();
        RouteNode { address: NodeAddress(identity.0), key }
    }

    /// Mixnet mode: one random mix per layer, then `gateway` (4 hops).
    pub fn mixnet_route<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        gateway: &[u8; 32],
    ) -> Result<Vec<RouteNode>, TopologyError> {
        let g = self.topology.gateway(gateway).ok_or(TopologyError::UnknownGateway(Key32(*gateway)))?;
        let (gid, gkey) = (g.identity, g.sphinx_key);
        let mut route = Vec::with_capacity(LAYERS + 1);
        for layer in 0..LAYERS {
            let candidates = &self.layers[layer];
            if candidates.is_empty() {
                return Err(TopologyError::EmptyLayer(layer as u8 + 1));
            }
            let pick = candidates[(rng.next_u64() % candidates.len() as u64) as usize];
            let m = &self.topology.mixes[pick];
            let (id, key) = (m.identity, m.sphinx_key);
            route.push(self.hop(id, key));
        }
        route.push(self.hop(gid, gkey));
        Ok(route)
    }

    /// Fast mode: straight to `gateway` (1 hop; the entry gateway forwards it).
    pub fn fast_route(&mut self, gateway: &[u8; 32]) -> Result<Vec<RouteNode>, TopologyError> {
        let g = self.topology.gateway(gateway).ok_or(TopologyError::UnknownGateway(Key32(*gateway)))?;
        let (gid, gkey) = (g.identity, g.sphinx_key);
        Ok(vec![self.hop(gid, gkey)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn webtransport_cert_hash_round_trip() {
        let hash: [u8; 32] = core::array::from_fn(|i| (i * 9) as u8);
        let e = WebTransportEndpoint::pinned("https://127.0.0.1:1/mixnet".into(), &hash);
        assert_eq!(e.cert_sha256.as_deref().map(str::len), Some(64));
        assert_eq!(e.cert_hash(), Ok(Some(hash)));
        assert_eq!(WebTransportEndpoint { url: e.url.clone(), cert_sha256: None }.cert_hash(), Ok(None));
        for bad in ["00", &"g".repeat(64), &"+f".repeat(32), &"é".repeat(32)] {
            let e = WebTransportEndpoint { url: e.url.clone(), cert_sha256: Some(bad.to_string()) };
            assert!(e.cert_hash().is_err(), "{bad:?}");
        }
    }

    fn sample() -> Topology {
        let mix = |i: u8, layer| MixNode {
            identity: Key32([i; 32]),
            sphinx_key: Key32([i + 100; 32]),
            layer,
            mix_address: format!("127.0.0.1:{}", 1000 + u16::from(i)),
            noise_key: Key32([i + 50; 32]),
        };
        Topology {
            epoch: 7,
            valid_until_ms: 1,
            mixes: vec![mix(1, 1), mix(2, 2), mix(3, 3)],
            gateways: vec![Gateway {
                identity: Key32([9; 32]),
                sphinx_key: Key32([10; 32]),
                mix_address: "127.0.0.1:9".into(),
                noise_key: Key32([11; 32]),
                client_ws: Some("ws://127.0.0.1:10".into()),
                client_wt: None,
                exit: None,
            }],
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_client_chooses_the_gateway_asked_for_or_the_first_offering_its_transport() {
        let mut t = sample();
        let mut wt_only = t.gateways[0].clone();
        wt_only.identity = Key32([12; 32]);
        wt_only.client_ws = None;
        t.gateways.insert(0, wt_only);
        let ws = |g: &Gateway| g.client_ws.is_some();
        assert_eq!(t.choose_gateway(None, "WebSocket", ws).unwrap().identity, Key32([9; 32]));
        let first = encode_key(&[12; 32]);
        assert_eq!(
            t.choose_gateway(Some(&first), "WebSocket", ws),
            Err(GatewayChoiceError::Lacks(first.clone(), "WebSocket"))
        );
        assert_eq!(t.choose_gateway(Some(&first), "WebTransport", |_| true).unwrap().identity, Key32([12; 32]));
        let absent = encode_key(&[13; 32]);
        assert_eq!(t.choose_gateway(Some(&absent), "WebSocket", ws), Err(GatewayChoiceError::Unknown(absent)));
        assert!(matches!(t.choose_gateway(Some("0"), "WebSocket", ws), Err(GatewayChoiceError::Key(_))));
        assert_eq!(
            t.choose_gateway(None, "WebTransport", |_| false).unwrap_err().to_string(),
            "no gateway offers WebTransport"
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn signature_binds_the_document() {
        let key = SigningKey::from_bytes(&[5; 32]);
        let signed = SignedTopology::sign(&sample(), &key);
        assert_eq!(signed.verify(&key.verifying_key()).unwrap(), sample());
        let mut tampered = signed.clone();
        tampered.document = tampered.document.replace("\"epoch\":7", "\"epoch\":8");
        assert_eq!(tampered.verify(&key.verifying_key()), Err(TopologyError::BadSignature));
        let other = SigningKey::from_bytes(&[6; 32]);
        assert_eq!(signed.verify(&other.verifying_key()), Err(TopologyError::BadSignature));
        let mut garbled = signed;
        garbled.signature = "0OIl".into();
        assert_eq!(garbled.verify(&key.verifying_key()), Err(TopologyError::MalformedSignature));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn descriptors_are_signed_by_their_identity_and_layers_are_balanced() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let d = NodeDescriptor {
            identity: Key32(key.verifying_key().to_bytes()),
            role: Role::Mix,
            mix_address: "127.0.0.1:1".into(),
            noise_key: Key32([1; 32]),
            sphinx_keys: vec![EpochKey { epoch: 1, key: Key32([2; 32]) }],
            client_ws: None,
            client_wt: None,
            exit: None,
            signed_at_ms: 5,
        };
        let signed = SignedDescriptor::sign(&d, &key);
        assert_eq!(signed.verify().unwrap(), d);
        let mut forged = SignedDescriptor::sign(&d, &SigningKey::from_bytes(&[4; 32]));
        assert_eq!(forged.verify(), Err(TopologyError::BadSignature));
        forged.document = "{".into();
        assert!(matches!(forged.verify(), Err(TopologyError::Malformed(_))));

        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let ids: Vec<[u8; 32]> = (0..7u8).map(|i| [i; 32]).collect();
        let layers = assign_layers(&mut rng, ids);
        let mut counts = [0; 3];
        for l in layers.values() {
            counts[usize::from(*l) - 1] += 1;
        }
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(counts.iter().all(|c| (2..=3).contains(c)), "{counts:?}");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn an_older_or_expired_topology_is_refused() {
        let mut f = Freshness::new();
        let mut t = sample();
        t.valid_until_ms = 1_000_000;
        assert_eq!(f.check(&t, 999_000), Ok(()));
        t.epoch = 8;
        assert_eq!(f.check(&t, 999_000), Ok(()));
        t.epoch = 7;
        assert_eq!(f.check(&t, 999_000), Err(TopologyError::Rollback { held: 8, got: 7 }));
        t.epoch = 8;
        let late = 1_000_000 + VALIDITY_GRACE_MS + 1;
        assert_eq!(f.check(&t, late), Err(TopologyError::Expired { valid_until_ms: 1_000_000, now_ms: late }));
        assert_eq!(f.epoch(), Some(8));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn validation_names_the_problem() {
        let mut t = sample();
        t.mixes.pop();
        assert_eq!(t.validate(), Ok(()));
        let mut routes = Routes::new(t).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        assert_eq!(routes.mixnet_route(&mut rng, &[9; 32]).unwrap_err(), TopologyError::EmptyLayer(3));
        assert_eq!(routes.fast_route(&[9; 32]).unwrap().len(), 1);
        let mut t = sample();
        t.mixes[0].layer = 4;
        assert_eq!(t.validate(), Err(TopologyError::InvalidLayer(Key32([1; 32]), 4)));
        let mut t = sample();
        t.mixes[1].identity = Key32([1; 32]);
        assert_eq!(t.validate(), Err(TopologyError::DuplicateNode(Key32([1; 32]))));
    }
}

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A mix node (the directory assigns its layer).
    Mix,
    /// A gateway.
    Gateway,
}

/// A Sphinx key for one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochKey {
    /// Epoch number.
    pub epoch: u64,
    /// X25519 public key.
    pub key: Key32,
}

/// What a node tells the directory about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDescriptor {
    /// ed25519 identity (signs this descriptor).
    pub identity: Key32,
    /// Mix or gateway.
    pub role: Role,
    /// `host:port` for Noise links from other nodes.
    pub mix_address: String,
    /// X25519 static key of its Noise links (and, for gateways, the client handshake).
    pub noise_key: Key32,
    /// Sphinx keys for the current and coming epochs.
    pub sphinx_keys: Vec<EpochKey>,
    /// Gateways: WebSocket URL for clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ws: Option<String>,
    /// Gateways: WebTransport endpoint for clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_wt: Option<WebTransportEndpoint>,
    /// Gateways: the address of its exit service, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<Recipient>,
    /// Unix milliseconds when signed (the directory refuses stale or replayed descriptors).
    pub signed_at_ms: u64,
}

impl NodeDescriptor {
    /// What every node announces: its identity, role, link address and Noise key;
    /// no Sphinx keys yet (the node adds each epoch's when it registers), no client
    /// endpoints (a gateway sets its own), unsigned.
    pub fn template(identity: [u8; 32], role: Role, mix_address: String, noise_key: [u8; 32]) -> Self {
        Self {
            identity: Key32(identity),
            role,
            mix_address,
            noise_key: Key32(noise_key),
            sphinx_keys: vec![],
            client_ws: None,
            client_wt: None,
            exit: None,
            signed_at_ms: 0,
        }
    }
}

/// A descriptor and its identity's signature over the exact JSON bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDescriptor {
    /// The JSON of a [`NodeDescriptor`].
    pub document: String,
    /// base58 ed25519 signature over `"mixnet-descriptor-v1\0" || document`.
    pub signature: String,
}

const DESCRIPTOR_CONTEXT: &[u8] = b"mixnet-descriptor-v1\0";

impl SignedDescriptor {
    /// Serialises and signs with the node's identity key.
    pub fn sign(descriptor: &NodeDescriptor, key: &SigningKey) -> Self {
        let document = serde_json::to_string(descriptor).unwrap_or_default();
        let signature = key.sign(&[DESCRIPTOR_CONTEXT, document.as_bytes()].concat());
        Self { document, signature: bs58::encode(signature.to_bytes()).into_string() }
    }

    /// Parses and checks the signature against the identity inside.
    pub fn verify(&self) -> Result<NodeDescriptor, TopologyError> {
        let d: NodeDescriptor =
            serde_json::from_str(&self.document).map_err(|e| TopologyError::Malformed(e.to_string()))?;
        let key = VerifyingKey::from_bytes(&d.identity.0).map_err(|_| TopologyError::MalformedSignature)?;
        let sig = bs58::decode(&self.signature).into_vec().map_err(|_| TopologyError::MalformedSignature)?;
        let sig: [u8; 64] = sig.try_into().map_err(|_| TopologyError::MalformedSignature)?;
        key.verify(&[DESCRIPTOR_CONTEXT, self.document.as_bytes()].concat(), &Signature::from_bytes(&sig))
            .map_err(|_| TopologyError::BadSignature)?;
        Ok(d)
    }
}

/// Splits mixes into three layers at random (shuffled, then dealt round-robin), as
/// the directory does at each epoch. Needs at least one mix per layer.
pub fn assign_layers<R: Rng + ?Sized>(rng: &mut R, mut mixes: Vec<[u8; 32]>) -> HashMap<[u8; 32], u8> {
    mixes.sort();
    // Fisher–Yates with the injected RNG
    for i in (1..mixes.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        mixes.swap(i, j);
    }
    mixes.into_iter().enumerate().map(|(i, id)| (id, (i % LAYERS) as u8 + 1)).collect()
}
