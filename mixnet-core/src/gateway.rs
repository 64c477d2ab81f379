//! What a gateway does with a packet for which it is the final hop: hand the data
//! to the client (or its inbox) and, for forward packets, send the SURB-ack at once.

use crate::message::{Delivery, ReceiveError, Transmit, ack_packet, split_data};
use crate::sphinx::{self, DestinationAddress, PacketSize, ProcessedFinal};

/// A final-hop packet, ready to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinalHop {
    /// The client it is for.
    pub client: DestinationAddress,
    /// What to give the client.
    pub delivery: Delivery,
    /// The ack to send into the mixnet once the delivery is accepted (delivered or
    /// stored): `None` for replies, which the client acknowledges itself.
    pub ack: Option<Transmit>,
}

/// Prepares a final-hop packet for delivery. Forward packets (zero identifier) are
/// decoded so that their SURB-ack can be sent; acks and replies stay sealed.
pub fn final_hop(processed: ProcessedFinal, ack_size: PacketSize) -> Result<FinalHop, ReceiveError> {
    let ProcessedFinal { destination, identifier, payload } = processed;
    if identifier != [0u8; 16] {
        return Ok(FinalHop { client: destination, delivery: Delivery { identifier, payload }, ack: None });
    }
    let data = sphinx::recover_plaintext(&payload)?.to_vec();
    let (surb, _) = split_data(&data)?;
    let (packet, first_hop) = ack_packet(&surb, ack_size)?;
    Ok(FinalHop {
        client: destination,
        delivery: Delivery { identifier, payload: data },
        ack: Some(Transmit { first_hop, packet }),
    })
}
