// What both worker entries share: the request handling around a wasm backend. The
// entries (worker.ts: the client alone; mixfetch-worker.ts: the client with MixFetch)
// only say which wasm to load, so bundlers see each `new URL(…, import.meta.url)`.
// No protocol logic here: that is all in the wasm (mixnet-core, mixfetch).

import {
  PROTOCOL_VERSION,
  isProtocolMessage,
  type ClientConfig,
  type ErrorCode,
  type FetchConfig,
  type Request,
  type RequestType,
  type Response,
  type ResultOf,
  type ClientStats,
  type WorkerEvent,
} from './protocol.js';

/** The wasm client's calls (wasm_client.js and mixfetch.js both export it). */
export interface WasmClient {
  readonly selfAddress: string;
  send(recipient: string, data: Uint8Array, replySurbs: number): number;
  reply(senderTag: string, data: Uint8Array): number;
  stats(): ClientStats;
  disconnect(): void;
  free(): void;
}

/** MixFetch's calls (mixfetch.js). */
export interface WasmFetch {
  fetch(request: string, body: Uint8Array | undefined): number;
  abort(id: number): void;
}

/** What an entry provides. */
export interface Backend {
  /** Loads and instantiates the wasm (`url`: the caller's, or the entry's default). */
  load(url: string | null): Promise<unknown>;
  /** Starts a client (and MixFetch when `fetch` is given). */
  create(config: ClientConfig, fetch: FetchConfig | null, onEvent: (e: WorkerEvent) => void): Promise<{ client: WasmClient; fetch: WasmFetch | null }>;
  benchBuildPackets(n: number): number;
}

/** An error with a protocol code. */
export class WorkerError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

// A dedicated worker's global scope, typed without leaning on `self as any`.
interface WorkerScope {
  postMessage(message: Response, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (e: MessageEvent<unknown>) => void): void;
  addEventListener(type: 'error', listener: (e: ErrorEvent) => void): void;
  addEventListener(type: 'unhandledrejection', listener: (e: PromiseRejectionEvent) => void): void;
}

const KNOWN_CODES: readonly ErrorCode[] = ['invalid-argument', 'directory', 'not-ready', 'send-failed'];

/** Answers the main thread's requests with `backend`. */
export function serve(backend: Backend): void {
  const scope = globalThis as unknown as WorkerScope;
  let client: WasmClient | null = null;
  let fetcher: WasmFetch | null = null;
  let crashed: string | null = null;
  let loaded: Promise<unknown> | null = null;

  const emit = (event: WorkerEvent): void => {
    if (event.type === 'message' || event.type === 'fetch-body') {
      scope.postMessage({ v: PROTOCOL_VERSION, type: 'event', event }, [event.data.buffer as ArrayBuffer]);
      return;
    }
    if (event.type === 'fatal') crashed = event.message;
    scope.postMessage({ v: PROTOCOL_VERSION, type: 'event', event });
  };

  const fail = (id: number, e: unknown): void => {
    let code: ErrorCode = 'internal';
    let message = String(e);
    if (e instanceof WorkerError) {
      code = e.code;
      message = e.message;
    } else if (e instanceof Error) {
      message = e.message;
      // errors from the wasm carry their code as `name`
      if ((KNOWN_CODES as readonly string[]).includes(e.name)) code = e.name as ErrorCode;
      else if (e instanceof WebAssembly.RuntimeError || crashed !== null) code = 'crashed';
    }
    scope.postMessage({ v: PROTOCOL_VERSION, type: 'result', id, ok: false, error: { code, message } });
  };

  const ok = <K extends RequestType>(id: number, request: K, value: ResultOf[K]): void => {
    // the mapped union of responses cannot see that `request` and `value` agree
    const response = { v: PROTOCOL_VERSION, type: 'result', id, request, ok: true, value } as Response;
    scope.postMessage(response);
  };

  const ready = (): WasmClient => {
    if (crashed !== null) throw new WorkerError('crashed', `the client stopped after an internal error: ${crashed}`);
    if (client === null) throw new WorkerError('not-ready', 'the client is not running (not initialised, or disconnected)');
    return client;
  };

  const load = (url: string | null): Promise<unknown> => {
    loaded ??= backend.load(url).catch((e: unknown) => {
      loaded = null;
      throw new WorkerError('load-failed', `cannot load the client's wasm: ${e instanceof Error ? e.message : String(e)}`);
    });
    return loaded;
  };

  const handle = async (req: Request): Promise<void> => {
    switch (req.type) {
      case 'init': {
        if (client !== null) throw new WorkerError('invalid-argument', 'this worker already runs a client');
        await load(req.wasmUrl);
        const made = await backend.create(req.config, req.fetch, emit);
        client = made.client;
        fetcher = made.fetch;
        ok(req.id, 'init', { selfAddress: client.selfAddress });
        return;
      }
      case 'send':
        ok(req.id, 'send', ready().send(req.recipient, new Uint8Array(req.data), req.replySurbs));
        return;
      case 'reply':
        ok(req.id, 'reply', ready().reply(req.senderTag, new Uint8Array(req.data)));
        return;
      case 'stats': {
        const stats = ready().stats();
        // the wasm's exports (init's result) hold its memory
        const exports = (await loaded) as { memory?: WebAssembly.Memory } | null;
        ok(req.id, 'stats', { ...stats, wasmMemoryBytes: exports?.memory?.buffer.byteLength ?? 0 });
        return;
      }
      case 'fetch': {
        ready();
        if (fetcher === null) throw new WorkerError('invalid-argument', 'this worker runs no MixFetch (use createMixFetch)');
        const body = req.body === null ? undefined : new Uint8Array(req.body);
        ok(req.id, 'fetch', fetcher.fetch(JSON.stringify(req.request), body));
        return;
      }
      case 'abort':
        if (fetcher !== null && crashed === null) fetcher.abort(req.fetchId);
        ok(req.id, 'abort', null);
        return;
      case 'disconnect':
        if (client !== null) {
          client.disconnect();
          client.free();
          client = null;
          fetcher = null;
        }
        ok(req.id, 'disconnect', null);
        return;
      case 'benchBuild':
        await load(null);
        ok(req.id, 'benchBuild', backend.benchBuildPackets(req.packets));
        return;
    }
  };

  scope.addEventListener('message', (e: MessageEvent<unknown>) => {
    const m = e.data;
    if (!isProtocolMessage(m)) {
      const got = typeof m === 'object' && m !== null ? (m as { v?: unknown }).v : undefined;
      const id = typeof m === 'object' && m !== null && typeof (m as { id?: unknown }).id === 'number' ? (m as { id: number }).id : -1;
      fail(id, new WorkerError('protocol', `expected protocol version ${PROTOCOL_VERSION}, got ${String(got)}`));
      return;
    }
    const req = m as Request;
    handle(req).catch((err: unknown) => fail(req.id, err));
  });

  // Anything that escapes (a trap in a timer callback, say) stops the client loudly.
  scope.addEventListener('error', (e: ErrorEvent) => {
    if (crashed === null) emit({ type: 'fatal', message: e.message || 'uncaught error in the worker' });
  });
  scope.addEventListener('unhandledrejection', (e: PromiseRejectionEvent) => {
    if (crashed === null) emit({ type: 'fatal', message: `unhandled rejection: ${String(e.reason)}` });
  });
}
