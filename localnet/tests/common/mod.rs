//! Shared helpers: a localnet per test (stopped when dropped), clients, payloads.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use localnet::{Localnet, LocalnetConfig};
use mixnet_client::{Client, ClientConfig};
use mixnet_core::message::RouteMode;

pub const WAIT: Duration = Duration::from_secs(60);

pub async fn net(mode: RouteMode) -> Localnet {
    net_with(LocalnetConfig { mode, ..LocalnetConfig::default() }).await
}

pub async fn net_with(config: LocalnetConfig) -> Localnet {
    Localnet::start(config).await.expect("localnet starts")
}

pub async fn client(net: &Localnet, gateway: usize) -> Client {
    Client::connect(net.client_config(gateway)).await.expect("client connects")
}

pub async fn client_with(config: ClientConfig) -> Client {
    Client::connect(config).await.expect("client connects")
}

pub fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

pub fn metric(text: &str, name: &str) -> f64 {
    nodenet::metrics::sample(text, name).unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
}

/// Awaits `condition` (see [`localnet::wait::until`]) for [`WAIT`]; panics with `what`
/// and the last state it reported if it never holds.
pub async fn eventually<T, F>(what: &str, condition: impl FnMut() -> F) -> T
where
    F: std::future::Future<Output = Result<T, String>>,
{
    localnet::wait::until(WAIT, condition).await.unwrap_or_else(|state| panic!("{what}: {state}"))
}
