//! The WebTransport listener (HTTP/3 over QUIC, the wtransport crate). A client opens
//! a session at the published URL's path, then one bidirectional stream; on it every
//! session message is `len (2, big-endian) ‖ message` (`mixnet_core::framing`). From
//! there it is the same protocol as over WebSocket: the same actor events, the same
//! close codes and reasons (4000 + code, in a close record on the stream, then as the
//! QUIC application close).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use mixnet_core::framing;
use nodenet::keys::write_secret;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use wtransport::endpoint::IncomingSession;
use wtransport::endpoint::endpoint_side::Server;
use wtransport::{Endpoint, Identity, ServerConfig, VarInt};

use crate::actor::{ClientWriter, Event, Metrics, client_channel, write_loop};
/// How long a client has, after the session is accepted, to open its stream.
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Validity of a generated self-signed certificate (browsers accept at most 14 days
/// for `serverCertificateHashes`).
const SELF_SIGNED_DAYS: u32 = 13;
/// A stored self-signed certificate older than this is replaced at start, so a
/// restarted gateway always has a week of validity ahead.
const SELF_SIGNED_REUSE: Duration = Duration::from_secs(6 * 24 * 3600);

/// The certificate the listener presents.
pub(crate) struct WtIdentity {
    pub identity: Identity,
    /// SHA-256 of the certificate when it is self-signed: browsers pin it.
    pub pinned: Option<[u8; 32]>,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("webtransport {what} {}: {e}", path.display())
}

/// Loads `cert`/`key` (PEM) when configured; otherwise a self-signed ECDSA P-256
/// certificate for `host`, kept in `data_dir` (if any) and reused while fresh.
pub(crate) async fn load_identity(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: Option<&Path>,
    host: &str,
) -> Result<WtIdentity, String> {
    match (cert, key) {
        (Some(c), Some(k)) => {
            let identity = Identity::load_pemfiles(c, k).await.map_err(|e| io_err("certificate", c, e))?;
            return Ok(WtIdentity { identity, pinned: None });
        }
        (None, None) => {}
        _ => return Err("wt_cert and wt_key go together".into()),
    }
    let stored = data_dir.map(|d| (d.join("wt-cert.pem"), d.join("wt-key.pem")));
    if let Some((c, k)) = &stored
        && let Ok(modified) = std::fs::metadata(c).and_then(|m| m.modified())
        && SystemTime::now().duration_since(modified).is_ok_and(|age| age < SELF_SIGNED_REUSE)
        && let Ok(identity) = Identity::load_pemfiles(c, k).await
    {
        return Ok(pinned(identity));
    }
    let identity = Identity::self_signed_builder()
        .subject_alt_names([host])
        .from_now_utc()
        .validity_days(SELF_SIGNED_DAYS)
        .build()
        .map_err(|e| format!("webtransport certificate for {host}: {e}"))?;
    if let Some((c, k)) = &stored {
        write_secret(c, identity.certificate_chain().as_slice()[0].to_pem().as_bytes())
            .map_err(|e| io_err("writing", c, e))?;
        write_secret(k, identity.private_key().to_secret_pem().as_bytes()).map_err(|e| io_err("writing", k, e))?;
    }
    Ok(pinned(identity))
}

fn pinned(identity: Identity) -> WtIdentity {
    let hash = *identity.certificate_chain().as_slice()[0].hash().as_ref();
    WtIdentity { identity, pinned: Some(hash) }
}

/// Binds the QUIC endpoint.
pub(crate) fn bind(addr: SocketAddr, identity: &WtIdentity) -> std::io::Result<Endpoint<Server>> {
    let config = ServerConfig::builder()
        .with_bind_address(addr)
        .with_identity(identity.identity.clone_identity())
        .keep_alive_interval(Some(Duration::from_secs(10)))
        .max_idle_timeout(Some(Duration::from_secs(30)))
        .expect("30 s is a valid QUIC idle timeout")
        .build();
    Endpoint::server(config)
}

/// Closes every session with `code`, waits (at most 2 s) until they are gone, then
/// (at most 3 s more) until the UDP port is free: the endpoint's socket goes only once
/// its driver has finished, after the last handle is dropped. When this returns the
/// port can be bound again (a restart on the same port, or a test holding it).
pub(crate) async fn close(endpoint: Arc<Endpoint<Server>>, code: u16, reason: &str) {
    let addr = endpoint.local_addr().ok();
    endpoint.close(VarInt::from_u32(4000 + u32::from(code)), reason.as_bytes());
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    drop(endpoint);
    let Some(addr) = addr else { return };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while std::net::UdpSocket::bind(addr).is_err() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Accepts sessions at `path` until the task is aborted; aborting it also ends every
/// session and closes the UDP socket. Sessions that fail before their stream is open
/// (TLS, wrong path, no stream) are counted.
pub(crate) async fn serve(
    endpoint: Arc<Endpoint<Server>>,
    path: String,
    events: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
    next: Arc<AtomicU64>,
    client_queue: usize,
) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let (events, metrics, path, next) = (events.clone(), metrics.clone(), path.clone(), next.clone());
                sessions.spawn(async move {
                    if let Err(e) = session(incoming, &path, events, &metrics, &next, client_queue).await {
                        metrics.wt_failed_sessions.inc();
                        tracing::debug!(error = %e, "webtransport session failed");
                    }
                });
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

async fn session(
    incoming: IncomingSession,
    path: &str,
    events: mpsc::Sender<Event>,
    metrics: &Metrics,
    next: &AtomicU64,
    client_queue: usize,
) -> Result<(), String> {
    let request = incoming.await.map_err(|e| format!("handshake: {e}"))?;
    if request.path() != path {
        let wrong = request.path().to_owned();
        request.not_found().await;
        return Err(format!("no session at {wrong}"));
    }
    let connection = request.accept().await.map_err(|e| format!("accepting: {e}"))?;
    let (send, mut recv) = tokio::time::timeout(STREAM_TIMEOUT, connection.accept_bi())
        .await
        .map_err(|_| "no stream opened within 10 s".to_string())?
        .map_err(|e| format!("waiting for the stream: {e}"))?;
    metrics.wt_connections.inc();
    let conn = next.fetch_add(1, Ordering::Relaxed);
    let (tx, rx, kill) = client_channel(client_queue);
    if events.send(Event::Connected { conn, tx }).await.is_err() {
        return Ok(());
    }
    let mut disconnect = Disconnect { events: events.clone(), conn: Some(conn) };
    let writer = tokio::spawn(write_loop(WtWriter { send, connection: connection.clone() }, kill.clone(), rx));
    let mut decoder = framing::Decoder::new();
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let read = tokio::select! {
            biased;
            _ = kill.killed() => break,
            r = recv.read(&mut buf) => r,
        };
        match read {
            Ok(Some(n)) => {
                decoder.push(&buf[..n]);
                while let Some(record) = decoder.next_record() {
                    let message = match record {
                        framing::Record::Message(m) => m,
                        // a client closing the stream its own way
                        framing::Record::Close { .. } => break 'read,
                    };
                    if events.send(Event::Message { conn, data: message }).await.is_err() {
                        break 'read;
                    }
                }
            }
            Ok(None) if decoder.pending() == 0 => break,
            Ok(None) => {
                // a truncated message is a broken client, counted like a bad WebSocket message
                metrics.ws_bad_messages.inc();
                tracing::debug!(pending = decoder.pending(), "webtransport stream ended inside a message");
                break;
            }
            Err(e) => {
                tracing::debug!(error = %e, "webtransport stream closed");
                break;
            }
        }
    }
    disconnect.send().await;
    // let a queued close go out
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    Ok(())
}

/// Tells the actor a connection is gone, also when the session task is aborted (the
/// listener closed) rather than finishing.
struct Disconnect {
    events: mpsc::Sender<Event>,
    conn: Option<u64>,
}

impl Disconnect {
    async fn send(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.events.send(Event::Disconnected { conn }).await;
        }
    }
}

