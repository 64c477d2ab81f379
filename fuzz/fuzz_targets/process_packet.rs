//! Mix-node packet processing on arbitrary bytes, and on valid packets with bytes
//! flipped anywhere (so the paths after the MAC check are reached too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixnet_core::mix::{Mix, MixConfig, NodeKeys, ReplayConfig};
use mixnet_core::sphinx::{
    self, Delay, Destination, DestinationAddress, NodeAddress, NodeKey, NodeSecret, PacketSize, RouteNode,
};
use mixnet_core::time::Instant;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let secrets: Vec<NodeSecret> = (1..=3u8).map(|i| NodeSecret::from_bytes([i; 32])).collect();
    if mode % 2 == 0 {
        let mut mix = Mix::new(
            MixConfig { max_queue: 16, ..MixConfig::default() },
            NodeKeys::new(1, secrets[0].clone(), ReplayConfig { capacity: 1000, false_positive: 1e-6 }),
        );
        let _ = mix.handle_packet(Instant::ZERO, rest.to_vec());
        let _ = sphinx::process_packet(&secrets[0], rest.to_vec());
        return;
    }
    let route: Vec<RouteNode> = secrets
        .iter()
        .enumerate()
        .map(|(i, s)| RouteNode { address: NodeAddress([i as u8; 32]), key: NodeKey::new(s.public_key()) })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(mode));
    let dest = Destination { address: DestinationAddress([9; 32]), identifier: [0; 16] };
    let Ok(mut packet) =
        sphinx::build_packet(&mut rng, &route, &dest, &[Delay(1); 3], b"fuzz", PacketSize::Ack.payload_len())
    else {
        return;
    };
    // flip bytes: (position, xor) pairs from the input
    for pair in rest.chunks_exact(3) {
        let pos = usize::from(u16::from_be_bytes([pair[0], pair[1]])) % packet.len();
        packet[pos] ^= pair[2];
    }
    for s in &secrets {
        match sphinx::process_packet(s, packet) {
            Ok((sphinx::Processed::Forward(f), _)) => packet = f.packet,
            Ok((sphinx::Processed::Final(f), _)) => {
                let _ = sphinx::recover_plaintext(&f.payload);
                return;
            }
            Err(_) => return,
        }
    }
});
