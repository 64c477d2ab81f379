//! Receiving: a delivery opened (ours, an ack, a reply through our SURB), fragments
//! reassembled, contents dispatched; and the batched acknowledgements of replies.

#[allow(clippy::wildcard_imports)]
use super::*;

impl<R: CryptoRng> Messenger<R> {
    pub(super) fn drop_inbound(&mut self, error: ReceiveError) {
        self.stats.dropped += 1;
        self.events.push_back(Event::Dropped(error));
    }

    pub(super) fn report_evictions(&mut self) {
        for (_, why) in self.reassembler.take_evicted() {
            let reason = match why {
                Eviction::Stale => "incomplete message went stale",
                Eviction::Capacity => "incomplete message evicted by reassembly limits",
            };
            self.drop_inbound(ReceiveError::MalformedFragment(reason));
        }
    }

    /// Handles a packet our gateway delivered.
    pub fn handle_delivery(&mut self, now: Instant, delivery: Delivery) {
        if let Err(e) = self.handle_delivery_inner(now, delivery) {
            self.drop_inbound(e);
        }
    }

    pub(super) fn handle_delivery_inner(&mut self, now: Instant, delivery: Delivery) -> Result<(), ReceiveError> {
        let Delivery { identifier, payload } = delivery;
        if identifier == [0u8; 16] {
            let (_ack, body) = split_data(&payload)?;
            let fragment = open(&self.keys.encryption, &body[..FRAGMENT_LEN + SEAL_OVERHEAD])?;
            return self.handle_fragment(now, &fragment, None);
        }
        if let Some(wait) = self.out.acks.remove(&identifier) {
            return match wait.recovery.recover_plaintext(payload) {
                Ok(m) if m == ACK_MARKER => {
                    self.acknowledge(wait.message, wait.index);
                    Ok(())
                }
                other => {
                    self.out.acks.insert(identifier, wait);
                    Err(other.err().map_or(ReceiveError::MalformedContent("ack marker"), ReceiveError::from))
                }
            };
        }
        if let Some(recovery) = self.cover_acks.remove(&identifier) {
            recovery.recover_plaintext(payload)?;
            self.stats.cover_acks_received += 1;
            return Ok(());
        }
        let Some(key) = self.surbs.reply_keys.get(&identifier) else {
            return Err(ReceiveError::UnknownSurb);
        };
        // a forgery keeps the key for the real reply
        let data = key.recovery.recover_plaintext(payload)?;
        let key = self.surbs.reply_keys.remove(&identifier).expect("got it above");
        let (ack, body) = split_data(&data)?;
        self.replenish(now, key.tag);
        // the reply is sealed to us, so its ack is ours to send: in a batch to the
        // replier when we know it and it told us the ack's identifier, else by SURB-ack
        let ack_id: SurbId = body[FRAGMENT_LEN..FRAGMENT_LEN + 16].try_into().expect("16 bytes");
        match self.surbs.tag_recipients.get(&key.tag).copied() {
            Some(replier) if self.config.reply_ack_batch > 0 && ack_id != [0u8; 16] => {
                self.batch_ack(now, replier, ack_id)
            }
            _ => {
                if let Ok((packet, first_hop)) = ack_packet(&ack, self.config.ack_packet_size) {
                    self.out.ready_acks.push_back(Transmit { first_hop, packet });
                }
            }
        }
        debug_assert!(body.len() == BODY_LEN);
        self.handle_fragment(now, &body[..FRAGMENT_LEN], Some(key.tag))
    }

    /// A fragment as if it had arrived sealed to us and been opened (`--cfg fuzzing`
    /// only): a fuzz target reaches reassembly and what follows it without spending
    /// its time on the X25519 of sealing and opening, which its inputs never vary.
    #[cfg(fuzzing)]
    pub fn handle_opened_fragment(&mut self, now: Instant, fragment: &[u8]) {
        if let Err(e) = self.handle_fragment(now, fragment, None) {
            self.drop_inbound(e);
        }
    }

