import { test, expect } from '@mixnet/playwright';
import { openDemo } from './helpers';

// Loopix: an idle client still sends a real-stream packet (cover when nothing is queued)
// every 20 ms on average and a loop-cover packet every 200 ms: 55 packets/s reach its
// gateway. Poisson counts over 15 s have a standard deviation under 4%; ±20% is the bound.
test('while idle, cover traffic arrives at the gateway at the configured rate', async ({ browser, localnet }) => {
  const { page } = await openDemo(browser, localnet, 'mode=mixnet');
  const metrics = localnet.info.entryMetrics;
  const expected = 1000 / 20 + 1000 / 200;
  // the streams are running once the live view has measured a cover rate
  await expect(page.locator('#rate-cover')).not.toHaveText('0');
  const t0 = Date.now();
  const c0 = await localnet.metric(metrics, 'gateway_client_packets_total');
  await page.waitForTimeout(15_000); // the measurement window itself
  const c1 = await localnet.metric(metrics, 'gateway_client_packets_total');
  const rate = (c1 - c0) / ((Date.now() - t0) / 1000);
  test.info().annotations.push({ type: 'rate', description: `${rate.toFixed(1)} packets/s (expected ${expected})` });
  expect(rate).toBeGreaterThan(expected * 0.8);
  expect(rate).toBeLessThan(expected * 1.2);
  await page.context().close();
});
