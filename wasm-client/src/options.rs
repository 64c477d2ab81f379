//! What JavaScript passes to `MixnetClient.create` (as JSON).

use std::time::Duration;

use mixnet_core::client::LoopixConfig;
use mixnet_core::message::{MessengerConfig, RouteMode};
use serde::Deserialize;

/// Client options; every field but the directory has a default.
///
/// Its TypeScript type (`ClientConfig` in `worker-shim/src/generated/`) is generated
/// from this struct by the tests (`ts-rs`), and checked against the committed file.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "ClientConfig"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientOptions {
    /// Directory URL, e.g. `http://127.0.0.1:8000`.
    pub directory: String,
    /// The directory's base58 ed25519 key; the topology must be signed by it.
    pub directory_key: String,
    /// Gateway identity (base58); the first gateway offering WebSocket or
    /// WebTransport if unset.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub gateway: Option<String>,
    /// How to reach the gateway. `auto` (default): WebTransport when the gateway
    /// offers it and the browser supports it; WebSocket otherwise, and after a
    /// WebTransport failure for as long as WebSocket works (nothing queued is lost).
    /// `websocket` / `webtransport` force one.
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<TransportChoice>", optional))]
    pub transport: TransportChoice,
    /// How long a WebTransport connection may take to open before `auto` falls back
    /// to WebSocket, ms (3000).
    #[serde(default = "d3000")]
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub web_transport_timeout_ms: f64,
    /// `mixnet` (default) or `fast`.
    #[serde(default = "mixnet")]
    #[cfg_attr(test, ts(as = "Option<RouteMode>", optional))]
    pub mode: RouteMode,
    /// Mean delay of the real-traffic Poisson stream, ms (20).
    #[serde(default = "d20")]
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub send_delay_ms: f64,
    /// Mean delay of the loop-cover stream, ms (200); 0 disables loop cover.
    #[serde(default = "d200")]
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub loop_cover_ms: f64,
    /// Mean per-hop delay of our packets, ms (15).
    #[serde(default = "d15")]
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub hop_delay_ms: f64,
    /// Mean per-hop delay of our SURB-acks, ms (15).
    #[serde(default = "d15")]
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub ack_delay_ms: f64,
    /// `false`: packets leave as soon as built and no cover is sent (less private).
    /// Default true.
    #[serde(default = "yes")]
    #[cfg_attr(test, ts(as = "Option<bool>", optional))]
    pub cover_traffic: bool,
    /// How often the topology is re-fetched, ms (30 000).
    #[serde(default = "d30000")]
    #[cfg_attr(test, ts(as = "Option<f64>", optional))]
    pub topology_refresh_ms: f64,
    /// 64 random bytes, base58 (see `generateIdentity`): ed25519 seed then X25519
    /// secret. Keeps the address and the gateway inbox across sessions; random if unset.
    #[serde(default)]
    #[cfg_attr(test, ts(optional))]
    pub identity: Option<String>,
}

/// Which transport to the gateway (`PROTOCOL.md`, section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum TransportChoice {
    /// WebTransport when offered and supported; WebSocket otherwise, or once
    /// WebTransport has failed to open.
    #[default]
    Auto,
    /// WebSocket only.
    WebSocket,
    /// WebTransport only (never falls back).
    WebTransport,
}

fn mixnet() -> RouteMode {
    RouteMode::Mixnet
}
fn d15() -> f64 {
    15.0
}
fn d20() -> f64 {
    20.0
}
fn d200() -> f64 {
    200.0
}
fn d3000() -> f64 {
    3_000.0
}
fn d30000() -> f64 {
    30_000.0
}
fn yes() -> bool {
    true
}

/// The longest any time option may be: a day (larger finite values would overflow
/// the arithmetic on durations and instants).
pub const MAX_MS: f64 = 86_400_000.0;

/// A duration from milliseconds given by the application: negative, non-finite or
/// past [`MAX_MS`] is `None` (the caller names the option in its error).
pub fn duration_ms(v: f64) -> Option<Duration> {
    (v.is_finite() && (0.0..=MAX_MS).contains(&v)).then(|| Duration::from_secs_f64(v / 1000.0))
}

fn ms(v: f64) -> Duration {
    duration_ms(v).unwrap_or(Duration::ZERO)
}

