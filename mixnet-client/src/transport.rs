//! The two ways to reach a gateway, behind one interface: WebSocket (a message per
//! WebSocket message) and WebTransport (one bidirectional stream of length-prefixed
//! messages, `mixnet_core::framing`). The browser driver has the same pair.

use futures_util::{SinkExt, StreamExt};
use mixnet_core::framing;
use mixnet_core::topology::{Gateway, WebTransportEndpoint};
use tokio_tungstenite::tungstenite::Message;

/// Which transport a client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// WebSocket (`client_ws`).
    #[default]
    WebSocket,
    /// WebTransport (`client_wt`), pinning the published certificate hash if any.
    WebTransport,
}

/// Where to connect, as the topology publishes it.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Ws(String),
    Wt(WebTransportEndpoint),
}

impl Transport {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::WebSocket => "WebSocket",
            Self::WebTransport => "WebTransport",
        }
    }
}

impl Target {
    pub(crate) fn of(g: &Gateway, transport: Transport) -> Result<Self, String> {
        match transport {
            Transport::WebSocket => {
                g.client_ws.clone().map(Self::Ws).ok_or_else(|| "the gateway has no WebSocket URL".into())
            }
            Transport::WebTransport => {
                g.client_wt.clone().map(Self::Wt).ok_or_else(|| "the gateway offers no WebTransport".into())
            }
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One open connection to a gateway.
pub(crate) enum Conn {
    Ws(Box<Ws>),
    Wt(Box<WtConn>),
}

pub(crate) struct WtConn {
    // the session lives as long as this handle
    connection: wtransport::Connection,
    send: wtransport::SendStream,
    recv: wtransport::RecvStream,
    decoder: framing::Decoder,
    buf: Box<[u8]>,
    _endpoint: wtransport::Endpoint<wtransport::endpoint::endpoint_side::Client>,
}

impl Conn {
    pub(crate) async fn open(target: &Target) -> Result<Self, String> {
        match target {
            Target::Ws(url) => {
                // small frames must not wait for Nagle and delayed ACKs (40 ms each)
                let (ws, _) = tokio_tungstenite::connect_async_with_config(url.as_str(), None, true)
                    .await
                    .map_err(|e| format!("connecting to {url}: {e}"))?;
                Ok(Self::Ws(Box::new(ws)))
            }
            Target::Wt(endpoint) => open_wt(endpoint).await.map_err(|e| format!("connecting to {}: {e}", endpoint.url)),
        }
    }

    pub(crate) async fn send(&mut self, message: Vec<u8>) -> Result<(), String> {
        match self {
            Self::Ws(ws) => ws.send(Message::Binary(message.into())).await.map_err(|e| e.to_string()),
            Self::Wt(w) => {
                let send = &mut w.send;
                let framed = framing::encode(&message).map_err(|e| e.to_string())?;
                send.write_all(&framed).await.map_err(|e| e.to_string())
            }
        }
    }

    /// The next message from the gateway; `Err` with the reason when the connection
    /// ends. Cancel-safe (it is raced against commands and timers).
    pub(crate) async fn recv(&mut self) -> Result<Vec<u8>, String> {
        match self {
            Self::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
                    Some(Ok(Message::Close(f))) => {
                        return Err(f
                            .map(|f| format!("closed by gateway: {} ({})", f.reason, f.code))
                            .unwrap_or_else(|| "closed by gateway".into()));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("connection closed".into()),
                }
            },
            Self::Wt(w) => loop {
                let WtConn { connection, recv, decoder, buf, .. } = &mut **w;
                match decoder.next_record() {
                    Some(framing::Record::Message(m)) => return Ok(m),
                    Some(framing::Record::Close { code, reason }) => {
                        connection.close(wtransport::VarInt::from_u32(0), b"");
                        return Err(format!("closed by gateway: {reason} ({code})"));
                    }
                    None => {}
                }
                match recv.read(buf).await {
                    Ok(Some(n)) => decoder.push(&buf[..n]),
                    Ok(None) => return Err("the gateway ended the stream".into()),
                    // the session's close code and reason say more than the stream's error
                    Err(_) => return Err(close_reason(connection.closed().await)),
                }
            },
        }
    }
}

/// `closed by gateway: <reason> (<code>)` when the gateway closed the session with a
/// code, as over WebSocket.
fn close_reason(e: wtransport::error::ConnectionError) -> String {
    match e {
        wtransport::error::ConnectionError::ApplicationClosed(c) => {
            format!("closed by gateway: {} ({})", String::from_utf8_lossy(c.reason()), c.code())
        }
        other => other.to_string(),
    }
}

async fn open_wt(endpoint: &WebTransportEndpoint) -> Result<Conn, String> {
    let builder = wtransport::ClientConfig::builder().with_bind_default();
    let config = match endpoint.cert_hash().map_err(|e| e.to_string())? {
        Some(hash) => builder.with_server_certificate_hashes([wtransport::tls::Sha256Digest::new(hash)]).build(),
        None => builder.with_native_certs().build(),
    };
    let client = wtransport::Endpoint::client(config).map_err(|e| e.to_string())?;
    let connection = client.connect(&endpoint.url).await.map_err(|e| e.to_string())?;
    let (send, recv) = connection.open_bi().await.map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())?;
    Ok(Conn::Wt(Box::new(WtConn {
        connection,
        send,
        recv,
        decoder: framing::Decoder::new(),
        buf: vec![0; 16 * 1024].into(),
        _endpoint: client,
    })))
}
