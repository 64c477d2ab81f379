//! What the worker reports to JavaScript as plain objects (`stats()`), declared once:
//! [`js_object!`] makes each the Rust struct, the `to_js` that builds the object, and
//! (under test) the names it sets, which a test holds against the TypeScript type
//! ts-rs derives from the struct and against the committed
//! `worker-shim/src/generated/stats.ts`. The object, the type and the struct cannot
//! drift apart.

use js_sys::{Array, Object};
use wasm_bindgen::JsValue;

use crate::js::set;

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
/// object gives it (the camelCase of the field, which the test checks).
macro_rules! js_object {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* $field:ident: $ty:ty => $js:literal,)* }) => {
        $(#[$m])*
        #[cfg_attr(test, derive(ts_rs::TS), ts(rename_all = "camelCase"))]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
        }

        #[cfg(test)]
        impl $name {
            /// The names [`ToJs::to_js`] sets, in order.
            pub(crate) const JS_NAMES: &'static [&'static str] = &[$($js),*];
        }

        impl ToJs for $name {
            fn to_js(&self) -> JsValue {
                let o = Object::new();
                $(set(&o, $js, ToJs::to_js(&self.$field));)*
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
    /// (`MixnetClient.stats()`).
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

#[cfg(test)]
mod generated {
    use ts_rs::{Config, TS};

    use super::{RouteHop, RouteRecord, Stats};

    /// The field names of a ts-rs object type, in order.
    fn ts_names(decl: &str) -> Vec<String> {
        let body = &decl[decl.find('{').expect("an object type") + 1..decl.rfind('}').expect("its end")];
        let mut names = Vec::new();
        let mut depth = 0;
        let mut field = String::new();
        let mut in_comment = false;
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            if in_comment {
                if c == '*' && chars.peek() == Some(&'/') {
                    chars.next();
                    in_comment = false;
                }
                continue;
            }
            match c {
                '/' if chars.peek() == Some(&'*') => in_comment = true,
                '{' | '(' | '[' => depth += 1,
                '}' | ')' | ']' => depth -= 1,
                ':' if depth == 0 && !field.trim().is_empty() => {
                    names.push(field.trim().trim_end_matches('?').to_owned());
                    field.clear();
                }
                ',' if depth == 0 => field.clear(),
                _ if depth == 0 => field.push(c),
                _ => {}
            }
        }
        names
    }

    /// `worker-shim/src/generated/stats.ts` is what these types generate, and each
    /// object's names are the type's.
    #[test]
    fn the_typescript_stats_are_generated_from_these_types() {
        let cfg = Config::default();
        for (decl, names) in [
            (RouteHop::decl(&cfg), RouteHop::JS_NAMES),
            (RouteRecord::decl(&cfg), RouteRecord::JS_NAMES),
            (Stats::decl(&cfg), Stats::JS_NAMES),
        ] {
            assert_eq!(ts_names(&decl), names, "{decl}");
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../worker-shim/src/generated/stats.ts");
        mixnet_core::typescript::check_file_with(
            &path,
            "cargo test -p wasm-client generated",
            "import type { Mode } from './client-options.js';\n\
             import type { ConnectionState, TransportKind } from '../protocol.js';\n",
            &[RouteHop::decl(&cfg), RouteRecord::decl(&cfg), Stats::decl(&cfg)],
        );
    }
}
