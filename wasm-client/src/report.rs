//! What the worker reports to JavaScript as plain objects (`stats()` and its events),
//! declared once:
//! [`js_object!`] makes each the Rust struct, the `to_js` that builds the object, and
//! (under test) the names it sets, which a test holds against the TypeScript type
//! ts-rs derives from the struct and against the committed
//! `worker-shim/src/generated/stats.ts` and `client-events.ts`. The object, the type
//! and the struct cannot drift apart.

use js_sys::{Array, Uint8Array};
use wasm_bindgen::JsValue;

#[doc(hidden)]
pub mod __private {
    pub use js_sys::Object;
    pub use wasm_bindgen::JsValue;
}

/// A value JavaScript receives as it is.
pub trait ToJs {
    /// The JavaScript value.
    fn to_js(&self) -> JsValue;
}

impl ToJs for f64 {
    fn to_js(&self) -> JsValue {
        JsValue::from(*self)
    }
}

impl ToJs for &'static str {
    fn to_js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}

impl ToJs for bool {
    fn to_js(&self) -> JsValue {
        JsValue::from_bool(*self)
    }
}

impl ToJs for Uint8Array {
    fn to_js(&self) -> JsValue {
        self.into()
    }
}

impl ToJs for String {
    fn to_js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}

impl<T: ToJs> ToJs for Option<T> {
    fn to_js(&self) -> JsValue {
        self.as_ref().map_or(JsValue::NULL, ToJs::to_js)
    }
}

/// A list, built as it is made (each element an object of the type the field names).
impl ToJs for Array {
    fn to_js(&self) -> JsValue {
        self.into()
    }
}

