//! Anonymous replies by SURB: the recipient answers without learning the sender's
//! address, and asks for more SURBs when it runs low.

use wasm_bindgen_test::wasm_bindgen_test;

mod common;

use common::*;
use mixnet_core::message::{MessengerConfig, RouteMode};
use mixnet_core::sim::mixnet::SimMixnet;
use mixnet_core::time::Instant;

#[wasm_bindgen_test(unsupported = test)]
fn recipient_replies_through_surbs() {
    for (seed, mode) in [(30, RouteMode::Mixnet), (31, RouteMode::Fast)] {
        let mut net = SimMixnet::new(seed, link(), 2, 2);
        let a = net.add_client(0, config(mode));
        let b = net.add_client(1, config(mode));
        net.client_mut(&a).client.send(Instant::ZERO, b, b"question", 5).unwrap();
        assert!(run_until_received(&mut net, &b, 1));
        let msg = net.client(&b).received().next().unwrap().clone();
        assert_eq!(msg.data, b"question");
        // b learns a tag, not a's address
        let tag = msg.sender_tag.expect("sender tag");
        assert!(msg.reply_from.is_none());
        assert_eq!(net.client(&b).messenger().surbs_for(&tag), 5);
        let id = net.client_mut(&b).client.reply(Instant::ZERO, tag, b"answer").unwrap();
        assert!(run_until_received(&mut net, &a, 1));
        let reply = net.client(&a).received().next().unwrap().clone();
        assert_eq!(reply.data, b"answer");
        assert_eq!(reply.reply_from, Some(b), "a knows which conversation it answers");
        // a sent b's SURB-ack, so b learns its reply arrived
        assert!(run_until_delivered(&mut net, &b, id));
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn long_reply_tops_up_surbs_on_demand() {
    let mut net = SimMixnet::new(32, lossy(0.03), 2, 2);
    let a = net.add_client(0, config(RouteMode::Mixnet));
    let b = net.add_client(1, config(RouteMode::Mixnet));
    net.client_mut(&a).client.send(Instant::ZERO, b, b"send me a lot", 3).unwrap();
    assert!(run_until_received(&mut net, &b, 1));
    let tag = net.client(&b).received().next().unwrap().sender_tag.unwrap();
    // 60 fragments: far more than the 3 SURBs b holds
    let big = payload(7, 95_000);
    let id = net.client_mut(&b).client.reply(Instant::ZERO, tag, &big).unwrap();
    assert!(run_until_received(&mut net, &a, 1));
    assert_eq!(received(&net, &a), vec![big]);
    assert!(run_until_delivered(&mut net, &b, id));
    assert!(failures(&net, &b).is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn reply_to_an_unknown_tag_is_refused() {
    let mut net = SimMixnet::new(33, link(), 1, 1);
    let a = net.add_client(0, config(RouteMode::Fast));
    let err = net.client_mut(&a).client.reply(Instant::ZERO, [1; 16], b"x").unwrap_err();
    assert_eq!(err, mixnet_core::message::SendError::UnknownSenderTag);
}

#[wasm_bindgen_test(unsupported = test)]
fn replies_are_acknowledged_in_batches_not_a_packet_each() {
    let mut net = SimMixnet::new(34, link(), 2, 2);
    let a = net.add_client(0, config(RouteMode::Mixnet));
    let b = net.add_client(1, config(RouteMode::Mixnet));
    net.client_mut(&a).client.send(Instant::ZERO, b, b"send me a lot", 200).unwrap();
    assert!(run_until_received(&mut net, &b, 1));
    let tag = net.client(&b).received().next().unwrap().sender_tag.unwrap();
    let before = net.client(&a).client.stats().real_sent;
    let big = payload(8, 150_000); // 95 fragments
    let id = net.client_mut(&b).client.reply(Instant::ZERO, tag, &big).unwrap();
    assert!(run_until_received(&mut net, &a, 1));
    assert!(run_until_delivered(&mut net, &b, id), "every reply fragment acknowledged");
    assert!(failures(&net, &b).is_empty());
    // a acknowledged 95 replies with a couple of ack messages, plus its SURB top-ups
    // (4 SURBs a packet), instead of 95 SURB-ack packets
    let sent = net.client(&a).client.stats().real_sent - before;
    assert!(sent < 95 / 4 + 10, "a sent {sent} packets for 95 replies");
}

#[wasm_bindgen_test(unsupported = test)]
fn our_reply_keys_stay_bounded_and_a_reply_still_arrives() {
    // a's SURB keys are bounded at 10: asking twice with 8 SURBs forgets 6 of the first
    let small = MessengerConfig { max_outstanding_reply_surbs: 10, surb_replenish_batch: 0, ..config(RouteMode::Fast) };
    let mut net = SimMixnet::new(34, link(), 1, 1);
    let a = net.add_client(0, small);
    let b = net.add_client(0, config(RouteMode::Fast));
    net.client_mut(&a).client.send(Instant::ZERO, b, b"first", 8).unwrap();
    net.client_mut(&a).client.send(Instant::ZERO, b, b"second", 8).unwrap();
    assert_eq!(net.client(&a).messenger().stats().reply_keys_forgotten, 6);
    assert!(run_until_received(&mut net, &b, 2));
    let tag = net.client(&b).received().next().unwrap().sender_tag.unwrap();
    assert_eq!(net.client(&b).messenger().surbs_for(&tag), 16);
    // b answers through its oldest SURBs first: those a forgot are dropped as unknown
    // (counted), and b retransmits through newer ones until the answer gets in
    let id = net.client_mut(&b).client.reply(Instant::ZERO, tag, b"answer").unwrap();
    assert!(run_until_received(&mut net, &a, 1));
    assert_eq!(received(&net, &a), vec![b"answer".to_vec()]);
    assert!(net.client(&a).messenger().stats().dropped >= 1, "a reply through a forgotten key was dropped");
    assert!(run_until_delivered(&mut net, &b, id));
}
