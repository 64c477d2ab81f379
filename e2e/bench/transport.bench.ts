// WebTransport against WebSocket, in the same run on the same localnet, alternating
// between the two so that machine noise falls on both alike:
// - time to ready: createMixnetClient → connected, in a fresh browser context each
//   time (cold HTTP cache, wasm compiled anew), as a page would see it;
// - small-message round trip: a 32-byte message from a client to itself in fast mode
//   with cover traffic off (client → gateway → client, so both directions of the
//   transport and the gateway's work), sequentially, after a warm-up.
//
// `npm run bench:browser` runs it with the other browser benchmarks; alone:
// `npx playwright test -c e2e/bench.config.ts transport`.

import { test, chromium, type Browser, type Page } from '@playwright/test';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalnet, type LocalnetInfo } from '@mixnet/playwright';
import { DEMO_SITE } from '../site';
import base from '../playwright.config';

declare global {
  interface Window {
    mixnet: typeof import('@mixnet/worker-shim');
    rtt?: (n: number) => Promise<number[]>;
  }
}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
type Kind = 'webtransport' | 'websocket';
const KINDS: Kind[] = ['webtransport', 'websocket'];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] as number;

/** Opens a client over `transport` in `page`; resolves to the ms it took to be connected. */
async function connect(page: Page, url: string, info: LocalnetInfo, transport: Kind): Promise<number> {
  await page.goto(`${url}bench.html?client=0`);
  await page.waitForFunction(() => window.mixnet !== undefined);
  return page.evaluate(
    async ({ info, transport }) => {
      const started = performance.now();
      const c = await window.mixnet.createMixnetClient({
        directory: info.directory,
        directoryKey: info.directoryKey,
        gateway: info.entryGateway,
        mode: 'fast',
        coverTraffic: false,
        transport,
      });
      const readyMs = performance.now() - started;
      if (c.transport !== transport) throw new Error(`asked for ${transport}, got ${c.transport}`);
      // sequential round trips to ourselves
      window.rtt = async (n: number) => {
        const out: number[] = [];
        const payload = new Uint8Array(32);
        for (let i = 0; i < n; i++) {
          const t0 = performance.now();
          const got = new Promise<void>((resolve) => {
            const off = c.on('message', () => {
              off();
              resolve();
            });
          });
          await c.send(c.selfAddress, payload);
          await got;
          out.push(performance.now() - t0);
        }
        return out;
      };
      return readyMs;
    },
    { info, transport },
  );
}

test('WebTransport vs WebSocket: time to ready and small-message round trip', async () => {
  const net = await startLocalnet({ mode: 'fast', site: DEMO_SITE });
  const launch = base.use?.launchOptions ?? {};
  const browser: Browser = await chromium.launch({ ...launch, headless: true });
  const ready: Record<Kind, number[]> = { webtransport: [], websocket: [] };
  const rtt: Record<Kind, number[]> = { webtransport: [], websocket: [] };
  try {
    for (let i = 0; i < 10; i++) {
      for (const kind of i % 2 ? [...KINDS].reverse() : KINDS) {
        const ctx = await browser.newContext();
        ready[kind].push(await connect(await ctx.newPage(), net.url, net.info, kind));
        await ctx.close();
      }
    }
    const pages = {} as Record<Kind, Page>;
    for (const kind of KINDS) {
      pages[kind] = await (await browser.newContext()).newPage();
      await connect(pages[kind], net.url, net.info, kind);
      await pages[kind].evaluate(() => window.rtt!(20)); // warm-up
    }
    for (let round = 0; round < 10; round++) {
      for (const kind of round % 2 ? [...KINDS].reverse() : KINDS) {
        rtt[kind].push(...(await pages[kind].evaluate(() => window.rtt!(20))));
      }
    }
    const row = (what: string, xs: Record<Kind, number[]>) => {
      const [wt, ws] = [median(xs.webtransport), median(xs.websocket)];
      return `| ${what}, median / p90 (ms) | ${wt.toFixed(1)} / ${pct(xs.webtransport, 0.9).toFixed(1)} | ${ws.toFixed(1)} / ${pct(xs.websocket, 0.9).toFixed(1)} | ${(wt / ws).toFixed(2)} |`;
    };
    const lines = [
      '| measure | WebTransport | WebSocket (same run) | ratio WT / WS |',
      '|---|---:|---:|---:|',
      row(`createMixnetClient → connected (${ready.websocket.length} each, fresh context)`, ready),
      row(`32 B message to self, fast mode, no cover (${rtt.websocket.length} each)`, rtt),
    ];
    console.log(`\n${lines.join('\n')}\n`);
    writeFileSync(
      path.join(root, 'target/bench-transport.json'),
      JSON.stringify({ date: new Date().toISOString(), ready, rtt }, null, 2),
    );
  } finally {
    await browser.close();
    await net.stop();
  }
});
