//! Cross-tests against the reference `sphinx-packet` 0.8.0, both directions, over
//! seeded random routes of 1 to 5 hops and random payloads.

use wasm_bindgen_test::wasm_bindgen_test;

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::montgomery::MontgomeryPoint;
use mixnet_core::sphinx::{
    self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, NodeSecret, PacketSize, Processed, RouteNode,
    Surb, SurbRecovery, Version,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sphinx_packet::SphinxPacketBuilder;
use sphinx_packet::header::delays::Delay as RefDelay;
use sphinx_packet::packet::ProcessedPacketData;
use sphinx_packet::route::{Destination as RefDestination, DestinationAddressBytes, Node as RefNode, NodeAddressBytes};
use sphinx_packet::surb::{SURB, SURBMaterial, SurbReplyRecovery};
use sphinx_packet::version::SINGLE_SEED_SURB_VERSION;
use x25519_dalek::{PublicKey, StaticSecret};

const CASES_PER_LENGTH: usize = 12;

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Plain,
    Prepared,
    /// Public key with an 8-torsion component added (the node can still process).
    Torsion,
}

struct TestNode {
    secret: [u8; 32],
    public: [u8; 32],
    address: [u8; 32],
    kind: KeyKind,
}

impl TestNode {
    fn random(rng: &mut ChaCha20Rng, kind: KeyKind) -> Self {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let mut address = [0u8; 32];
        rng.fill_bytes(&mut address);
        let public = match kind {
            KeyKind::Torsion => {
                let t = EIGHT_TORSION[1 + (rng.next_u32() % 7) as usize];
                let p = curve25519_dalek::edwards::EdwardsPoint::mul_base_clamped(secret) + t;
                p.to_montgomery().to_bytes()
            }
            _ => MontgomeryPoint::mul_base_clamped(secret).to_bytes(),
        };
        Self { secret, public, address, kind }
    }

    fn ours(&self) -> RouteNode {
        let key = match self.kind {
            KeyKind::Prepared => NodeKey::prepared(self.public),
            _ => NodeKey::new(self.public),
        };
        RouteNode { address: NodeAddress(self.address), key }
    }

    fn theirs(&self) -> RefNode {
        RefNode::new(NodeAddressBytes::from_bytes(self.address), PublicKey::from(self.public))
    }

    fn our_secret(&self) -> NodeSecret {
        NodeSecret::from_bytes(self.secret)
    }

    fn their_secret(&self) -> StaticSecret {
        StaticSecret::from(self.secret)
    }
}

struct Case {
    nodes: Vec<TestNode>,
    delays: Vec<u64>,
    destination: [u8; 32],
    identifier: [u8; 16],
    message: Vec<u8>,
    size: PacketSize,
}

impl Case {
    fn random(rng: &mut ChaCha20Rng, hops: usize) -> Self {
        let kinds = [KeyKind::Plain, KeyKind::Prepared, KeyKind::Torsion];
        let nodes = (0..hops)
            .map(|_| {
                let kind = kinds[(rng.next_u32() % 3) as usize];
                TestNode::random(rng, kind)
            })
            .collect();
        let delays = (0..hops).map(|_| rng.next_u64() % 10_000_000_000).collect();
        let mut destination = [0u8; 32];
        rng.fill_bytes(&mut destination);
        let mut identifier = [0u8; 16];
        rng.fill_bytes(&mut identifier);
        let size = if rng.next_u32().is_multiple_of(4) { PacketSize::Ack } else { PacketSize::Regular };
        let len = (rng.next_u32() as usize) % (size.data_len() + 1);
        let mut message = vec![0u8; len];
        rng.fill_bytes(&mut message);
        Self { nodes, delays, destination, identifier, message, size }
    }

    fn our_route(&self) -> Vec<RouteNode> {
        self.nodes.iter().map(TestNode::ours).collect()
    }

