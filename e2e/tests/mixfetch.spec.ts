import type { Page } from '@playwright/test';
import { test, expect, type TestServers, ENCODED_TEXT } from '../servers';
import { createHash } from 'node:crypto';
import { closeMixFetchPage, mixFetch, openMixFetchPage } from './helpers';

let servers: TestServers;
test.beforeAll(({ servers: s }) => {
  servers = s;
});

for (const mode of ['fast', 'mixnet'] as const) {
  test.describe(`MixFetch, ${mode} mode`, () => {
    let page: Page;
    test.beforeAll(async ({ browser, localnet }) => {
      page = await openMixFetchPage(browser, localnet, mode, servers.caPem);
    });
    test.afterAll(() => closeMixFetchPage(page));

    test('GET text and JSON over HTTPS (the local CA through extraRoots) and plain HTTP', async () => {
      const text = await mixFetch(page, `${servers.https}/text`);
      expect(text.error).toBeNull();
      expect([text.status, text.text, text.headers['content-type']]).toEqual([200, 'hello from the test server ✓', 'text/plain; charset=utf-8']);
      const json = await mixFetch(page, `${servers.https}/json`);
      expect(JSON.parse(json.text)).toEqual({ ok: true, items: [1, 2, 3] });
      const plain = await mixFetch(page, `${servers.http}/text`);
      expect(plain.text).toBe('hello from the test server ✓');
    });

    test('a 5 MB binary is byte-identical to a direct fetch', async () => {
      test.setTimeout(180_000);
      const viaMixnet = await mixFetch(page, `${servers.https}/binary`);
      expect(viaMixnet.error).toBeNull();
      const direct = await page.evaluate(async (url) => {
        const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
        return Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
      }, `${servers.http}/binary`);
      expect([viaMixnet.length, viaMixnet.sha256]).toEqual([servers.binaryLength, direct]);
      expect(direct).toBe(servers.binarySha256);
    });

    test('POST with a body, and request headers', async () => {
      const r = await mixFetch(page, `${servers.https}/echo`, {
        method: 'POST',
        body: 'the posted body',
        headers: { 'Content-Type': 'text/x-test', 'X-Test': 'yes' },
      });
      expect([r.status, r.text, r.headers['x-method'], r.headers['x-echo-header'], r.headers['content-type']]).toEqual([
        200,
        'the posted body',
        'POST',
        'yes',
        'text/x-test',
      ]);
    });

    test('HEAD has a null body, as fetch gives; an HTTPS upload past 64 KiB arrives whole', async () => {
      // both failed on 117647c: an empty stream for HEAD; "failed to write whole buffer" from 64 KiB
      const head = await mixFetch(page, `${servers.https}/text`, { method: 'HEAD' });
      expect([head.status, head.nullBody, head.error]).toEqual([200, true, null]);
      const echoed = await page.evaluate(async (url) => {
        const body = new Uint8Array(256 * 1024).map((_, i) => i % 251);
        const res = await window.mixnet.mixFetch(url, { method: 'POST', body });
        const back = new Uint8Array(await res.arrayBuffer());
        return [res.status, back.length, back.every((v, i) => v === i % 251)];
      }, `${servers.https}/echo`);
      expect(echoed).toEqual([200, 256 * 1024, true]);
    });

    test('Content-Encoding: gzip and deflate bodies are decoded, as the browser decodes them', async () => {
      // failed on 117647c: no Accept-Encoding was sent, and a gzip body came back as gzip bytes
      const sent = JSON.parse((await mixFetch(page, `${servers.https}/headers`)).text) as Record<string, string>;
      expect(sent['accept-encoding']).toBe('gzip, deflate');
      const ranged = JSON.parse((await mixFetch(page, `${servers.https}/headers`, { headers: { Range: 'bytes=0-9' } })).text) as Record<string, string>;
      expect([ranged['accept-encoding'], ranged.range]).toEqual(['identity', 'bytes=0-9']);
      const want = { length: Buffer.byteLength(ENCODED_TEXT), sha256: createHash('sha256').update(ENCODED_TEXT).digest('hex') };
      const kinds = ['gzip', 'x-gzip', 'deflate', 'deflate-raw', 'twice', 'unknown', 'empty', 'corrupt'];
      // what the browser's own fetch makes of each, over plain HTTP
      const native = await page.evaluate(
        async ({ base, kinds }) => {
          const out: Record<string, string> = {};
          for (const kind of kinds) {
            try {
              const body = await (await fetch(`${base}/encoded/${kind}`)).arrayBuffer();
              out[kind] = `ok ${body.byteLength}`;
            } catch (e) {
              out[kind] = (e as Error).name;
            }
          }
          return out;
        },
        { base: servers.http, kinds },
      );
      for (const kind of kinds) {
        const r = await mixFetch(page, `${servers.https}/encoded/${kind}`);
        const outcome = r.error === null ? `ok ${r.length}` : r.error.split(':')[0];
        expect([kind, outcome], 'as the browser').toEqual([kind, native[kind]]);
        if (kind === 'empty') continue;
        if (kind === 'corrupt') {
          expect(r.error).toMatch(/^TypeError: MixFetch: the response body is not valid gzip \(Content-Encoding: gzip\)$/);
          continue;
        }
        expect([kind, r.length, r.sha256]).toEqual([kind, want.length, want.sha256]);
        // the headers stay as the server sent them, as in a browser
        expect(r.headers['content-encoding']).toBeTruthy();
      }
    });

    test('redirects are followed, and reported', async () => {
      const r = await mixFetch(page, `${servers.https}/redirect/3`);
      expect([r.status, r.redirected, r.url, r.text]).toEqual([200, true, `${servers.https}/text`, 'hello from the test server ✓']);
      const manual = await mixFetch(page, `${servers.https}/redirect/1`, { redirect: 'manual' });
      expect([manual.status, manual.headers.location]).toEqual([302, '/text']);
      const refused = await mixFetch(page, `${servers.https}/redirect/1`, { redirect: 'error' });
      expect(refused.error).toMatch(/^TypeError: MixFetch: redirected to .*\/text while the redirect mode is "error"$/);
    });

    test('404 and 500 come back as responses', async () => {
      const nf = await mixFetch(page, `${servers.https}/status/404`);
      expect([nf.status, nf.statusText, nf.text]).toEqual([404, 'Not Found', 'not found here']);
      const se = await mixFetch(page, `${servers.http}/status/500`);
      expect([se.status, se.text]).toEqual([500, 'server error']);
    });

    test('a chunked response', async () => {
      const r = await mixFetch(page, `${servers.https}/chunked`);
      expect([r.status, r.text, r.headers['transfer-encoding']]).toEqual([200, 'alpha beta gamma', 'chunked']);
    });

    test('20 concurrent requests', async () => {
      const bodies = await page.evaluate(async (base) => {
        const all = Array.from({ length: 20 }, (_, i) => window.mixnet.mixFetch(`${base}/n/${i}`).then((r) => r.text()));
        return Promise.all(all);
      }, servers.https);
      expect(bodies).toEqual(Array.from({ length: 20 }, (_, i) => `response ${i}`));
    });

    test('abort mid-body', async () => {
      const r = await page.evaluate(async (url) => {
        const ac = new AbortController();
        const res = await window.mixnet.mixFetch(url, { signal: ac.signal });
        const reader = res.body!.getReader();
        let got = 0;
        while (got < 64 * 1024) {
          const { value } = await reader.read();
          got += value?.length ?? 0;
        }
        ac.abort();
        try {
          for (;;) {
            const { done } = await reader.read();
            if (done) return { got, outcome: 'ended' };
          }
        } catch (e) {
          return { got, outcome: (e as Error).name };
        }
      }, `${servers.https}/slow`);
      expect(r.got).toBeGreaterThanOrEqual(64 * 1024);
      expect(r.outcome).toBe('AbortError');
      // an already aborted signal rejects at once
      const pre = await page.evaluate(async (url) => {
        try {
          await window.mixnet.mixFetch(url, { signal: AbortSignal.abort() });
          return 'resolved';
        } catch (e) {
          return (e as Error).name;
        }
      }, `${servers.https}/text`);
      expect(pre).toBe('AbortError');
    });

    test('a bad certificate is refused with a clear error', async () => {
      const r = await mixFetch(page, `${servers.badHttps}/text`);
      expect(r.error).toMatch(/^TypeError: MixFetch: TLS with localhost failed: invalid peer certificate: UnknownIssuer/);
    });

    test('a host the exit policy denies gives a clear error', async () => {
      const r = await mixFetch(page, 'http://10.255.255.1/');
      expect(r.error).toMatch(/^TypeError: MixFetch: could not connect to 10\.255\.255\.1:80: .*(policy|private)/);
    });
  });
}