impl Drop for Disconnect {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = self.events.try_send(Event::Disconnected { conn });
        }
    }
}

/// A WebTransport session's stream: session messages framed by length, and a close
/// record before the QUIC application close.
struct WtWriter {
    send: wtransport::SendStream,
    connection: wtransport::Connection,
}

impl ClientWriter for WtWriter {
    async fn send(&mut self, message: Vec<u8>) -> bool {
        let Ok(framed) = framing::encode(&message) else { return false };
        self.send.write_all(&framed).await.is_ok()
    }

    async fn close(mut self, code: u16, reason: String) {
        // the close record tells the client why; then give it a moment to close the
        // session itself before closing it from here
        let record = framing::encode_close(4000 + code, &reason);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.send.write_all(&record)).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.send.finish()).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), self.connection.closed()).await;
        self.connection.close(VarInt::from_u32(4000 + u32::from(code)), reason.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn certificates_self_signed_kept_or_configured() {
        let dir = tempfile::tempdir().unwrap();
        // self-signed, kept in the data directory and reused at the next start
        let a = load_identity(None, None, Some(dir.path()), "127.0.0.1").await.unwrap();
        let hash = a.pinned.expect("a self-signed certificate is pinned");
        let b = load_identity(None, None, Some(dir.path()), "127.0.0.1").await.unwrap();
        assert_eq!(b.pinned, Some(hash));
        // without a data directory, a new one each time
        let c = load_identity(None, None, None, "127.0.0.1").await.unwrap();
        assert_ne!(c.pinned, Some(hash));
        // a configured certificate is published without a hash (browsers must trust it)
        let (cert, key) = (dir.path().join("wt-cert.pem"), dir.path().join("wt-key.pem"));
        let d = load_identity(Some(&cert), Some(&key), None, "gw.example").await.unwrap();
        assert_eq!(d.pinned, None);
        assert!(load_identity(Some(&cert), None, None, "gw.example").await.is_err(), "cert without key");
        let missing = dir.path().join("missing.pem");
        let err = load_identity(Some(&missing), Some(&key), None, "gw.example").await.err().unwrap();
        assert!(err.contains("missing.pem"), "{err}");
    }
}
