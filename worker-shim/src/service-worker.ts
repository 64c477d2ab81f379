// Service-worker mode: code that was never written for the mixnet (`<img>`, `fetch`,
// `XMLHttpRequest`, CSS) reaches the listed origins through it. The service worker
// (mixfetch-sw.ts) intercepts those requests and hands each to the page that made it;
// here the page answers it with its MixFetch and streams the response back.

import { MixnetError } from './client.js';
import { _currentMixFetch, type MixFetch } from './mixfetch.js';

export interface MixFetchServiceWorkerOptions {
  /** Origins whose requests go through the mixnet, e.g. `['https://api.example.com']`. */
  origins: string[];
  /**
   * The service worker script (default: `mixfetch-sw.js` next to this module). A
   * service worker controls only pages under its own directory: to cover a whole site,
   * serve a copy at the root (or send `Service-Worker-Allowed`).
   */
  url?: string | URL;
  /** Its scope (default: the script's directory). */
  scope?: string;
  /** The MixFetch to use (default: the one `createMixFetch` made last, at each request). */
  mixFetch?: MixFetch;
}

interface SwRequest {
  type: 'mixfetch-sw-request';
  request: { method: string; url: string; headers: [string, string][]; redirect: RequestRedirect };
  body: ArrayBuffer | null;
}

let chosen: MixFetch | null = null;
let listening = false;

async function answer(m: SwRequest, port: MessagePort): Promise<void> {
  const mf = chosen ?? _currentMixFetch();
  if (!mf) {
    port.postMessage({ type: 'error', message: 'MixFetch is not running in this page (createMixFetch first)' });
    return;
  }
  port.postMessage({ type: 'accepted' });
  const abort = new AbortController();
  port.onmessage = (e: MessageEvent<{ type: string }>) => {
    if (e.data.type === 'cancel') abort.abort();
  };
  try {
    const { method, url, headers, redirect } = m.request;
    const res = await mf.fetch(url, { method, headers, body: m.body, redirect, signal: abort.signal });
    port.postMessage({ type: 'head', status: res.status, statusText: res.statusText, headers: [...res.headers] });
    if (res.body) {
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        port.postMessage({ type: 'chunk', data: value }, [value.buffer]);
      }
    }
    port.postMessage({ type: 'end' });
  } catch (e) {
    port.postMessage({ type: 'error', message: e instanceof Error ? e.message : String(e) });
  }
}

/**
 * Registers the MixFetch service worker for `origins` and resolves once it controls
 * this page. From then on, this page's requests to those origins (images, scripts,
 * `fetch`, XHR) cross the mixnet through its MixFetch; others are untouched. A request
 * to a listed origin that MixFetch cannot take fails as a network error: it is never
 * sent directly.
 */
export async function registerMixFetchServiceWorker(options: MixFetchServiceWorkerOptions): Promise<ServiceWorkerRegistration> {
  if (!('serviceWorker' in navigator)) throw new MixnetError('invalid-argument', 'this context has no service workers (a secure context is needed: https, or http on localhost)');
  const origins = (options.origins ?? []).map((o) => {
    let u: URL;
    try {
      u = new URL(o);
    } catch {
      throw new MixnetError('invalid-argument', `origins: ${JSON.stringify(o)} is not an absolute http(s) URL`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new MixnetError('invalid-argument', `origins: ${o} is not http(s)`);
    return u.origin;
  });
  if (origins.length === 0) throw new MixnetError('invalid-argument', 'origins: list at least one origin to send through the mixnet');
  chosen = options.mixFetch ?? null;
  const script = new URL(options.url ?? new URL('./mixfetch-sw.js', import.meta.url), location.href);
  script.searchParams.set('origins', origins.join(','));
  if (!listening) {
    listening = true;
    navigator.serviceWorker.addEventListener('message', (e: MessageEvent<unknown>) => {
      const m = e.data as SwRequest | null;
      const port = e.ports[0];
      if (m?.type === 'mixfetch-sw-request' && port) void answer(m, port);
    });
    navigator.serviceWorker.startMessages();
  }
  const registration = await navigator.serviceWorker.register(script, { type: 'module', ...(options.scope ? { scope: options.scope } : {}) });
  // resolve once it controls this page (it claims its clients when it activates)
  if (navigator.serviceWorker.controller?.scriptURL !== script.href) {
    await new Promise<void>((resolve) => {
      const check = () => {
        if (navigator.serviceWorker.controller?.scriptURL === script.href) {
          navigator.serviceWorker.removeEventListener('controllerchange', check);
          resolve();
        }
      };
      navigator.serviceWorker.addEventListener('controllerchange', check);
      check();
    });
  }
  return registration;
}