    fn their_route(&self) -> Vec<RefNode> {
        self.nodes.iter().map(TestNode::theirs).collect()
    }

    fn our_delays(&self) -> Vec<Delay> {
        self.delays.iter().map(|&d| Delay(d)).collect()
    }

    fn their_delays(&self) -> Vec<RefDelay> {
        self.delays.iter().map(|&d| RefDelay::new_from_nanos(d)).collect()
    }

    fn our_destination(&self) -> Destination {
        Destination { address: DestinationAddress(self.destination), identifier: self.identifier }
    }

    fn their_destination(&self) -> RefDestination {
        RefDestination::new(DestinationAddressBytes::from_bytes(self.destination), self.identifier)
    }
}

fn for_each_case(seed: u64, mut f: impl FnMut(&mut ChaCha20Rng, Case)) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    for hops in 1..=sphinx::MAX_PATH_LENGTH {
        for _ in 0..CASES_PER_LENGTH {
            let case = Case::random(&mut rng, hops);
            f(&mut rng, case);
        }
    }
}

/// What a hop reports, in a form both implementations can produce.
#[derive(Debug, PartialEq)]
enum Hop {
    Forward { next: [u8; 32], delay: u64 },
    Final { destination: [u8; 32], identifier: [u8; 16], payload: Vec<u8> },
}

/// Processes `packet` through the whole route with the reference; returns what each hop saw
/// and the final payload.
fn run_theirs(case: &Case, packet: Vec<u8>) -> Vec<Hop> {
    let mut hops = Vec::new();
    let mut packet = sphinx_packet::SphinxPacket::from_bytes(&packet).unwrap();
    for (i, node) in case.nodes.iter().enumerate() {
        let processed = packet.process(&node.their_secret()).unwrap();
        match processed.data {
            ProcessedPacketData::ForwardHop { next_hop_packet, next_hop_address, delay } => {
                assert!(i + 1 < case.nodes.len(), "reference forwarded past the final hop");
                hops.push(Hop::Forward { next: next_hop_address.to_bytes(), delay: delay.to_nanos() });
                packet = next_hop_packet;
            }
            ProcessedPacketData::FinalHop { destination, identifier, payload } => {
                assert_eq!(i + 1, case.nodes.len());
                hops.push(Hop::Final {
                    destination: destination.as_bytes(),
                    identifier,
                    payload: payload.into_bytes(),
                });
                return hops;
            }
        }
    }
    panic!("reference never reached a final hop");
}

fn run_ours(case: &Case, mut packet: Vec<u8>) -> Vec<Hop> {
    let mut hops = Vec::new();
    for (i, node) in case.nodes.iter().enumerate() {
        let len = packet.len();
        match sphinx::process_packet(&node.our_secret(), packet).unwrap().0 {
            Processed::Forward(f) => {
                assert!(i + 1 < case.nodes.len());
                assert_eq!(f.packet.len(), len, "forwarded packet changed size");
                hops.push(Hop::Forward { next: f.next_hop.0, delay: f.delay.0 });
                packet = f.packet;
            }
            Processed::Final(f) => {
                assert_eq!(i + 1, case.nodes.len());
                hops.push(Hop::Final { destination: f.destination.0, identifier: f.identifier, payload: f.payload });
                return hops;
            }
        }
    }
    panic!("we never reached a final hop");
}

/// Per hop: the next address and delay (none at the final hop), the destination, the identifier.
type ExpectedHop = (Option<([u8; 32], u64)>, [u8; 32], [u8; 16]);

fn expected_hops(case: &Case) -> Vec<ExpectedHop> {
    (0..case.nodes.len())
        .map(|i| {
            let next = case.nodes.get(i + 1).map(|n| (n.address, case.delays[i]));
            (next, case.destination, case.identifier)
        })
        .collect()
}

