import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export default {
  mode: 'production',
  entry: './src/main.js',
  output: { path: path.join(here, 'dist'), filename: 'main.js', publicPath: 'auto', clean: true },
  // webpack 5 emits `new Worker(new URL(…, import.meta.url))` and the wasm URLs as assets
  experiments: { outputModule: true },
  target: 'web',
  // the wasm modules are big on purpose (the client: ~150 KiB gzip; with MixFetch ~420 KB)
  performance: { hints: false },
};
