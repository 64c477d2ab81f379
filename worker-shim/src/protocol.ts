// The message protocol between the main thread (index.ts) and the worker (worker.ts).
// A versioned discriminated union, typed on both ends: every request carries an id and
// gets exactly one `result` with that id; events flow from the worker unasked.

/** Bumped on any incompatible change; both ends check it. */
export const PROTOCOL_VERSION = 1;

// The options the wasm accepts are generated from its Rust types (wasm-client's
// `ClientOptions`, mixfetch's `FetchOptions`): `cargo test` checks these files.
import type { ClientConfig, Mode, TransportChoice } from './generated/client-options.js';
import type { FetchConfig } from './generated/fetch-options.js';
// What `stats()` returns is generated too (wasm-client's `report.rs`).
import type { ClientStats, RouteHop, RouteRecord } from './generated/stats.js';
import type { ClientEvent } from './generated/client-events.js';
import type { MixFetchEvent } from './generated/fetch-events.js';
export type { ClientConfig, ClientStats, FetchConfig, Mode, RouteHop, RouteRecord, TransportChoice };

/** What `stats()` returns: the client's counters (from the wasm), and the worker's memory. */
export interface Stats extends ClientStats {
  /** Bytes of the worker's wasm linear memory: its high-water mark, as wasm memory
   * never shrinks. Bounded by the client's configuration, not by what it downloads. */
  wasmMemoryBytes: number;
}

export type ConnectionState = 'connecting' | 'connected' | 'disconnected';

/** The transport a connection runs on. */
export type TransportKind = 'websocket' | 'webtransport';

/** One request as the worker takes it (the body travels beside it). */
export interface WireRequest {
  method: string;
  url: string;
  headers: [string, string][];
  redirect: 'follow' | 'error' | 'manual';
  timeoutMs?: number;
  /** The codings the page decodes, sent as `Accept-Encoding` (decode.ts). */
  acceptEncoding?: string;
}

/** Why a fetch failed (`fetch-error`). */
export type FetchErrorCode = 'invalid-argument' | 'connect' | 'tls' | 'http' | 'timeout' | 'aborted' | 'redirect' | 'decode';

/** Events the worker emits: the client's and MixFetch's, generated from wasm-client's
 * `report.rs` and mixfetch's `events.rs`. */
export type WorkerEvent = ClientEvent | MixFetchEvent;

/** Requests, main thread → worker. */
export type Request =
  | { v: typeof PROTOCOL_VERSION; id: number; type: 'init'; config: ClientConfig; fetch: FetchConfig | null; wasmUrl: string | null }
  | { v: typeof PROTOCOL_VERSION; id: number; type: 'send'; recipient: string; data: ArrayBuffer; replySurbs: number }
  | { v: typeof PROTOCOL_VERSION; id: number; type: 'reply'; senderTag: string; data: ArrayBuffer }
  | { v: typeof PROTOCOL_VERSION; id: number; type: 'stats' }
  | { v: typeof PROTOCOL_VERSION; id: number; type: 'disconnect' }
  | { v: typeof PROTOCOL_VERSION; id: number; type: 'benchBuild'; packets: number }
  | { v: typeof PROTOCOL_VERSION; id: number; type: 'fetch'; request: WireRequest; body: ArrayBuffer | null }
  | { v: typeof PROTOCOL_VERSION; id: number; type: 'abort'; fetchId: number };

/** What each request resolves to. */
export interface ResultOf {
  init: { selfAddress: string };
  send: number;
  reply: number;
  stats: Stats;
  disconnect: null;
  benchBuild: number;
  /** The fetch's id: its `fetch-*` events carry it. */
  fetch: number;
  abort: null;
}

export type RequestType = Request['type'];

/** Error codes a request can fail with. */
export type ErrorCode =
  | 'invalid-argument' // bad options, address, sender tag, data
  | 'directory' // the topology could not be fetched or verified, or offers no usable gateway
  | 'not-ready' // no client yet (init not done) or already disconnected
  | 'send-failed' // the messenger refused (too large, no route, no SURBs for a reply)
  | 'load-failed' // the wasm module could not be fetched or instantiated
  | 'crashed' // the wasm client hit an internal error and stopped
  | 'protocol' // a message this worker does not understand
  | 'internal'; // anything else (a bug: please report it)

export interface WireError {
  code: ErrorCode;
  message: string;
}

/** Messages, worker → main thread. */
export type Response =
  | { [K in RequestType]: { v: typeof PROTOCOL_VERSION; type: 'result'; id: number; request: K; ok: true; value: ResultOf[K] } }[RequestType]
  | { v: typeof PROTOCOL_VERSION; type: 'result'; id: number; ok: false; error: WireError }
  | { v: typeof PROTOCOL_VERSION; type: 'event'; event: WorkerEvent };

/** Narrows an unknown message to a protocol message of this version. */
export function isProtocolMessage(m: unknown): m is { v: number; type: string } {
  return typeof m === 'object' && m !== null && (m as { v?: unknown }).v === PROTOCOL_VERSION && typeof (m as { type?: unknown }).type === 'string';
}
