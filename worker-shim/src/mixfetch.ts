// MixFetch: a drop-in `fetch()` whose requests cross the mixnet. TLS runs inside the
// wasm (rustls), so the exit that connects to the server sees only ciphertext, and the
// server never learns who asked.
//
//   await createMixFetch({ directory, directoryKey });
//   const res = await mixFetch('https://example.com/data.json');
//   console.log(res.status, await res.json());

import { MixnetClient, MixnetError, _workerFactory, checkOptions, startClient, type FetchWorkerEvent, type MixnetClientOptions } from './client.js';
import { acceptEncoding, contentCodings, decodeBody } from './decode.js';
import type { FetchConfig, WireRequest } from './protocol.js';

/** Options of {@link createMixFetch}: the client's, plus MixFetch's own. */
export interface MixFetchOptions extends MixnetClientOptions {
  /** The exit's address; the topology's first exit if unset. */
  exit?: string;
  /** Extra trusted root certificates (PEM), e.g. a local or corporate CA. */
  extraRoots?: string | string[];
  /** Default time limit of a request, ms (60 000); `init.signal` can cut it shorter. */
  timeoutMs?: number;
  /** Requests in flight at once (20); more wait their turn. */
  maxConcurrency?: number;
  /**
   * Follow redirects from `https:` to `http:` (off: they fail with `cause.code`
   * `redirect`, as a secure page's mixed-content rule would; when on, `Cookie` is not
   * carried across the downgrade).
   */
  allowInsecureRedirects?: boolean;
}

interface Pending {
  resolve(r: Response): void;
  reject(e: unknown): void;
  controller: ReadableStreamDefaultController<Uint8Array> | null;
  stream: ReadableStream<Uint8Array>;
  responded: boolean;
  finished: boolean;
  signal: AbortSignal;
  onAbort: () => void;
  /** A HEAD request: its response has no body (`null`, as fetch gives). */
  head: boolean;
}

// statuses whose responses have no body (the Response constructor refuses one)
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

function networkError(message: string, code: string): TypeError {
  // fetch rejects with a TypeError on network errors; the cause says which
  return new TypeError(`MixFetch: ${message}`, { cause: { code } });
}

/** fetch over the mixnet, with its own client in its own worker. */
export class MixFetch {
  /** The client underneath (its address, messages, stats). */
  readonly client: MixnetClient;
  #pending = new Map<number, Pending>();
  // events that beat the `fetch` result carrying their id
  #early = new Map<number, FetchWorkerEvent[]>();

  /** @internal use {@link createMixFetch} */
  constructor(client: MixnetClient) {
    this.client = client;
    client._onFetchEvent((e) => this.#onEvent(e));
    client.on('fatal', (e) => {
      for (const [id, p] of this.#pending) this.#fail(id, p, networkError(e.message, 'crashed'));
    });
  }

  /** Like `fetch(input, init)`, over the mixnet: resolves with a `Response` whose body streams in. */
  async fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    // the browser's own Request normalises the URL, method, headers, body and signal
    const request = new Request(input, init);
    const signal = request.signal;
    if (signal.aborted) throw signal.reason;
    const url = new URL(request.url);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') {
      throw networkError(`only http: and https: URLs can be fetched, not ${url.protocol}`, 'invalid-argument');
    }
    const body = request.body === null ? null : await request.arrayBuffer();
    const wire: WireRequest = { method: request.method, url: request.url, headers: [...request.headers], redirect: request.redirect };
    const encodings = acceptEncoding();
    if (encodings !== null) wire.acceptEncoding = encodings;
    return new Promise<Response>((resolve, reject) => {
      let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
      let fetchId: number | null = null;
      const stream = new ReadableStream<Uint8Array>({
        start(c) {
          controller = c;
        },
        cancel: () => {
          // the reader lost interest: stop the transfer
          if (fetchId !== null) this.#abort(fetchId);
        },
      });
      const pending: Pending = {
        resolve,
        reject,
        controller: null,
        stream,
        responded: false,
        finished: false,
        signal,
        head: request.method === 'HEAD',
        onAbort: () => {
          if (fetchId !== null) {
            this.#fail(fetchId, pending, signal.reason);
            this.#abort(fetchId);
          } else {
            reject(signal.reason);
          }
        },
      };
      signal.addEventListener('abort', pending.onAbort, { once: true });
      this.client._request({ type: 'fetch', request: wire, body }, body ? [body] : []).then(
        (id) => {
          fetchId = id;
          pending.controller = controller;
          if (pending.finished) return; // aborted meanwhile
          this.#pending.set(id, pending);
          for (const e of this.#early.get(id) ?? []) this.#onEvent(e);
          this.#early.delete(id);
        },
        (e: unknown) => {
          signal.removeEventListener('abort', pending.onAbort);
          const err = e instanceof MixnetError ? networkError(e.message, e.code) : e;
          reject(err);
        },
      );
    });
  }

  /** Stops the client and its worker; requests in flight fail. */
  async disconnect(): Promise<void> {
    for (const [id, p] of this.#pending) this.#fail(id, p, networkError('disconnected', 'not-ready'));
    await this.client.disconnect();
  }

  #abort(fetchId: number): void {
    this.client._request({ type: 'abort', fetchId }).catch(() => {});
  }

  #fail(id: number, p: Pending, error: unknown): void {
    if (p.finished) return;
    p.finished = true;
    this.#pending.delete(id);
    p.signal.removeEventListener('abort', p.onAbort);
    if (p.responded) {
      try {
        p.controller?.error(error);
      } catch {
        // the stream was already closed or cancelled
      }
    } else {
      p.reject(error);
    }
  }

