//! Every rustls call in one place (rustls 0.24 will change these; this file absorbs it).
//! rustls does no IO: ciphertext goes in with `read_tls`, out with `write_tls`, and
//! plaintext through `reader()` / `writer()`.

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::time_provider::TimeProvider;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// A TLS failure (certificate problems name the reason).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TlsError {
    /// rustls refused: the handshake, a certificate, a record, an alert.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
    /// An extra root is not a PEM certificate.
    #[error("extraRoots: not a PEM certificate: {0}")]
    RootNotPem(String),
    /// An extra root is a certificate rustls cannot use as a trust anchor.
    #[error("extraRoots: unusable certificate: {0}")]
    RootUnusable(rustls::Error),
    /// `extraRoots` holds text but no certificate.
    #[error("extraRoots: no PEM certificate found")]
    NoRoots,
    /// The host is neither a DNS name nor an IP literal.
    #[error("{0:?} is not a valid server name")]
    ServerName(String),
    /// Moving bytes through rustls's buffers failed.
    #[error("{0}")]
    Io(String),
}

/// The client configuration: TLS 1.2 and 1.3 with ring, the Mozilla roots from
/// webpki-roots plus `extra_roots_pem`, ALPN `http/1.1`, and **no session
/// resumption** (no tickets or session ids that could link two visits to a site).
/// `time` tells rustls the time (browsers: `Date.now()`; natively the system clock).
pub fn client_config(extra_roots_pem: &[u8], time: Arc<dyn TimeProvider>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut added = 0;
    for cert in CertificateDer::pem_slice_iter(extra_roots_pem) {
        let cert = cert.map_err(|e| TlsError::RootNotPem(e.to_string()))?;
        roots.add(cert).map_err(TlsError::RootUnusable)?;
        added += 1;
    }
    if added == 0 && !extra_roots_pem.iter().all(u8::is_ascii_whitespace) {
        return Err(TlsError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_details(provider, time)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// One TLS client session over a byte stream.
pub struct Tls {
    conn: ClientConnection,
}

impl Tls {
    /// Starts a session with `host` (a DNS name or an IP literal).
    pub fn new(config: Arc<ClientConfig>, host: &str) -> Result<Self, TlsError> {
        let name = ServerName::try_from(host.to_owned()).map_err(|_| TlsError::ServerName(host.to_owned()))?;
        let mut conn = ClientConnection::new(config, name)?;
        // rustls holds at most 64 KiB of plaintext (before the handshake ends) or
        // ciphertext by default and refuses the rest: a request body is written whole,
        // and its size is the application's own (it is in memory already)
        conn.set_buffer_limit(None);
        Ok(Self { conn })
    }

    /// Queues plaintext (held until the handshake is done).
    pub fn write(&mut self, plaintext: &[u8]) -> Result<(), TlsError> {
        self.conn.writer().write_all(plaintext).map_err(|e| TlsError::Io(e.to_string()))
    }

    /// Feeds ciphertext from the server; returns the plaintext it carried and whether
    /// the server closed the session (close_notify).
    pub fn read(&mut self, mut ciphertext: &[u8]) -> Result<(Vec<u8>, bool), TlsError> {
        let mut plain = Vec::new();
        let mut closed = false;
        loop {
            if !ciphertext.is_empty() {
                self.conn.read_tls(&mut ciphertext).map_err(|e| TlsError::Io(e.to_string()))?;
                self.conn.process_new_packets()?;
            }
            let mut buf = [0u8; 16 * 1024];
            loop {
                match self.conn.reader().read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => plain.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(TlsError::Io(e.to_string())),
                }
            }
            if ciphertext.is_empty() || closed {
                return Ok((plain, closed));
            }
        }
    }

    /// Ciphertext to send (handshake messages, records, alerts).
    pub fn take_output(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut out).is_err() {
                break;
            }
        }
        out
    }

    /// Sends close_notify (then [`Self::take_output`]).
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }

    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }
}
