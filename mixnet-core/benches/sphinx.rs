//! Ours against sphinx-packet 0.8.0, in the same run: packet build at 3, 4 and 5 hops
//! with 2048 B of data, one hop of processing, SURB creation and use.
//!
//! `cargo bench -p mixnet-core --bench sphinx`; `scripts/bench-ratios` turns the
//! results into the table in BENCHMARKS.md.

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use curve25519_dalek::montgomery::MontgomeryPoint;
use mixnet_core::sphinx::{
    self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, NodeSecret, PacketSize, RouteNode, Surb,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use sphinx_packet::SphinxPacketBuilder;
use sphinx_packet::header::delays::Delay as RefDelay;
use sphinx_packet::route::{Destination as RefDestination, DestinationAddressBytes, Node as RefNode, NodeAddressBytes};
use sphinx_packet::surb::{SURB, SURBMaterial};
use sphinx_packet::version::SINGLE_SEED_SURB_VERSION;
use x25519_dalek::{PublicKey, StaticSecret};

const SIZE: PacketSize = PacketSize::Regular;

struct Net {
    secrets: Vec<[u8; 32]>,
    ours: Vec<RouteNode>,
    ours_unprepared: Vec<RouteNode>,
    theirs: Vec<RefNode>,
    delays: Vec<Delay>,
    their_delays: Vec<RefDelay>,
}

fn net(rng: &mut ChaCha20Rng, hops: usize) -> Net {
    let mut net = Net {
        secrets: vec![],
        ours: vec![],
        ours_unprepared: vec![],
        theirs: vec![],
        delays: vec![],
        their_delays: vec![],
    };
    for _ in 0..hops {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let mut address = [0u8; 32];
        rng.fill_bytes(&mut address);
        let public = MontgomeryPoint::mul_base_clamped(secret).to_bytes();
        net.secrets.push(secret);
        net.ours.push(RouteNode { address: NodeAddress(address), key: NodeKey::prepared(public) });
        net.ours_unprepared.push(RouteNode { address: NodeAddress(address), key: NodeKey::new(public) });
        net.theirs.push(RefNode::new(NodeAddressBytes::from_bytes(address), PublicKey::from(public)));
        net.delays.push(Delay(15_000_000));
        net.their_delays.push(RefDelay::new_from_nanos(15_000_000));
    }
    net
}

fn destination() -> (Destination, RefDestination) {
    let ours = Destination { address: DestinationAddress([7u8; 32]), identifier: [9u8; 16] };
    let theirs = RefDestination::new(DestinationAddressBytes::from_bytes([7u8; 32]), [9u8; 16]);
    (ours, theirs)
}

fn build(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let message = vec![0x42u8; SIZE.data_len()];
    let (dest, their_dest) = destination();
    let mut group = c.benchmark_group("build");
    for hops in [3usize, 4, 5] {
        let net = net(&mut rng, hops);
        group.bench_with_input(BenchmarkId::new("ours", hops), &hops, |b, _| {
            b.iter(|| {
                sphinx::build_packet(&mut rng, black_box(&net.ours), &dest, &net.delays, &message, SIZE.payload_len())
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("ours-untabled", hops), &hops, |b, _| {
            b.iter(|| {
                sphinx::build_packet(
                    &mut rng,
                    black_box(&net.ours_unprepared),
                    &dest,
                    &net.delays,
                    &message,
                    SIZE.payload_len(),
                )
                .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("sphinx-packet", hops), &hops, |b, _| {
            b.iter(|| {
                SphinxPacketBuilder::new()
                    .with_payload_size(SIZE.payload_len())
                    .build_packet(&message, black_box(&net.theirs), &their_dest, &net.their_delays)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn process(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let message = vec![0x42u8; SIZE.data_len()];
    let (dest, _) = destination();
    let net = net(&mut rng, 4);
    let packet = sphinx::build_packet(&mut rng, &net.ours, &dest, &net.delays, &message, SIZE.payload_len()).unwrap();
    let ours = NodeSecret::from_bytes(net.secrets[0]);
    let theirs = StaticSecret::from(net.secrets[0]);
    let mut group = c.benchmark_group("process-hop");
    group.bench_function("ours", |b| {
        b.iter_batched(
            || packet.clone(),
            |p| sphinx::process_packet(&ours, p).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("sphinx-packet", |b| {
        b.iter_batched(
            || sphinx_packet::SphinxPacket::from_bytes(&packet).unwrap(),
            |p| p.process(&theirs).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn surbs(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let message = vec![0x42u8; SIZE.data_len()];
    let (dest, their_dest) = destination();
    let net = net(&mut rng, 4);
    let mut group = c.benchmark_group("surb-create");
    group.bench_function("ours", |b| {
        b.iter(|| sphinx::create_surb(&mut rng, black_box(&net.ours), &net.delays, &dest).unwrap())
    });
    group.bench_function("sphinx-packet", |b| {
        b.iter(|| {
            SURBMaterial::new(
                net.theirs.clone(),
                net.their_delays.clone(),
                their_dest.clone(),
                SINGLE_SEED_SURB_VERSION,
            )
            .construct_recoverable_SURB()
            .unwrap()
        })
    });
    group.finish();

    let (surb, _) = sphinx::create_surb(&mut rng, &net.ours, &net.delays, &dest).unwrap();
    let bytes = surb.to_bytes();
    let mut group = c.benchmark_group("surb-use");
    group.bench_function("ours", |b| {
        b.iter_batched(
            || Surb::from_bytes(&bytes).unwrap(),
            |s| s.use_surb(&message, SIZE.payload_len()).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function("sphinx-packet", |b| {
        b.iter_batched(
            || SURB::from_bytes(&bytes).unwrap(),
            |s| s.use_surb(&message, SIZE.payload_len()).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = build, process, surbs
}
criterion_main!(benches);
