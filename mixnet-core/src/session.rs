//! The client ↔ gateway session protocol (see `ws-gateway/PROTOCOL.md`).
//!
//! One transport message (a WebSocket binary message, or a length-prefixed record
//! on a WebTransport stream) carries one Noise message:
//! 1. client → gateway: Noise NK message 1, payload `[PROTOCOL_VERSION]`;
//! 2. gateway → client: Noise NK message 2, payload `[PROTOCOL_VERSION]`;
//! 3. then encrypted frames, `type (1) || body`; the first client frame must be
//!    `Authenticate`, binding the client's long-term X25519 identity to this channel
//!    with a MAC over the handshake hash keyed by DH(identity, gateway key) — only
//!    the identity's holder (or the gateway) can compute it, and nothing is signed,
//!    so the proof is deniable.
//!
//! [`ClientSession`] is the client's side; the gateway's side is in [`crate::gateway`].

use hmac::{Hmac, KeyInit, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::Zeroize;

use crate::message::{Delivery, Transmit};
use crate::noise::{self, Initiator, NoiseError, Transport};
use crate::sphinx::{NodeAddress, NodeSecret};
use crate::wire::{Reader, Repr, Writer};

/// Version byte exchanged in the handshake.
pub const PROTOCOL_VERSION: u8 = 1;
/// Noise prologue: binds the handshake to this protocol.
pub const PROLOGUE: &[u8] = b"mixnet-session-v1";
const AUTH_CONTEXT: &[u8] = b"mixnet-auth-v1\0";
/// Largest frame plaintext either side accepts.
pub const MAX_FRAME: usize = 8192;

/// Error codes the gateway sends before closing (or, for `THROTTLED`, as a notice).
pub mod code {
    /// A frame did not parse or was not allowed in this state.
    pub const PROTOCOL: u16 = 1;
    /// Authentication failed.
    pub const AUTH_FAILED: u16 = 2;
    /// A frame exceeded the size limit.
    pub const TOO_LARGE: u16 = 3;
    /// Packets were dropped by the rate limit (not fatal: the client retransmits).
    pub const THROTTLED: u16 = 4;
    /// The gateway is shutting down.
    pub const SHUTDOWN: u16 = 5;
    /// The same identity connected again; this older session is closed.
    pub const REPLACED: u16 = 6;
    /// The gateway is at its connection limit; try again later (or another gateway).
    pub const BUSY: u16 = 7;
    /// The client did not read what the gateway sent fast enough.
    pub const SLOW: u16 = 8;
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// First frame: the client's identity and its proof over the handshake hash.
    Authenticate {
        /// X25519 public key (the first part of the client's address).
        identity: [u8; 32],
        /// HMAC-SHA256 keyed by DH(identity, gateway key) over
        /// `"mixnet-auth-v1\0" || handshake hash`.
        tag: [u8; 32],
    },
    /// A Sphinx packet for the gateway to forward to `first_hop`.
    SendPacket(Transmit),
    /// Deliveries up to and including `seq` are safe with the client: delete them.
    InboxAck(u64),
    /// Keep-alive; answered with `Pong`.
    Ping(u64),
}

/// Frames a gateway sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// Authentication succeeded; `stored` deliveries are waiting and follow.
    Authenticated {
        /// Deliveries waiting in the inbox.
        stored: u64,
    },
    /// A packet for the client, numbered for [`ClientFrame::InboxAck`].
    Deliver {
        /// Inbox sequence number (strictly increasing per client).
        seq: u64,
        /// The packet.
        delivery: Delivery,
    },
    /// Answer to `Ping`.
    Pong(u64),
    /// An error; all codes but `THROTTLED` are followed by closing the connection.
    Error {
        /// One of [`code`].
        code: u16,
        /// Human-readable reason.
        message: String,
    },
}

