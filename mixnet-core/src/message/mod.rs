//! Messages over Sphinx: fragmentation into fixed-size packets, end-to-end sealing,
//! SURB-acks, retransmission, reassembly, replies by SURB.
//!
//! ## Packet data layout (2048 B, the Sphinx payload's message)
//! ```text
//! SURB-ack (396) || body (1652)
//! forward body: ephemeral X25519 key (32) || ChaCha20-Poly1305(fragment) (1604 + 16)
//! reply body:   fragment (1604) || ack id (16) || zeros (32)   (a v260 SURB reply is sealed to its creator)
//! fragment:     kind (1) || message id (8) || count (4) || index (4) || len (2) || data (1585)
//! ```
//! The recipient's gateway sends the SURB-ack of a forward packet as soon as it has
//! accepted it (delivered or stored); a reply is sealed to its recipient, who
//! acknowledges it: by sending its ack id back to the replier in a batch
//! ([`Content::Acks`], many replies per packet), or by sending its SURB-ack. Every packet, acks included, is [`crate::sphinx::PacketSize::Regular`]
//! unless a deployment opts into small acks.

mod content;
mod fragment;
mod messenger;
mod reassembly;
mod seal;

pub use content::{Content, SenderTag};
pub use fragment::{FRAGMENT_DATA, FRAGMENT_LEN, Fragment, FragmentKind, split_message};
pub use messenger::{
    ClientKeys, Delivery, Event, MessageId, Messenger, MessengerConfig, MessengerStats, ReceivedMessage, RouteMode,
    SendError, SendFailure, Transmit,
};
pub use reassembly::{Eviction, FRAGMENT_OVERHEAD, Insert, MESSAGE_OVERHEAD, Reassembler, ReassemblyConfig};
pub use seal::{SEAL_OVERHEAD, open, seal};

use crate::sphinx::{NodeAddress, PacketSize, SphinxError, Surb};

/// Bytes of the SURB-ack at the front of every packet's data.
pub const ACK_SURB_LEN: usize = Surb::encoded_len(1);
/// Bytes after the SURB-ack.
pub const BODY_LEN: usize = PacketSize::Regular.data_len() - ACK_SURB_LEN;
/// What an ack carries; checked by the sender after recovery.
pub const ACK_MARKER: &[u8] = b"mixnet-ack-v1";

/// Why a received packet or message was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiveError {
    /// Packet data has the wrong length.
    #[error("packet data is {0} B, expected {expected} B", expected = PacketSize::Regular.data_len())]
    WrongLength(usize),
    /// End-to-end decryption failed (not for us, or tampered).
    #[error("end-to-end decryption failed")]
    Unsealable,
    /// A fragment header is inconsistent.
    #[error("malformed fragment: {0}")]
    MalformedFragment(&'static str),
    /// A reassembled message does not decode.
    #[error("malformed message: {0}")]
    MalformedContent(&'static str),
    /// The message would exceed the configured size limit.
    #[error("message of {0} fragments exceeds the size limit")]
    MessageTooLarge(u32),
    /// A reply arrived for a SURB we do not know (expired or never ours).
    #[error("reply for an unknown SURB")]
    UnknownSurb,
    /// Sphinx-level failure (e.g. reply recovery failed).
    #[error(transparent)]
    Sphinx(#[from] SphinxError),
}

/// Splits packet data into its SURB-ack and body.
pub fn split_data(data: &[u8]) -> Result<(Surb, &[u8]), ReceiveError> {
    if data.len() != PacketSize::Regular.data_len() {
        return Err(ReceiveError::WrongLength(data.len()));
    }
    let surb = Surb::from_bytes(&data[..ACK_SURB_LEN])?;
    Ok((surb, &data[ACK_SURB_LEN..]))
}

/// The packet a gateway sends back on a SURB-ack, and where to send it first.
pub fn ack_packet(surb: &Surb, size: PacketSize) -> Result<(Vec<u8>, NodeAddress), SphinxError> {
    surb.use_surb(ACK_MARKER, size.payload_len())
}
