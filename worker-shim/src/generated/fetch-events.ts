// Generated from the Rust types by `cargo test -p mixfetch generated` (ts-rs): do not edit.
// After changing them, run it with UPDATE_TS=1 and commit this file.

import type { FetchErrorCode } from '../protocol.js';

export type FetchResponseEvent = { type: "fetch-response", 
/**
 * The request, as `fetch` numbered it.
 */
id: number, 
/**
 * The HTTP status.
 */
status: number, 
/**
 * The reason phrase.
 */
statusText: string, 
/**
 * The header fields, in order.
 */
headers: [string, string][], 
/**
 * The URL the response came from (after redirects).
 */
url: string, 
/**
 * Whether redirects were followed to get it.
 */
redirected: boolean, };

export type FetchBodyEvent = { type: "fetch-body", 
/**
 * The request.
 */
id: number, 
/**
 * The bytes.
 */
data: Uint8Array, };

export type FetchEndEvent = { type: "fetch-end", 
/**
 * The request.
 */
id: number, };

export type FetchErrorEvent = { type: "fetch-error", 
/**
 * The request.
 */
id: number, 
/**
 * What kind of failure.
 */
code: FetchErrorCode, 
/**
 * What happened, for people.
 */
message: string, };

/** What MixFetch's worker emits. */
export type MixFetchEvent = FetchResponseEvent | FetchBodyEvent | FetchEndEvent | FetchErrorEvent;