fn assert_route_followed(case: &Case, hops: &[Hop]) {
    assert_eq!(hops.len(), case.nodes.len());
    for (hop, (next, destination, identifier)) in hops.iter().zip(expected_hops(case)) {
        match (hop, next) {
            (Hop::Forward { next: n, delay }, Some((addr, d))) => {
                assert_eq!(*n, addr);
                assert_eq!(*delay, d);
            }
            (Hop::Final { destination: dst, identifier: id, payload }, None) => {
                assert_eq!(*dst, destination);
                assert_eq!(*id, identifier);
                assert_eq!(sphinx::recover_plaintext(payload).unwrap(), &case.message[..]);
            }
            (hop, next) => panic!("hop {hop:?} does not match expected next {next:?}"),
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn packets_we_build_are_processed_by_the_reference() {
    for_each_case(1, |rng, case| {
        let packet = sphinx::build_packet(
            rng,
            &case.our_route(),
            &case.our_destination(),
            &case.our_delays(),
            &case.message,
            case.size.payload_len(),
        )
        .unwrap();
        assert_eq!(packet.len(), case.size.packet_len());
        let hops = run_theirs(&case, packet);
        assert_route_followed(&case, &hops);
    });
}

#[wasm_bindgen_test(unsupported = test)]
fn packets_the_reference_builds_are_processed_by_us() {
    for_each_case(2, |rng, case| {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let secret = StaticSecret::from(secret);
        let packet = SphinxPacketBuilder::new()
            .with_payload_size(case.size.payload_len())
            .with_initial_secret(&secret)
            .build_packet(&case.message, &case.their_route(), &case.their_destination(), &case.their_delays())
            .unwrap()
            .to_bytes();
        let hops = run_ours(&case, packet);
        assert_route_followed(&case, &hops);
    });
}

/// Builds the case's packet with both implementations from the same random initial secret.
fn build_both(rng: &mut ChaCha20Rng, case: &Case) -> (Vec<u8>, Vec<sphinx::ExpandedSecret>, Vec<u8>) {
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let (ours, keys) = sphinx::build_packet_with_secret(
        rng,
        &secret,
        &case.our_route(),
        &case.our_destination(),
        &case.our_delays(),
        &case.message,
        case.size.payload_len(),
        Version::CURRENT,
    )
    .unwrap();
    let theirs = SphinxPacketBuilder::new()
        .with_payload_size(case.size.payload_len())
        .with_initial_secret(&StaticSecret::from(secret))
        .build_packet(&case.message, &case.their_route(), &case.their_destination(), &case.their_delays())
        .unwrap()
        .to_bytes();
    (ours, keys, theirs)
}

#[wasm_bindgen_test(unsupported = test)]
fn same_initial_secret_gives_the_same_alpha_payload_and_hop_keys() {
    for_each_case(3, |rng, case| {
        let (ours, our_keys, theirs) = build_both(rng, &case);
        assert_eq!(ours.len(), theirs.len());
        // α
        assert_eq!(ours[..32], theirs[..32], "alpha differs");
        // payload
        let header = sphinx::HEADER_SIZE;
        assert_eq!(ours[header..], theirs[header..], "payload differs");

        // every hop's derived keys: ours from the builder, theirs recomputed by the reference
        // from its own packet at that hop; and both processors agree hop by hop
        let mut their_packet = sphinx_packet::SphinxPacket::from_bytes(&theirs).unwrap();
        let mut our_packet = ours;
        for (i, node) in case.nodes.iter().enumerate() {
            let their_expanded = their_packet.header.compute_expanded_shared_secret(&node.their_secret());
            let ours_from_builder = format!("ExpandedSharedSecret({:?})", our_keys[i].as_bytes());
            assert_eq!(format!("{their_expanded:?}"), ours_from_builder, "hop {i} keys differ");
            let our_expanded = node.our_secret().packet_secret(&our_packet).unwrap();
            assert_eq!(our_expanded.as_bytes(), our_keys[i].as_bytes());
            assert_eq!(their_expanded.replay_tag(), &our_expanded.replay_tag());

            let theirs_processed = their_packet.process(&node.their_secret()).unwrap();
            let ours_processed = sphinx::process_packet_with_secret(&our_expanded, our_packet).unwrap();
            match (theirs_processed.data, ours_processed) {
                (
                    ProcessedPacketData::ForwardHop { next_hop_packet, next_hop_address, delay },
                    Processed::Forward(f),
                ) => {
                    assert_eq!(next_hop_address.to_bytes(), f.next_hop.0);
                    assert_eq!(delay.to_nanos(), f.delay.0);
                    let theirs_next = next_hop_packet.to_bytes();
                    // blinded α and payload after this hop's layer agree byte for byte
                    assert_eq!(theirs_next[..32], f.packet[..32]);
                    assert_eq!(theirs_next[header..], f.packet[header..]);
                    their_packet = next_hop_packet;
                    our_packet = f.packet;
                }
                (ProcessedPacketData::FinalHop { destination, identifier, payload }, Processed::Final(f)) => {
                    assert_eq!(destination.as_bytes(), f.destination.0);
                    assert_eq!(identifier, f.identifier);
                    assert_eq!(payload.as_bytes(), &f.payload[..]);
                    assert_eq!(sphinx::recover_plaintext(&f.payload).unwrap(), &case.message[..]);
                    break;
                }
                _ => panic!("hop {i}: implementations disagree on forward/final"),
            }
        }
    });
}

/// Sends a reply built from `surb_bytes` through the route with `process`, returning the
/// sealed payload the final hop hands over.
fn reply_payload(case: &Case, surb_packet: Vec<u8>, with_reference: bool) -> (Vec<u8>, [u8; 16]) {
    let hops = if with_reference { run_theirs(case, surb_packet) } else { run_ours(case, surb_packet) };
    for (hop, (next, destination, _)) in hops.iter().zip(expected_hops(case)) {
        if let (Hop::Forward { next: n, delay }, Some((addr, d))) = (hop, next) {
            assert_eq!((*n, *delay), (addr, d));
        } else if let Hop::Final { destination: dst, .. } = hop {
            assert_eq!(*dst, destination);
        }
    }
    match hops.into_iter().last() {
        Some(Hop::Final { identifier, payload, .. }) => (payload, identifier),
        _ => panic!("no final hop"),
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn surbs_we_create_are_used_by_the_reference_and_we_recover() {
    for_each_case(4, |rng, case| {
        let (surb, recovery) =
            sphinx::create_surb(rng, &case.our_route(), &case.our_delays(), &case.our_destination()).unwrap();
        assert_eq!(recovery.identifier(), &case.identifier);
        let bytes = surb.to_bytes();
        assert_eq!(bytes.len(), Surb::encoded_len(1));
        let (packet, first_hop) =
            SURB::from_bytes(&bytes).unwrap().use_surb(&case.message, case.size.payload_len()).unwrap();
        assert_eq!(first_hop.to_bytes(), case.nodes[0].address);
        // alternate which implementation carries the reply through the mixes
        let with_reference = case.message.len() % 2 == 0;
        let (sealed, identifier) = reply_payload(&case, packet.to_bytes(), with_reference);
        assert_eq!(identifier, case.identifier);
        // the final hop alone cannot read it (on one-hop routes it holds the only key)
        if !case.message.is_empty() && case.nodes.len() > 1 {
            assert_ne!(sphinx::recover_plaintext(&sealed).ok(), Some(&case.message[..]));
        }
        assert_eq!(recovery.recover_plaintext(sealed.clone()).unwrap(), case.message);
        // the encoding round-trips through the reference's recovery type too
        let their_recovery = SurbReplyRecovery::from_bytes(&recovery.to_bytes()).unwrap();
        let payload = sphinx_packet::payload::Payload::from_bytes(&sealed).unwrap();
        assert_eq!(their_recovery.recover_plaintext(payload).unwrap(), case.message);
    });
}

#[wasm_bindgen_test(unsupported = test)]
fn surbs_the_reference_creates_are_used_by_us_and_it_recovers() {
    for_each_case(5, |_rng, case| {
        let material = SURBMaterial::new(
            case.their_route(),
            case.their_delays(),
            case.their_destination(),
            SINGLE_SEED_SURB_VERSION,
        );
        let (their_surb, their_recovery) = material.construct_recoverable_SURB().unwrap();
        let surb = Surb::from_bytes(&their_surb.to_bytes()).unwrap();
        assert_eq!(surb.first_hop().0, case.nodes[0].address);
        let (packet, _) = surb.use_surb(&case.message, case.size.payload_len()).unwrap();
        let with_reference = case.message.len() % 2 == 1;
        let (sealed, identifier) = reply_payload(&case, packet, with_reference);
        assert_eq!(identifier, case.identifier);
        let payload = sphinx_packet::payload::Payload::from_bytes(&sealed).unwrap();
        assert_eq!(their_recovery.recover_plaintext(payload).unwrap(), case.message);
        // and our recovery type reads the reference's material
        let ours = SurbRecovery::from_bytes(&their_recovery.to_bytes()).unwrap();
        assert_eq!(ours.recover_plaintext(sealed).unwrap(), case.message);
    });
}

#[wasm_bindgen_test(unsupported = test)]
fn node_keys_on_the_twist_fall_back_to_the_reference_chain() {
    // a u-coordinate with no Edwards form: the reference's chain is still followed
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let mut twist = None;
    while twist.is_none() {
        let mut u = [0u8; 32];
        rng.fill_bytes(&mut u);
        u[31] &= 0x7f;
        if MontgomeryPoint(u).to_edwards(0).is_none() {
            twist = Some(u);
        }
    }
    let twist = twist.unwrap();
    for hops in 1..=sphinx::MAX_PATH_LENGTH {
        let mut case = Case::random(&mut rng, hops);
        let last = case.nodes.len() - 1;
        case.nodes[last.min(1)].public = twist;
        let (ours, _, theirs) = build_both(&mut rng, &case);
        assert_eq!(ours[..32], theirs[..32]);
        assert_eq!(ours[sphinx::HEADER_SIZE..], theirs[sphinx::HEADER_SIZE..]);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn shared_secret_matches_the_reference_for_any_alpha() {
    // α on the curve, with a torsion component, on the twist, or non-canonical: a mix must
    // derive exactly what the reference derives (and so accept or reject the same packets)
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let mut kinds = [0usize; 2];
    for i in 0..400 {
        let mut alpha = [0u8; 32];
        rng.fill_bytes(&mut alpha);
        if i % 4 == 0 {
            let mut s = [0u8; 32];
            rng.fill_bytes(&mut s);
            let t = EIGHT_TORSION[i % 8];
            alpha = (curve25519_dalek::edwards::EdwardsPoint::mul_base_clamped(s) + t).to_montgomery().to_bytes();
        }
        kinds[MontgomeryPoint(alpha).to_edwards(0).is_some() as usize] += 1;
        let node = TestNode::random(&mut rng, KeyKind::Plain);
        let mut packet = vec![0u8; PacketSize::Regular.packet_len()];
        packet[..32].copy_from_slice(&alpha);
        let ours = node.our_secret().packet_secret(&packet).unwrap();
        let theirs = sphinx_packet::SphinxPacket::from_bytes(&packet)
            .unwrap()
            .header
            .compute_expanded_shared_secret(&node.their_secret());
        assert_eq!(format!("{theirs:?}"), format!("ExpandedSharedSecret({:?})", ours.as_bytes()));
    }
    assert!(kinds[0] > 50 && kinds[1] > 50, "both curve and twist points exercised: {kinds:?}");
}
