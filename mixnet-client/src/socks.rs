//! A SOCKS proxy whose CONNECTs become exit streams, so any application that speaks
//! SOCKS (`curl --socks5-hostname`, browsers, `ssh -o ProxyCommand`, …) reaches TCP
//! servers through the mixnet. SOCKS5 (RFC 1928) without authentication, and SOCKS4
//! and SOCKS4a; CONNECT only (BIND and UDP ASSOCIATE are refused with "command not
//! supported"). Names are resolved by the exit, never here: give clients the
//! `socks5h` / `--socks5-hostname` form so the name does not leak to a local resolver.
//!
//! Bounds: at most [`SocksConfig::max_connections`] proxied connections (further
//! ones wait in the listen backlog), a handshake must arrive within
//! [`SocksConfig::handshake_timeout`], and an exit stream must open within
//! [`SocksConfig::open_timeout`].

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use mixnet_core::address::Recipient;
use mixnet_core::stream::OpenFailure;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{ClientError, ClientHandle, MixStream};

/// How the proxy behaves.
#[derive(Debug, Clone)]
pub struct SocksConfig {
    /// The exit that makes the connections.
    pub exit: Recipient,
    /// Proxied connections at once.
    pub max_connections: usize,
    /// Time for a client to finish the SOCKS handshake.
    pub handshake_timeout: Duration,
    /// Time for the exit to open the connection (mixnet mode takes seconds).
    pub open_timeout: Duration,
}

impl SocksConfig {
    /// Defaults for connections through `exit`.
    pub fn new(exit: Recipient) -> Self {
        Self {
            exit,
            max_connections: 256,
            handshake_timeout: Duration::from_secs(10),
            open_timeout: Duration::from_secs(60),
        }
    }
}

/// Why a SOCKS handshake failed (logged; the client gets the protocol's reply code).
#[derive(Debug, thiserror::Error)]
pub enum SocksError {
    /// Reading or writing the client socket failed.
    #[error("client socket: {0}")]
    Io(#[from] std::io::Error),
    /// The client spoke neither SOCKS4 nor SOCKS5.
    #[error("not a SOCKS request (first byte {0:#04x})")]
    Version(u8),
    /// The client offered no method we accept (we take "no authentication").
    #[error("the client offered no acceptable authentication method")]
    NoAcceptableMethod,
    /// BIND, UDP ASSOCIATE or an unknown command.
    #[error("command {0} is not supported (CONNECT only)")]
    Command(u8),
    /// An address type other than IPv4, domain name and IPv6.
    #[error("address type {0} is not supported")]
    AddressType(u8),
    /// A field was out of range (an empty or non-UTF-8 host name, an over-long SOCKS4 field).
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The exit could not open the connection.
    #[error("{0}")]
    Open(ClientError),
    /// The exit did not answer in time.
    #[error("the exit did not open the connection within {0:?}")]
    OpenTimeout(Duration),
}

/// A CONNECT request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRequest {
    /// SOCKS 4 or 5 (the reply format).
    pub version: u8,
    /// Host name or IP literal, as the exit will resolve it.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Serves SOCKS clients from `listener` until the client stops; each connection is
/// handled on its own task.
pub async fn serve(listener: TcpListener, client: ClientHandle, config: SocksConfig) -> std::io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let config = Arc::new(config);
    loop {
        let permit = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (socket, peer) = listener.accept().await?;
        let (client, config) = (client.clone(), config.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = proxy(socket, &client, &config).await {
                tracing::info!(%peer, error = %e, "SOCKS connection failed");
            }
        });
    }
}

