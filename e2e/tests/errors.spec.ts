// Errors a developer can act on: a directory that is not a URL, a misspelt option,
// an unreachable directory. Each says what is wrong in words, without wasm internals.

import { test, expect } from '../fixtures';

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
