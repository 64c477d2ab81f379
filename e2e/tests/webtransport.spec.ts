// WebTransport in Chromium (QUIC: these tests need Chromium without --disable-quic):
// messages, an anonymous reply and MixFetch over WebTransport, a WebSocket client beside
// them, and the fallback to WebSocket when the WebTransport port is closed, with a
// message queued before the fallback delivered.

import type { Page } from '@playwright/test';
import { startLocalnet } from '@mixnet/playwright';
import { test, expect, type TestServers } from '../servers';
import { DEMO_SITE, openDemo, sendMessage } from './helpers';

declare global {
  interface Window {
    mixnet: typeof import('@mixnet/worker-shim');
  }
}

/** WebTransport connections a gateway accepted (its labelled Prometheus sample). */
async function wtConnections(metricsUrl: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  const m = text.match(/^gateway_transport_connections_total\{transport="webtransport"\} (\d+)$/m);
  if (!m) throw new Error(`no webtransport connection count at ${metricsUrl}`);
  return Number(m[1]);
}

async function transportOf(page: Page): Promise<string | undefined> {
  await expect(page.locator('#transport')).toBeVisible();
  return page.locator('#transport').getAttribute('data-transport').then((t) => t ?? undefined);
}

test('messages and an anonymous reply between a WebTransport page and a WebSocket page', async ({ browser, localnet }) => {
  expect(localnet.info.entryWt?.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/mixnet$/);
  expect(localnet.info.entryWt?.cert_sha256).toMatch(/^[0-9a-f]{64}$/);
  const before = await wtConnections(localnet.info.entryMetrics);
  const a = await openDemo(browser, localnet, 'mode=fast');
  const b = await openDemo(browser, localnet, 'mode=fast&transport=websocket');
  expect(await transportOf(a.page)).toBe('webtransport');
  expect(await transportOf(b.page)).toBe('websocket');
  // the gateway saw it too (at least A's session; other suites' pages may come and go)
  expect(await wtConnections(localnet.info.entryMetrics)).toBeGreaterThanOrEqual(before + 1);

  await sendMessage(a.page, b.address, 'over WebTransport, who are you?', true);
  const msg = b.page.locator('#inbox .message').filter({ hasText: 'over WebTransport, who are you?' });
  await expect(msg.locator('.from')).toHaveText('anonymous sender');
  await msg.locator('button.reply').click();
  await expect(a.page.locator('#inbox .message .text')).toHaveText(['re: over WebTransport, who are you?']);
  await sendMessage(b.page, a.address, 'and to the WebTransport page directly', false);
  // newest first
  await expect(a.page.locator('#inbox .message .text')).toHaveText(['and to the WebTransport page directly', 're: over WebTransport, who are you?']);
  await a.page.context().close();
  await b.page.context().close();
});

test.describe('MixFetch over WebTransport', () => {
  let servers: TestServers;
  test.beforeAll(({ servers: s }) => {
    servers = s;
  });

  test('GET and POST through the exit, the client on WebTransport', async ({ browser, localnet }) => {
    const page = await browser.newPage();
    await page.goto(`${localnet.url}bench.html?client=0`);
    await page.waitForFunction(() => window.mixnet !== undefined);
    const out = await page.evaluate(
      async ({ info, ca, https }) => {
        const mf = await window.mixnet.createMixFetch({
          directory: info.directory,
          directoryKey: info.directoryKey,
          gateway: info.entryGateway,
          mode: 'fast',
          transport: 'webtransport',
          extraRoots: ca,
        });
        const get = await mf.fetch(`${https}/text`);
        const post = await mf.fetch(`${https}/echo`, { method: 'POST', body: 'posted over WebTransport' });
        const result = { transport: mf.client.transport, get: [get.status, await get.text()], post: [post.status, await post.text()] };
        await mf.disconnect();
        return result;
      },
      { info: localnet.info, ca: servers.caPem, https: servers.https },
    );
    expect(out.transport).toBe('webtransport');
    expect(out.get).toEqual([200, 'hello from the test server ✓']);
    expect(out.post[0]).toBe(200);
    expect(out.post[1]).toContain('posted over WebTransport');
    await page.context().close();
  });
});

test('falls back to WebSocket when WebTransport fails (port closed, or UDP dropped) and delivers what was queued', async ({ browser }) => {
  // a network of its own: the shared one keeps its WebTransport ports open
  const net = await startLocalnet({ mode: 'fast', site: DEMO_SITE });
  try {
    await net.closeWebTransport(0); // refused at once
    await net.blackholeWebTransport(1); // no answer: the client's timeout decides
    const b = await openDemo(browser, net, 'mode=fast');
    expect(await transportOf(b.page)).toBe('websocket');

    const page = await browser.newPage();
    await page.goto(`${net.url}bench.html?client=0`);
    await page.waitForFunction(() => window.mixnet !== undefined);
    const out = await page.evaluate(
      async ({ info, to }) => {
        const run = async (gateway: string, text: string) => {
          const c = await window.mixnet.createMixnetClient({
            directory: info.directory,
            directoryKey: info.directoryKey,
            gateway,
            mode: 'fast',
            webTransportTimeoutMs: 1000,
            waitForConnection: false,
          });
          // queued while the WebTransport attempt is still failing
          const stateAtSend = c.state;
          await c.send(to, text, { waitForDelivery: true, signal: AbortSignal.timeout(30_000) });
          const s = await c.stats();
          return { stateAtSend, transport: s.transport, failure: s.webTransportFailure, connections: s.connections };
        };
        return Promise.all([run(info.entryGateway, 'queued (port closed)'), run(info.exitGateway, 'queued (UDP dropped)')]);
      },
      { info: net.info, to: b.address },
    );
    for (const o of out) {
      expect(o.stateAtSend).not.toBe('connected');
      expect(o.transport).toBe('websocket');
      expect(o.failure).toMatch(/^WebTransport to https:\/\/127\.0\.0\.1:\d+\/mixnet failed: /);
      expect(o.connections).toBe(1);
    }
    expect(out[1]?.failure).toMatch(/no answer within 1000 ms$/);
    // newest first: the timed-out client connected a second later
    await expect(b.page.locator('#inbox .message .text')).toHaveText(['queued (UDP dropped)', 'queued (port closed)']);
    await page.context().close();
    await b.page.context().close();
  } finally {
    await net.stop();
  }
});
