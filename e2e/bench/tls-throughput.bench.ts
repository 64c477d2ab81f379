// MixFetch, mixnet mode: the same download over HTTPS and over plain HTTP, alternating,
// from the same test server (Node's http/https). The ratio HTTPS / HTTP is the figure:
// TLS should cost little next to the mixnet (issue 11, defect 4).

import { test, chromium } from '@playwright/test';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalnet } from '@mixnet/playwright';
import { DEMO_SITE } from '../site';
import { startNginx } from '../nginx';
import { startTestServers } from '../servers';
import { download, openMixFetchPage } from '../tests/helpers';
import base from '../playwright.config';

declare global {
  interface Window {
    mixnet: typeof import('@mixnet/worker-shim');
  }
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SIZE = Number(process.env.TLS_BENCH_BYTES ?? 2_000_000);
const ROUNDS = Number(process.env.TLS_BENCH_ROUNDS ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

test('MixFetch HTTPS vs HTTP throughput, mixnet mode', async () => {
  const net = await startLocalnet({ site: DEMO_SITE });
  const servers = await startTestServers();
  const body = new Uint8Array(SIZE).map((_, i) => (i * 31) % 251);
  const nginx = await startNginx(servers.leaf, { 'big.bin': body });
  const browser = await chromium.launch(base.use?.launchOptions ?? {});
  try {
    const page = await openMixFetchPage(browser, net, 'mixnet', servers.caPem);
    const urls = {
      'node https': `${servers.https}/bytes/${SIZE}`,
      'node http': `${servers.http}/bytes/${SIZE}`,
      'nginx https': `${nginx.https}/big.bin`,
      'nginx http': `${nginx.http}/big.bin`,
    };
    for (const u of Object.values(urls)) await download(page, u); // warm: connections, TLS, SURB supply
    const rates: Record<string, number[]> = {};
    for (let i = 0; i < ROUNDS; i++) {
      for (const [name, url] of Object.entries(urls)) {
        const r = await download(page, `${url}?r=${i}`);
        if (r.bytes !== SIZE) throw new Error(`${name}: ${r.bytes} of ${SIZE} bytes`);
        (rates[name] ??= []).push(r.bytes / r.secs);
        console.log(`${name} round ${i}: ${(r.bytes / r.secs / 1e3).toFixed(0)} KB/s (head ${r.head.toFixed(0)} ms, ${r.secs.toFixed(2)} s)`);
      }
    }
    const rows = ['node', 'nginx'].map((server) => {
      const [s, h] = [median(rates[`${server} https`]!), median(rates[`${server} http`]!)];
      return `| ${(SIZE / 1e6).toFixed(1)} MB from ${server}, mixnet mode, median of ${ROUNDS}: HTTPS / HTTP | ${(s / 1e3).toFixed(0)} / ${(h / 1e3).toFixed(0)} KB/s | ${((s / h) * 100).toFixed(0)} % |`;
    });
    console.log(`\n${rows.join('\n')}\n`);
    writeFileSync(path.join(root, 'target/bench-tls-throughput.json'), JSON.stringify({ date: new Date().toISOString(), size: SIZE, rates }, null, 2));
    await page.evaluate(() => window.mixnet.disconnectMixFetch());
  } finally {
    await browser.close();
    await nginx.close();
    await servers.close();
    await net.stop();
  }
});

// The order the issue measured in: a fresh client downloads from one scheme and then
// from the other. Each pair runs in both orders, each on a new page (a new client), so
// the first download of a pair follows nothing and the second follows a large one. If
// the two positions differ whatever the scheme, a gap between schemes measured in one
// order is the order's (on 117647c the second waited behind the first's SURB refills,
// then ran its body on the SURBs they brought), not TLS's.
test('MixFetch HTTPS and HTTP one after the other, fresh client, mixnet mode', async () => {
  const net = await startLocalnet({ site: DEMO_SITE });
  const servers = await startTestServers();
  const bytes = Number(process.env.TLS_BENCH_BYTES ?? 1 << 20);
  const browser = await chromium.launch(base.use?.launchOptions ?? {});
  const rows: string[] = [];
  try {
    const orders = [
      ['http', 'https'],
      ['https', 'http'],
    ] as const;
    for (let round = 0; round < ROUNDS; round++) {
      for (const order of orders) {
        const page = await openMixFetchPage(browser, net, 'mixnet', servers.caPem);
        const cells: string[] = [];
        for (const scheme of order) {
          const r = await download(page, `${servers[scheme]}/bytes/${bytes}?r=${round}`);
          if (r.bytes !== bytes) throw new Error(`${scheme}: ${r.bytes} of ${bytes} bytes`);
          cells.push(`${scheme.toUpperCase()} ${r.secs.toFixed(1)} s: head ${(r.head / 1e3).toFixed(1)} s, body ${(bytes / (r.secs - r.head / 1e3) / 1e3).toFixed(0)} KB/s`);
        }
        rows.push(`| ${round} | ${cells.join(' | ')} |`);
        console.log(rows.at(-1));
        await page.evaluate(() => window.mixnet.disconnectMixFetch());
        await page.close();
      }
    }
    console.log(`\n| round | first download (fresh client) | second download |\n|---|---|---|\n${rows.join('\n')}\n`);
  } finally {
    await browser.close();
    await servers.close();
    await net.stop();
  }
});
