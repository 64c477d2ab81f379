// @mixnet/playwright's `cover` option: every client the test's pages create sends no
// cover traffic, unless the page asks for it itself.

import { test, expect } from '@mixnet/playwright';

test.use({ cover: false });

test('cover: false turns cover off for the pages\' clients; a page\'s own coverTraffic still wins', async ({ page, localnet }) => {
  await page.goto(`${localnet.url}bench.html?client=0`);
  await page.waitForFunction(() => window.mixnet !== undefined);
  const sent = await page.evaluate(async (info) => {
    const base = { directory: info.directory, directoryKey: info.directoryKey, mode: 'mixnet' as const };
    const quiet = await window.mixnet.createMixnetClient(base);
    const loud = await window.mixnet.createMixnetClient({ ...base, coverTraffic: true, statsIntervalMs: 100 });
    // until the explicit one has sent plenty of cover
    await new Promise<void>((resolve) => {
      const off = loud.on('stats', (s) => {
        if (s.coverSent >= 30) {
          off();
          resolve();
        }
      });
    });
    const out = { quiet: (await quiet.stats()).coverSent, loud: (await loud.stats()).coverSent };
    await quiet.disconnect();
    await loud.disconnect();
    return out;
  }, localnet.info);
  expect(sent.loud).toBeGreaterThanOrEqual(30);
  expect(sent.quiet).toBe(0);
});
