//! The durable inbox: every delivery is stored (SQLite, WAL) before its SURB-ack is
//! sent, handed to the client in `seq` order, and deleted only when the client
//! acknowledges it. Per-client cap; entries older than the maximum age expire.
//!
//! Runs on its own thread; requests batch into one transaction.

use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use mixnet_core::message::Delivery;
use nodenet::replay::ReplayStore;
use rusqlite::{Connection, params};

/// A request to the inbox thread.
pub enum InboxCommand {
    /// Store; answer with the sequence number or why not.
    Store {
        /// Echoed back.
        token: u64,
        /// The client.
        client: [u8; 32],
        /// What to store.
        delivery: Delivery,
    },
    /// Load everything stored for the client, ascending.
    Load {
        /// Echoed back.
        conn: u64,
        /// The client.
        client: [u8; 32],
    },
    /// Delete up to and including `up_to`.
    Delete {
        /// The client.
        client: [u8; 32],
        /// Highest acknowledged `seq`.
        up_to: u64,
    },
}

/// An answer from the inbox thread.
pub enum InboxReply {
    /// Result of a store.
    Stored(u64, Result<u64, String>),
    /// Result of a load.
    Loaded(u64, Vec<(u64, Delivery)>),
}

/// Limits.
#[derive(Debug, Clone, Copy)]
pub struct InboxLimits {
    /// Most entries per client; further stores fail (and the senders retransmit later).
    pub per_client: u64,
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
         PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS inbox (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             client BLOB NOT NULL,
             identifier BLOB NOT NULL,
             payload BLOB NOT NULL,
             created_ms INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS inbox_client ON inbox (client, seq);",
    )?;
    Ok(db)
}

