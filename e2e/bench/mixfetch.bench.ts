// MixFetch benchmarks, each against a reference in the same run:
// - size: what a page loads for MixFetch (wasm + JS, gzip), and our npm package
//   against @nymproject/mix-fetch 2.1.1 + @nymproject/mix-tunnel 0.2.1 (`npm pack`);
// - createMixFetch → ready (connected), fresh browser context each time;
// - a small HTTPS GET, p50 / p95, fast and mixnet mode, against a direct fetch of the
//   same URL from the same page;
// - a 10 MB download, fast and mixnet mode; mixnet mode against the SURB-supply bound
//   at the sending rate in force (ARCHITECTURE.md, Budgets);
// - the worker's wasm memory before and after it (and after each of 4 × 20 MB more, fast mode).

import { test, chromium, type Page } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { clientStats, startLocalnet } from '@mixnet/playwright';
import { DEMO_SITE } from '../site';
import { startTestServers } from '../servers';
import { download, openMixFetchPage } from '../tests/helpers';
import base from '../playwright.config';

declare global {
  interface Window {
    mixnet: typeof import('@mixnet/worker-shim');
  }
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] as number;

function npmPackBytes(spec: string, dir: string): number {
  const out = execFileSync('npm', ['pack', spec, '--pack-destination', dir, '--json', '--silent'], { cwd: dir, encoding: 'utf8' });
  const [info] = JSON.parse(out) as { filename: string }[];
  return statSync(path.join(dir, (info as { filename: string }).filename)).size;
}

/** The MixFetch worker's wasm memory (its high-water mark), bytes: the page's one client. */
async function wasmMemory(page: Page): Promise<number> {
  const [stats] = await clientStats(page);
  return Number(stats?.wasmMemoryBytes);
}

/** Times `n` sequential GETs of `url`, through MixFetch or directly; ms each. */
function timeGets(page: Page, url: string, n: number, direct: boolean): Promise<number[]> {
  return page.evaluate(
    async ({ url, n, direct }) => {
      const get = (u: string) => (direct ? fetch(u, { cache: 'no-store' }) : window.mixnet.mixFetch(u));
      await (await get(url)).text(); // warm: connection, TLS
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        await (await get(`${url}?i=${i}`)).text();
        out.push(performance.now() - t0);
      }
      return out;
    },
    { url, n, direct },
  );
}

