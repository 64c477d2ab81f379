//! Sending: messages into fragments, each built into a packet when its turn comes
//! (route, SURB-ack, seal), ack deadlines, retransmission and the loud failure after
//! the last attempt.

#[allow(clippy::wildcard_imports)]
use super::*;

pub(super) enum Target {
    Recipient(Recipient),
    Surbs(SenderTag),
}

/// What the messenger has on its way.
pub(super) struct Outgoing {
    pub(super) next_id: MessageId,
    /// Messages sent and not yet acknowledged or failed.
    pub(super) outbound: HashMap<MessageId, Outbound>,
    pub(super) queue: VecDeque<QueuedFragment>,
    /// SURB top-ups we send on our own as replies arrive: they go when nothing else
    /// waits, so a new message never queues behind a download's refills.
    pub(super) background: VecDeque<QueuedFragment>,
    /// Ack packets built already (SURB-acks of replies): sent before anything queued.
    pub(super) ready_acks: VecDeque<Transmit>,
    /// The fragment each SURB-ack we wait for acknowledges.
    pub(super) acks: HashMap<SurbId, AckWait>,
    pub(super) deadlines: BTreeSet<(Instant, SurbId)>,
    /// Replies waiting for SURBs from their recipient.
    pub(super) blocked: HashMap<SenderTag, VecDeque<QueuedFragment>>,
}

impl Default for Outgoing {
    fn default() -> Self {
        Self {
            next_id: 1,
            outbound: HashMap::new(),
            queue: VecDeque::new(),
            background: VecDeque::new(),
            ready_acks: VecDeque::new(),
            acks: HashMap::new(),
            deadlines: BTreeSet::new(),
            blocked: HashMap::new(),
        }
    }
}

pub(super) struct OutFragment {
    pub(super) encoded: Box<[u8; FRAGMENT_LEN]>,
    pub(super) attempts: u32,
    pub(super) ack_ids: Vec<SurbId>,
}

pub(super) struct Outbound {
    pub(super) target: Target,
    /// `None` once acknowledged.
    pub(super) fragments: Vec<Option<OutFragment>>,
    pub(super) unacked: usize,
    /// A SURB request may use the last SURB we hold.
    pub(super) is_surb_request: bool,
}

pub(super) struct AckWait {
    pub(super) message: MessageId,
    pub(super) index: u32,
    pub(super) recovery: SurbRecovery,
}

/// A fragment waiting in a sending queue.
#[derive(Clone, Copy)]
pub(super) struct QueuedFragment {
    pub(super) message: MessageId,
    pub(super) index: u32,
}

/// Where a message's packets go in the sending queue.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Priority {
    /// Ahead of everything queued (SURB requests, reply acks).
    Urgent,
    /// In order.
    Normal,
    /// After everything else (our own SURB refills).
    Background,
}

/// Background packets queued at most before refills are skipped (two refills of 32
/// SURBs are 16 packets).
pub(super) const MAX_BACKGROUND_JOBS: usize = 16;

pub(super) const MAX_RECIPIENT_KEYS: usize = 1024;

impl<R: CryptoRng> Messenger<R> {
    /// The sender tag we use towards `recipient`, created on first use.
    pub(super) fn tag_for(&mut self, recipient: Recipient) -> SenderTag {
        if let Some(t) = self.surbs.tags.get(&recipient) {
            return *t;
        }
        let mut tag = [0u8; 16];
        self.rng.fill_bytes(&mut tag);
        self.surbs.tags.insert(recipient, tag);
        self.surbs.tag_recipients.insert(tag, recipient);
        tag
    }

    pub(super) fn random_surb_id(&mut self) -> SurbId {
        loop {
            let mut id = [0u8; 16];
            self.rng.fill_bytes(&mut id);
            if id != [0u8; 16] {
                return id;
            }
        }
    }

    pub(super) fn delays(&mut self, hops: usize, mean: Duration) -> Vec<Delay> {
        match self.config.mode {
            RouteMode::Fast => vec![Delay(0); hops],
            // a mix drops packets that ask for more than its maximum: never ask for it
            RouteMode::Mixnet => Delay::sample_exponential(&mut self.rng, mean, hops)
                .into_iter()
                .map(|d| d.min(Delay::from_duration(crate::mix::DEFAULT_MAX_DELAY)))
                .collect(),
        }
    }

    pub(super) fn route_to(&mut self, gateway: &[u8; 32]) -> Result<Vec<RouteNode>, TopologyError> {
        let Some(routes) = self.routes.as_mut() else {
            return Err(TopologyError::Malformed("no topology".into()));
        };
        match self.config.mode {
            RouteMode::Mixnet => routes.mixnet_route(&mut self.rng, gateway),
            RouteMode::Fast => routes.fast_route(gateway),
        }
    }

