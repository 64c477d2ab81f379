// The worker entry for MixFetch: the client plus fetch over the mixnet (rustls and
// HTTP/1.1 in the wasm). Loads its wasm from an explicit URL, like worker.ts.

import init, { MixFetch, benchBuildPackets } from './wasm/mixfetch.js';
import { serve, type WasmClient } from './worker-core.js';

serve({
  load: (url) => init({ module_or_path: url ?? new URL('./wasm/mixfetch_bg.wasm', import.meta.url) }),
  async create(config, fetch, onEvent) {
    const mf = await MixFetch.create(JSON.stringify(config), JSON.stringify(fetch ?? {}), onEvent);
    const client: WasmClient = mf.client;
    return { client, fetch: mf };
  },
  benchBuildPackets,
});
