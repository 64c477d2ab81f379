// Generated from the Rust types by `cargo test -p wasm-client generated` (ts-rs): do not edit.
// After changing them, run it with UPDATE_TS=1 and commit this file.

export type Mode = "mixnet" | "fast";

export type TransportChoice = "auto" | "websocket" | "webtransport";

export type ClientConfig = { 
/**
 * Directory URL, e.g. `http://127.0.0.1:8000`.
 */
directory: string, 
/**
 * The directory's base58 ed25519 key; the topology must be signed by it.
 */
directoryKey: string, 
/**
 * Gateway identity (base58); the first gateway offering WebSocket or
 * WebTransport if unset.
 */
gateway?: string, 
/**
 * How to reach the gateway. `auto` (default): WebTransport when the gateway
 * offers it and the browser supports it; WebSocket otherwise, and after a
 * WebTransport failure for as long as WebSocket works (nothing queued is lost).
 * `websocket` / `webtransport` force one.
 */
transport?: TransportChoice, 
/**
 * How long a WebTransport connection may take to open before `auto` falls back
 * to WebSocket, ms (3000).
 */
webTransportTimeoutMs?: number, 
/**
 * `mixnet` (default) or `fast`.
 */
mode?: Mode, 
/**
 * Mean delay of the real-traffic Poisson stream, ms (20).
 */
sendDelayMs?: number, 
/**
 * Mean delay of the loop-cover stream, ms (200); 0 disables loop cover.
 */
loopCoverMs?: number, 
/**
 * Mean per-hop delay of our packets, ms (15).
 */
hopDelayMs?: number, 
/**
 * Mean per-hop delay of our SURB-acks, ms (15).
 */
ackDelayMs?: number, 
/**
 * `false`: packets leave as soon as built and no cover is sent (less private).
 * Default true.
 */
coverTraffic?: boolean, 
/**
 * How often the topology is re-fetched, ms (30 000).
 */
topologyRefreshMs?: number, 
/**
 * 64 random bytes, base58 (see `generateIdentity`): ed25519 seed then X25519
 * secret. Keeps the address and the gateway inbox across sessions; random if unset.
 */
identity?: string, };
