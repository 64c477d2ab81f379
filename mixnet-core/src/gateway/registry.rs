//! The clients a gateway keeps storage for, and what their inboxes hold.
//!
//! Only an identity that has authenticated at this gateway gets an inbox: a packet
//! for any other destination is refused, so strangers cannot make the gateway store
//! for made-up identities. The registry is bounded (the least recently seen
//! identity that is not connected is forgotten, with its inbox, for a new one) and
//! persisted by the driver ([`super::Storage::RememberClient`]).
//!
//! Inbox usage is counted per client and in total, in entries and bytes, including
//! stores not yet confirmed, so every bound holds before anything is written.

use std::collections::{BTreeSet, HashMap};

/// A client as the driver persists it (and restores it at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientRecord {
    /// The client's identity.
    pub client: [u8; 32],
    /// Deliveries stored for it.
    pub entries: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// When it last authenticated, as an ordering value (from [`super::Storage::RememberClient`]).
    pub seen: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Usage {
    pub(super) entries: u64,
    pub(super) bytes: u64,
    pub(super) seen: u64,
}

/// Why a delivery is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// No such client has authenticated here.
    Unknown,
    /// The client's inbox is at its bound.
    ClientFull,
    /// The gateway's inbox is at its bound.
    TotalFull,
}

/// The limits of [`Registry`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) entries_per_client: u64,
    pub(super) bytes_per_client: u64,
    pub(super) total_bytes: u64,
}

#[derive(Debug, Default)]
pub(super) struct Registry {
    clients: HashMap<[u8; 32], Usage>,
    by_seen: BTreeSet<(u64, [u8; 32])>,
    clock: u64,
    total_entries: u64,
    total_bytes: u64,
}

impl Registry {
    pub(super) fn restore(&mut self, records: impl IntoIterator<Item = ClientRecord>) {
        for r in records {
            if let Some(old) = self.clients.insert(r.client, Usage { entries: r.entries, bytes: r.bytes, seen: r.seen })
            {
                self.by_seen.remove(&(old.seen, r.client));
                self.total_entries -= old.entries;
                self.total_bytes -= old.bytes;
            }
            self.by_seen.insert((r.seen, r.client));
            self.total_entries += r.entries;
            self.total_bytes += r.bytes;
            self.clock = self.clock.max(r.seen);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.clients.len()
    }

    pub(super) fn totals(&self) -> (u64, u64) {
        (self.total_entries, self.total_bytes)
    }

    pub(super) fn get(&self, client: &[u8; 32]) -> Option<&Usage> {
        self.clients.get(client)
    }

    /// `client` authenticated: returns its ordering value, and the clients forgotten
    /// to make room (the least recently seen ones `connected` says are offline).
    pub(super) fn seen(
        &mut self,
        client: [u8; 32],
        max: usize,
        connected: impl Fn(&[u8; 32]) -> bool,
    ) -> (u64, Vec<[u8; 32]>) {
        self.clock += 1;
        let seen = self.clock;
        let mut forgotten = Vec::new();
        if !self.clients.contains_key(&client) {
            while self.clients.len() >= max.max(1) {
                let Some(&(_, victim)) = self.by_seen.iter().find(|(_, c)| !connected(c)) else { break };
                self.forget(&victim);
                forgotten.push(victim);
            }
        }
        let u = self.clients.entry(client).or_default();
        self.by_seen.remove(&(u.seen, client));
        u.seen = seen;
        self.by_seen.insert((seen, client));
        (seen, forgotten)
    }

    pub(super) fn forget(&mut self, client: &[u8; 32]) {
        if let Some(u) = self.clients.remove(client) {
            self.by_seen.remove(&(u.seen, *client));
            self.total_entries -= u.entries;
            self.total_bytes -= u.bytes;
        }
    }

    /// Reserves room for a delivery of `len` bytes, or says why there is none.
    pub(super) fn reserve(&mut self, client: &[u8; 32], len: u64, limits: &Limits) -> Result<(), Refusal> {
        let Some(u) = self.clients.get_mut(client) else { return Err(Refusal::Unknown) };
        if u.entries + 1 > limits.entries_per_client || u.bytes + len > limits.bytes_per_client {
            return Err(Refusal::ClientFull);
        }
        if self.total_bytes + len > limits.total_bytes {
            return Err(Refusal::TotalFull);
        }
        u.entries += 1;
        u.bytes += len;
        self.total_entries += 1;
        self.total_bytes += len;
        Ok(())
    }

    /// Entries left the inbox (acknowledged, expired, or a store that failed).
    pub(super) fn release(&mut self, client: &[u8; 32], entries: u64, bytes: u64) {
        if let Some(u) = self.clients.get_mut(client) {
            let (e, b) = (entries.min(u.entries), bytes.min(u.bytes));
            u.entries -= e;
            u.bytes -= b;
            self.total_entries -= e;
            self.total_bytes -= b;
        }
    }
}
