// Generated from the Rust types by `cargo test -p mixfetch --lib generated` (ts-rs): do not edit.
// After changing them, run it with UPDATE_TS=1 and commit this file.

export type FetchConfig = { 
/**
 * The exit's address; the topology's first exit if unset.
 */
exit?: string, 
/**
 * Extra trusted root certificates, PEM (e.g. a local CA).
 */
extraRoots?: string, 
/**
 * Default time limit of a request, ms (60 000).
 */
timeoutMs?: number, 
/**
 * Requests in flight at once (20); more wait their turn.
 */
maxConcurrency?: number, 
/**
 * Follow `https:` → `http:` redirects (refused by default, as a secure page's
 * mixed-content rule would).
 */
allowInsecureRedirects?: boolean, };
