// The MixFetch demo: fetch a URL through the mixnet and show status, headers, timing
// and the route. Query parameters: mode=fast|mixnet, transport=auto|websocket|webtransport.

import { createMixFetch, type MixFetch } from '@mixnet/worker-shim';
import { $, localnetInfo, type LocalnetInfo } from './page';
import { routeRow } from './route';
import { showTransport, transportParam } from './transport';

const params = new URLSearchParams(location.search);
let mf: MixFetch | null = null;
let inFlight: AbortController | null = null;

function showError(message: string): void {
  const el = $('error');
  el.textContent = message;
  el.hidden = message === '';
}

function setState(state: string): void {
  const el = $('state');
  el.textContent = state;
  el.dataset.state = state;
}

async function start(info: LocalnetInfo, mode: 'mixnet' | 'fast'): Promise<void> {
  $<HTMLButtonElement>('fetch-button').disabled = true;
  setState('connecting');
  showRouteNote(mode);
  await mf?.disconnect();
  const started = performance.now();
  mf = await createMixFetch({
    directory: info.directory,
    directoryKey: info.directoryKey,
    gateway: info.entryGateway,
    mode,
    transport: transportParam(params),
    extraRoots: info.demoOrigin?.ca,
  });
  $('ready-ms').textContent = `ready in ${Math.round(performance.now() - started)} ms`;
  setState(mf.client.state);
  mf.client.on('state', ({ state }) => setState(state));
  showTransport(mf.client, $('transport'));
  mf.client.on('fatal', (e) => showError(e.message));
  $<HTMLButtonElement>('fetch-button').disabled = false;
  document.body.dataset.ready = 'true';
}

async function run(): Promise<void> {
  if (!mf) return;
  inFlight?.abort(); // one request at a time on this page
  showError('');
  const method = $<HTMLSelectElement>('method').value;
  const body = method === 'POST' || method === 'PUT' ? $<HTMLTextAreaElement>('body').value : undefined;
  inFlight = new AbortController();
  $<HTMLButtonElement>('abort-button').disabled = false;
  $('status').textContent = '…';
  $('timing').textContent = '';
  $('final-url').textContent = '';
  $('headers').replaceChildren();
  $('response-body').textContent = '';
  const t0 = performance.now();
  try {
    const res = await mf.fetch($<HTMLInputElement>('url').value, { method, body, signal: inFlight.signal });
    const tHead = performance.now() - t0;
    $('status').textContent = `${res.status} ${res.statusText}`;
    $('final-url').textContent = res.redirected ? `redirected to ${res.url}` : res.url;
    $('headers').replaceChildren(
      ...[...res.headers].map(([k, v]) => {
        const tr = document.createElement('tr');
        const a = document.createElement('td');
        const b = document.createElement('td');
        a.textContent = k;
        b.textContent = v;
        tr.append(a, b);
        return tr;
      }),
    );
    const bytes = new Uint8Array(await res.arrayBuffer());
    const total = performance.now() - t0;
    $('timing').textContent = `head after ${tHead.toFixed(0)} ms, ${bytes.length} bytes after ${total.toFixed(0)} ms`;
    const text = new TextDecoder().decode(bytes.slice(0, 64 * 1024));
    $('response-body').textContent = bytes.length > 64 * 1024 ? `${text}\n… (${bytes.length} bytes)` : text;
  } catch (e) {
    $('status').textContent = 'failed';
    showError(e instanceof Error ? e.message : String(e));
  } finally {
    $<HTMLButtonElement>('abort-button').disabled = true;
    inFlight = null;
  }
  const stats = await mf.client.stats();
  const real = stats.routes.filter((r) => r.kind === 'real' && r.hops.length > 1).slice(-4).reverse();
  $('route').replaceChildren(...real.map((r) => routeRow(r, false)));
  $('route-table').hidden = real.length === 0;
  if (real.length > 0) $('route-note').textContent = 'Your packets crossed these nodes (real packets; replies come back through SURBs you made):';
}

function showRouteNote(mode: 'mixnet' | 'fast'): void {
  $('route-note').textContent =
    mode === 'fast'
      ? 'Fast mode: your packets go straight to the exit\'s gateway, through no mix layer (no route to show).'
      : 'Your packets crossed these nodes (real packets; replies come back through SURBs you made). Fetch something to see its route.';
  $('route-table').hidden = true;
  $('route').replaceChildren();
}

async function main(): Promise<void> {
  const info = await localnetInfo();
  const mode = params.get('mode') === 'fast' ? 'fast' : params.get('mode') === 'mixnet' ? 'mixnet' : info.mode;
  const select = $<HTMLSelectElement>('mode');
  select.value = mode;
  select.addEventListener('change', () => {
    start(info, select.value === 'fast' ? 'fast' : 'mixnet').catch((e: Error) => showError(e.message));
  });
  if (info.demoOrigin) {
    $<HTMLInputElement>('url').value = info.demoOrigin.https;
    const ex = $('examples');
    ex.textContent = 'Try: ';
    for (const path of ['', 'json', 'bytes/1000000', 'redirect/3', 'chunked', 'not-found']) {
      const a = document.createElement('a');
      a.href = '#';
      a.textContent = `/${path}`;
      a.addEventListener('click', (e) => {
        e.preventDefault();
        $<HTMLInputElement>('url').value = `${info.demoOrigin?.https}${path}`;
        $<HTMLSelectElement>('method').value = 'GET';
        void run();
      });
      ex.append(a, ' ');
    }
  }
  $('fetch-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void run();
  });
  $('abort-button').addEventListener('click', () => inFlight?.abort());
  await start(info, mode);
}

main().catch((e: unknown) => {
  setState('failed');
  showError(e instanceof Error ? e.message : String(e));
});
