// Generated from the Rust types by `cargo test -p wasm-client generated` (ts-rs): do not edit.
// After changing them, run it with UPDATE_TS=1 and commit this file.

import type { ConnectionState, TransportKind } from '../protocol.js';

export type StateEvent = { type: "state", 
/**
 * The new state.
 */
state: ConnectionState, 
/**
 * Why (when it is not connected).
 */
reason: string | null, };

export type TransportEvent = { type: "transport", 
/**
 * Which.
 */
transport: TransportKind, 
/**
 * Why WebTransport was not used, when `auto` fell back to WebSocket.
 */
fallbackReason: string | null, };

export type ProgressEvent = { type: "progress", 
/**
 * The stage reached.
 */
stage: "topology" | "transport-failed" | "handshake", 
/**
 * The transport it concerns, if any.
 */
transport: TransportKind | null, 
/**
 * Why, for a failure.
 */
reason: string | null, };

export type ReceivedEvent = { type: "message", 
/**
 * Its bytes.
 */
data: Uint8Array, 
/**
 * Set when the sender attached SURBs: answer with `reply` (base58).
 */
senderTag: string | null, 
/**
 * Set when this is a reply through our SURBs: whom we had sent them to.
 */
replyFrom: string | null, };

export type DeliveredEvent = { type: "delivered", 
/**
 * The id `send` or `reply` returned.
 */
id: number, };

export type FailedEvent = { type: "failed", 
/**
 * The id `send` or `reply` returned.
 */
id: number, 
/**
 * Why.
 */
reason: string, };

export type ThrottledEvent = { type: "throttled", 
/**
 * The gateway's words.
 */
message: string, };

export type DroppedEvent = { type: "dropped", 
/**
 * Why.
 */
reason: string, };

export type FatalEvent = { type: "fatal", 
/**
 * The panic's message.
 */
message: string, };

/** What the client's worker emits. */
export type ClientEvent = StateEvent | TransportEvent | ProgressEvent | ReceivedEvent | DeliveredEvent | FailedEvent | ThrottledEvent | DroppedEvent | FatalEvent;
