import type { Browser, BrowserContext, Page } from '@playwright/test';
import { expect, type Localnet } from '@mixnet/playwright';

export { DEMO_SITE } from '../site';

export interface DemoPage {
  page: Page;
  address: string;
}

/** Opens the demo (in `context`, or a fresh one) and waits until its client is connected. */
export async function openDemo(browser: Browser, net: Localnet, query = '', context?: BrowserContext): Promise<DemoPage> {
  const ctx = context ?? (await browser.newContext());
  const page = await ctx.newPage();
  if (process.env.DEBUG_E2E) {
    page.on('console', (m) => console.log(`[${query}] console:`, m.text()));
    page.on('websocket', (ws) => {
      console.log(`[${query}] ws open`, ws.url());
      ws.on('close', () => console.log(`[${query}] ws close`));
      ws.on('socketerror', (e) => console.log(`[${query}] ws error`, e));
      let n = 0;
      ws.on('framereceived', () => n++ < 3 && console.log(`[${query}] ws frame received`));
      ws.on('framesent', () => n++ < 3 && console.log(`[${query}] ws frame sent`));
    });
  }
  await page.goto(`${net.url}${query ? `?${query}` : ''}`);
  await expect(page.locator('#state')).toHaveText(/^(connected|failed)$/);
  if ((await page.locator('#state').textContent()) === 'failed') {
    throw new Error(`the demo page failed to start: ${await page.locator('#error').textContent()}`);
  }
  const address = (await page.locator('#self-address').textContent()) ?? '';
  expect(address).toMatch(/^\w+\.\w+@\w+$/);
  return { page, address };
}

/** Sends `text` from `from` to `to` through the demo's form and waits for the delivery ack. */
export async function sendMessage(from: Page, to: string, text: string, surbs = true): Promise<void> {
  await from.locator('#recipient').fill(to);
  await from.locator('#message-text').fill(text);
  await from.locator('#attach-surbs').setChecked(surbs);
  await from.locator('#send-button').click();
  await expect(from.locator('#send-status')).toHaveAttribute('data-status', 'delivered');
}

// what demo-site/src/bench.ts puts on the page
declare global {
  interface Window {
    mixnet: typeof import('@mixnet/worker-shim');
  }
}

/** Opens a page with MixFetch on `net` in `mode`, trusting the test CA `ca`. */
export async function openMixFetch(page: Page, net: Localnet, mode: 'mixnet' | 'fast', ca: string): Promise<void> {
  await page.goto(`${net.url}bench.html?client=0`);
  await page.waitForFunction(() => window.mixnet !== undefined);
  await page.evaluate(
    async ({ info, mode, ca }) => {
      await window.mixnet.createMixFetch({
        directory: info.directory,
        directoryKey: info.directoryKey,
        gateway: info.entryGateway,
        mode,
        extraRoots: ca,
      });
    },
    { info: net.info, mode, ca },
  );
}

/** A new page in `browser` with MixFetch on `net` (see {@link openMixFetch}). */
export async function openMixFetchPage(browser: Browser, net: Localnet, mode: 'mixnet' | 'fast', ca: string): Promise<Page> {
  const page = await browser.newPage();
  await openMixFetch(page, net, mode, ca);
  return page;
}

/** Stops the page's MixFetch and closes the page's context. */
export async function closeMixFetchPage(page: Page | undefined): Promise<void> {
  if (!page) return;
  await page.evaluate(() => window.mixnet.disconnectMixFetch());
  await page.context().close();
}

/** Downloads `url` through the page's MixFetch: bytes, ms to the head, seconds in all. */
export function download(page: Page, url: string): Promise<{ bytes: number; head: number; secs: number }> {
  return page.evaluate(async (url) => {
    const t0 = performance.now();
    const res = await window.mixnet.mixFetch(url);
    const head = performance.now() - t0;
    const reader = res.body!.getReader();
    let bytes = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.length;
    }
    return { bytes, head, secs: (performance.now() - t0) / 1000 };
  }, url);
}

/** fetch through the mixnet in the page; what came back, or the error's name and message. */
export function mixFetch(page: Page, url: string, init: { method?: string; body?: string; headers?: Record<string, string>; redirect?: RequestRedirect } = {}) {
  return page.evaluate(
    async ({ url, init }) => {
      try {
        const res = await window.mixnet.mixFetch(url, init);
        // read the stream itself: Response.arrayBuffer() would hide a body error behind "Failed to fetch"
        const parts: Uint8Array[] = [];
        if (res.body) {
          const reader = res.body.getReader();
          for (;;) {
            const { done, value } = await reader.read();
            if (done) break;
            parts.push(value);
          }
        }
        const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
        let at = 0;
        for (const p of parts) {
          bytes.set(p, at);
          at += p.length;
        }
        const digest = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
        return {
          status: res.status,
          statusText: res.statusText,
          headers: Object.fromEntries(res.headers) as Record<string, string>,
          url: res.url,
          redirected: res.redirected,
          text: bytes.length < 100_000 ? new TextDecoder().decode(bytes) : '',
          length: bytes.length,
          sha256: digest,
          nullBody: res.body === null,
          error: null,
        };
      } catch (e) {
        const err = e as Error;
        const headers: Record<string, string> = {};
        return { error: `${err.name}: ${err.message}`, status: 0, statusText: '', headers, url: '', redirected: false, text: '', length: 0, sha256: '', nullBody: false };
      }
    },
    { url, init },
  );
}
