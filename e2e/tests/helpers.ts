import type { Browser, BrowserContext, Page } from '@playwright/test';
import { expect, type Localnet } from '../fixtures';

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