impl ClientOptions {
    /// Parses and checks the options, naming the bad field.
    pub fn parse(json: &str) -> Result<Self, String> {
        let o: Self = serde_json::from_str(json).map_err(|e| format!("invalid options: {e}"))?;
        for (name, v) in [
            ("sendDelayMs", o.send_delay_ms),
            ("loopCoverMs", o.loop_cover_ms),
            ("hopDelayMs", o.hop_delay_ms),
            ("ackDelayMs", o.ack_delay_ms),
            ("topologyRefreshMs", o.topology_refresh_ms),
            ("webTransportTimeoutMs", o.web_transport_timeout_ms),
        ] {
            if duration_ms(v).is_none() {
                // no float formatting here: it would add 7 KB of gzip to the client
                return Err(format!(
                    "invalid options: {name} must be a number of milliseconds from 0 to 86400000 (a day)"
                ));
            }
        }
        if o.directory.is_empty() {
            return Err("invalid options: directory is required".into());
        }
        Ok(o)
    }

    /// The messenger's configuration.
    pub fn messenger(&self) -> MessengerConfig {
        MessengerConfig {
            mode: self.mode,
            average_hop_delay: ms(self.hop_delay_ms),
            average_ack_delay: ms(self.ack_delay_ms),
            ..MessengerConfig::default()
        }
    }

    /// The traffic shaping.
    pub fn loopix(&self) -> LoopixConfig {
        if !self.cover_traffic {
            return LoopixConfig::immediate();
        }
        LoopixConfig {
            send_delay_mean: (self.send_delay_ms > 0.0).then(|| ms(self.send_delay_ms)),
            loop_cover_mean: (self.loop_cover_ms > 0.0).then(|| ms(self.loop_cover_ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JavaScript's defaults are the core's: the worker restates them (as serde
    /// defaults, cheaper in the wasm than reading the core's `Duration`s), and this
    /// keeps the two from drifting apart.
    #[test]
    fn the_defaults_are_the_cores() {
        let o = ClientOptions::parse(r#"{"directory":"http://d","directoryKey":"k"}"#).unwrap();
        assert_eq!(o.loopix(), LoopixConfig::default());
        let (ours, core) = (o.messenger(), MessengerConfig::default());
        assert_eq!(ours.average_hop_delay, core.average_hop_delay);
        assert_eq!(ours.average_ack_delay, core.average_ack_delay);
        assert_eq!(ours.mode, RouteMode::Mixnet);
        assert!(o.cover_traffic && o.transport == TransportChoice::Auto && o.identity.is_none());
        let quiet =
            ClientOptions::parse(r#"{"directory":"http://d","directoryKey":"k","coverTraffic":false}"#).unwrap();
        assert_eq!(quiet.loopix(), LoopixConfig::immediate());
        let e = ClientOptions::parse(r#"{"directory":"http://d","directoryKey":"k","hopDelay":5}"#).unwrap_err();
        assert!(e.contains("unknown field `hopDelay`"), "{e}");
        let e = ClientOptions::parse(r#"{"directory":"","directoryKey":"k"}"#).unwrap_err();
        assert_eq!(e, "invalid options: directory is required");
    }

    /// On 117647c a huge but finite value panicked in `Duration::from_secs_f64`.
    #[test]
    fn time_options_out_of_range_are_refused_with_their_name() {
        for bad in ["1e300", "-1", "86400001"] {
            let json = format!(r#"{{"directory":"http://d","directoryKey":"k","hopDelayMs":{bad}}}"#);
            let e = ClientOptions::parse(&json).err().unwrap_or_default();
            assert!(e.contains("hopDelayMs"), "{bad}: {e}");
        }
        assert!(ClientOptions::parse(r#"{"directory":"http://d","directoryKey":"k","hopDelayMs":86400000}"#).is_ok());
        assert_eq!(duration_ms(f64::NAN), None);
        assert_eq!(duration_ms(1500.0), Some(Duration::from_millis(1500)));
    }
}

#[cfg(test)]
mod generated {
    use ts_rs::{Config, TS};

    use super::{ClientOptions, TransportChoice};

    /// `worker-shim/src/generated/client-options.ts` is what these types generate.
    #[test]
    fn the_typescript_options_are_generated_from_these_types() {
        let cfg = Config::default();
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../worker-shim/src/generated/client-options.ts");
        mixnet_core::typescript::check_file(
            &path,
            "cargo test -p wasm-client generated",
            &[
                <mixnet_core::message::RouteMode as TS>::decl(&cfg),
                TransportChoice::decl(&cfg),
                ClientOptions::decl(&cfg),
            ],
        );
    }
}
