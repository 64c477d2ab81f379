//! SURBs: ours handed out for replies (and the keys to open what comes back), and
//! the per-sender banks of SURBs we reply with: one bound per sender, a sender count and
//! a total, the least recently active sender dropped first; top-ups asked for as they
//! run low.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Our reply keys, and the SURBs others gave us to reply with.
pub(super) struct SurbStores {
    /// Keys of the SURBs we handed out, to open the replies that come back.
    pub(super) reply_keys: FifoMap<SurbId, ReplyKey>,
    /// The tag we are known by to each recipient we gave SURBs.
    pub(super) tags: HashMap<Recipient, SenderTag>,
    /// Whom each of our tags was given to.
    pub(super) tag_recipients: HashMap<SenderTag, Recipient>,
    /// SURBs from each anonymous sender.
    pub(super) banks: HashMap<SenderTag, SurbBank>,
    /// Replies that arrived through our SURBs, per tag, since the last top-up.
    pub(super) reply_arrivals: HashMap<SenderTag, u16>,
}

impl SurbStores {
    pub(super) fn new(max_reply_keys: usize) -> Self {
        Self {
            reply_keys: FifoMap::new(max_reply_keys),
            tags: HashMap::new(),
            tag_recipients: HashMap::new(),
            banks: HashMap::new(),
            reply_arrivals: HashMap::new(),
        }
    }
}

pub(super) struct ReplyKey {
    pub(super) recovery: SurbRecovery,
    pub(super) tag: SenderTag,
}

pub(super) struct SurbBank {
    /// Oldest first (used first).
    pub(super) surbs: VecDeque<Surb>,
    pub(super) requested: bool,
    /// When SURBs last arrived or were used.
    pub(super) last_active: Instant,
    /// When SURBs last arrived: past `surb_max_age` all of them are that old.
    pub(super) refilled: Instant,
}

impl SurbBank {
    pub(super) fn new(now: Instant) -> Self {
        Self { surbs: VecDeque::new(), requested: false, last_active: now, refilled: now }
    }
}

/// SURBs kept back so a request for more (and its retransmissions) can be sent.
pub(super) const SURB_RESERVE: usize = 3;

/// Why a SURB to ourselves could not be made: exactly the two ways, so each caller's
/// error type takes them without a catch-all.
pub(super) enum SurbError {
    Topology(TopologyError),
    Sphinx(sphinx::SphinxError),
}

impl From<TopologyError> for SurbError {
    fn from(e: TopologyError) -> Self {
        Self::Topology(e)
    }
}

impl From<sphinx::SphinxError> for SurbError {
    fn from(e: sphinx::SphinxError) -> Self {
        Self::Sphinx(e)
    }
}

impl From<SurbError> for SendError {
    fn from(e: SurbError) -> Self {
        match e {
            SurbError::Topology(t) => Self::Topology(t),
            SurbError::Sphinx(s) => Self::Sphinx(s),
        }
    }
}

impl From<SurbError> for SendFailure {
    fn from(e: SurbError) -> Self {
        match e {
            SurbError::Topology(t) => Self::Topology(t),
            SurbError::Sphinx(s) => Self::Sphinx(s),
        }
    }
}

impl<R: CryptoRng> Messenger<R> {
    /// A SURB routed back to us. Returns it with its recovery and total route delay.
    pub(super) fn surb_to_self(&mut self, mean_delay: Duration) -> Result<(Surb, SurbRecovery, Duration), SurbError> {
        let gateway = self.self_address.gateway;
        let route = self.route_to(&gateway)?;
        let delays = self.delays(route.len(), mean_delay);
        let identifier = self.random_surb_id();
        let destination = Destination { address: DestinationAddress(self.keys.identity), identifier };
        let (surb, recovery) = sphinx::create_surb(&mut self.rng, &route, &delays, &destination)?;
        Ok((surb, recovery, sphinx::total_delay(&delays)))
    }

