//! The durable inbox: every delivery is stored (SQLite, WAL, `synchronous = FULL`:
//! a commit survives power loss) before its SURB-ack is sent, handed to the client
//! a page at a time in `seq` order, and deleted only when the client acknowledges it.
//! Entries older than the maximum age expire. The clients that authenticated here
//! (who may have an inbox) are kept too, so the core's registry and bounds survive a
//! restart. Every bound is the core's (`mixnet_core::gateway`); this file only stores.
//!
//! Runs on its own thread; requests batch into one transaction, and replies come
//! back in the order requests were carried out.

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use mixnet_core::gateway::{ClientRecord, Storage};
use mixnet_core::message::Delivery;
use nodenet::replay::ReplayStore;
use rusqlite::{Connection, params};

/// An answer from the inbox thread.
pub enum InboxReply {
    /// Result of a store.
    Stored(u64, Result<u64, String>),
    /// Result of a load.
    Loaded(u64, Vec<(u64, Delivery)>),
    /// A delete was carried out: client, up to, entries and bytes deleted.
    Deleted([u8; 32], u64, u64, u64),
    /// Entries expired: client, entries, bytes.
    Expired([u8; 32], u64, u64),
}

/// How long stored deliveries are kept.
#[derive(Debug, Clone, Copy)]
pub struct InboxLimits {
    /// Entries older than this are deleted.
    pub max_age: Duration,
}

fn open(path: Option<&Path>) -> rusqlite::Result<Connection> {
    let db = match path {
        Some(p) => Connection::open(p)?,
        None => Connection::open_in_memory()?,
    };
    db.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS inbox (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             client BLOB NOT NULL,
             identifier BLOB NOT NULL,
             payload BLOB NOT NULL,
             created_ms INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS inbox_client ON inbox (client, seq);
         CREATE INDEX IF NOT EXISTS inbox_created ON inbox (created_ms);
         CREATE TABLE IF NOT EXISTS clients (
             client BLOB PRIMARY KEY,
             seen INTEGER NOT NULL
         ) WITHOUT ROWID;
         -- inboxes stored before clients were kept: their owners did authenticate
         INSERT OR IGNORE INTO clients (client, seen) SELECT DISTINCT client, 0 FROM inbox;",
    )?;
    Ok(db)
}

