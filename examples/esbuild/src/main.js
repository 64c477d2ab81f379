import { run } from '../../shared-app.js';

// esbuild does not follow `new Worker(new URL(…, import.meta.url))`: build.mjs bundles the
// worker entry as its own file next to this one, and the page says where it is
void run({ workerUrl: new URL('./mixfetch-worker.js', import.meta.url) });
