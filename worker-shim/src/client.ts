// The client's main-thread API. A MixnetClient privately owns its worker; every request carries
// an id and resolves on the matching reply; events arrive as typed callbacks.
//
//   const client = await createMixnetClient({ directory, directoryKey });
//   client.on('message', (m) => console.log(m.text(), m.senderTag));
//   await client.send(recipient, 'hello', { replySurbs: 5 });

import {
  PROTOCOL_VERSION,
  isProtocolMessage,
  type ClientConfig,
  type FetchConfig,
  type ConnectionState,
  type ErrorCode,
  type Request,
  type Response,
  type ResultOf,
  type Stats,
  type TransportKind,
  type WorkerEvent,
} from './protocol.js';

export type {
  ClientConfig,
  ConnectionState,
  ErrorCode,
  FetchErrorCode,
  Mode,
  RouteHop,
  RouteRecord,
  Stats,
  TransportChoice,
  TransportKind,
} from './protocol.js';
export { PROTOCOL_VERSION } from './protocol.js';

/** Options of {@link createMixnetClient}: the client's configuration plus how to load it. */
export interface MixnetClientOptions extends ClientConfig {
  /** Where the worker script is (default: `worker.js` next to this module, found by bundlers). */
  workerUrl?: string | URL;
  /** Where the wasm is (default: `wasm/wasm_client_bg.wasm` next to the worker). */
  wasmUrl?: string | URL;
  /** Resolve only once the gateway accepted us (default true). */
  waitForConnection?: boolean;
  /** How long to wait for that, ms (default 15 000); then the promise rejects and the worker stops. */
  readyTimeoutMs?: number;
  /** How often `stats` listeners are called, ms (default 1000). */
  statsIntervalMs?: number;
  /**
   * Called at each stage of connecting, from the start (before `createMixnetClient`
   * resolves), so a page can show progress on a slow network; also the `progress` event.
   */
  onProgress?: (progress: Progress) => void;
}

/**
 * A stage of connecting: `topology` (fetched, signature and freshness verified),
 * `transport-open` / `transport-failed` (which transport; why it failed),
 * `handshake` (Noise with the gateway done), `authenticated` (the gateway accepted us:
 * connected). After a disconnection the stages from `transport-*` on come again.
 */
export interface Progress {
  stage: 'topology' | 'transport-open' | 'transport-failed' | 'handshake' | 'authenticated';
  transport: TransportKind | null;
  reason: string | null;
}

/** Why a call failed; `code` is machine-readable. */
export class MixnetError extends Error {
  override readonly name = 'MixnetError';
  constructor(
    readonly code: ErrorCode | 'aborted' | 'timeout',
    message: string,
  ) {
    super(message);
  }
}

/** A message that arrived. */
export interface ReceivedMessage {
  /** The bytes sent. */
  data: Uint8Array;
  /** Set when the sender attached reply SURBs: answer with `client.reply(senderTag, …)`. */
  senderTag: string | null;
  /** For an answer to one of our messages sent with SURBs: whom we sent it to. */
  replyFrom: string | null;
  /** The data as UTF-8 text. */
  text(): string;
}

/** What `on` can listen to. */
export interface ClientEvents {
  message: ReceivedMessage;
  state: { state: ConnectionState; reason: string | null };
  /** A connection opened over this transport; `fallbackReason` says why it is not WebTransport when that failed. */
  transport: { transport: TransportKind; fallbackReason: string | null };
  /** A stage of connecting (see {@link Progress}). */
  progress: Progress;
  stats: Stats;
  delivered: { id: number };
  failed: { id: number; reason: string };
  /** The gateway throttled us (not fatal: retransmission repairs it). */
  throttled: { message: string };
  /** Inbound data was dropped (malformed, unknown SURB, evicted). */
  dropped: { reason: string };
  /** The client stopped after an internal error; create a new one. */
  fatal: MixnetError;
}

export interface SendOptions {
  /** SURBs to attach so the recipient can answer without learning our address (default 0). */
  replySurbs?: number;
  /** Resolve only when the recipient's side acknowledged every packet (default false). */
  waitForDelivery?: boolean;
  /** Stops waiting (the message may still be sent once queued). */
  signal?: AbortSignal;
}

type Listener<K extends keyof ClientEvents> = (event: ClientEvents[K]) => void;
type Payload = Uint8Array | ArrayBuffer | string;

interface Pending {
  resolve(value: unknown): void;
  reject(error: MixnetError): void;
}

