// Builds the extension into dist/ (load it with chrome://extensions → "Load unpacked"):
// the three scripts bundled by esbuild, the MixFetch worker as its own file with its
// wasm next to it, the manifest and the pages copied.
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
    background: path.join(here, 'src/background.js'),
    popup: path.join(here, 'src/popup.js'),
    offscreen: path.join(here, 'src/offscreen.js'),
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
for (const f of ['manifest.json', 'popup.html', 'offscreen.html']) cpSync(path.join(here, f), path.join(out, f));
