// Errors a developer can act on: a directory that is not a URL, a misspelt option,
// an unreachable directory. Each says what is wrong in words, without wasm internals.

import { DEMO_SITE } from './helpers';
import { test, expect, startLocalnet } from '@mixnet/playwright';

declare global {
  interface Window {
    mixnet: typeof import('@mixnet/worker-shim');
  }
}

test('bad options and an unreachable directory fail with errors a developer can act on', async ({ page, localnet }) => {
  await page.goto(`${localnet.url}bench.html?client=0`);
  await page.waitForFunction(() => window.mixnet !== undefined);
  const out = await page.evaluate(async (info) => {
    const attempt = async (options: Record<string, unknown>) => {
      try {
        const c = await window.mixnet.createMixnetClient(options as never);
        await c.disconnect();
        return { code: 'none', message: '' };
      } catch (e) {
        const err = e as { code?: string; message: string };
        return { code: err.code ?? 'none', message: err.message };
      }
    };
    const closed = 'http://127.0.0.1:9/';
    return {
      notUrl: await attempt({ directory: 'not a url', directoryKey: info.directoryKey }),
      misspelt: await attempt({ directory: info.directory, directoryKey: info.directoryKey, mdoe: 'fast' }),
      unreachable: await attempt({ directory: closed, directoryKey: info.directoryKey, readyTimeoutMs: 5000 }),
    };
  }, localnet.info);
  // on 117647c: a 404 (the string resolved against the page), an ignored option, and a
  // Rust-formatted JsValue with a wasm stack trace
  expect(out.notUrl.code).toBe('invalid-argument');
  expect(out.notUrl.message).toContain('absolute http(s) URL');
  expect(out.misspelt.code).toBe('invalid-argument');
  expect(out.misspelt.message).toContain('unknown option `mdoe` (did you mean `mode`?)');
  expect(out.unreachable.code).toBe('directory');
  expect(out.unreachable.message).toContain('cannot fetch http://127.0.0.1:9/v1/topology');
  expect(out.unreachable.message).toContain('connect-src');
  expect(out.unreachable.message).not.toMatch(/wasm-function|JsValue/);
});

test('connecting reports each stage as it happens', async ({ page, localnet }) => {
  await page.goto(`${localnet.url}bench.html?client=0`);
  await page.waitForFunction(() => window.mixnet !== undefined);
  const stages = await page.evaluate(async (info) => {
    const seen: string[] = [];
    const c = await window.mixnet.createMixnetClient({
      directory: info.directory,
      directoryKey: info.directoryKey,
      mode: 'fast',
      onProgress: (p) => seen.push(`${p.stage}${p.transport ? ` ${p.transport}` : ''}`),
    });
    await c.disconnect();
    return seen;
  }, localnet.info);
  // the shared network offers WebTransport, which Chromium takes first
  expect(stages).toEqual(['topology', 'transport-open webtransport', 'handshake webtransport', 'authenticated webtransport']);
});

test('a gateway that is down: no transport event, and the timeout names each transport\'s failure', async ({ browser }) => {
  // a network of its own: its gateway is stopped for the whole test
  const net = await startLocalnet({ mode: 'fast', site: DEMO_SITE });
  try {
    await net.stopGateway(0);
    const page = await browser.newPage();
    await page.goto(`${net.url}bench.html?client=0`);
    await page.waitForFunction(() => window.mixnet !== undefined);
    const out = await page.evaluate(async (info) => {
      const events: string[] = [];
      try {
        const c = await window.mixnet.createMixnetClient({
          directory: info.directory,
          directoryKey: info.directoryKey,
          gateway: info.entryGateway,
          mode: 'fast',
          webTransportTimeoutMs: 1000,
          readyTimeoutMs: 4000,
          onProgress: (p) => events.push(`${p.stage} ${p.transport ?? ''}`.trim()),
        });
        c.on('transport', (t) => events.push(`transport event ${t.transport}`));
        return { events, error: 'connected' };
      } catch (e) {
        return { events, error: (e as Error).message };
      }
    }, net.info);
    // on 117647c: "timeout: no connection to the gateway within … ms: connection closed (1006)"
    expect(out.error).toMatch(/^no connection to the gateway within 4000 ms: /);
    expect(out.error).toMatch(/WebTransport to https:\/\/127\.0\.0\.1:\d+\/mixnet failed: /);
    expect(out.error).toMatch(/WebSocket to ws:\/\/127\.0\.0\.1:\d+\S* could not be opened \(1006\)/);
    expect(out.error).toContain('connect-src');
    expect(out.events[0]).toBe('topology');
    expect(out.events).toContain('transport-failed webtransport');
    expect(out.events).toContain('transport-failed websocket');
    expect(out.events.filter((e) => e.startsWith('transport-open') || e.startsWith('transport event'))).toEqual([]);
    await page.context().close();
  } finally {
    await net.stop();
  }
});
