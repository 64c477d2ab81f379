import { defineConfig } from 'vite';

export default defineConfig({
  // keep the package out of dev pre-bundling: its worker and wasm files must stay next to it
  optimizeDeps: { exclude: ['@mixnet/worker-shim'] },
  build: { target: 'es2022' },
});
