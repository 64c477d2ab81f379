// @mixnet/playwright: `test` with a worker-scoped `localnet` (a whole mixnet on
// loopback, from @mixnet/localnet) configured by the `localnetOptions` fixture option,
// and helpers for pages that run a client from @mixnet/worker-shim.

import { test as base, expect } from '@playwright/test';
import { metric, startLocalnet } from '@mixnet/localnet';

export { expect, metric, startLocalnet };

export const test = base.extend({
  localnetOptions: [{}, { scope: 'worker', option: true }],
  // cover traffic of the pages' clients: undefined leaves each client's own setting
  cover: [undefined, { option: true }],
  context: async ({ context, cover }, use) => {
    if (typeof cover === 'boolean') {
      await context.addInitScript((on) => {
        globalThis[Symbol.for('@mixnet/worker-shim defaults')] = { coverTraffic: on };
      }, cover);
    }
    await use(context);
  },
  localnet: [
    async ({ localnetOptions }, use) => {
      const net = await startLocalnet(localnetOptions);
      await use(net);
      await net.stop();
    },
    { scope: 'worker', timeout: 60_000 },
  ],
});

const CLIENTS = '@mixnet/worker-shim clients';

/** Resolves once a client in `page` is connected (or in `state`). */
export async function waitForClient(page, options = {}) {
  const state = options.state ?? 'connected';
  await page.waitForFunction(
    ({ key, state }) => [...(globalThis[Symbol.for(key)] ?? [])].some((c) => c.state === state),
    { key: CLIENTS, state },
    { timeout: options.timeout },
  );
}

/** The stats of every live client in `page` (see worker-shim's `Stats`). */
export function clientStats(page) {
  return page.evaluate((key) => Promise.all([...(globalThis[Symbol.for(key)] ?? [])].map((c) => c.stats())), CLIENTS);
}