/// One proxied connection: the handshake, the exit stream, then bytes both ways.
pub async fn proxy(mut socket: TcpStream, client: &ClientHandle, config: &SocksConfig) -> Result<(), SocksError> {
    let _ = socket.set_nodelay(true);
    let request = match tokio::time::timeout(config.handshake_timeout, read_request(&mut socket)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(SocksError::HandshakeTimeout),
    };
    tracing::debug!(host = %request.host, port = request.port, "SOCKS CONNECT");
    let opened =
        tokio::time::timeout(config.open_timeout, client.open_stream(config.exit, &request.host, request.port));
    let mut stream: MixStream = match opened.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            socket.write_all(&reply(request.version, open_failure_reply(&e))).await?;
            return Err(SocksError::Open(e));
        }
        Err(_) => {
            socket.write_all(&reply(request.version, Reply::TtlExpired)).await?;
            return Err(SocksError::OpenTimeout(config.open_timeout));
        }
    };
    socket.write_all(&reply(request.version, Reply::Succeeded)).await?;
    tokio::io::copy_bidirectional(&mut socket, &mut stream).await?;
    Ok(())
}

/// The SOCKS5 reply code for a stream the exit could not open (RFC 1928 §6), from
/// its failure code, so `curl` and browsers tell a refused port from a policy.
fn open_failure_reply(e: &ClientError) -> Reply {
    let ClientError::OpenFailed(e) = e else { return Reply::GeneralFailure };
    match e.failure {
        OpenFailure::Policy => Reply::NotAllowed,
        OpenFailure::NotFound | OpenFailure::Unreachable => Reply::HostUnreachable,
        OpenFailure::Refused => Reply::ConnectionRefused,
        OpenFailure::TimedOut => Reply::TtlExpired,
        OpenFailure::Busy | OpenFailure::Other => Reply::GeneralFailure,
    }
}

/// SOCKS5 reply codes (SOCKS4 has only granted / rejected).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    Succeeded = 0,
    GeneralFailure = 1,
    NotAllowed = 2,
    HostUnreachable = 4,
    ConnectionRefused = 5,
    TtlExpired = 6,
    CommandNotSupported = 7,
    AddressTypeNotSupported = 8,
}

/// Tells the client why its request is refused (the reply code for `error`), then
/// returns `error`.
async fn refuse<S: tokio::io::AsyncWrite + Unpin, T>(
    s: &mut S,
    version: u8,
    error: SocksError,
) -> Result<T, SocksError> {
    let code = match error {
        SocksError::Command(_) => Reply::CommandNotSupported,
        SocksError::AddressType(_) => Reply::AddressTypeNotSupported,
        _ => Reply::GeneralFailure,
    };
    s.write_all(&reply(version, code)).await?;
    Err(error)
}

fn reply(version: u8, code: Reply) -> Vec<u8> {
    if version == 4 {
        // VN 0, CD 90 granted / 91 rejected, DSTPORT, DSTIP (ignored by clients)
        let cd = if code == Reply::Succeeded { 90 } else { 91 };
        return vec![0, cd, 0, 0, 0, 0, 0, 0];
    }
    // VER, REP, RSV, ATYP IPv4, BND.ADDR 0.0.0.0, BND.PORT 0: the exit's address is not ours to tell
    vec![5, code as u8, 0, 1, 0, 0, 0, 0, 0, 0]
}

/// Reads a SOCKS4/4a or SOCKS5 CONNECT request, answering SOCKS5's method
/// negotiation on the way, and the refusal when the request is one we do not serve.
pub async fn read_request<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(
    socket: &mut S,
) -> Result<ConnectRequest, SocksError> {
    match socket.read_u8().await? {
        5 => read_socks5(socket).await,
        4 => read_socks4(socket).await,
        v => Err(SocksError::Version(v)),
    }
}

async fn read_socks5<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) -> Result<ConnectRequest, SocksError> {
    let n = s.read_u8().await?;
    let mut methods = vec![0u8; usize::from(n)];
    s.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        s.write_all(&[5, 0xFF]).await?;
        return Err(SocksError::NoAcceptableMethod);
    }
    s.write_all(&[5, 0]).await?;
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await?;
    let [version, command, _reserved, address_type] = head;
    if version != 5 {
        return refuse(s, 5, SocksError::Malformed("the request's version is not 5")).await;
    }
    // the address comes before we may refuse the command, but nothing after it matters
    let host = match address_type {
        1 => {
            let mut a = [0u8; 4];
            s.read_exact(&mut a).await?;
            Ok(Ipv4Addr::from(a).to_string())
        }
        3 => {
            let len = s.read_u8().await?;
            let mut name = vec![0u8; usize::from(len)];
            s.read_exact(&mut name).await?;
            host_name(name)
        }
        4 => {
            let mut a = [0u8; 16];
            s.read_exact(&mut a).await?;
            Ok(Ipv6Addr::from(a).to_string())
        }
        t => return refuse(s, 5, SocksError::AddressType(t)).await,
    };
    let host = match host {
        Ok(h) => h,
        Err(e) => return refuse(s, 5, e).await,
    };
    let port = s.read_u16().await?;
    if command != 1 {
        return refuse(s, 5, SocksError::Command(command)).await;
    }
    Ok(ConnectRequest { version: 5, host, port })
}

