// Service-worker mode: once registerMixFetchServiceWorker({ origins }) resolves, a plain
// <img> and a plain fetch() to a listed origin reach the server from the exit (with
// MixFetch's User-Agent, not the browser's); another origin is not touched.

import { test, expect, type TestServers } from '../servers';

test('an <img> and a fetch() to a listed origin cross the mixnet; other origins are untouched', async ({ browser, localnet, servers }) => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${localnet.url}bench.html?client=0`);
  await page.waitForFunction(() => window.mixnet !== undefined);
  const out = await page.evaluate(
    async ({ info, listed, other }) => {
      await window.mixnet.createMixFetch({ directory: info.directory, directoryKey: info.directoryKey, gateway: info.entryGateway, mode: 'fast' });
      await window.mixnet.registerMixFetchServiceWorker({ url: './mixfetch-sw.js', scope: './', origins: [listed] });
      const img = new Image();
      img.src = `${listed}/image.png?via=img`;
      await img.decode();
      const viaFetch = await (await fetch(`${listed}/text?via=fetch`)).text();
      const direct = await (await fetch(`${other}/text?via=direct`)).text();
      return { width: img.naturalWidth, viaFetch, direct };
    },
    { info: localnet.info, listed: servers.http, other: servers.httpAlt },
  );
  expect(out).toEqual({ width: 1, viaFetch: 'hello from the test server ✓', direct: 'hello from the test server ✓' });
  expect(servers.agents.get('/image.png?via=img')).toBe('mixfetch/0.1');
  expect(servers.agents.get('/text?via=fetch')).toBe('mixfetch/0.1');
  expect(servers.agents.get('/text?via=direct')).toContain('Chrome');
  await page.evaluate(() => window.mixnet.disconnectMixFetch());
  await context.close();
});
