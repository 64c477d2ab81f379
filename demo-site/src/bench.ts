// A bare page for benchmarks and automated tests: no UI work besides one line of text,
// so that what the renderer spends is the client's. `?client=0` loads the page without
// a client (the baseline for CPU measurements, and the page tests drive themselves
// through `window.mixnet`, the library); other query parameters are client options.

import * as lib from '@mixnet/worker-shim';
import { createMixnetClient, type MixnetClient } from '@mixnet/worker-shim';
import { localnetInfo } from './page';
import { transportParam } from './transport';

declare global {
  interface Window {
    bench: { readyMs: number | null; client: MixnetClient | null; error: string | null };
    mixnet: typeof lib;
  }
}

window.bench = { readyMs: null, client: null, error: null };
window.mixnet = lib;
const params = new URLSearchParams(location.search);

async function main(): Promise<void> {
  if (params.get('client') === '0') return;
  const info = await localnetInfo();
  const started = performance.now();
  const client = await createMixnetClient({
    directory: info.directory,
    directoryKey: info.directoryKey,
    gateway: info.entryGateway,
    mode: params.get('mode') === 'fast' ? 'fast' : 'mixnet',
    transport: transportParam(params),
  });
  window.bench.readyMs = performance.now() - started;
  window.bench.client = client;
  const out = document.getElementById('out');
  if (out) out.textContent = `ready in ${window.bench.readyMs.toFixed(0)} ms`;
}

main().catch((e: unknown) => {
  window.bench.error = e instanceof Error ? e.message : String(e);
});
