// Content decoding is pulled by the reader: a small gzip body that inflates a
// thousandfold is not decoded ahead of demand (the page would otherwise hold it all).
// Runs in Node against the package's own decoder; no browser.

import { gzipSync } from 'node:zlib';
import { test, expect } from '@mixnet/playwright';
// an internal module of the package (not one of its exports)
import { decodeBody } from '../../worker-shim/dist/decode.js';

test('a gzip bomb is decoded only as far as it is read', async () => {
  const bomb = gzipSync(Buffer.alloc(64 << 20)); // 64 MiB of zeros, ~64 KB
  const CHUNK = 1024;
  let pulled = 0;
  const source = new ReadableStream<Uint8Array>(
    {
      pull(c) {
        if (pulled * CHUNK >= bomb.length) return c.close();
        c.enqueue(new Uint8Array(bomb.subarray(pulled * CHUNK, (pulled + 1) * CHUNK)));
        pulled += 1;
      },
    },
    { highWaterMark: 0 },
  );
  const chunks = Math.ceil(bomb.length / CHUNK);
  const before = process.memoryUsage().arrayBuffers;
  const reader = (decodeBody(source, ['gzip']) as ReadableStream<Uint8Array>).getReader();
  let got = 0;
  for (let i = 0; i < 3; i++) got += (await reader.read()).value!.length;
  // give any eager decoding every chance to run ahead
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  // what the decoder holds after three reads: a few chunks, not the 64 MiB
  const held = process.memoryUsage().arrayBuffers - before;
  expect(chunks).toBeGreaterThan(50);
  expect(held).toBeLessThan(16 << 20);
  // and the whole body still decodes
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    got += r.value.length;
  }
  expect([got, pulled]).toEqual([64 << 20, chunks]);
});