function toBuffer(data: Payload): ArrayBuffer {
  // always a fresh copy: the caller's buffer is never detached by the transfer
  if (typeof data === 'string') return new TextEncoder().encode(data).buffer as ArrayBuffer;
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  return bytes.slice().buffer as ArrayBuffer;
}

function abortError(signal: AbortSignal): MixnetError {
  const reason = signal.reason instanceof Error ? signal.reason.message : 'the operation was aborted';
  return new MixnetError('aborted', reason);
}

const decoder = new TextDecoder();
const CONFIG_KEYS = [
  'directory',
  'directoryKey',
  'gateway',
  'transport',
  'webTransportTimeoutMs',
  'mode',
  'sendDelayMs',
  'loopCoverMs',
  'hopDelayMs',
  'ackDelayMs',
  'coverTraffic',
  'topologyRefreshMs',
  'identity',
] as const satisfies readonly (keyof ClientConfig)[];
// every option the wasm takes (generated/client-options.ts, from the Rust type) is
// passed on: tsc fails here when one is missing from the list above
type Unlisted = Exclude<keyof ClientConfig, (typeof CONFIG_KEYS)[number]>;
const everyOptionListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyOptionListed;

/**
 * The page's live clients, for test tools (@mixnet/playwright waits on them and reads
 * their stats) and devtools: `globalThis[Symbol.for('@mixnet/worker-shim clients')]`.
 */
const LIVE: Set<MixnetClient> = ((globalThis as Record<symbol, unknown>)[Symbol.for('@mixnet/worker-shim clients')] ??= new Set()) as Set<MixnetClient>;

/** A mixnet client running in its own worker. Create it with {@link createMixnetClient}. */
export class MixnetClient {
  #worker: Worker;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  // listeners by event type; `on` and `#emit` keep each set's element type in step with its key
  #listeners = new Map<keyof ClientEvents, Set<(event: never) => void>>();
  #outcomes = new Map<number, { resolve(): void; reject(e: MixnetError): void }>();
  #settled = new Map<number, string | null>();
  #state: ConnectionState = 'connecting';
  #transport: TransportKind | null = null;
  #webTransportFailure: string | null = null;
  // each transport's last failure since the last connection (for the timeout's message)
  #transportFailures = new Map<TransportKind, string>();
  #onProgress: ((p: Progress) => void) | null = null;
  #stateReason: string | null = null;
  #statsTimer: ReturnType<typeof setInterval> | null = null;
  #statsIntervalMs: number;
  #dead: MixnetError | null = null;
  #address = '';
  #fetchListener: ((e: FetchWorkerEvent) => void) | null = null;

  /** @internal use {@link createMixnetClient} */
  constructor(worker: Worker, statsIntervalMs: number, onProgress: ((p: Progress) => void) | null = null) {
    this.#worker = worker;
    this.#statsIntervalMs = statsIntervalMs;
    this.#onProgress = onProgress;
    LIVE.add(this);
    worker.addEventListener('message', (e: MessageEvent<unknown>) => this.#onMessage(e.data));
    worker.addEventListener('error', (e: ErrorEvent) => {
      e.preventDefault();
      this.#die(new MixnetError('load-failed', `the worker failed: ${e.message || 'could not load the worker script'}`));
    });
    worker.addEventListener('messageerror', () => this.#die(new MixnetError('protocol', 'a worker message could not be deserialised')));
  }

  /** Our address, `identity.encryption@gateway`: give it to whoever should write to us. */
  get selfAddress(): string {
    return this.#address;
  }

  /** The gateway connection's state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The transport of the current (or last) gateway connection; null before the first opened. */
  get transport(): TransportKind | null {
    return this.#transport;
  }

  /** When the current (or last) connection is a fallback to WebSocket: why WebTransport failed. */
  get webTransportFailure(): string | null {
    return this.#webTransportFailure;
  }

  /** Listens to an event; returns a function that stops listening. */
  on<K extends keyof ClientEvents>(type: K, listener: Listener<K>): () => void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener);
    if (type === 'stats') this.#updateStatsTimer();
    return () => this.off(type, listener);
  }

  /** Stops listening. */
  off<K extends keyof ClientEvents>(type: K, listener: Listener<K>): void {
    this.#listeners.get(type)?.delete(listener);
    if (type === 'stats') this.#updateStatsTimer();
  }

