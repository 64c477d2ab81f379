import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The demo is built like a user's app would be: the worker and the wasm come out of
// @mixnet/worker-shim as separate files (no inlining), so the strict CSP that localnet
// serves the demo with holds.
export default defineConfig({
  base: './',
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    sourcemap: true,
    rollupOptions: {
      input: { main: 'index.html', fetch: 'fetch.html', bench: 'bench.html' },
    },
  },
  worker: { format: 'es' },
  plugins: [
    {
      // MixFetch's service worker at the site's root, so that it may control every page
      // (a service worker's scope is at most its own directory)
      name: 'mixfetch-sw-at-root',
      generateBundle() {
        const sw = fileURLToPath(import.meta.resolve('@mixnet/worker-shim/mixfetch-sw'));
        this.emitFile({ type: 'asset', fileName: 'mixfetch-sw.js', source: readFileSync(sw) });
      },
    },
  ],
});
