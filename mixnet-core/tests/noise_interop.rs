//! Our Noise NK against `snow` (the reference), both directions, with payloads,
//! and the transport's counters: replays, reordering and tampering fail.
#![cfg(not(target_family = "wasm"))]

use mixnet_core::noise::{self, Initiator, NoiseError};
use mixnet_core::sphinx::NodeSecret;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const PARAMS: &str = "Noise_NK_25519_ChaChaPoly_SHA256";
const PROLOGUE: &[u8] = b"mixnet-session-v1";

#[test]
fn our_initiator_with_snow_responder() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let server = NodeSecret::random(&mut rng);
    let mut responder = snow::Builder::new(PARAMS.parse().unwrap())
        .local_private_key(&server.to_bytes())
        .unwrap()
        .prologue(PROLOGUE)
        .unwrap()
        .build_responder()
        .unwrap();
    let (init, m1) = Initiator::start(&mut rng, PROLOGUE, &server.public_key(), b"hello gateway");
    let mut buf = [0u8; 65535];
    let n = responder.read_message(&m1, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello gateway");
    let n = responder.write_message(b"welcome", &mut buf).unwrap();
    let (mut transport, payload) = init.finish(&buf[..n]).unwrap();
    assert_eq!(payload, b"welcome");
    assert_eq!(responder.get_handshake_hash(), &transport.handshake_hash[..]);
    let mut responder = responder.into_transport_mode().unwrap();
    for i in 0..5u8 {
        let c = transport.send.encrypt(&[i; 100]).unwrap();
        let n = responder.read_message(&c, &mut buf).unwrap();
        assert_eq!(&buf[..n], &[i; 100]);
        let n = responder.write_message(&[i + 1; 3000], &mut buf).unwrap();
        assert_eq!(transport.recv.decrypt(&buf[..n]).unwrap(), vec![i + 1; 3000]);
    }
}

#[test]
fn snow_initiator_with_our_responder() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let server = NodeSecret::random(&mut rng);
    let mut initiator = snow::Builder::new(PARAMS.parse().unwrap())
        .remote_public_key(&server.public_key())
        .unwrap()
        .prologue(PROLOGUE)
        .unwrap()
        .build_initiator()
        .unwrap();
    let mut buf = [0u8; 65535];
    let n = initiator.write_message(b"", &mut buf).unwrap();
    let (mut transport, m2, received) = noise::respond(&mut rng, PROLOGUE, &server, &buf[..n], b"hi").unwrap();
    assert!(received.is_empty());
    let n = initiator.read_message(&m2, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hi");
    assert_eq!(initiator.get_handshake_hash(), &transport.handshake_hash[..]);
    let mut initiator = initiator.into_transport_mode().unwrap();
    let n = initiator.write_message(b"frame one", &mut buf).unwrap();
    assert_eq!(transport.recv.decrypt(&buf[..n]).unwrap(), b"frame one");
    let c = transport.send.encrypt(b"frame two").unwrap();
    let n = initiator.read_message(&c, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"frame two");
}

#[test]
fn wrong_server_key_replays_and_tampering_fail() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let server = NodeSecret::random(&mut rng);
    let impostor = NodeSecret::random(&mut rng);
    // a client that expects `server` cannot complete a handshake with `impostor`
    let (_, m1) = Initiator::start(&mut rng, PROLOGUE, &server.public_key(), b"");
    assert_eq!(noise::respond(&mut rng, PROLOGUE, &impostor, &m1, b"").unwrap_err(), NoiseError::Decrypt);
    // different prologues do not agree
    let (_, m1) = Initiator::start(&mut rng, b"other", &server.public_key(), b"");
    assert!(noise::respond(&mut rng, PROLOGUE, &server, &m1, b"").is_err());

    let (init, m1) = Initiator::start(&mut rng, PROLOGUE, &server.public_key(), b"");
    let (mut gw, m2, _) = noise::respond(&mut rng, PROLOGUE, &server, &m1, b"").unwrap();
    let (mut client, _) = init.finish(&m2).unwrap();
    let a = client.send.encrypt(b"a").unwrap();
    let b = client.send.encrypt(b"b").unwrap();
    // reordering fails, and a failure does not advance the counter
    assert_eq!(gw.recv.decrypt(&b), Err(NoiseError::Decrypt));
    assert_eq!(gw.recv.decrypt(&a).unwrap(), b"a");
    // replay fails
    assert_eq!(gw.recv.decrypt(&a), Err(NoiseError::Decrypt));
    let mut tampered = b.clone();
    tampered[0] ^= 1;
    assert_eq!(gw.recv.decrypt(&tampered), Err(NoiseError::Decrypt));
    assert_eq!(gw.recv.decrypt(&b).unwrap(), b"b");
    assert_eq!(gw.recv.decrypt(&[1, 2, 3]), Err(NoiseError::Truncated));
}
