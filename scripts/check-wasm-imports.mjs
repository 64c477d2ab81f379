// Fails if any given .wasm imports from the `env` module. wasm-bindgen's own imports
// (`__wbindgen_placeholder__`, `__wbindgen_externref_xform__`) are expected.
import { readFileSync } from 'node:fs';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('check-wasm-imports: no .wasm files given');
  process.exit(2);
}
let bad = 0;
for (const f of files) {
  const mod = new WebAssembly.Module(readFileSync(f));
  const env = WebAssembly.Module.imports(mod).filter((i) => i.module === 'env');
  if (env.length > 0) {
    bad++;
    console.error(`${f}: imports from env: ${env.map((i) => i.name).join(', ')}`);
  }
}
if (bad) process.exit(1);
console.log(`check-wasm-imports: ${files.length} module(s), no imports from env`);