/// Opens the inbox (in memory without a path) and starts its thread; replies go to `reply`.
pub fn start(
    path: Option<&Path>,
    limits: InboxLimits,
    replay: Option<Arc<Mutex<ReplayStore>>>,
    reply: impl Fn(InboxReply) + Send + 'static,
) -> Result<mpsc::Sender<InboxCommand>, String> {
    let mut db = open(path).map_err(|e| format!("opening the inbox database: {e}"))?;
    let (tx, rx) = mpsc::channel::<InboxCommand>();
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
                    && batch.iter().any(|c| matches!(c, InboxCommand::Store { .. }))
                    && let Err(e) = r.lock().unwrap_or_else(|e| e.into_inner()).persist()
                {
                    // not durable: store nothing, so nothing is acknowledged (senders retransmit)
                    tracing::error!(error = %e, "writing replay tags failed: refusing this batch's deliveries");
                    batch.retain(|c| match c {
                        InboxCommand::Store { token, .. } => {
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
                    expire(&db, nodenet::unix_ms(), limits.max_age);
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(tx)
}

/// Deletes entries older than `max_age` at `now_ms`.
fn expire(db: &Connection, now_ms: u64, max_age: Duration) {
    let cutoff = now_ms.saturating_sub(max_age.as_millis() as u64);
    if let Err(e) = db.execute("DELETE FROM inbox WHERE created_ms < ?1", params![cutoff as i64]) {
        tracing::error!(error = %e, "inbox expiry failed");
    }
}

fn run_batch(db: &mut Connection, limits: InboxLimits, batch: Vec<InboxCommand>) -> Vec<InboxReply> {
    let mut replies = Vec::new();
    let tx = match db.transaction() {
        Ok(t) => t,
        Err(e) => {
            for c in batch {
                if let InboxCommand::Store { token, .. } = c {
                    replies.push(InboxReply::Stored(token, Err(e.to_string())));
                }
            }
            return replies;
        }
    };
    for c in batch {
        match c {
            InboxCommand::Store { token, client, delivery } => {
                let r = (|| -> rusqlite::Result<Result<u64, String>> {
                    let count: i64 =
                        tx.query_row("SELECT COUNT(*) FROM inbox WHERE client = ?1", params![&client[..]], |r| {
                            r.get(0)
                        })?;
                    if count as u64 >= limits.per_client {
                        return Ok(Err(format!("inbox full ({count} entries)")));
                    }
                    tx.execute(
                        "INSERT INTO inbox (client, identifier, payload, created_ms) VALUES (?1, ?2, ?3, ?4)",
                        params![&client[..], &delivery.identifier[..], &delivery.payload, nodenet::unix_ms() as i64],
                    )?;
                    Ok(Ok(tx.last_insert_rowid() as u64))
                })();
                replies.push(InboxReply::Stored(token, r.unwrap_or_else(|e| Err(e.to_string()))));
            }
            InboxCommand::Load { conn, client } => {
                // never hand out what has expired, even between periodic sweeps
                expire(&tx, nodenet::unix_ms(), limits.max_age);
                let rows = (|| -> rusqlite::Result<Vec<(u64, Delivery)>> {
                    let mut stmt =
                        tx.prepare_cached("SELECT seq, identifier, payload FROM inbox WHERE client = ?1 ORDER BY seq")?;
                    let rows = stmt.query_map(params![&client[..]], |r| {
                        let seq: i64 = r.get(0)?;
                        let id: Vec<u8> = r.get(1)?;
                        let payload: Vec<u8> = r.get(2)?;
                        Ok((seq as u64, id, payload))
                    })?;
                    let mut out = Vec::new();
                    for row in rows {
                        let (seq, id, payload) = row?;
                        if let Ok(identifier) = id.as_slice().try_into() {
                            out.push((seq, Delivery { identifier, payload }));
                        }
                    }
                    Ok(out)
                })();
                replies.push(InboxReply::Loaded(conn, r_or_log(rows)));
            }
            InboxCommand::Delete { client, up_to } => {
                if let Err(e) = tx.execute(
                    "DELETE FROM inbox WHERE client = ?1 AND seq <= ?2",
                    params![&client[..], up_to.min(i64::MAX as u64) as i64],
                ) {
                    tracing::error!(error = %e, "inbox delete failed");
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

fn r_or_log(r: rusqlite::Result<Vec<(u64, Delivery)>>) -> Vec<(u64, Delivery)> {
    r.unwrap_or_else(|e| {
        tracing::error!(error = %e, "inbox load failed");
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(i: u8) -> Delivery {
        Delivery { identifier: [i; 16], payload: vec![i; 5] }
    }

    fn run(db: &mut Connection, limits: InboxLimits, cmds: Vec<InboxCommand>) -> Vec<InboxReply> {
        run_batch(db, limits, cmds)
    }

    #[test]
    fn stores_in_order_caps_per_client_deletes_on_ack_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inbox.sqlite");
        let limits = InboxLimits { per_client: 3, max_age: Duration::from_secs(60) };
        let mut db = open(Some(&path)).unwrap();
        let stores: Vec<_> =
            (1..=4u8).map(|i| InboxCommand::Store { token: u64::from(i), client: [1; 32], delivery: d(i) }).collect();
        let replies = run(&mut db, limits, stores);
        let seqs: Vec<Result<u64, String>> = replies
            .into_iter()
            .map(|r| match r {
                InboxReply::Stored(_, s) => s,
                InboxReply::Loaded(..) => panic!(),
            })
            .collect();
        assert!(seqs[..3].iter().all(Result::is_ok));
        assert!(seqs[3].as_ref().unwrap_err().contains("inbox full"), "{seqs:?}");
        // another client is not affected by the first one's cap
        let other = run(&mut db, limits, vec![InboxCommand::Store { token: 9, client: [2; 32], delivery: d(9) }]);
        assert!(matches!(&other[0], InboxReply::Stored(9, Ok(_))));
        drop(db);

        let mut db = open(Some(&path)).unwrap();
        let second = *seqs[1].as_ref().unwrap();
        let loaded = run(
            &mut db,
            limits,
            vec![
                InboxCommand::Delete { client: [1; 32], up_to: second },
                InboxCommand::Load { conn: 5, client: [1; 32] },
            ],
        );
        match &loaded[0] {
            InboxReply::Loaded(5, entries) => {
                assert_eq!(entries.len(), 1);
                assert_eq!(entries[0].1, d(3));
            }
            _ => panic!(),
        }
        // an hour later everything has expired
        expire(&db, nodenet::unix_ms() + 3_600_000, limits.max_age);
        let loaded = run(&mut db, limits, vec![InboxCommand::Load { conn: 6, client: [2; 32] }]);
        assert!(matches!(&loaded[0], InboxReply::Loaded(6, e) if e.is_empty()));
    }
}