    pub(super) fn ack_timeout(&self, route_delay: Duration) -> Duration {
        route_delay.mul_f64(self.config.ack_wait_multiplier.max(1.0)) + self.config.ack_wait_addition
    }

    pub(super) fn recipient_key(&mut self, key: [u8; 32]) -> NodeKey {
        if self.recipient_keys.len() >= MAX_RECIPIENT_KEYS && !self.recipient_keys.contains_key(&key) {
            self.recipient_keys.clear();
        }
        self.recipient_keys.entry(key).or_insert_with(|| NodeKey::prepared(key)).clone()
    }

    pub(super) fn enqueue(
        &mut self,
        target: Target,
        content: &Content,
        is_surb_request: bool,
    ) -> Result<MessageId, SendError> {
        // a SURB request goes ahead of the replies waiting for the SURBs it asks for
        let priority = if is_surb_request { Priority::Urgent } else { Priority::Normal };
        self.enqueue_with(target, content, is_surb_request, priority)
    }

    /// Queues a message; urgent ones go ahead of everything queued (SURB requests,
    /// and reply acks: an ack held behind a long queue makes its sender retransmit,
    /// spending the very SURBs the queue is waiting to deliver).
    pub(super) fn enqueue_with(
        &mut self,
        target: Target,
        content: &Content,
        is_surb_request: bool,
        priority: Priority,
    ) -> Result<MessageId, SendError> {
        let encoded = content.to_bytes();
        let max = self.config.reassembly.max_message_size;
        if encoded.len() > max {
            return Err(SendError::TooLarge { len: encoded.len(), max });
        }
        let wire_id = self.rng.next_u64();
        let fragments: Vec<_> = split_message(wire_id, &encoded)
            .iter()
            .map(|f| Some(OutFragment { encoded: Box::new(f.encode()), attempts: 0, ack_ids: Vec::new() }))
            .collect();
        let id = self.out.next_id;
        self.out.next_id += 1;
        let count = fragments.len();
        let jobs = (0..count as u32).map(|index| QueuedFragment { message: id, index });
        match priority {
            Priority::Urgent => {
                for job in jobs.rev() {
                    self.out.queue.push_front(job);
                }
            }
            Priority::Normal => self.out.queue.extend(jobs),
            Priority::Background => self.out.background.extend(jobs),
        }
        self.out.outbound.insert(id, Outbound { target, fragments, unacked: count, is_surb_request });
        Ok(id)
    }

    /// Queues `data` for `recipient`, attaching `reply_surbs` SURBs it can answer with.
    pub fn send(
        &mut self,
        now: Instant,
        recipient: Recipient,
        data: &[u8],
        reply_surbs: u16,
    ) -> Result<MessageId, SendError> {
        let content = if reply_surbs == 0 {
            Content::Data(data.to_vec())
        } else {
            if self.routes.is_none() {
                return Err(SendError::NoTopology);
            }
            let tag = self.tag_for(recipient);
            let surbs = self.reply_surbs(now, tag, reply_surbs)?;
            Content::DataWithSurbs { tag, surbs, body: data.to_vec() }
        };
        self.enqueue(Target::Recipient(recipient), &content, false)
    }

    /// Answers the anonymous sender `tag` through its SURBs.
    pub fn reply(&mut self, _now: Instant, tag: SenderTag, data: &[u8]) -> Result<MessageId, SendError> {
        if !self.surbs.banks.contains_key(&tag) {
            return Err(SendError::UnknownSenderTag);
        }
        self.enqueue(Target::Surbs(tag), &Content::Reply(data.to_vec()), false)
    }

