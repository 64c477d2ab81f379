//! MixFetch's own options, as JavaScript passes them (JSON) beside the client's.
//!
//! Their TypeScript type (`FetchConfig` in `worker-shim/src/generated/`) is generated
//! from this struct by the tests (`ts-rs`) and checked against the committed file.

use serde::Deserialize;

/// MixFetch's options; all have defaults.
#[derive(Debug, Deserialize, Default)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "FetchConfig"))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FetchOptions {
    /// The exit's address; the topology's first exit if unset.
    #[cfg_attr(test, ts(optional))]
    pub exit: Option<String>,
    /// Extra trusted root certificates, PEM (e.g. a local CA).
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<String>", optional))]
    pub extra_roots: String,
    /// Default time limit of a request, ms (60 000).
    #[cfg_attr(test, ts(optional))]
    pub timeout_ms: Option<f64>,
    /// Requests in flight at once (20); more wait their turn.
    #[cfg_attr(test, ts(optional))]
    pub max_concurrency: Option<usize>,
    /// Follow `https:` → `http:` redirects (refused by default, as a secure page's
    /// mixed-content rule would).
    #[serde(default)]
    #[cfg_attr(test, ts(as = "Option<bool>", optional))]
    pub allow_insecure_redirects: bool,
}

#[cfg(test)]
mod generated {
    use ts_rs::{Config, TS};

    use super::FetchOptions;

    /// `worker-shim/src/generated/fetch-options.ts` is what this type generates.
    #[test]
    fn the_typescript_options_are_generated_from_this_type() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../worker-shim/src/generated/fetch-options.ts");
        let command = "cargo test -p mixfetch --lib generated";
        mixnet_core::typescript::check_file(&path, command, &[FetchOptions::decl(&Config::default())]);
    }
}
