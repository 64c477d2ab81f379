//! What MixFetch reports to JavaScript, declared once with wasm-client's
//! [`wasm_client::js_object!`]: each event's Rust struct, the object the worker
//! receives, and (tested) `worker-shim/src/generated/fetch-events.ts`.

use js_sys::{Array, Uint8Array};
use wasm_client::js_object;

js_object! {
    /// A response's head arrived.
    pub struct FetchResponseEvent = "fetch-response" {
        /// The request, as `fetch` numbered it.
        id: f64 => "id",
        /// The HTTP status.
        status: f64 => "status",
        /// The reason phrase.
        status_text: String => "statusText",
        /// The header fields, in order.
        #[cfg_attr(test, ts(type = "[string, string][]"))]
        headers: Array => "headers",
        /// The URL the response came from (after redirects).
        url: String => "url",
        /// Whether redirects were followed to get it.
        redirected: bool => "redirected",
    }
}

js_object! {
    /// Bytes of a response's body, in order.
    pub struct FetchBodyEvent = "fetch-body" {
        /// The request.
        id: f64 => "id",
        /// The bytes.
        #[cfg_attr(test, ts(type = "Uint8Array"))]
        data: Uint8Array => "data",
    }
}

js_object! {
    /// A response's body ended.
    pub struct FetchEndEvent = "fetch-end" {
        /// The request.
        id: f64 => "id",
    }
}

js_object! {
    /// A request failed (before or during its body).
    pub struct FetchErrorEvent = "fetch-error" {
        /// The request.
        id: f64 => "id",
        /// What kind of failure.
        #[cfg_attr(test, ts(type = "FetchErrorCode"))]
        code: &'static str => "code",
        /// What happened, for people.
        message: String => "message",
    }
}

#[cfg(test)]
mod generated {
    use super::*;

    /// `worker-shim/src/generated/fetch-events.ts` is what these types generate.
    #[test]
    fn the_typescript_fetch_events_are_generated_from_these_types() {
        let decls = [
            FetchResponseEvent::ts_declaration(),
            FetchBodyEvent::ts_declaration(),
            FetchEndEvent::ts_declaration(),
            FetchErrorEvent::ts_declaration(),
            "/** What MixFetch's worker emits. */\ntype MixFetchEvent = FetchResponseEvent | FetchBodyEvent | FetchEndEvent | FetchErrorEvent;".into(),
        ];
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../worker-shim/src/generated/fetch-events.ts");
        mixnet_core::typescript::check_file_with(
            &path,
            "cargo test -p mixfetch generated",
            "import type { FetchErrorCode } from '../protocol.js';\n",
            &decls,
        );
    }
}