  #onEvent(e: FetchWorkerEvent): void {
    const p = this.#pending.get(e.id);
    if (!p) {
      if (this.#early.size < 10_000) this.#early.set(e.id, [...(this.#early.get(e.id) ?? []), e]);
      return;
    }
    switch (e.type) {
      case 'fetch-response': {
        const headers = new Headers();
        for (const [k, v] of e.headers) {
          try {
            headers.append(k, v);
          } catch {
            // a header value the browser would not accept either
          }
        }
        const init = { status: e.status, headers, statusText: e.statusText };
        let body = p.head || NULL_BODY.has(e.status) ? null : p.stream;
        // the body decoded as it streams in, headers as the server sent them (as a browser does)
        const codings = contentCodings(headers.get('content-encoding'));
        if (body !== null && codings !== null) body = decodeBody(body, codings);
        let response: Response;
        try {
          response = new Response(body, init);
        } catch {
          // a reason phrase the Response constructor refuses
          response = new Response(body, { ...init, statusText: '' });
        }
        Object.defineProperty(response, 'url', { value: e.url });
        Object.defineProperty(response, 'redirected', { value: e.redirected });
        p.responded = true;
        p.resolve(response);
        return;
      }
      case 'fetch-body':
        try {
          p.controller?.enqueue(e.data);
        } catch {
          // cancelled by the reader; the abort is on its way
        }
        return;
      case 'fetch-end':
        p.finished = true;
        this.#pending.delete(e.id);
        p.signal.removeEventListener('abort', p.onAbort);
        try {
          p.controller?.close();
        } catch {
          // cancelled by the reader
        }
        return;
      case 'fetch-error':
        this.#fail(e.id, p, e.code === 'aborted' && p.signal.aborted ? p.signal.reason : networkError(e.message, e.code));
        return;
    }
  }
}

function fetchConfig(options: MixFetchOptions): FetchConfig {
  const config: FetchConfig = {};
  if (options.exit !== undefined) config.exit = options.exit;
  if (options.extraRoots !== undefined) config.extraRoots = Array.isArray(options.extraRoots) ? options.extraRoots.join('\n') : options.extraRoots;
  if (options.timeoutMs !== undefined) config.timeoutMs = options.timeoutMs;
  if (options.maxConcurrency !== undefined) config.maxConcurrency = options.maxConcurrency;
  if (options.allowInsecureRedirects !== undefined) config.allowInsecureRedirects = options.allowInsecureRedirects;
  return config;
}

let instance: MixFetch | null = null;

/**
 * Starts MixFetch (a client with fetch over the mixnet) in a new worker and resolves
 * once it is connected. The instance also serves {@link mixFetch}.
 */
export async function createMixFetch(options: MixFetchOptions): Promise<MixFetch> {
  checkOptions(options, 'createMixFetch', ['exit', 'extraRoots', 'timeoutMs', 'maxConcurrency', 'allowInsecureRedirects']);
  const factory = _workerFactory();
  const worker = factory
    ? factory('mixfetch', options.workerUrl)
    : options.workerUrl
      ? new Worker(options.workerUrl, { type: 'module', name: 'mixfetch' })
      : new Worker(new URL('./mixfetch-worker.js', import.meta.url), { type: 'module', name: 'mixfetch' });
  const client = await startClient(worker, options, fetchConfig(options));
  const mf = new MixFetch(client);
  if (instance) await instance.disconnect();
  instance = mf;
  return mf;
}

/** `fetch(input, init)` over the mixnet, with the instance {@link createMixFetch} made. */
export function mixFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
  if (!instance) return Promise.reject(new MixnetError('not-ready', 'call createMixFetch(options) first'));
  return instance.fetch(input, init);
}

/** Stops the instance {@link createMixFetch} made. */
export async function disconnectMixFetch(): Promise<void> {
  const mf = instance;
  instance = null;
  await mf?.disconnect();
}

/** @internal the instance {@link createMixFetch} made last, if any */
export function _currentMixFetch(): MixFetch | null {
  return instance;
}