    /// The next real packet, built now (route, SURB-ack, sealing), if any is queued.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if let Some(t) = self.out.ready_acks.pop_front() {
            self.last_route = vec![t.first_hop];
            return Some(t);
        }
        self.routes.as_ref()?;
        while let Some(job) = self.out.queue.pop_front().or_else(|| self.out.background.pop_front()) {
            let QueuedFragment { message, index } = job;
            match self.build_fragment(now, message, index) {
                Ok(Some(t)) => return Some(t),
                Ok(None) => {}
                Err(reason) => self.fail(message, reason),
            }
        }
        None
    }

    /// A forward packet carrying `data` (a SURB-ack, then what is sealed to the
    /// destination) along a fresh route to `gateway` with sampled delays: real
    /// traffic and loop cover are built the same way.
    pub(super) fn forward_packet(
        &mut self,
        gateway: &[u8; 32],
        address: DestinationAddress,
        data: &[u8],
    ) -> Result<(Transmit, Vec<Delay>), SendFailure> {
        let route = self.route_to(gateway)?;
        let delays = self.delays(route.len(), self.config.average_hop_delay);
        let destination = Destination { address, identifier: [0u8; 16] };
        let packet = sphinx::build_packet(
            &mut self.rng,
            &route,
            &destination,
            &delays,
            data,
            PacketSize::Regular.payload_len(),
        )?;
        self.last_route = route.iter().map(|r| r.address).collect();
        Ok((Transmit { first_hop: route[0].address, packet }, delays))
    }

    pub(super) fn build_fragment(
        &mut self,
        now: Instant,
        message: MessageId,
        index: u32,
    ) -> Result<Option<Transmit>, SendFailure> {
        let Some(out) = self.out.outbound.get(&message) else { return Ok(None) };
        let Some(Some(fragment)) = out.fragments.get(index as usize) else { return Ok(None) };
        let encoded = fragment.encoded.clone();
        let is_request = out.is_surb_request;
        let (ack_surb, ack_recovery, ack_delay) = self.surb_to_self(self.config.average_ack_delay)?;
        let mut data = [0u8; PacketSize::Regular.data_len()];
        data[..crate::message::ACK_SURB_LEN].copy_from_slice(&ack_surb.to_bytes());
        let (transmit, forward_delay) = match self.out.outbound[&message].target {
            Target::Recipient(recipient) => {
                let key = self.recipient_key(recipient.encryption);
                let sealed = seal(&mut self.rng, &key, &encoded).ok_or(SendFailure::InvalidRecipient)?;
                data[crate::message::ACK_SURB_LEN..].copy_from_slice(&sealed);
                let (transmit, delays) = self.forward_packet(&recipient.gateway, recipient.destination(), &data)?;
                (transmit, sphinx::total_delay(&delays))
            }
            Target::Surbs(tag) => {
                if !self.surbs.banks.contains_key(&tag) {
                    return Err(SendFailure::NoSurbs);
                }
                let Some(surb) = self.take_surb(now, tag, is_request) else {
                    self.out.blocked.entry(tag).or_default().push_back(QueuedFragment { message, index });
                    return Ok(None);
                };
                let at = crate::message::ACK_SURB_LEN + FRAGMENT_LEN;
                data[crate::message::ACK_SURB_LEN..at].copy_from_slice(&encoded[..]);
                // the recipient may acknowledge in a batch (Content::Acks) instead of by SURB-ack
                data[at..at + 16].copy_from_slice(ack_recovery.identifier());
                let (packet, first_hop) = surb.use_surb(&data, PacketSize::Regular.payload_len())?;
                self.last_route = vec![first_hop];
                // the SURB's creator chose its delays; assume its route is like ours
                let assumed = match self.config.mode {
                    RouteMode::Mixnet => self.config.average_hop_delay * (crate::topology::LAYERS as u32 + 1),
                    RouteMode::Fast => Duration::ZERO,
                };
                (Transmit { first_hop, packet }, assumed)
            }
        };
        let ack_id = *ack_recovery.identifier();
        let deadline = now + self.ack_timeout(forward_delay + ack_delay);
        self.out.acks.insert(ack_id, AckWait { message, index, recovery: ack_recovery });
        self.out.deadlines.insert((deadline, ack_id));
        if let Some(Some(f)) = self.out.outbound.get_mut(&message).and_then(|o| o.fragments.get_mut(index as usize)) {
            if f.attempts > 0 {
                self.stats.retransmissions += 1;
            }
            f.attempts += 1;
            f.ack_ids.push(ack_id);
        }
        self.stats.packets_sent += 1;
        Ok(Some(transmit))
    }

    pub(super) fn fail(&mut self, message: MessageId, reason: SendFailure) {
        if let Some(out) = self.out.outbound.remove(&message) {
            if let (true, Target::Surbs(tag)) = (out.is_surb_request, &out.target)
                && let Some(bank) = self.surbs.banks.get_mut(tag)
            {
                // let a later shortage ask again
                bank.requested = false;
            }
            for f in out.fragments.into_iter().flatten() {
                for id in f.ack_ids {
                    self.out.acks.remove(&id);
                }
            }
            self.stats.messages_failed += 1;
            self.events.push_back(Event::Failed { id: message, reason });
        }
    }

    pub(super) fn acknowledge(&mut self, message: MessageId, index: u32) {
        let Some(out) = self.out.outbound.get_mut(&message) else { return };
        let Some(slot) = out.fragments.get_mut(index as usize) else { return };
        let Some(f) = slot.take() else { return };
        self.stats.acks_received += 1;
        for id in f.ack_ids {
            self.out.acks.remove(&id);
        }
        out.unacked -= 1;
        if out.unacked == 0 {
            self.out.outbound.remove(&message);
            self.stats.messages_delivered += 1;
            self.events.push_back(Event::Delivered(message));
        }
    }

    /// Forgets a message we no longer want sent (no event follows): e.g. replies of a
    /// stream that ended. False if it was not pending.
    pub fn cancel(&mut self, id: MessageId) -> bool {
        let Some(out) = self.out.outbound.remove(&id) else { return false };
        for f in out.fragments.into_iter().flatten() {
            for ack in f.ack_ids {
                self.out.acks.remove(&ack);
            }
        }
        true
    }
}
