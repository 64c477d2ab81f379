import type { Page, TestType, PlaywrightTestArgs, PlaywrightTestOptions, PlaywrightWorkerArgs, PlaywrightWorkerOptions } from '@playwright/test';
import type { Localnet, LocalnetOptions } from '@mixnet/localnet';

export type { Localnet, LocalnetInfo, LocalnetOptions } from '@mixnet/localnet';
export { expect } from '@playwright/test';
export { metric, startLocalnet } from '@mixnet/localnet';

export interface MixnetWorkerFixtures {
  /** How each worker's network is started (`test.use({ localnetOptions: { mode: 'fast' } })`). */
  localnetOptions: LocalnetOptions;
  /** The worker's network: `info` for the page, fault injection, `stop` is automatic. */
  localnet: Localnet;
}

export interface MixnetTestFixtures {
  /**
   * Cover traffic of every client the test's pages create (`test.use({ cover: false })`
   * for quieter, faster tests), unless the page passes `coverTraffic` itself. Unset:
   * each client's own setting (on by default).
   */
  cover: boolean | undefined;
}

/** Playwright's `test` with a mixnet per worker. */
export const test: TestType<PlaywrightTestArgs & PlaywrightTestOptions & MixnetTestFixtures, PlaywrightWorkerArgs & PlaywrightWorkerOptions & MixnetWorkerFixtures>;

/** Resolves once a client (createMixnetClient / createMixFetch) in `page` is `connected`, or in `state`. */
export function waitForClient(page: Page, options?: { state?: 'connected' | 'connecting' | 'disconnected'; timeout?: number }): Promise<void>;

/** The stats of every live client in `page`. */
export function clientStats(page: Page): Promise<Array<Record<string, unknown>>>;
