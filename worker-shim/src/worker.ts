// The worker entry for the mixnet client alone (messages, anonymous replies). It loads
// the wasm from an explicit URL (no inlined base64, so strict-CSP pages work).

import init, { MixnetClient, benchBuildPackets } from './wasm/wasm_client.js';
import { WorkerError, serve, type WasmClient } from './worker-core.js';

serve({
  load: (url) => init({ module_or_path: url ?? new URL('./wasm/wasm_client_bg.wasm', import.meta.url) }),
  async create(config, fetch, onEvent) {
    if (fetch !== null) throw new WorkerError('invalid-argument', 'this worker has no MixFetch: use the mixfetch worker (createMixFetch)');
    const client: WasmClient = await MixnetClient.create(JSON.stringify(config), onEvent);
    return { client, fetch: null };
  },
  benchBuildPackets,
});