    pub(super) fn reply_surbs(&mut self, now: Instant, tag: SenderTag, n: u16) -> Result<Vec<Surb>, SendError> {
        let mut surbs = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            let (surb, recovery, _) = self.surb_to_self(self.config.average_hop_delay)?;
            let id = *recovery.identifier();
            // past `max_outstanding_reply_surbs` the oldest are forgotten
            let forgotten = self.surbs.reply_keys.insert(now, id, ReplyKey { recovery, tag });
            self.stats.reply_keys_forgotten += forgotten as u64;
            surbs.push(surb);
        }
        Ok(surbs)
    }

    /// Takes a SURB for `tag`, keeping one back unless this is the request for more;
    /// asks for more when the supply runs low.
    pub(super) fn take_surb(&mut self, now: Instant, tag: SenderTag, is_request: bool) -> Option<Surb> {
        let max_age = self.config.surb_max_age;
        let bank = self.surbs.banks.get_mut(&tag)?;
        bank.last_active = now;
        if now.saturating_duration_since(bank.refilled) >= max_age {
            // nothing arrived for so long that every SURB held is stale (keys rotated)
            self.stats.surbs_dropped += bank.surbs.len() as u64;
            bank.surbs.clear();
        }
        let usable = if is_request { bank.surbs.len() } else { bank.surbs.len().saturating_sub(SURB_RESERVE) };
        let surb = if usable > 0 { bank.surbs.pop_front() } else { None };
        let low = bank.surbs.len() <= self.config.surb_low_water;
        if low && !bank.requested && !is_request {
            bank.requested = true;
            let batch = self.config.surb_request_batch;
            // the request may use the reserve; it cannot itself be too large
            let _ = self.enqueue(Target::Surbs(tag), &Content::SurbRequest(batch), true);
        }
        surb
    }

    /// Counts a reply that used one of our SURBs for `tag`; every
    /// `surb_replenish_batch` replies, sends as many fresh SURBs.
    pub(super) fn replenish(&mut self, now: Instant, tag: SenderTag) {
        let batch = self.config.surb_replenish_batch;
        if batch == 0 {
            return;
        }
        let count = self.surbs.reply_arrivals.entry(tag).or_default();
        *count += 1;
        if *count < batch {
            return;
        }
        *count = 0;
        // refills already waiting are enough: more would only lengthen the backlog (a
        // replier that runs low asks, and its request is answered at normal priority)
        if self.out.background.len() >= MAX_BACKGROUND_JOBS {
            return;
        }
        let Some(&recipient) = self.surbs.tag_recipients.get(&tag) else { return };
        if let Ok(surbs) = self.reply_surbs(now, tag, batch) {
            let topup = Content::SurbTopUp { tag, surbs };
            let _ = self.enqueue_with(Target::Recipient(recipient), &topup, false, Priority::Background);
        }
    }

    /// Keeps SURBs from `tag` within the per-sender, sender-count and total bounds.
    pub(super) fn add_surbs(&mut self, now: Instant, tag: SenderTag, surbs: Vec<Surb>) {
        if !self.surbs.banks.contains_key(&tag) && self.surbs.banks.len() >= self.config.max_surb_senders.max(1) {
            self.drop_least_active_bank(&tag);
        }
        // one sender alone never holds more than the total either
        let cap = self.config.max_surbs_per_sender.min(self.config.max_surbs_total);
        let bank = self.surbs.banks.entry(tag).or_insert_with(|| SurbBank::new(now));
        bank.last_active = now;
        bank.refilled = now;
        bank.surbs.extend(surbs);
        let mut dropped = 0;
        while bank.surbs.len() > cap {
            bank.surbs.pop_front();
            dropped += 1;
        }
        self.stats.surbs_dropped += dropped;
        while self.surbs.banks.values().map(|b| b.surbs.len()).sum::<usize>() > self.config.max_surbs_total
            && self.drop_least_active_bank(&tag)
        {}
    }

    /// Forgets the SURBs of the least recently active sender other than `keep`.
    /// The replies waiting for its SURBs fail (their senders learn it at once).
    pub(super) fn drop_least_active_bank(&mut self, keep: &SenderTag) -> bool {
        let victim =
            self.surbs.banks.iter().filter(|(t, _)| *t != keep).min_by_key(|(_, b)| b.last_active).map(|(t, _)| *t);
        let Some(victim) = victim else { return false };
        if let Some(b) = self.surbs.banks.remove(&victim) {
            self.stats.surbs_dropped += b.surbs.len() as u64;
        }
        for QueuedFragment { message, .. } in self.out.blocked.remove(&victim).unwrap_or_default() {
            self.fail(message, SendFailure::NoSurbs);
        }
        true
    }
}
