// Benchmarks of the browser client, each against its reference in the same run:
// - Sphinx packets/s built in the worker vs the same code natively vs sphinx-packet
//   natively (4 hops, 2048 B; the native figures are criterion's from this run);
// - the client's wasm and JS, raw and gzip;
// - createMixnetClient → ready (connected) on localnet, fresh browser context each time;
// - idle CPU at the default cover rates: the whole browser's CPU time with an idle
//   client, minus the same page without a client, over the same window.

import { test, chromium, type Browser } from '@playwright/test';
import { readFileSync, writeFileSync, existsSync, readdirSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalnet } from '../fixtures';
import base from '../playwright.config';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLK_TCK = 100; // Linux USER_HZ

function criterionMeanUs(group: string, id: string): number | null {
  const f = path.join(root, 'target/criterion', group, id, 'new/estimates.json');
  if (!existsSync(f)) return null;
  return (JSON.parse(readFileSync(f, 'utf8')) as { mean: { point_estimate: number } }).mean.point_estimate / 1000;
}

/** CPU seconds (user + system) of `pid` and all its descendants. */
function treeCpuSeconds(pid: number): number {
  const children = new Map<number, number[]>();
  const ticks = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(fields[1]);
      ticks.set(Number(name), Number(fields[11]) + Number(fields[12]));
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      // the process ended while we looked
    }
  }
  let total = 0;
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop() as number;
    total += ticks.get(p) ?? 0;
    stack.push(...(children.get(p) ?? []));
  }
  return total / CLK_TCK;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] as number;

test('browser client benchmarks', async () => {
  const net = await startLocalnet();
  const launch = base.use?.launchOptions ?? {};
  const server = await chromium.launchServer({ ...launch, headless: true });
  const browserPid = server.process().pid as number;
  const browser: Browser = await chromium.connect(server.wsEndpoint());
  const results: Record<string, unknown> = { date: new Date().toISOString() };
  try {
    // sizes
    const dist = path.join(root, 'worker-shim/dist');
    const wasm = readFileSync(path.join(dist, 'wasm/wasm_client_bg.wasm'));
    const js = ['index.js', 'protocol.js', 'worker.js', 'wasm/wasm_client.js'].map((f) => readFileSync(path.join(dist, f)));
    const jsRaw = js.reduce((n, b) => n + b.length, 0);
    const jsGz = js.reduce((n, b) => n + gzipSync(b, { level: 9 }).length, 0);
    results.wasmRaw = wasm.length;
    results.wasmGzip = gzipSync(wasm, { level: 9 }).length;
    results.jsRaw = jsRaw;
    results.jsGzip = jsGz;

    // time to ready, fresh context (cold HTTP cache, wasm compiled anew) each time
    const ready: number[] = [];
    for (let i = 0; i < 10; i++) {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(`${net.url}bench.html`);
      await page.waitForFunction(() => window.bench.readyMs !== null || window.bench.error !== null);
      const r = await page.evaluate(() => window.bench);
      if (r.error) throw new Error(r.error);
      ready.push(r.readyMs as number);
      await ctx.close();
    }
    results.readyMs = { median: median(ready), p90: pct(ready, 0.9), all: ready };

    // Sphinx build rate in the worker
    {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(`${net.url}bench.html`);
      await page.waitForFunction(() => window.bench.client !== null);
      const rates = await page.evaluate(async () => {
        const c = window.bench.client!;
        await c.benchBuildPackets(50); // warm-up (tables, JIT tiers)
        const out: number[] = [];
        for (let i = 0; i < 5; i++) out.push(await c.benchBuildPackets(400));
        return out;
      });
      results.workerBuildPerSec = { median: median(rates), all: rates };
      await ctx.close();
    }

    // idle CPU: client page vs bare page, same window length
    const windowMs = 30_000;
    const cpuOf = async (query: string) => {
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await page.goto(`${net.url}bench.html?${query}`);
      if (query !== 'client=0') await page.waitForFunction(() => window.bench.readyMs !== null);
      await page.waitForTimeout(3000); // settle: the first topology fetch, JIT tiers
      const c0 = treeCpuSeconds(browserPid);
      const t0 = Date.now();
      await page.waitForTimeout(windowMs);
      const used = treeCpuSeconds(browserPid) - c0;
      const elapsed = (Date.now() - t0) / 1000;
      let stats = null;
      if (query !== 'client=0') stats = await page.evaluate(async () => window.bench.client!.stats());
      await ctx.close();
      return { cpuPercent: (used / elapsed) * 100, stats };
    };
    const baseline = await cpuOf('client=0');
    const idle = await cpuOf('mode=mixnet');
    results.idleCpu = {
      withClientPercent: idle.cpuPercent,
      baselinePercent: baseline.cpuPercent,
      clientPercent: idle.cpuPercent - baseline.cpuPercent,
      packetsSent: idle.stats ? idle.stats.realSent + idle.stats.coverSent : null,
      windowMs,
    };

    const oursNative = criterionMeanUs('build', 'ours/4');
    const refNative = criterionMeanUs('build', 'sphinx-packet/4');
    const worker = (results.workerBuildPerSec as { median: number }).median;
    results.native = { oursPerSec: oursNative ? 1e6 / oursNative : null, sphinxPacketPerSec: refNative ? 1e6 / refNative : null };

    const lines = [
      '| measure | value | reference (same run) | ratio |',
      '|---|---:|---:|---:|',
      `| Sphinx packets/s built in the worker (4 hops, 2048 B) | ${worker.toFixed(0)} | sphinx-packet natively: ${refNative ? (1e6 / refNative).toFixed(0) : 'n/a (run the criterion bench first)'} | ${refNative ? ((worker * refNative) / 1e6).toFixed(2) + '×' : 'n/a'} |`,
      `| the same, vs our code natively | ${worker.toFixed(0)} | ours natively: ${oursNative ? (1e6 / oursNative).toFixed(0) : 'n/a'} | ${oursNative ? ((worker * oursNative) / 1e6).toFixed(2) + '×' : 'n/a'} |`,
      `| client wasm, raw / gzip (bytes) | ${results.wasmRaw} / ${results.wasmGzip} | target ≤ 150 KB gzip | — |`,
      `| JS (main thread + worker + glue), raw / gzip (bytes) | ${jsRaw} / ${jsGz} | — | — |`,
      `| createMixnetClient → connected, median / p90 (ms) | ${median(ready).toFixed(0)} / ${pct(ready, 0.9).toFixed(0)} | target ≤ 300 ms | — |`,
      `| idle CPU at default cover rates (% of a core) | ${idle.cpuPercent.toFixed(2)} | page without client: ${baseline.cpuPercent.toFixed(2)} | client: ${(idle.cpuPercent - baseline.cpuPercent).toFixed(2)} % |`,
    ];
    console.log(`\n${lines.join('\n')}\n`);
    console.log(`packets sent in the idle window: ${results.idleCpu && (results.idleCpu as { packetsSent: number }).packetsSent}`);
    writeFileSync(path.join(root, 'target/bench-browser.json'), JSON.stringify(results, null, 2));
  } finally {
    await browser.close();
    await server.close();
    await net.stop();
  }
});