  /**
   * Sends `data` to `recipient` (an address from `selfAddress`). Resolves with the
   * message id once queued, or, with `waitForDelivery`, once acknowledged.
   */
  async send(recipient: string, data: Payload, options: SendOptions = {}): Promise<number> {
    const { replySurbs = 0, waitForDelivery = false, signal } = options;
    if (signal?.aborted) throw abortError(signal);
    if (!Number.isInteger(replySurbs) || replySurbs < 0 || replySurbs > 1000) {
      throw new MixnetError('invalid-argument', 'replySurbs must be an integer from 0 to 1000');
    }
    const buffer = toBuffer(data);
    const id = await this.#request({ type: 'send', recipient, data: buffer, replySurbs }, [buffer]);
    if (waitForDelivery) await this.#delivery(id, signal);
    return id;
  }

  /** Answers an anonymous sender through the SURBs it sent; resolves with the message id once queued. */
  async reply(senderTag: string, data: Payload): Promise<number> {
    const buffer = toBuffer(data);
    return this.#request({ type: 'reply', senderTag, data: buffer }, [buffer]);
  }

  /** Counters, the traffic shaping in force, and the routes of recent packets. */
  stats(): Promise<Stats> {
    return this.#request({ type: 'stats' });
  }

  /** Builds `packets` 4-hop Sphinx packets in the worker; packets per second (benchmarks). */
  benchBuildPackets(packets: number): Promise<number> {
    return this.#request({ type: 'benchBuild', packets });
  }