/// The clients stored, with what their inboxes hold (for `Gateway::restore_clients`).
fn clients(db: &Connection) -> rusqlite::Result<Vec<ClientRecord>> {
    let mut stmt = db.prepare(
        "SELECT c.client, c.seen, COUNT(i.seq), COALESCE(SUM(length(i.payload)), 0)
         FROM clients c LEFT JOIN inbox i ON i.client = c.client GROUP BY c.client",
    )?;
    let rows = stmt.query_map([], |r| {
        let client: Vec<u8> = r.get(0)?;
        Ok((client, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (client, seen, entries, bytes) = row?;
        if let Ok(client) = client.as_slice().try_into() {
            out.push(ClientRecord { client, entries: entries as u64, bytes: bytes as u64, seen: seen as u64 });
        }
    }
    Ok(out)
}

/// Opens the inbox (in memory without a path) and starts its thread; replies go to
/// `reply`. Returns the command channel and the stored clients. With `replay`, the
/// replay tags of what a batch stores are made durable before the batch commits.
pub fn start(
    path: Option<&Path>,
    limits: InboxLimits,
    replay: Option<Arc<Mutex<ReplayStore>>>,
    reply: impl Fn(InboxReply) + Send + 'static,
) -> Result<(mpsc::Sender<Storage>, Vec<ClientRecord>), String> {
    let mut db = open(path).map_err(|e| format!("opening the inbox database: {e}"))?;
    let known = clients(&db).map_err(|e| format!("reading the inbox database: {e}"))?;
    let (tx, rx) = mpsc::channel::<Storage>();
    std::thread::Builder::new()
        .name("inbox".into())
        .spawn(move || {
            let mut last_expiry = std::time::Instant::now();
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                batch.extend(rx.try_iter().take(1023));
                // the replay tags of what this batch stores are made durable first: a
                // delivery acknowledged before a crash cannot be replayed after it
                let mut refused = Vec::new();
                if let Some(r) = &replay
                    && batch.iter().any(|c| matches!(c, Storage::Store { .. }))
                    && let Err(e) = r.lock().unwrap_or_else(|e| e.into_inner()).persist()
                {
                    // not durable: store nothing, so nothing is acknowledged (senders retransmit)
                    tracing::error!(error = %e, "writing replay tags failed: refusing this batch's deliveries");
                    batch.retain(|c| match c {
                        Storage::Store { token, .. } => {
                            refused.push(InboxReply::Stored(*token, Err(format!("replay tags not durable: {e}"))));
                            false
                        }
                        _ => true,
                    });
                }
                let replies = refused.into_iter().chain(run_batch(&mut db, limits, batch));
                for r in replies {
                    reply(r);
                }
                if last_expiry.elapsed() > Duration::from_secs(60) {
                    last_expiry = std::time::Instant::now();
                    for r in expire(&db, nodenet::unix_ms(), limits.max_age) {
                        reply(r);
                    }
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok((tx, known))
}

/// Deletes entries older than `max_age` at `now_ms`; says what went, per client.
fn expire(db: &Connection, now_ms: u64, max_age: Duration) -> Vec<InboxReply> {
    let cutoff = now_ms.saturating_sub(max_age.as_millis() as u64);
    let gone = (|| -> rusqlite::Result<Vec<InboxReply>> {
        let mut stmt =
            db.prepare_cached("DELETE FROM inbox WHERE created_ms < ?1 RETURNING client, length(payload)")?;
        let rows = stmt.query_map(params![cutoff as i64], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        let mut per: std::collections::HashMap<[u8; 32], (u64, u64)> = std::collections::HashMap::new();
        for row in rows {
            let (client, len) = row?;
            if let Ok(c) = client.as_slice().try_into() {
                let e = per.entry(c).or_default();
                e.0 += 1;
                e.1 += len as u64;
            }
        }
        Ok(per.into_iter().map(|(c, (n, b))| InboxReply::Expired(c, n, b)).collect())
    })();
    gone.unwrap_or_else(|e| {
        tracing::error!(error = %e, "inbox expiry failed");
        Vec::new()
    })
}

fn load(tx: &Connection, client: &[u8; 32], after: u64, limit: usize) -> rusqlite::Result<Vec<(u64, Delivery)>> {
    let mut stmt = tx.prepare_cached(
        "SELECT seq, identifier, payload FROM inbox WHERE client = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![&client[..], after.min(i64::MAX as u64) as i64, limit as i64], |r| {
        Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?, r.get::<_, Vec<u8>>(2)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, id, payload) = row?;
        if let Ok(identifier) = id.as_slice().try_into() {
            out.push((seq, Delivery { identifier, payload }));
        }
    }
    Ok(out)
}

fn delete(tx: &Connection, client: &[u8; 32], up_to: u64) -> rusqlite::Result<(u64, u64)> {
    let mut stmt = tx.prepare_cached("DELETE FROM inbox WHERE client = ?1 AND seq <= ?2 RETURNING length(payload)")?;
    let rows = stmt.query_map(params![&client[..], up_to.min(i64::MAX as u64) as i64], |r| r.get::<_, i64>(0))?;
    let (mut n, mut bytes) = (0, 0);
    for len in rows {
        n += 1;
        bytes += len? as u64;
    }
    Ok((n, bytes))
}

fn run_batch(db: &mut Connection, limits: InboxLimits, batch: Vec<Storage>) -> Vec<InboxReply> {
    let mut replies = Vec::new();
    let tx = match db.transaction() {
        Ok(t) => t,
        Err(e) => {
            for c in batch {
                if let Storage::Store { token, .. } = c {
                    replies.push(InboxReply::Stored(token, Err(e.to_string())));
                }
            }
            return replies;
        }
    };
    for c in batch {
        match c {
            Storage::Store { token, client, delivery } => {
                let r = tx
                    .execute(
                        "INSERT INTO inbox (client, identifier, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
                        params![&client[..], &delivery.identifier[..], &delivery.payload, nodenet::unix_ms() as i64],
                    )
                    .map(|_| tx.last_insert_rowid() as u64)
                    .map_err(|e| e.to_string());
                replies.push(InboxReply::Stored(token, r));
            }
            Storage::LoadInbox { conn, client, after, limit } => {
                // never hand out what has expired, even between periodic sweeps
                replies.extend(expire(&tx, nodenet::unix_ms(), limits.max_age));
                let rows = load(&tx, &client, after, limit).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "inbox load failed");
                    Vec::new()
                });
                replies.push(InboxReply::Loaded(conn, rows));
            }
            Storage::DeleteInbox { client, up_to } => {
                let (n, bytes) = delete(&tx, &client, up_to).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "inbox delete failed");
                    (0, 0)
                });
                replies.push(InboxReply::Deleted(client, up_to, n, bytes));
            }
            Storage::RememberClient { client, seen } => {
                if let Err(e) = tx.execute(
                    "INSERT INTO clients (client, seen) VALUES (?1, ?2) ON CONFLICT (client) DO UPDATE SET seen = ?2",
                    params![&client[..], seen.min(i64::MAX as u64) as i64],
                ) {
                    tracing::error!(error = %e, "inbox: remembering a client failed");
                }
            }
            Storage::ForgetClient { client } => {
                let r = tx
                    .execute("DELETE FROM inbox WHERE client = ?1", params![&client[..]])
                    .and_then(|_| tx.execute("DELETE FROM clients WHERE client = ?1", params![&client[..]]));
                if let Err(e) = r {
                    tracing::error!(error = %e, "inbox: forgetting a client failed");
                }
            }
        }
    }
    if let Err(e) = tx.commit() {
        tracing::error!(error = %e, "inbox commit failed");
        // nothing in this batch is durable: report the stores as failed
        for r in &mut replies {
            if let InboxReply::Stored(_, res) = r {
                *res = Err(e.to_string());
            }
        }
    }
    replies
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(i: u8) -> Delivery {
        Delivery { identifier: [i; 16], payload: vec![i; 5] }
    }

    #[test]
    fn stores_in_order_pages_deletes_on_ack_expires_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox.sqlite");
        let limits = InboxLimits { max_age: Duration::from_secs(60) };
        let mut db = open(Some(&path)).unwrap();
        let mut cmds = vec![Storage::RememberClient { client: [1; 32], seen: 7 }];
        cmds.extend((1..=4u8).map(|i| Storage::Store { token: u64::from(i), client: [1; 32], delivery: d(i) }));
        cmds.push(Storage::Store { token: 9, client: [2; 32], delivery: d(9) });
        let seqs: Vec<u64> = run_batch(&mut db, limits, cmds)
            .into_iter()
            .filter_map(|r| match r {
                InboxReply::Stored(_, s) => Some(s.unwrap()),
                _ => None,
            })
            .collect();
        assert_eq!(seqs.len(), 5);
        drop(db);

        let mut db = open(Some(&path)).unwrap();
        let mut known = clients(&db).unwrap();
        known.sort_by_key(|c| c.client);
        // client 2's inbox predates the clients table: it is adopted
        assert_eq!(
            known,
            vec![
                ClientRecord { client: [1; 32], entries: 4, bytes: 20, seen: 7 },
                ClientRecord { client: [2; 32], entries: 1, bytes: 5, seen: 0 }
            ]
        );
        let replies = run_batch(
            &mut db,
            limits,
            vec![
                Storage::DeleteInbox { client: [1; 32], up_to: seqs[1] },
                Storage::LoadInbox { conn: 5, client: [1; 32], after: 0, limit: 1 },
                Storage::LoadInbox { conn: 6, client: [1; 32], after: seqs[2], limit: 10 },
            ],
        );
        assert!(matches!(replies[0], InboxReply::Deleted(c, up, 2, 10) if c == [1; 32] && up == seqs[1]));
        match (&replies[1], &replies[2]) {
            (InboxReply::Loaded(5, first), InboxReply::Loaded(6, rest)) => {
                assert_eq!(first, &vec![(seqs[2], d(3))], "a page of one, after the deleted ones");
                assert_eq!(rest, &vec![(seqs[3], d(4))]);
            }
            _ => panic!("two pages"),
        }
        // an hour later everything has expired, and each client is told what went
        let mut gone: Vec<(u64, u64)> = expire(&db, nodenet::unix_ms() + 3_600_000, limits.max_age)
            .into_iter()
            .map(|r| match r {
                InboxReply::Expired(_, n, b) => (n, b),
                _ => panic!(),
            })
            .collect();
        gone.sort();
        assert_eq!(gone, vec![(1, 5), (2, 10)]);
        // forgetting a client deletes it and its inbox
        run_batch(&mut db, limits, vec![Storage::ForgetClient { client: [1; 32] }]);
        assert_eq!(clients(&db).unwrap().len(), 1);
    }
}