/// Why a frame or message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Noise failure (decryption, replay, truncation).
    #[error(transparent)]
    Noise(#[from] NoiseError),
    /// A frame does not parse.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// A frame is larger than [`MAX_FRAME`].
    #[error("frame of {0} B exceeds the limit")]
    TooLarge(usize),
    /// Wrong protocol version.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// The frame is not allowed now.
    #[error("unexpected frame: {0}")]
    Unexpected(&'static str),
    /// The identity's signature does not verify.
    #[error("authentication failed")]
    AuthFailed,
    /// The gateway reported an error.
    #[error("gateway error {code}: {message}")]
    Gateway {
        /// One of [`code`]: why the gateway refused or closed.
        code: u16,
        /// The gateway's words, for logs and the application.
        message: String,
    },
    /// The session is closed.
    #[error("session closed")]
    Closed,
}

const MALFORMED: SessionError = SessionError::Malformed("wrong length");

impl Repr for ClientFrame {
    type Error = SessionError;

    /// Reads a plaintext frame.
    fn parse(b: &[u8]) -> Result<Self, SessionError> {
        let mut r = Reader::new(b);
        let frame = match r.u8() {
            Some(1) => Self::Authenticate { identity: r.array().ok_or(MALFORMED)?, tag: r.array().ok_or(MALFORMED)? },
            Some(2) if b.len() > 33 => Self::SendPacket(Transmit {
                first_hop: NodeAddress(r.array().ok_or(MALFORMED)?),
                packet: r.rest().to_vec(),
            }),
            Some(3) => Self::InboxAck(r.u64().ok_or(MALFORMED)?),
            Some(4) => Self::Ping(r.u64().ok_or(MALFORMED)?),
            Some(2) => return Err(MALFORMED),
            _ => return Err(SessionError::Malformed("unknown frame type")),
        };
        if r.is_empty() { Ok(frame) } else { Err(MALFORMED) }
    }

    fn buffer_len(&self) -> usize {
        1 + match self {
            Self::Authenticate { .. } => 64,
            Self::SendPacket(t) => 32 + t.packet.len(),
            Self::InboxAck(_) | Self::Ping(_) => 8,
        }
    }

    fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        match self {
            Self::Authenticate { identity, tag } => w.u8(1).put(identity).put(tag),
            Self::SendPacket(t) => w.u8(2).put(&t.first_hop.0).put(&t.packet),
            Self::InboxAck(seq) => w.u8(3).u64(*seq),
            Self::Ping(n) => w.u8(4).u64(*n),
        };
    }
}

impl Repr for ServerFrame {
    type Error = SessionError;

    /// Reads a plaintext frame.
    fn parse(b: &[u8]) -> Result<Self, SessionError> {
        let mut r = Reader::new(b);
        let frame = match r.u8() {
            Some(0x81) => Self::Authenticated { stored: r.u64().ok_or(MALFORMED)? },
            Some(0x82) => Self::Deliver {
                seq: r.u64().ok_or(MALFORMED)?,
                delivery: Delivery { identifier: r.array().ok_or(MALFORMED)?, payload: r.rest().to_vec() },
            },
            Some(0x83) => Self::Pong(r.u64().ok_or(MALFORMED)?),
            Some(0x84) => {
                Self::Error { code: r.u16().ok_or(MALFORMED)?, message: String::from_utf8_lossy(r.rest()).into_owned() }
            }
            _ => return Err(SessionError::Malformed("unknown frame type")),
        };
        if r.is_empty() { Ok(frame) } else { Err(MALFORMED) }
    }

    fn buffer_len(&self) -> usize {
        1 + match self {
            Self::Authenticated { .. } | Self::Pong(_) => 8,
            Self::Deliver { delivery, .. } => 8 + 16 + delivery.payload.len(),
            Self::Error { message, .. } => 2 + message.len(),
        }
    }

    fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        match self {
            Self::Authenticated { stored } => w.u8(0x81).u64(*stored),
            Self::Deliver { seq, delivery } => w.u8(0x82).u64(*seq).put(&delivery.identifier).put(&delivery.payload),
            Self::Pong(n) => w.u8(0x83).u64(*n),
            Self::Error { code, message } => w.u8(0x84).u16(*code).put(message.as_bytes()),
        };
    }
}

fn auth_mac(shared: &mut [u8; 32], handshake_hash: &[u8; 32]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(shared).expect("HMAC takes any key length");
    shared.zeroize();
    mac.update(AUTH_CONTEXT);
    mac.update(handshake_hash);
    mac
}

/// The client's proof of its identity on a channel with this handshake hash.
pub fn auth_tag(identity: &NodeSecret, gateway_key: &[u8; 32], handshake_hash: &[u8; 32]) -> [u8; 32] {
    let mut shared = identity.diffie_hellman(gateway_key);
    auth_mac(&mut shared, handshake_hash).finalize().into_bytes().into()
}

/// Verifies an `Authenticate` frame (constant time) with the gateway's static secret.
pub fn verify_auth(
    gateway: &NodeSecret,
    handshake_hash: &[u8; 32],
    identity: &[u8; 32],
    tag: &[u8; 32],
) -> Result<(), SessionError> {
    let mut shared = gateway.diffie_hellman(identity);
    if shared == [0u8; 32] {
        // a small-order "identity" would make the proof forgeable
        return Err(SessionError::AuthFailed);
    }
    auth_mac(&mut shared, handshake_hash).verify_slice(tag).map_err(|_| SessionError::AuthFailed)
}

/// What the client learns from a gateway message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The handshake completed; send the returned `Authenticate` frame (already
    /// queued in [`ClientSession::poll_send`]).
    HandshakeComplete,
    /// The gateway accepted our identity.
    Authenticated {
        /// Deliveries waiting in the inbox.
        stored: u64,
    },
    /// A delivery (ack it with [`ClientSession::ack_inbox`] once handled).
    Deliver {
        /// Inbox sequence number.
        seq: u64,
        /// The packet.
        delivery: Delivery,
    },
    /// Keep-alive answer.
    Pong(u64),
    /// The gateway dropped packets over the rate limit (they will be retransmitted).
    Throttled(String),
}

enum ClientState {
    Handshaking(Initiator),
    Open(Transport),
    Closed,
}