  /** Closes the connection and stops the worker. Pending calls reject. */
  async disconnect(): Promise<void> {
    if (this.#dead) return;
    try {
      await this.#request({ type: 'disconnect' });
    } catch {
      // stopping anyway
    }
    this.#die(new MixnetError('not-ready', 'the client was disconnected'), false);
  }

  /** @internal */
  async _init(config: ClientConfig, fetch: FetchConfig | null, wasmUrl: string | null): Promise<void> {
    const { selfAddress } = await this.#request({ type: 'init', config, fetch, wasmUrl });
    this.#address = selfAddress;
  }

  /** @internal a request to the worker (MixFetch's `fetch` and `abort`) */
  _request<B extends RequestBody>(body: B, transfer: Transferable[] = []): Promise<ResultOf[B['type']]> {
    return this.#request(body, transfer);
  }

  /** @internal where `fetch-*` events go */
  _onFetchEvent(listener: (e: FetchWorkerEvent) => void): void {
    this.#fetchListener = listener;
  }

  /** @internal resolves at the first `connected`, rejects after `timeoutMs` */
  _connected(timeoutMs: number): Promise<void> {
    if (this.#state === 'connected') return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        stop();
        // what each transport ran into, else the last reason given
        const failures = [...this.#transportFailures.values()];
        const hint = ' (is the gateway up, and does the page\'s CSP connect-src allow it?)';
        const why = failures.length > 0 ? `: ${failures.join('; ')}${hint}` : this.#stateReason ? `: ${this.#stateReason}` : '';
        reject(new MixnetError('timeout', `no connection to the gateway within ${timeoutMs} ms${why}`));
      }, timeoutMs);
      const stopState = this.on('state', ({ state }) => {
        if (state === 'connected') {
          stop();
          resolve();
        }
      });
      const stopFatal = this.on('fatal', (e) => {
        stop();
        reject(e);
      });
      const stop = () => {
        clearTimeout(timer);
        stopState();
        stopFatal();
      };
    });
  }

  #request<B extends RequestBody>(body: B, transfer: Transferable[] = []): Promise<ResultOf[B['type']]> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise<ResultOf[B['type']]>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      const request = { ...body, v: PROTOCOL_VERSION, id } as Request;
      this.#worker.postMessage(request, transfer);
    });
  }

  #delivery(id: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.#settled.has(id)) {
      const reason = this.#settled.get(id);
      this.#settled.delete(id);
      return reason == null ? Promise.resolve() : Promise.reject(new MixnetError('send-failed', reason));
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#outcomes.delete(id);
        reject(abortError(signal as AbortSignal));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#outcomes.set(id, {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
    });
  }

  #emit<K extends keyof ClientEvents>(type: K, event: ClientEvents[K]): void {
    for (const l of (this.#listeners.get(type) ?? []) as Iterable<Listener<K>>) {
      try {
        l(event);
      } catch (e) {
        // a listener's error must not break the client; surface it asynchronously
        queueMicrotask(() => {
          throw e;
        });
      }
    }
  }

  #onMessage(m: unknown): void {
    if (!isProtocolMessage(m)) {
      this.#die(new MixnetError('protocol', 'the worker speaks another protocol version (mismatched worker-shim files?)'));
      return;
    }
    const msg = m as Response;
    if (msg.type === 'result') {
      const p = this.#pending.get(msg.id);
      if (!p) return;
      this.#pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(new MixnetError(msg.error.code, msg.error.message));
      return;
    }
    this.#onEvent(msg.event);
  }

  #onEvent(e: WorkerEvent): void {
    switch (e.type) {
      case 'message':
        this.#emit('message', { data: e.data, senderTag: e.senderTag, replyFrom: e.replyFrom, text: () => decoder.decode(e.data) });
        return;
      case 'state':
        this.#state = e.state;
        this.#stateReason = e.reason;
        this.#emit('state', { state: e.state, reason: e.reason });
        if (e.state === 'connected') {
          this.#transportFailures.clear();
          this.#progress({ stage: 'authenticated', transport: this.#transport, reason: null });
        }
        return;
      case 'transport':
        this.#transport = e.transport;
        this.#webTransportFailure = e.fallbackReason;
        this.#emit('transport', { transport: e.transport, fallbackReason: e.fallbackReason });
        this.#progress({ stage: 'transport-open', transport: e.transport, reason: null });
        return;
      case 'progress':
        if (e.stage === 'transport-failed' && e.transport !== null && e.reason !== null) this.#transportFailures.set(e.transport, e.reason);
        this.#progress({ stage: e.stage, transport: e.stage === 'handshake' ? this.#transport : e.transport, reason: e.reason });
        return;
      case 'delivered':
      case 'failed': {
        const reason = e.type === 'failed' ? e.reason : null;
        const waiter = this.#outcomes.get(e.id);
        if (waiter) {
          this.#outcomes.delete(e.id);
          if (reason === null) waiter.resolve();
          else waiter.reject(new MixnetError('send-failed', reason));
        } else if (this.#settled.size < 10_000) {
          // the outcome can beat the `send` result; keep it for #delivery
          this.#settled.set(e.id, reason);
        }
        if (e.type === 'delivered') this.#emit('delivered', { id: e.id });
        else this.#emit('failed', { id: e.id, reason: e.reason });
        return;
      }
      case 'throttled':
        this.#emit('throttled', { message: e.message });
        return;
      case 'dropped':
        this.#emit('dropped', { reason: e.reason });
        return;
      case 'fatal':
        this.#die(new MixnetError('crashed', `the client stopped after an internal error: ${e.message}`));
        return;
      case 'fetch-response':
      case 'fetch-body':
      case 'fetch-end':
      case 'fetch-error':
        this.#fetchListener?.(e);
        return;
    }
  }

  #progress(p: Progress): void {
    try {
      this.#onProgress?.(p);
    } catch (err) {
      // the application's callback threw: surface it asynchronously, as for listeners
      queueMicrotask(() => {
        throw err;
      });
    }
    this.#emit('progress', p);
  }

  #updateStatsTimer(): void {
    const wanted = (this.#listeners.get('stats')?.size ?? 0) > 0 && !this.#dead;
    if (wanted && this.#statsTimer === null) {
      this.#statsTimer = setInterval(() => {
        this.stats().then(
          (s) => this.#emit('stats', s),
          () => {},
        );
      }, this.#statsIntervalMs);
    } else if (!wanted && this.#statsTimer !== null) {
      clearInterval(this.#statsTimer);
      this.#statsTimer = null;
    }
  }

  #die(error: MixnetError, fatal = true): void {
    if (this.#dead) return;
    this.#dead = error;
    LIVE.delete(this);
    if (fatal) this.#emit('fatal', error);
    this.#worker.terminate();
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    for (const o of this.#outcomes.values()) o.reject(error);
    this.#outcomes.clear();
    this.#updateStatsTimer();
    if (this.#state !== 'disconnected') {
      this.#state = 'disconnected';
      this.#emit('state', { state: 'disconnected', reason: error.message });
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** The events that belong to MixFetch. */
export type FetchWorkerEvent = Extract<WorkerEvent, { type: `fetch-${string}` }>;
/** A request without its envelope (`v`, `id`). */
type RequestBody = DistributiveOmit<Request, 'v' | 'id'>;

/** @internal starts a client in `worker` (with MixFetch when `fetch` is given) */
export async function startClient(worker: Worker, options: MixnetClientOptions, fetch: FetchConfig | null): Promise<MixnetClient> {
  const config: ClientConfig = { directory: options.directory, directoryKey: options.directoryKey };
  // defaults a test harness may set for every client of the page (@mixnet/playwright's
  // `cover` option); the application's own options win
  const defaults = (globalThis as Record<symbol, unknown>)[Symbol.for('@mixnet/worker-shim defaults')] as Partial<ClientConfig> | undefined;
  for (const k of CONFIG_KEYS) {
    const v = options[k] !== undefined ? options[k] : defaults?.[k];
    if (v !== undefined) (config as unknown as Record<string, unknown>)[k] = v;
  }
  const client = new MixnetClient(worker, options.statsIntervalMs ?? 1000, options.onProgress ?? null);
  try {
    const connected = options.waitForConnection === false ? null : client._connected(options.readyTimeoutMs ?? 15_000);
    connected?.catch(() => {}); // observed below; avoid an unhandled rejection if init fails first
    await client._init(config, fetch, options.wasmUrl ? String(options.wasmUrl) : null);
    await connected;
    return client;
  } catch (e) {
    await client.disconnect();
    throw e;
  }
}

/** Which worker entry: the client alone, or with MixFetch. */
export type WorkerKind = 'client' | 'mixfetch';

let workerFactory: ((kind: WorkerKind, url: string | URL | undefined) => Worker) | null = null;

/** @internal how workers are made where there is no browser `Worker` (node.ts) */
export function _setWorkerFactory(factory: (kind: WorkerKind, url: string | URL | undefined) => Worker): void {
  workerFactory = factory;
}

/** @internal the worker factory in force, if not the browser's */
export function _workerFactory(): ((kind: WorkerKind, url: string | URL | undefined) => Worker) | null {
  return workerFactory;
}

/** Options that stay on the main thread (the rest go to the worker). */
const MAIN_THREAD_KEYS = ['workerUrl', 'wasmUrl', 'waitForConnection', 'readyTimeoutMs', 'statsIntervalMs', 'onProgress'];

/**
 * @internal checks what every client needs, and refuses options nobody reads (a
 * misspelt `mdoe` would otherwise be ignored in silence). `extra` are the caller's own.
 */
export function checkOptions(options: MixnetClientOptions, what: string, extra: readonly string[] = []): void {
  if (typeof options?.directory !== 'string' || typeof options.directoryKey !== 'string') {
    throw new MixnetError('invalid-argument', `${what} needs \`directory\` and \`directoryKey\` (see localnet.json)`);
  }
  const known = new Set<string>([...CONFIG_KEYS, ...MAIN_THREAD_KEYS, ...extra]);
  const unknown = Object.keys(options).filter((k) => !known.has(k));
  if (unknown.length > 0) {
    const hint = (k: string) => {
      const close = [...known].find((n) => n.toLowerCase() !== k.toLowerCase() && editDistance(n.toLowerCase(), k.toLowerCase()) <= 2);
      return close ? ` (did you mean \`${close}\`?)` : '';
    };
    throw new MixnetError('invalid-argument', `${what}: unknown option${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `\`${k}\`${hint(k)}`).join(', ')}`);
  }
  let url: URL | null = null;
  try {
    url = new URL(options.directory);
  } catch {
    // not absolute: refused below
  }
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new MixnetError('invalid-argument', `${what}: \`directory\` must be an absolute http(s) URL, not ${JSON.stringify(options.directory)}`);
  }
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] as number;
      row[j] = Math.min((row[j] as number) + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length] as number;
}

