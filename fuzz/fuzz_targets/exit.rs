//! The exit on what anonymous senders can send it (stream messages, as fragments a
//! client would seal to it) interleaved with what its driver reports (names resolved,
//! connections made or refused, bytes read and written, ends, time). Its bounds hold
//! at every step.
//!
//! Fragments enter past the crypto (`Exit::handle_opened_fragment`, built with
//! `--cfg fuzzing`): sealing and opening them was 95 % of the time and the inputs never
//! vary it. A record whose sender byte is 0xff goes the whole way sealed, and op 7 can
//! deliver the record's bytes as a raw (unsealable) payload, so the opening path is
//! fuzzed too.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mixnet_core::wire::Repr;
use mixnet_core::exit::{ConnectError, Exit, ExitAction, ExitConfig, ExitLimits, ResolveError};
use mixnet_core::message::{
    ACK_SURB_LEN, ClientKeys, Content, Delivery, MessengerConfig, RouteMode, seal, split_message,
};
use mixnet_core::policy::ExitPolicy;
use mixnet_core::sphinx::{NodeKey, NodeSecret, PacketSize};
use mixnet_core::stream::StreamMessage;
use mixnet_core::time::Instant;
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let limits = ExitLimits {
        max_streams: 8,
        max_streams_per_sender: 4,
        max_connecting: 4,
        max_unopened_per_sender: 2,
        max_unopened: 4,
        unopened_buffer: 4096,
        stream_buffer: 2048,
        sender_buffer: 4096,
        total_buffer: 8192,
        idle_timeout_ms: 5_000,
        ..ExitLimits::default()
    };
    let secret = NodeSecret::from_bytes([4; 32]);
    let exit_key = NodeKey::new(secret.public_key());
    let config = ExitConfig {
        messenger: MessengerConfig { mode: RouteMode::Fast, ..MessengerConfig::default() },
        policy: ExitPolicy::localnet(),
        limits: limits.clone(),
    };
    let keys = ClientKeys { identity: [1; 32], encryption: secret };
    let mut exit = Exit::new(config, keys, [2; 32], ChaCha8Rng::seed_from_u64(1));
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let mut now = 0u64;
    let mut message_id = 0u64;
    let mut keys_seen = Vec::new();
    // records: op (1), sender (1), id (1), len (1), bytes
    let mut rest = data;
    while rest.len() >= 4 {
        let (op, sender, id, len) = (rest[0], rest[1] % 3, u64::from(rest[2] % 4), usize::from(rest[3]));
        let sealed = rest[1] == 0xff;
        let body = &rest[4..(4 + len).min(rest.len())];
        rest = &rest[(4 + len).min(rest.len())..];
        now += u64::from(op >> 4) * 500;
        let t = Instant::from_millis(now);
        let tag = [sender; 16];
        let key = (tag, id);
        match op % 8 {
            0..=2 => {
                let msg = match op % 3 {
                    0 => StreamMessage::Open { id, host: String::from_utf8_lossy(body).into_owned(), port: 7 },
                    1 => StreamMessage::Data {
                        id,
                        seq: u64::from(body.first().copied().unwrap_or(0) % 4),
                        data: body.to_vec(),
                    },
                    _ => StreamMessage::Close { id, seq: (len % 4) as u64, error: (len % 2 == 1).then(|| "x".into()) },
                };
                let content = Content::DataWithSurbs { tag, surbs: vec![], body: msg.to_bytes() };
                message_id += 1;
                for f in split_message(message_id, &content.to_bytes()) {
                    if sealed {
                        let mut payload = vec![0u8; ACK_SURB_LEN];
                        payload.extend_from_slice(&seal(&mut rng, &exit_key, &f.encode()).unwrap());
                        payload.resize(PacketSize::Regular.data_len(), 0);
                        exit.handle_delivery(t, Delivery { identifier: [0; 16], payload });
                    } else {
                        exit.handle_opened_fragment(t, &f.encode());
                    }
                }
                keys_seen.push(key);
            }
            3 => {
                let r = match len % 3 {
                    0 => Ok(vec![[127, 0, 0, 1].into(), [10, 0, 0, 1].into()]),
                    1 => Ok(vec![]),
                    _ => Err(ResolveError::NotFound),
                };
                exit.handle_resolved(t, key, r);
            }
            4 => {
                if len % 2 == 0 {
                    exit.handle_connected(t, key)
                } else {
                    exit.handle_connect_failed(t, key, ConnectError::Refused)
                }
            }
            5 => {
                let budget = exit.read_budget(&key);
                exit.handle_read(t, key, &body[..body.len().min(budget)]);
            }
            6 => exit.handle_written(t, key, len * 16),
            _ => match len % 4 {
                0 | 2 => exit.handle_eof(t, key, None),
                1 => exit.handle_timeout(t + Duration::from_secs(60)),
                _ => {
                    let mut payload = body.to_vec();
                    payload.resize(PacketSize::Regular.data_len(), 0);
                    exit.handle_delivery(t, Delivery { identifier: [0; 16], payload });
                }
            },
        }
        while let Some(a) = exit.poll_action() {
            let _ = matches!(a, ExitAction::Write { .. });
        }
        while exit.poll_transmit(t).is_some() {}
        assert!(exit.buffered_bytes() <= limits.total_buffer, "{} B buffered", exit.buffered_bytes());
        assert!(exit.open_streams() <= limits.max_streams + limits.max_unopened, "{} streams", exit.open_streams());
    }
    let _ = keys_seen;
    let _ = StreamMessage::parse(data);
});