    pub(super) fn handle_fragment(
        &mut self,
        now: Instant,
        bytes: &[u8],
        via_reply: Option<SenderTag>,
    ) -> Result<(), ReceiveError> {
        let Some(fragment) = Fragment::decode(bytes)? else {
            self.stats.cover_received += 1;
            return Ok(());
        };
        self.stats.fragments_received += 1;
        let inserted = self.reassembler.insert(now, fragment);
        self.report_evictions();
        match inserted? {
            Insert::Incomplete => Ok(()),
            Insert::Duplicate => {
                self.stats.duplicates += 1;
                Ok(())
            }
            Insert::Complete(bytes) => self.handle_content(now, Content::parse(&bytes)?, via_reply),
        }
    }

    pub(super) fn handle_content(
        &mut self,
        now: Instant,
        content: Content,
        via_reply: Option<SenderTag>,
    ) -> Result<(), ReceiveError> {
        let reply_from = via_reply.and_then(|t| self.surbs.tag_recipients.get(&t).copied());
        let received = |data, sender_tag, reply_from| Event::Received(ReceivedMessage { data, sender_tag, reply_from });
        match content {
            Content::Data(data) => {
                self.stats.messages_received += 1;
                self.events.push_back(received(data, None, reply_from));
            }
            Content::Reply(data) => {
                self.stats.messages_received += 1;
                self.events.push_back(received(data, None, reply_from));
            }
            Content::DataWithSurbs { tag, surbs, body } => {
                self.add_surbs(now, tag, surbs);
                self.stats.messages_received += 1;
                self.events.push_back(received(body, Some(tag), reply_from));
            }
            Content::SurbTopUp { tag, surbs } => {
                self.add_surbs(now, tag, surbs);
                if let Some(bank) = self.surbs.banks.get_mut(&tag) {
                    bank.requested = false;
                }
                if let Some(jobs) = self.out.blocked.remove(&tag) {
                    for job in jobs.into_iter().rev() {
                        self.out.queue.push_front(job);
                    }
                }
            }
            Content::Acks(ids) => {
                for id in ids {
                    if let Some(wait) = self.out.acks.remove(&id) {
                        self.acknowledge(wait.message, wait.index);
                    }
                }
            }
            Content::SurbRequest(n) => {
                let Some(recipient) = reply_from else {
                    return Err(ReceiveError::MalformedContent("SURB request outside a reply"));
                };
                let tag = self.tag_for(recipient);
                let n = n.min(u16::try_from(self.config.max_surbs_per_sender).unwrap_or(u16::MAX));
                match self.reply_surbs(now, tag, n) {
                    Ok(surbs) => {
                        // best effort: a top-up too large for one message cannot happen (n is bounded)
                        let _ = self.enqueue(Target::Recipient(recipient), &Content::SurbTopUp { tag, surbs }, false);
                    }
                    Err(_) => return Err(ReceiveError::MalformedContent("cannot build SURBs for a top-up")),
                }
            }
        }
        Ok(())
    }

    pub(super) fn batch_ack(&mut self, now: Instant, replier: Recipient, id: SurbId) {
        let batch = self.config.reply_ack_batch.min(crate::message::content::MAX_ACKS);
        let (_, ids) = self.pending_acks.entry(replier).or_insert_with(|| (now, Vec::new()));
        ids.push(id);
        if ids.len() >= batch {
            self.flush_acks(replier);
        }
    }

    pub(super) fn flush_acks(&mut self, replier: Recipient) {
        if let Some((_, ids)) = self.pending_acks.remove(&replier) {
            // like any message: acked by the replier's gateway, retransmitted if lost
            let _ = self.enqueue_with(Target::Recipient(replier), &Content::Acks(ids), false, Priority::Urgent);
        }
    }
}
