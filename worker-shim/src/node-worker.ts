// The worker thread of the Node entry (node.ts): makes a worker_threads thread look like
// a dedicated browser worker to the worker entries (worker.ts, mixfetch-worker.ts), then
// loads the one asked for. Nothing here touches the protocol.

import { readFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';

const port = parentPort!;
const { kind, url } = workerData as { kind: 'client' | 'mixfetch'; url: string | null };
const scope = globalThis as Record<string, unknown>;

// the worker scope's messaging, on the thread's port
scope.postMessage = (message: unknown, transfer?: Transferable[]) => port.postMessage(message, transfer as never);
scope.addEventListener = (type: string, listener: (e: unknown) => void) => {
  if (type === 'message') port.on('message', (data: unknown) => listener({ data }));
  else if (type === 'unhandledrejection') process.on('unhandledRejection', (reason) => listener({ reason, preventDefault() {} }));
  else if (type === 'error') process.on('uncaughtException', (error) => listener({ error, message: error.message, preventDefault() {} }));
};

// a WebSocket where Node has none (before 22)
if (typeof scope.WebSocket !== 'function') {
  try {
    const ws = (await import('ws')) as { WebSocket: unknown };
    scope.WebSocket = ws.WebSocket;
  } catch {
    throw new Error('Node.js before 22 has no WebSocket: `npm install ws` (the client uses it when present), or use Node 22 or later');
  }
}

// the wasm is read from disk: fetch() in Node does not read file: URLs
const netFetch = globalThis.fetch;
globalThis.fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
  const href = input instanceof Request ? input.url : String(input);
  if (href.startsWith('file:')) {
    return new Response(await readFile(new URL(href)), { headers: { 'content-type': 'application/wasm' } });
  }
  return netFetch(input, init);
};

await import(kind === 'mixfetch' ? './mixfetch-worker.js' : './worker.js');
if (url !== null) {
  // a caller's workerUrl has no meaning in Node: the entries are the package's own
  console.warn(`@mixnet/worker-shim (Node): workerUrl ${url} is ignored`);
}
