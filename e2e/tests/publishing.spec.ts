import { clientStats, test, expect, waitForClient } from '@mixnet/playwright';
import { openDemo } from './helpers';

test('the publishing demo: a text goes through the mixnet and the receipt comes back by SURB', async ({ browser, localnet }) => {
  const { page } = await openDemo(browser, localnet);
  // the package's helpers see the page's client
  await waitForClient(page);
  const [stats] = await clientStats(page);
  expect(stats?.connections).toBe(1);
  // the worker adds its wasm memory (whole 64 KiB pages) to the client's counters
  expect(stats?.wasmMemoryBytes).toBeGreaterThan(0);
  expect(Number(stats?.wasmMemoryBytes) % 65536).toBe(0);
  const text = `an anonymous post ${Date.now()}`;
  await page.locator('#publish-text').fill(text);
  await page.locator('#publish-button').click();
  const receipt = page.locator('#publish-receipt');
  await expect(receipt).toHaveAttribute('data-ok', 'true');
  await expect(receipt).toContainText(/Published as #\d+/);
  // the post is on the public board, served by the service's host
  await expect(page.locator('#posts li').filter({ hasText: text })).toHaveCount(1);
  const posts = (await (await fetch(`${localnet.url}posts`)).json()) as { text: string }[];
  expect(posts.map((p) => p.text)).toContain(text);
  // the live view shows our real packets crossing the three layers (acks we send
  // through someone's SURB show only their first hop: the rest of that route is theirs)
  await expect(page.locator('#routes tr.real').first()).toBeVisible();
  const rows = await page.locator('#routes tr.real').evaluateAll((trs) =>
    trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent)),
  );
  expect(rows.some((cells) => cells.slice(1).every((c) => c !== '—'))).toBe(true);
  await page.context().close();
});
