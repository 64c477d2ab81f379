//! One stream at the exit: where its connection is, what it buffers, its windows.

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::stream::{Inbound, Ordered};
use crate::time::Instant;

/// Where a stream's connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Phase {
    /// Messages arrived before the `Open`.
    Unopened,
    /// Waiting for the driver's name resolution.
    Resolving {
        /// The port asked for.
        port: u16,
    },
    /// Waiting for a connection attempt; `rest` are the allowed addresses left.
    Connecting {
        /// Addresses to try next.
        rest: VecDeque<SocketAddr>,
    },
    /// Connected: bytes flow both ways.
    Connected,
}

impl Phase {
    /// Whether the stream holds one of the exit's connection slots.
    pub(super) fn connecting(&self) -> bool {
        matches!(self, Self::Resolving { .. } | Self::Connecting { .. })
    }
}

pub(super) struct Stream {
    pub(super) phase: Phase,
    /// Client → server data, reordered.
    pub(super) inbound: Inbound,
    /// In-order client data waiting for the connection.
    pub(super) ready: VecDeque<Ordered>,
    /// Bytes handed to the driver and not yet written.
    pub(super) unwritten: usize,
    /// Upload bytes held: out of order, ready, unwritten.
    pub(super) buffered: usize,
    /// Bytes written to the server, and as last credited to the client.
    pub(super) written: u64,
    pub(super) credited: u64,
    /// Data replies sent (their sequence numbers).
    pub(super) sent: u64,
    /// Reply bytes not yet acknowledged.
    pub(super) in_flight: usize,
    pub(super) read_closed: bool,
    pub(super) write_closed: bool,
    pub(super) last_activity: Instant,
}

impl Stream {
    pub(super) fn new(now: Instant, max_out_of_order: usize) -> Self {
        Self {
            phase: Phase::Unopened,
            inbound: Inbound::new(max_out_of_order),
            ready: VecDeque::new(),
            unwritten: 0,
            buffered: 0,
            written: 0,
            credited: 0,
            sent: 0,
            in_flight: 0,
            read_closed: false,
            write_closed: false,
            last_activity: now,
        }
    }
}
