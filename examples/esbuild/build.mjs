// esbuild: the app, and the MixFetch worker as a second entry point; the wasm copied next
// to the worker (the worker loads `./wasm/mixfetch_bg.wasm` relative to itself).
import { build } from 'esbuild';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.join(here, 'dist');
const resolve = (spec) => fileURLToPath(import.meta.resolve(spec));

rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: {
    main: path.join(here, 'src/main.js'),
    'mixfetch-worker': resolve('@mixnet/worker-shim/mixfetch-worker'),
  },
  bundle: true,
  format: 'esm',
  target: 'es2022',
  outdir: out,
  logLevel: 'warning',
});
mkdirSync(path.join(out, 'wasm'), { recursive: true });
cpSync(resolve('@mixnet/worker-shim/wasm/mixfetch'), path.join(out, 'wasm/mixfetch_bg.wasm'));
cpSync(path.join(here, 'index.html'), path.join(out, 'index.html'));
