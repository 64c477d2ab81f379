// MixFetch against a server nobody here wrote: Debian's nginx (e2e/nginx.ts), in both
// modes, over TLS 1.3, TLS 1.2 and plain HTTP, with what nginx does on its own: gzip,
// sendfile, keep-alive, byte ranges, ETags and 304s, HEAD, redirects.

import type { Page } from '@playwright/test';
import { createHash } from 'node:crypto';
import { test, expect, type TestServers, ENCODED_TEXT } from '../servers';
import { startNginx, type Nginx } from '../nginx';
import { closeMixFetchPage, mixFetch, openMixFetchPage } from './helpers';

const BIG = new Uint8Array(1024 * 1024 + 17).map((_, i) => (i * 7 + (i >> 9)) % 256);
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

let servers: TestServers;
let nginx: Nginx;
test.beforeAll(async ({ servers: s }) => {
  servers = s;
  nginx = await startNginx(servers.leaf, { 'big.bin': BIG, 'text.txt': ENCODED_TEXT, 'small.txt': 'small file from nginx\n' });
});
test.afterAll(async () => {
  await nginx?.close();
});

for (const mode of ['fast', 'mixnet'] as const) {
  test.describe(`MixFetch and nginx, ${mode} mode`, () => {
    let page: Page;
    test.beforeAll(async ({ browser, localnet }) => {
      page = await openMixFetchPage(browser, localnet, mode, servers.caPem);
    });
    test.afterAll(() => closeMixFetchPage(page));

    test('a 1 MiB file arrives whole over TLS 1.3, TLS 1.2 and plain HTTP', async () => {
      test.setTimeout(120_000);
      for (const base of [nginx.https, nginx.https12, nginx.http]) {
        const r = await mixFetch(page, `${base}/big.bin`);
        expect([base, r.error, r.status, r.length, r.sha256]).toEqual([base, null, 200, BIG.length, sha256(BIG)]);
        expect(r.headers['content-length']).toBe(String(BIG.length));
      }
    });

    test('a 1 MiB upload over TLS reaches nginx (which refuses POST to a file: 405)', async () => {
      // on 117647c every HTTPS body from 64 KiB failed before a byte was sent
      const status = await page.evaluate(async (url) => {
        const res = await window.mixnet.mixFetch(url, { method: 'POST', body: new Uint8Array(1 << 20) });
        await res.arrayBuffer();
        return res.status;
      }, `${nginx.https}/small.txt`);
      expect(status).toBe(405);
    });

    test('gzip from nginx is decoded; the headers are nginx\'s', async () => {
      const r = await mixFetch(page, `${nginx.https}/text.txt`);
      expect([r.error, r.status, r.length, r.sha256]).toEqual([null, 200, Buffer.byteLength(ENCODED_TEXT), sha256(ENCODED_TEXT)]);
      expect([r.headers['content-encoding'], r.headers['content-type']]).toEqual(['gzip', 'text/plain']);
    });

    test('byte ranges, conditional requests, HEAD and a redirect, as nginx answers them', async () => {
      const range = await mixFetch(page, `${nginx.https}/big.bin`, { headers: { Range: 'bytes=1000-1999' } });
      expect([range.status, range.length, range.sha256, range.headers['content-range']]).toEqual([
        206,
        1000,
        sha256(BIG.subarray(1000, 2000)),
        `bytes 1000-1999/${BIG.length}`,
      ]);
      // a range of the text comes back uncompressed: the request asked for identity
      const textRange = await mixFetch(page, `${nginx.https}/text.txt`, { headers: { Range: 'bytes=0-3' } });
      expect([textRange.status, textRange.text, textRange.headers['content-encoding']]).toEqual([206, 'line', undefined]);
      const first = await mixFetch(page, `${nginx.https}/small.txt`);
      const etag = first.headers.etag;
      expect(etag).toBeTruthy();
      const again = await mixFetch(page, `${nginx.https}/small.txt`, { headers: { 'If-None-Match': etag! } });
      expect([again.status, again.nullBody, again.error]).toEqual([304, true, null]);
      const since = await mixFetch(page, `${nginx.https}/small.txt`, { headers: { 'If-Modified-Since': first.headers['last-modified']! } });
      expect(since.status).toBe(304);
      const head = await mixFetch(page, `${nginx.https}/big.bin`, { method: 'HEAD' });
      expect([head.status, head.nullBody, head.headers['content-length']]).toEqual([200, true, String(BIG.length)]);
      const moved = await mixFetch(page, `${nginx.https}/moved`);
      expect([moved.status, moved.redirected, moved.url, moved.text]).toEqual([200, true, `${nginx.https}/small.txt`, 'small file from nginx\n']);
      const missing = await mixFetch(page, `${nginx.http}/nothing-here`);
      expect([missing.status, missing.error]).toEqual([404, null]);
    });

    test('requests in a row and at once share nginx keep-alive connections', async () => {
      const bodies = await page.evaluate(async ({ base, mode }) => {
        const seq: string[] = [];
        for (let i = 0; i < 5; i++) seq.push(await (await window.mixnet.mixFetch(`${base}/small.txt?${mode}=${i}`)).text());
        const par = await Promise.all(Array.from({ length: 8 }, (_, i) => window.mixnet.mixFetch(`${base}/small.txt?p=${i}`).then((r) => r.text())));
        return [...seq, ...par];
      }, { base: nginx.https, mode });
      expect(bodies).toEqual(Array.from({ length: 13 }, () => 'small file from nginx\n'));
      // nginx's own log: the five in a row came on one connection
      const conns = new Set(nginx.accessLog().filter((l) => l.includes(`/small.txt?${mode}=`)).map((l) => l.split(' ')[0]));
      expect(conns.size).toBe(1);
    });
  });
}