/// SOCKS4 user IDs and SOCKS4a names are NUL-terminated; this caps them.
const MAX_SOCKS4_FIELD: usize = 255;

async fn read_socks4<S: AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) -> Result<ConnectRequest, SocksError> {
    let command = s.read_u8().await?;
    let port = s.read_u16().await?;
    let mut ip = [0u8; 4];
    s.read_exact(&mut ip).await?;
    let user = read_nul_terminated(s).await;
    if command != 1 {
        return refuse(s, 4, SocksError::Command(command)).await;
    }
    // 0.0.0.x with x != 0: SOCKS4a, the name follows the user ID
    let host = match user {
        Ok(_) if ip[..3] == [0, 0, 0] && ip[3] != 0 => read_nul_terminated(s).await.and_then(host_name),
        Ok(_) => Ok(Ipv4Addr::from(ip).to_string()),
        Err(e) => Err(e),
    };
    match host {
        Ok(host) => Ok(ConnectRequest { version: 4, host, port }),
        Err(e @ SocksError::Malformed(_)) => refuse(s, 4, e).await,
        Err(e) => Err(e),
    }
}

async fn read_nul_terminated<S: AsyncRead + Unpin>(s: &mut S) -> Result<Vec<u8>, SocksError> {
    let mut out = Vec::new();
    loop {
        match s.read_u8().await? {
            0 => return Ok(out),
            _ if out.len() == MAX_SOCKS4_FIELD => return Err(SocksError::Malformed("SOCKS4 field over 255 bytes")),
            b => out.push(b),
        }
    }
}

