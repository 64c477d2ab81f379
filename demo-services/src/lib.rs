//! The servers the demo and the tests talk to, outside the network itself: a small
//! web origin on loopback ([`origin`]: what MixFetch fetches in the demo, its tests
//! and the SOCKS proxy's tests) and the demo's anonymous publishing service
//! ([`publish`]: a mixnet client that answers through SURBs). `localnet` starts both
//! beside the network.

pub mod origin;
pub mod publish;
