//! Small helpers for handing values to JavaScript, shared with the crates that build
//! on this driver (MixFetch).

use js_sys::{Object, Reflect};
use wasm_bindgen::JsValue;

/// Sets `o[k] = v` (event and stats objects).
pub fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
    set_value(o, k, v.into());
}

/// [`set`] once for every value type: a call at each field, not a copy.
#[inline(never)]
fn set_value(o: &Object, k: &str, v: JsValue) {
    let _ = Reflect::set(o, &JsValue::from_str(k), &v);
}

/// A JavaScript `Error` whose `name` is one of the worker protocol's error codes
/// (`invalid-argument`, `directory`, `send-failed`, …), so the worker can classify it.
pub fn error(code: &str, e: impl std::fmt::Display) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    err.set_name(code);
    err.into()
}
