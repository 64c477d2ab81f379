//! Sans-IO mixnet protocol core.
//!
//! Nothing in this crate touches a socket, a clock or an ambient RNG: time comes in
//! as [`time::Instant`] and randomness as an injected `rand_core::CryptoRng`. The
//! browser worker and the native servers are thin drivers around it.
#![forbid(unsafe_code)]

pub mod address;
pub mod client;
pub mod exit;
pub mod framing;
pub mod gateway;
pub mod message;
pub mod mix;
pub mod noise;
pub mod policy;
pub mod session;
#[cfg(feature = "sim")]
pub mod sim;
pub mod sphinx;
pub mod stream;
pub mod time;
pub mod topology;
#[cfg(feature = "ts")]
pub mod typescript;
pub mod wire;