test('MixFetch benchmarks', async () => {
  const net = await startLocalnet({ site: DEMO_SITE });
  const servers = await startTestServers();
  const launch = base.use?.launchOptions ?? {};
  // the direct-fetch reference must reach the test server's HTTPS, whose CA Chromium does not know
  const browser = await chromium.launch({ ...launch, args: [...(launch.args ?? []), '--ignore-certificate-errors'] });
  const results: Record<string, unknown> = { date: new Date().toISOString() };
  const rows: string[] = ['| measure | value | reference (same run) | ratio / target |', '|---|---:|---:|---:|'];
  try {
    // sizes
    const dist = path.join(root, 'worker-shim/dist');
    const gz = (f: string) => gzipSync(readFileSync(path.join(dist, f)), { level: 9 }).length;
    const wasmGz = gz('wasm/mixfetch_bg.wasm');
    const jsFiles = ['index.js', 'client.js', 'mixfetch.js', 'protocol.js', 'mixfetch-worker.js', 'worker-core.js', 'wasm/mixfetch.js'];
    const jsGz = jsFiles.reduce((n, f) => n + gz(f), 0);
    const packDir = mkdtempSync(path.join(tmpdir(), 'pack-'));
    try {
      const ours = npmPackBytes(path.join(root, 'worker-shim'), packDir);
      let nym: number | null = null;
      try {
        nym = npmPackBytes('@nymproject/mix-fetch@2.1.1', packDir) + npmPackBytes('@nymproject/mix-tunnel@0.2.1', packDir);
      } catch (e) {
        console.log(`npm pack of the reference failed: ${(e as Error).message}`);
      }
      results.size = { wasmGz, jsGz, loadedGz: wasmGz + jsGz, oursPack: ours, nymPack: nym };
      rows.push(`| MixFetch loaded by a page: wasm + JS, gzip | ${wasmGz} + ${jsGz} = ${wasmGz + jsGz} B | target ≤ 300 KB | ${((wasmGz + jsGz) / 1000).toFixed(0)} KB |`);
      rows.push(
        `| npm package (npm pack, .tgz; both wasm modules, JS, types, maps) | ${ours} B | @nymproject/mix-fetch 2.1.1 + mix-tunnel 0.2.1: ${nym ?? 'n/a'} B | ${nym ? `${(nym / ours).toFixed(1)}× smaller` : 'n/a'} |`,
      );
    } finally {
      rmSync(packDir, { recursive: true, force: true });
    }

    // ready
    const ready: number[] = [];
    for (let i = 0; i < 8; i++) {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(`${net.url}bench.html?client=0`);
      await page.waitForFunction(() => window.mixnet !== undefined);
      ready.push(
        await page.evaluate(async ({ info }) => {
          const t0 = performance.now();
          await window.mixnet.createMixFetch({ directory: info.directory, directoryKey: info.directoryKey, gateway: info.entryGateway, mode: 'fast' });
          return performance.now() - t0;
        }, { info: net.info }),
      );
      await ctx.close();
    }
    results.readyMs = ready;
    rows.push(`| createMixFetch → ready, median / p90 of ${ready.length} (ms) | ${pct(ready, 0.5).toFixed(0)} / ${pct(ready, 0.9).toFixed(0)} | — | — |`);

    // small GETs and 10 MB, per mode
    for (const mode of ['fast', 'mixnet'] as const) {
      const page = await openMixFetchPage(browser, net, mode, servers.caPem);
      // 127.0.0.1 (in the certificate too): the demo's CSP lets the page connect there directly
      const small = servers.https.replace('localhost', '127.0.0.1') + '/text';
      const via = await timeGets(page, small, mode === 'fast' ? 40 : 25, false);
      const direct = await timeGets(page, small, 40, true);
      const target = mode === 'fast' ? '≤ 60 ms' : '≤ 1000 ms';
      rows.push(
        `| small HTTPS GET, ${mode} mode, p50 / p95 (ms) | ${pct(via, 0.5).toFixed(1)} / ${pct(via, 0.95).toFixed(1)} | direct fetch: ${pct(direct, 0.5).toFixed(1)} / ${pct(direct, 0.95).toFixed(1)} | p50 target ${target} |`,
      );
      const memBefore = await wasmMemory(page);
      const dl = await download(page, `${servers.https}/bytes/10000000`);
      const rate = dl.bytes / dl.secs;
      results[`${mode}Download`] = dl;
      const mem = [memBefore, await wasmMemory(page)];
      // then 20 MB at a time, four times (fast mode only: mixnet mode would take
      // minutes): memory bounded by configuration levels off, whatever the size
      for (let i = 0; mode === 'fast' && i < 4; i++) {
        await download(page, `${servers.https}/bytes/20000000`);
        mem.push(await wasmMemory(page));
      }
      const mib = (b: number) => (b / 1048576).toFixed(1);
      results[`${mode}WasmMemory`] = mem;
      const last = mem.length > 3 ? mem[mem.length - 1]! - mem[mem.length - 3]! : null;
      rows.push(
        `| worker wasm memory (high-water mark), ${mode} mode: before, after 10 MB${mode === 'fast' ? ', after each 20 MB more' : ''} | ${mem.map(mib).join(' / ')} MiB | — | ${last === null ? '—' : last === 0 ? 'level over the last 40 MB' : `still growing: +${mib(last)} MiB over the last 40 MB`} |`,
      );
      if (mode === 'fast') {
        rows.push(`| 10 MB download, fast mode | ${(rate / 1e6).toFixed(2)} MB/s | — | target ≥ 10 MB/s |`);
      } else {
        // SURB-supply bound: one real packet every sendDelayMs carries 4 SURBs (396 B
        // each in 1585 B of fragment data); each SURB brings one reply of 1585 B
        const bound = (1000 / 20) * 4 * 1585;
        rows.push(`| 10 MB download, mixnet mode | ${(rate / 1e3).toFixed(0)} KB/s | SURB-supply bound at 20 ms: ${(bound / 1e3).toFixed(0)} KB/s | ${((rate / bound) * 100).toFixed(0)} % (target ≥ 80 %) |`);
      }
      await page.evaluate(() => window.mixnet.disconnectMixFetch());
      await page.close();
    }
    console.log(`\n${rows.join('\n')}\n`);
    writeFileSync(path.join(root, 'target/bench-mixfetch.json'), JSON.stringify(results, null, 2));
  } finally {
    await browser.close();
    await servers.close();
    await net.stop();
  }
});
