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
});
