// Generated from the Rust types by `cargo test -p wasm-client generated` (ts-rs): do not edit.
// After changing them, run it with UPDATE_TS=1 and commit this file.

import type { Mode } from './client-options.js';
import type { ConnectionState, TransportKind } from '../protocol.js';

export type RouteHop = { 
/**
 * The node's identity (base58).
 */
id: string, 
/**
 * Its mix layer, or the destination gateway.
 */
layer: 1 | 2 | 3 | "gateway", };

export type RouteRecord = { 
/**
 * Milliseconds since the client started.
 */
atMs: number, 
/**
 * Real traffic or loop cover.
 */
kind: "real" | "cover", 
/**
 * The hops, first to last.
 */
hops: Array<RouteHop>, };

export type ClientStats = { 
/**
 * The connection's state.
 */
state: ConnectionState, 
/**
 * Mixnet or fast routes.
 */
mode: Mode, 
/**
 * The transport of the current (or last) connection; null before the first one opened.
 */
transport: TransportKind | null, 
/**
 * Why WebTransport failed, if it did and WebSocket has not failed since (`auto` uses WebSocket meanwhile).
 */
webTransportFailure: string | null, 
/**
 * Mean of the real-traffic stream in force, ms (null: sends at once, no cover).
 */
sendDelayMs: number | null, 
/**
 * Mean of the loop-cover stream in force, ms (null: off).
 */
loopCoverMs: number | null, 
/**
 * Real packets sent.
 */
realSent: number, 
/**
 * Cover packets sent.
 */
coverSent: number, 
/**
 * Deliveries from the gateway.
 */
deliveries: number, 
/**
 * Connections that authenticated.
 */
connections: number, 
/**
 * Fragments sent again for want of an acknowledgement.
 */
retransmissions: number, 
/**
 * Acknowledgements of our fragments.
 */
acksReceived: number, 
/**
 * Our cover packets that came back.
 */
coverReceived: number, 
/**
 * Messages received.
 */
messagesReceived: number, 
/**
 * Messages fully acknowledged.
 */
messagesDelivered: number, 
/**
 * Messages given up.
 */
messagesFailed: number, 
/**
 * Inbound data dropped.
 */
dropped: number, 
/**
 * Milliseconds since the client started.
 */
uptimeMs: number, 
/**
 * Inputs the client handled (timers, gateway messages, calls).
 */
inputs: number, 
/**
 * The time those inputs took in the worker, ms.
 */
busyMs: number, 
/**
 * Recently sent packets.
 */
routes: Array<RouteRecord>, };