/**
 * Starts a mixnet client in a new worker: fetches and verifies the topology, connects
 * to a gateway and (by default) resolves once the gateway accepted us.
 */
export async function createMixnetClient(options: MixnetClientOptions): Promise<MixnetClient> {
  checkOptions(options, 'createMixnetClient');
  // (each `new Worker(new URL(…, import.meta.url))` stays literal: bundlers look for it)
  const worker = workerFactory
    ? workerFactory('client', options.workerUrl)
    : options.workerUrl
      ? new Worker(options.workerUrl, { type: 'module', name: 'mixnet-client' })
      : new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'mixnet-client' });
  return startClient(worker, options, null);
}

const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';

function base58(bytes: Uint8Array): string {
  const digits: number[] = [];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i++) {
      carry += (digits[i] as number) << 8;
      digits[i] = carry % 58;
      carry = (carry / 58) | 0;
    }
    while (carry > 0) {
      digits.push(carry % 58);
      carry = (carry / 58) | 0;
    }
  }
  let out = '';
  for (const byte of bytes) {
    if (byte !== 0) break;
    out += '1';
  }
  for (let i = digits.length - 1; i >= 0; i--) out += BASE58[digits[i] as number];
  return out;
}

/**
 * A new long-term identity (64 random bytes, base58). Pass it as `identity` to keep the
 * same address, and the gateway's inbox for it, across page loads. It is a secret:
 * store it where only this origin can read it.
 */
export function generateIdentity(): string {
  return base58(crypto.getRandomValues(new Uint8Array(64)));
}