fn host_name(name: Vec<u8>) -> Result<String, SocksError> {
    let name = String::from_utf8(name).map_err(|_| SocksError::Malformed("the host name is not UTF-8"))?;
    if name.is_empty() {
        return Err(SocksError::Malformed("empty host name"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(input: &[u8]) -> (Result<ConnectRequest, SocksError>, Vec<u8>) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        b.write_all(input).await.unwrap();
        drop(b.shutdown().await);
        let r = read_request(&mut a).await;
        drop(a.shutdown().await);
        let mut written = Vec::new();
        b.read_to_end(&mut written).await.unwrap();
        (r, written)
    }

    #[tokio::test]
    async fn socks5_connect_by_name_ipv4_and_ipv6() {
        let (r, w) =
            parse(&[5, 1, 0, 5, 1, 0, 3, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't', 0x1F, 0x90]).await;
        assert_eq!(r.unwrap(), ConnectRequest { version: 5, host: "localhost".into(), port: 8080 });
        assert_eq!(w, [5, 0]);
        let (r, _) = parse(&[5, 2, 2, 0, 5, 1, 0, 1, 10, 0, 0, 1, 0, 80]).await;
        assert_eq!(r.unwrap().host, "10.0.0.1");
        let mut v6 = vec![5, 1, 0, 5, 1, 0, 4];
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[1, 187]);
        let (r, _) = parse(&v6).await;
        assert_eq!(r.unwrap(), ConnectRequest { version: 5, host: "::1".into(), port: 443 });
    }

    #[tokio::test]
    async fn socks5_refusals() {
        // only username/password offered
        let (r, w) = parse(&[5, 1, 2]).await;
        assert!(matches!(r, Err(SocksError::NoAcceptableMethod)));
        assert_eq!(w, [5, 0xFF]);
        // BIND
        let (r, w) = parse(&[5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80]).await;
        assert!(matches!(r, Err(SocksError::Command(2))));
        assert_eq!(w, [5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
        let (r, w) = parse(&[5, 1, 0, 5, 1, 0, 9]).await;
        assert!(matches!(r, Err(SocksError::AddressType(9))));
        assert_eq!(w[3], 8);
        let (r, w) = parse(&[5, 1, 0, 5, 1, 0, 3, 0, 0, 80]).await;
        assert!(matches!(r, Err(SocksError::Malformed(_))));
        assert_eq!(w[3], 1);
        let (r, _) = parse(&[0x16, 3, 1]).await;
        assert!(matches!(r, Err(SocksError::Version(0x16))));
        // cut short
        let (r, _) = parse(&[5, 1, 0, 5, 1, 0, 3, 20, b'a']).await;
        assert!(matches!(r, Err(SocksError::Io(_))));
    }

    #[tokio::test]
    async fn socks4_and_socks4a() {
        let (r, _) = parse(&[4, 1, 0, 80, 127, 0, 0, 1, b'u', 0]).await;
        assert_eq!(r.unwrap(), ConnectRequest { version: 4, host: "127.0.0.1".into(), port: 80 });
        let (r, _) = parse(&[4, 1, 1, 187, 0, 0, 0, 1, 0, b'e', b'x', b'.', b'o', b'r', b'g', 0]).await;
        assert_eq!(r.unwrap(), ConnectRequest { version: 4, host: "ex.org".into(), port: 443 });
        let mut long = vec![4, 1, 0, 80, 1, 2, 3, 4];
        long.extend(std::iter::repeat_n(b'u', 300));
        let (r, w) = parse(&long).await;
        assert!(matches!(r, Err(SocksError::Malformed(_))));
        assert_eq!(w, [0, 91, 0, 0, 0, 0, 0, 0]);
        let (r, w) = parse(&[4, 2, 0, 80, 1, 2, 3, 4, 0]).await;
        assert!(matches!(r, Err(SocksError::Command(2))));
        assert_eq!(w, [0, 91, 0, 0, 0, 0, 0, 0]);
    }

    #[tokio::test]
    async fn a_silent_client_is_dropped_and_frees_its_slot() {
        // a client whose driver is gone: every open fails, which is all this test needs
        let client = ClientHandle { cmd: tokio::sync::mpsc::unbounded_channel().0 };
        let exit = Recipient { identity: [1; 32], encryption: [2; 32], gateway: [3; 32] };
        let config =
            SocksConfig { max_connections: 1, handshake_timeout: Duration::from_millis(300), ..SocksConfig::new(exit) };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, client, config));

        // A takes the only slot and says nothing
        let start = tokio::time::Instant::now();
        let mut a = TcpStream::connect(addr).await.unwrap();
        // B is served only once the proxy has given up on A (a lower bound in time:
        // however slow the machine, B cannot be answered sooner)
        let mut b = TcpStream::connect(addr).await.unwrap();
        b.write_all(&[5, 1, 0]).await.unwrap();
        let mut methods = [0u8; 2];
        b.read_exact(&mut methods).await.unwrap();
        assert_eq!(methods, [5, 0]);
        assert!(start.elapsed() >= Duration::from_millis(300), "B was served while A held the only slot");
        let mut buf = [0u8; 1];
        assert_eq!(a.read(&mut buf).await.unwrap(), 0, "the proxy closed the silent client");
        // B's CONNECT fails (no client behind this handle): a general failure, not a hang
        b.write_all(&[5, 1, 0, 1, 127, 0, 0, 1, 0, 80]).await.unwrap();
        let mut reply = [0u8; 10];
        b.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply[1], Reply::GeneralFailure as u8);
    }

    #[test]
    fn replies() {
        assert_eq!(reply(5, Reply::Succeeded), [5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(reply(5, Reply::TtlExpired)[1], 6);
        assert_eq!(reply(4, Reply::Succeeded), [0, 90, 0, 0, 0, 0, 0, 0]);
        assert_eq!(reply(4, Reply::GeneralFailure)[1], 91);
    }
}
