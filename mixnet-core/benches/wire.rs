//! Emitting into an exact buffer ([`Repr::to_bytes`]: one allocation of
//! `buffer_len`) against growing a `Vec` field by field (how the codecs wrote before
//! they were `Repr`s), in the same run, on the hot path of a download's upload side:
//! a stream's 32 KiB `Data` chunk, wrapped as a message `Content` with 8 SURBs.
//!
//! `cargo bench -p mixnet-core --bench wire`

mod common;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use curve25519_dalek::montgomery::MontgomeryPoint;
use mixnet_core::message::Content;
use mixnet_core::sphinx::{self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, RouteNode, Surb};
use mixnet_core::stream::{MAX_CHUNK, StreamMessage};
use mixnet_core::wire::Repr;
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

fn surbs(n: usize) -> Vec<Surb> {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let route: Vec<RouteNode> = (0..4)
        .map(|_| {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            let public = MontgomeryPoint::mul_base_clamped(secret).to_bytes();
            RouteNode { address: NodeAddress([1; 32]), key: NodeKey::prepared(public) }
        })
        .collect();
    let dest = Destination { address: DestinationAddress([7; 32]), identifier: [9; 16] };
    (0..n).map(|_| sphinx::create_surb(&mut rng, &route, &[Delay(0); 4], &dest).unwrap().0).collect()
}

/// The codecs' former way: push and extend into a `Vec` that grows as it goes.
fn grown_stream(id: u64, seq: u64, data: Vec<u8>) -> Vec<u8> {
    let mut out = b"MXS1".to_vec();
    out.push(4);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&data);
    out
}

fn grown_content(tag: &[u8; 16], surbs: Vec<Surb>, body: Vec<u8>) -> Vec<u8> {
    let mut out = vec![1u8];
    out.extend_from_slice(tag);
    out.extend_from_slice(&(surbs.len() as u16).to_be_bytes());
    for s in &surbs {
        out.extend_from_slice(&s.to_bytes());
    }
    out.extend_from_slice(&body);
    out
}

/// Both ways do what the client does per chunk: the chunk copied into the stream
/// message, its bytes copied into the content (`Messenger::send` takes a slice), then
/// each encoded.
fn wire(c: &mut Criterion) {
    let surbs = surbs(8);
    let chunk = vec![0x5a; MAX_CHUNK];
    let tag = [3u8; 16];
    let exact = || {
        let data = StreamMessage::Data { id: 1, seq: 2, data: chunk.clone() }.to_bytes();
        Content::DataWithSurbs { tag, surbs: surbs.clone(), body: data.as_slice().to_vec() }.to_bytes()
    };
    let grown = || {
        let data = grown_stream(1, 2, chunk.clone());
        grown_content(&tag, surbs.clone(), data.as_slice().to_vec())
    };
    assert_eq!(exact(), grown(), "the same bytes either way");
    let mut group = c.benchmark_group("content-with-stream-chunk");
    group.bench_function("repr-exact", |b| b.iter(|| black_box(exact())));
    group.bench_function("vec-grown", |b| b.iter(|| black_box(grown())));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = wire
}
criterion_main!(benches);
