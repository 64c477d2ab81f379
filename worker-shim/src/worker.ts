// The worker entry: loads the wasm client from an explicit URL (no inlined base64, so
// strict-CSP pages work), runs it, and answers the main thread's requests. It holds no
// protocol logic: that is all in the wasm (mixnet-core).

import init, { MixnetClient, benchBuildPackets } from './wasm/wasm_client.js';
import {
  PROTOCOL_VERSION,
  isProtocolMessage,
  type ErrorCode,
  type Request,
  type RequestType,
  type Response,
  type ResultOf,
  type WorkerEvent,
} from './protocol.js';

// A dedicated worker's global scope, typed without leaning on `self as any`.
interface WorkerScope {
  postMessage(message: Response, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (e: MessageEvent<unknown>) => void): void;
  addEventListener(type: 'error', listener: (e: ErrorEvent) => void): void;
  addEventListener(type: 'unhandledrejection', listener: (e: PromiseRejectionEvent) => void): void;
}
const scope = globalThis as unknown as WorkerScope;

let client: MixnetClient | null = null;
let crashed: string | null = null;
let wasmReady: Promise<unknown> | null = null;

class WorkerError extends Error {
  constructor(readonly code: ErrorCode, message: string) {
    super(message);
  }
}

const KNOWN_CODES: readonly ErrorCode[] = ['invalid-argument', 'directory', 'not-ready', 'send-failed'];

function emit(event: WorkerEvent): void {
  if (event.type === 'message') {
    scope.postMessage({ v: PROTOCOL_VERSION, type: 'event', event }, [event.data.buffer as ArrayBuffer]);
  } else {
    if (event.type === 'fatal') crashed = event.message;
    scope.postMessage({ v: PROTOCOL_VERSION, type: 'event', event });
  }
}

function fail(id: number, e: unknown): void {
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
}

function ok<K extends RequestType>(id: number, request: K, value: ResultOf[K]): void {
  // the mapped union of responses cannot see that `request` and `value` agree
  const response = { v: PROTOCOL_VERSION, type: 'result', id, request, ok: true, value } as Response;
  scope.postMessage(response);
}

function ready(): MixnetClient {
  if (crashed !== null) throw new WorkerError('crashed', `the client stopped after an internal error: ${crashed}`);
  if (client === null) throw new WorkerError('not-ready', 'the client is not running (not initialised, or disconnected)');
  return client;
}

function loadWasm(url: string | null): Promise<unknown> {
  const where = url ?? new URL('./wasm/wasm_client_bg.wasm', import.meta.url);
  wasmReady ??= init({ module_or_path: where }).catch((e: unknown) => {
    wasmReady = null;
    throw new WorkerError('load-failed', `cannot load the client's wasm from ${String(where)}: ${e instanceof Error ? e.message : String(e)}`);
  });
  return wasmReady;
}

async function handle(req: Request): Promise<void> {
  switch (req.type) {
    case 'init': {
      if (client !== null) throw new WorkerError('invalid-argument', 'this worker already runs a client');
      await loadWasm(req.wasmUrl);
      client = await MixnetClient.create(JSON.stringify(req.config), (e: WorkerEvent) => emit(e));
      ok(req.id, 'init', { selfAddress: client.selfAddress });
      return;
    }
    case 'send':
      ok(req.id, 'send', ready().send(req.recipient, new Uint8Array(req.data), req.replySurbs));
      return;
    case 'reply':
      ok(req.id, 'reply', ready().reply(req.senderTag, new Uint8Array(req.data)));
      return;
    case 'stats':
      ok(req.id, 'stats', ready().stats());
      return;
    case 'disconnect':
      if (client !== null) {
        client.disconnect();
        client.free();
        client = null;
      }
      ok(req.id, 'disconnect', null);
      return;
    case 'benchBuild':
      await loadWasm(null);
      ok(req.id, 'benchBuild', benchBuildPackets(req.packets));
      return;
  }
}

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