/// The client's side of a session: handshake, authentication, frame encryption.
pub struct ClientSession {
    state: ClientState,
    identity: NodeSecret,
    gateway_key: [u8; 32],
    outgoing: std::collections::VecDeque<Vec<u8>>,
    authenticated: bool,
}

impl ClientSession {
    /// Starts a session with a gateway whose Noise key (from the topology) is `gateway_key`.
    /// The first message to send is in [`Self::poll_send`].
    pub fn start<R: CryptoRng + ?Sized>(rng: &mut R, gateway_key: &[u8; 32], identity: NodeSecret) -> Self {
        let (init, m1) = Initiator::start(rng, PROLOGUE, gateway_key, &[PROTOCOL_VERSION]);
        let mut outgoing = std::collections::VecDeque::new();
        outgoing.push_back(m1);
        Self {
            state: ClientState::Handshaking(init),
            identity,
            gateway_key: *gateway_key,
            outgoing,
            authenticated: false,
        }
    }

    /// Whether the gateway accepted our identity.
    pub fn is_authenticated(&self) -> bool {
        self.authenticated
    }

    /// The next transport message to send.
    #[must_use = "what a state machine outputs is lost unless the driver acts on it"]
    pub fn poll_send(&mut self) -> Option<Vec<u8>> {
        self.outgoing.pop_front()
    }

    fn send_frame(&mut self, frame: &ClientFrame) -> Result<(), SessionError> {
        let ClientState::Open(t) = &mut self.state else { return Err(SessionError::Closed) };
        let bytes = t.send.encrypt(&frame.to_bytes())?;
        self.outgoing.push_back(bytes);
        Ok(())
    }

    /// Queues a packet for the gateway to forward.
    pub fn send_packet(&mut self, transmit: Transmit) -> Result<(), SessionError> {
        if !self.authenticated {
            return Err(SessionError::Unexpected("not authenticated yet"));
        }
        self.send_frame(&ClientFrame::SendPacket(transmit))
    }

    /// Tells the gateway that deliveries up to `seq` are handled.
    pub fn ack_inbox(&mut self, seq: u64) -> Result<(), SessionError> {
        self.send_frame(&ClientFrame::InboxAck(seq))
    }

    /// Queues a keep-alive.
    pub fn ping(&mut self, nonce: u64) -> Result<(), SessionError> {
        self.send_frame(&ClientFrame::Ping(nonce))
    }

    /// Handles a transport message from the gateway. Fatal errors close the session.
    pub fn handle_message(&mut self, message: &[u8]) -> Result<SessionEvent, SessionError> {
        let result = self.handle_inner(message);
        if result.is_err() {
            self.state = ClientState::Closed;
        }
        result
    }

    fn handle_inner(&mut self, message: &[u8]) -> Result<SessionEvent, SessionError> {
        match std::mem::replace(&mut self.state, ClientState::Closed) {
            ClientState::Handshaking(init) => {
                let (transport, payload) = init.finish(message)?;
                if payload.first() != Some(&PROTOCOL_VERSION) {
                    return Err(SessionError::Version(payload.first().copied().unwrap_or(0)));
                }
                let tag = auth_tag(&self.identity, &self.gateway_key, &transport.handshake_hash);
                let identity = self.identity.public_key();
                self.state = ClientState::Open(transport);
                self.send_frame(&ClientFrame::Authenticate { identity, tag })?;
                Ok(SessionEvent::HandshakeComplete)
            }
            ClientState::Open(mut t) => {
                let plain = t.recv.decrypt(message);
                self.state = ClientState::Open(t);
                let plain = plain?;
                if plain.len() > MAX_FRAME {
                    return Err(SessionError::TooLarge(plain.len()));
                }
                match ServerFrame::parse(&plain)? {
                    ServerFrame::Authenticated { stored } => {
                        self.authenticated = true;
                        Ok(SessionEvent::Authenticated { stored })
                    }
                    ServerFrame::Deliver { seq, delivery } => Ok(SessionEvent::Deliver { seq, delivery }),
                    ServerFrame::Pong(n) => Ok(SessionEvent::Pong(n)),
                    ServerFrame::Error { code: code::THROTTLED, message } => Ok(SessionEvent::Throttled(message)),
                    ServerFrame::Error { code, message } => Err(SessionError::Gateway { code, message }),
                }
            }
            ClientState::Closed => Err(SessionError::Closed),
        }
    }
}

/// The gateway's view of one handshake, for [`crate::gateway`].
pub(crate) fn accept<R: CryptoRng + ?Sized>(
    rng: &mut R,
    static_secret: &NodeSecret,
    message: &[u8],
) -> Result<(Transport, Vec<u8>), SessionError> {
    let (transport, reply, payload) = noise::respond(rng, PROLOGUE, static_secret, message, &[PROTOCOL_VERSION])?;
    if payload.first() != Some(&PROTOCOL_VERSION) {
        return Err(SessionError::Version(payload.first().copied().unwrap_or(0)));
    }
    Ok((transport, reply))
}
