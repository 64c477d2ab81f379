import { test } from '@playwright/test';
import { startLocalnet } from '../fixtures';
declare global { interface Window { mixnet: typeof import('@mixnet/worker-shim'); } }
test('probe throughput', async ({ page }) => {
  const net = await startLocalnet();
  page.on('console', (m) => console.log('console', m.text()));
  await page.goto(`${net.url}bench.html?client=0`);
  await page.waitForFunction(() => window.mixnet !== undefined);
  for (const mode of ['mixnet'] as const) {
    const r = await page.evaluate(async ({ info, mode }) => {
      const mf = await window.mixnet.createMixFetch({ directory: info.directory, directoryKey: info.directoryKey, gateway: info.entryGateway, mode, extraRoots: info.demoOrigin!.ca });
      const out: string[] = [];
      for (const n of [1_000_000, 3_000_000]) {
        const s0 = await mf.client.stats();
        const t0 = performance.now();
        let got = 0;
        let b = { byteLength: 0 };
        try {
          const res = await mf.fetch(`${info.demoOrigin!.https}bytes/${n}`);
          const reader = res.body!.getReader();
          for (;;) { const { done, value } = await reader.read(); if (done) break; got += value.length; }
          b = { byteLength: got };
        } catch (e) { const s2 = await mf.client.stats(); out.push(`error after ${got} B, ${((performance.now() - t0)/1000).toFixed(1)} s: ${(e as Error).message}; retx ${s2.retransmissions} failed ${s2.messagesFailed}`); continue; }
        const dt = (performance.now() - t0) / 1000;
        const s1 = await mf.client.stats();
        out.push(`${mode} ${n} B in ${dt.toFixed(2)} s = ${(b.byteLength / dt / 1024).toFixed(0)} KiB/s; real ${s1.realSent - s0.realSent} cover ${s1.coverSent - s0.coverSent} busy ${((s1.busyMs - s0.busyMs) / dt / 10).toFixed(0)}% inputs ${s1.inputs - s0.inputs} deliveries ${s1.deliveries - s0.deliveries} retx ${s1.retransmissions - s0.retransmissions} dropped ${s1.dropped - s0.dropped} acks ${s1.acksReceived - s0.acksReceived}`);
      }
      await mf.disconnect();
      return out;
    }, { info: net.info as any, mode });
    console.log(r.join('\n'));
  }
  await net.stop();
});
