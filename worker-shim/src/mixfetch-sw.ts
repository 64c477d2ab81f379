// The MixFetch service worker (registered by `registerMixFetchServiceWorker`): requests
// from the pages it controls to the listed origins (`?origins=` in its own URL, so they
// survive the worker being stopped and restarted) are handed to the requesting page's
// MixFetch, which owns the mixnet client (a service worker lives too briefly to own one).
// Other origins are not touched. A listed origin is never fetched directly: when the
// page cannot take the request, it fails as a network error.

/// <reference lib="webworker" />
export {};

declare const self: ServiceWorkerGlobalScope;

/** How long a page has to say it took a request. */
const ACCEPT_MS = 3000;

const origins = new Set(
  (new URL(self.location.href).searchParams.get('origins') ?? '')
    .split(',')
    .filter(Boolean)
    .map((o) => new URL(o).origin),
);

self.addEventListener('install', () => {
  void self.skipWaiting();
});
self.addEventListener('activate', (e) => {
  e.waitUntil(self.clients.claim());
});

type FromPage =
  | { type: 'accepted' }
  | { type: 'head'; status: number; statusText: string; headers: [string, string][] }
  | { type: 'chunk'; data: Uint8Array }
  | { type: 'end' }
  | { type: 'error'; message: string };

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (!origins.has(url.origin) || event.request.mode === 'navigate') return;
  event.respondWith(forward(event.request, event.clientId));
});

async function forward(request: Request, clientId: string): Promise<Response> {
  const client = clientId ? await self.clients.get(clientId) : undefined;
  if (!client) return Response.error();
  const body = request.method === 'GET' || request.method === 'HEAD' ? null : await request.arrayBuffer();
  const { port1, port2 } = new MessageChannel();
  const wire = { method: request.method, url: request.url, headers: [...request.headers], redirect: request.redirect };
  return new Promise<Response>((resolve) => {
    let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
    let settled = false;
    const fail = () => {
      if (!settled) {
        settled = true;
        resolve(Response.error());
      }
    };
    const timer = setTimeout(fail, ACCEPT_MS);
    const stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        controller = c;
      },
      cancel: () => port1.postMessage({ type: 'cancel' }),
    });
    port1.onmessage = (e: MessageEvent<FromPage>) => {
      const m = e.data;
      switch (m.type) {
        case 'accepted':
          clearTimeout(timer);
          return;
        case 'head': {
          settled = true;
          const nullBody = request.method === 'HEAD' || [101, 103, 204, 205, 304].includes(m.status);
          resolve(new Response(nullBody ? null : stream, { status: m.status, statusText: m.statusText, headers: m.headers }));
          return;
        }
        case 'chunk':
          controller?.enqueue(m.data);
          return;
        case 'end':
          controller?.close();
          port1.close();
          return;
        case 'error':
          clearTimeout(timer);
          if (settled) controller?.error(new TypeError(m.message));
          else fail();
          port1.close();
          return;
      }
    };
    client.postMessage({ type: 'mixfetch-sw-request', request: wire, body }, [port2, ...(body ? [body] : [])]);
  });
}
