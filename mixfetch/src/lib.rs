//! fetch over the mixnet. TLS runs here, at the client (rustls with ring, the Mozilla
//! roots plus any the user adds, no session resumption), so the exit that makes the
//! TCP connection sees ciphertext only, and the server never learns who asked.
//!
//! - [`url`]: the URLs a fetch needs, and redirect resolution;
//! - [`http`]: HTTP/1.1 requests out, responses in (any framing);
//! - [`tls`]: every rustls call;
//! - [`fetch`]: the sans-IO [`Fetcher`](fetch::Fetcher): requests in, byte-stream
//!   actions out (the driver carries them over the mixnet's exit streams), responses
//!   back; redirects, keep-alive pool, concurrency, timeouts, cancellation;
//! - [`carry`]: the fetcher's streams on the core's exit streams.

#![forbid(unsafe_code)]

#[cfg(feature = "browser")]
pub mod browser;
pub mod carry;
#[cfg(feature = "browser")]
pub mod events;
pub mod fetch;
pub mod http;
pub mod options;
pub mod tls;
pub mod url;

pub use fetch::{
    Action, ConnId, FetchConfig, FetchError, FetchEvent, FetchId, FetchRequest, Fetcher, Redirect, ResponseInfo,
};