/// Declares a struct JavaScript receives as an object: each field with the name the
/// object gives it (the camelCase of the field, which the tests check against ts-rs).
/// `pub struct Name = "tag" { … }` declares an event: the object's `type` is `tag`.
#[macro_export]
macro_rules! js_object {
    // an event: the object also has `type: $tag`
    ($(#[$m:meta])* pub struct $name:ident = $tag:literal { $($(#[$fm:meta])* $field:ident: $ty:ty => $js:literal,)* }) => {
        $crate::js_object!(@ $(#[$m])* $name, Some($tag), { $($(#[$fm])* $field: $ty => $js,)* });
    };
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* $field:ident: $ty:ty => $js:literal,)* }) => {
        $crate::js_object!(@ $(#[$m])* $name, None, { $($(#[$fm])* $field: $ty => $js,)* });
    };
    (@ $(#[$m:meta])* $name:ident, $tag:expr, { $($(#[$fm:meta])* $field:ident: $ty:ty => $js:literal,)* }) => {
        #[cfg_attr(test, derive(ts_rs::TS), ts(rename_all = "camelCase"))]
        $(#[$m])*
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
        }

        #[cfg(test)]
        impl $name {
            /// Its TypeScript declaration (ts-rs), checked against the names `to_js`
            /// sets (and with its `type` first, for an event).
            pub(crate) fn ts_declaration() -> String {
                let decl = <Self as ::ts_rs::TS>::decl(&::ts_rs::Config::default());
                ::mixnet_core::typescript::object_declaration(&decl, $tag, &[$($js),*])
            }
        }

        impl $crate::report::ToJs for $name {
            fn to_js(&self) -> $crate::report::__private::JsValue {
                let o = $crate::report::__private::Object::new();
                let tag: Option<&str> = $tag;
                if let Some(tag) = tag {
                    $crate::js::set(&o, "type", tag);
                }
                $($crate::js::set(&o, $js, $crate::report::ToJs::to_js(&self.$field));)*
                o.into()
            }
        }
    };
}

/// A hop's place: a mix layer (1-3), or the destination gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopLayer {
    /// A mix of this layer.
    Mix(u8),
    /// The gateway the packet goes to.
    Gateway,
}

impl ToJs for HopLayer {
    fn to_js(&self) -> JsValue {
        match self {
            Self::Mix(l) => JsValue::from(*l),
            Self::Gateway => JsValue::from_str("gateway"),
        }
    }
}

js_object! {
    /// A hop of a recently sent packet.
    pub struct RouteHop {
        /// The node's identity (base58).
        id: String => "id",
        /// Its mix layer, or the destination gateway.
        #[cfg_attr(test, ts(type = "1 | 2 | 3 | \"gateway\""))]
        layer: HopLayer => "layer",
    }
}

js_object! {
    /// A recently sent packet and its route.
    pub struct RouteRecord {
        /// Milliseconds since the client started.
        at_ms: f64 => "atMs",
        /// Real traffic or loop cover.
        #[cfg_attr(test, ts(type = "\"real\" | \"cover\""))]
        kind: &'static str => "kind",
        /// The hops, first to last.
        #[cfg_attr(test, ts(type = "Array<RouteHop>"))]
        hops: Array => "hops",
    }
}

js_object! {
    /// The client's counters, the traffic shaping in force and recent routes
    /// (`MixnetClient.stats()`; the worker adds its memory, `Stats` in `protocol.ts`).
    #[cfg_attr(test, ts(rename = "ClientStats"))]
    pub struct Stats {
        /// The connection's state.
        #[cfg_attr(test, ts(type = "ConnectionState"))]
        state: &'static str => "state",
        /// Mixnet or fast routes.
        #[cfg_attr(test, ts(type = "Mode"))]
        mode: &'static str => "mode",
        /// The transport of the current (or last) connection; null before the first one opened.
        #[cfg_attr(test, ts(type = "TransportKind | null"))]
        transport: Option<&'static str> => "transport",
        /// Why WebTransport failed, if it did and WebSocket has not failed since (`auto` uses WebSocket meanwhile).
        web_transport_failure: Option<String> => "webTransportFailure",
        /// Mean of the real-traffic stream in force, ms (null: sends at once, no cover).
        send_delay_ms: Option<f64> => "sendDelayMs",
        /// Mean of the loop-cover stream in force, ms (null: off).
        loop_cover_ms: Option<f64> => "loopCoverMs",
        /// Real packets sent.
        real_sent: f64 => "realSent",
        /// Cover packets sent.
        cover_sent: f64 => "coverSent",
        /// Deliveries from the gateway.
        deliveries: f64 => "deliveries",
        /// Connections that authenticated.
        connections: f64 => "connections",
        /// Fragments sent again for want of an acknowledgement.
        retransmissions: f64 => "retransmissions",
        /// Acknowledgements of our fragments.
        acks_received: f64 => "acksReceived",
        /// Our cover packets that came back.
        cover_received: f64 => "coverReceived",
        /// Messages received.
        messages_received: f64 => "messagesReceived",
        /// Messages fully acknowledged.
        messages_delivered: f64 => "messagesDelivered",
        /// Messages given up.
        messages_failed: f64 => "messagesFailed",
        /// Inbound data dropped.
        dropped: f64 => "dropped",
        /// Milliseconds since the client started.
        uptime_ms: f64 => "uptimeMs",
        /// Inputs the client handled (timers, gateway messages, calls).
        inputs: f64 => "inputs",
        /// The time those inputs took in the worker, ms.
        busy_ms: f64 => "busyMs",
        /// Recently sent packets.
        #[cfg_attr(test, ts(type = "Array<RouteRecord>"))]
        routes: Array => "routes",
    }
}

js_object! {
    /// The connection's state changed (`reason`: why it is not connected).
    pub struct StateEvent = "state" {
        /// The new state.
        #[cfg_attr(test, ts(type = "ConnectionState"))]
        state: &'static str => "state",
        /// Why (when it is not connected).
        reason: Option<String> => "reason",
    }
}

js_object! {
    /// A transport opened.
    pub struct TransportEvent = "transport" {
        /// Which.
        #[cfg_attr(test, ts(type = "TransportKind"))]
        transport: &'static str => "transport",
        /// Why WebTransport was not used, when `auto` fell back to WebSocket.
        fallback_reason: Option<String> => "fallbackReason",
    }
}

js_object! {
    /// A stage of connecting: `topology` (fetched and verified), `transport-failed`
    /// (with the transport and why), `handshake` (Noise done). The transport opening
    /// is the `transport` event; authenticated is `state: connected`.
    pub struct ProgressEvent = "progress" {
        /// The stage reached.
        #[cfg_attr(test, ts(type = "\"topology\" | \"transport-failed\" | \"handshake\""))]
        stage: &'static str => "stage",
        /// The transport it concerns, if any.
        #[cfg_attr(test, ts(type = "TransportKind | null"))]
        transport: Option<&'static str> => "transport",
        /// Why, for a failure.
        reason: Option<String> => "reason",
    }
}

js_object! {
    /// A message arrived.
    pub struct ReceivedEvent = "message" {
        /// Its bytes.
        #[cfg_attr(test, ts(type = "Uint8Array"))]
        data: Uint8Array => "data",
        /// Set when the sender attached SURBs: answer with `reply` (base58).
        sender_tag: Option<String> => "senderTag",
        /// Set when this is a reply through our SURBs: whom we had sent them to.
        reply_from: Option<String> => "replyFrom",
    }
}

js_object! {
    /// Every fragment of a message we sent was acknowledged.
    pub struct DeliveredEvent = "delivered" {
        /// The id `send` or `reply` returned.
        id: f64 => "id",
    }
}

js_object! {
    /// A message we sent was given up.
    pub struct FailedEvent = "failed" {
        /// The id `send` or `reply` returned.
        id: f64 => "id",
        /// Why.
        reason: String => "reason",
    }
}

js_object! {
    /// The gateway dropped frames over its rate limit (they are retransmitted).
    pub struct ThrottledEvent = "throttled" {
        /// The gateway's words.
        message: String => "message",
    }
}

js_object! {
    /// Inbound data was dropped (malformed, unknown, or over a reassembly bound).
    pub struct DroppedEvent = "dropped" {
        /// Why.
        reason: String => "reason",
    }
}

js_object! {
    /// The worker's wasm panicked: the client is gone.
    pub struct FatalEvent = "fatal" {
        /// The panic's message.
        message: String => "message",
    }
}

#[cfg(test)]
mod generated {
    use super::*;

    /// `worker-shim/src/generated/stats.ts` is what these types generate, and each
    /// object's names are the type's.
    #[test]
    fn the_typescript_stats_are_generated_from_these_types() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../worker-shim/src/generated/stats.ts");
        mixnet_core::typescript::check_file_with(
            &path,
            "cargo test -p wasm-client generated",
            "import type { Mode } from './client-options.js';\n\
             import type { ConnectionState, TransportKind } from '../protocol.js';\n",
            &[RouteHop::ts_declaration(), RouteRecord::ts_declaration(), Stats::ts_declaration()],
        );
    }

    /// `worker-shim/src/generated/client-events.ts` is what these types generate.
    #[test]
    fn the_typescript_events_are_generated_from_these_types() {
        macro_rules! events {
            ($($t:ident),*) => {
                [$($t::ts_declaration()),*, format!(
                    "/** What the client's worker emits. */\ntype ClientEvent = {};",
                    [$(stringify!($t)),*].join(" | ")
                )]
            };
        }
        let decls = events!(
            StateEvent,
            TransportEvent,
            ProgressEvent,
            ReceivedEvent,
            DeliveredEvent,
            FailedEvent,
            ThrottledEvent,
            DroppedEvent,
            FatalEvent
        );
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../worker-shim/src/generated/client-events.ts");
        mixnet_core::typescript::check_file_with(
            &path,
            "cargo test -p wasm-client generated",
            "import type { ConnectionState, TransportKind } from '../protocol.js';\n",
            &decls,
        );
    }
}
