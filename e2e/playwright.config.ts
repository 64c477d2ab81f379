import { defineConfig } from '@playwright/test';
import type { MixnetWorkerFixtures } from '@mixnet/playwright';
import { DEMO_SITE } from './site';

// Debian's Chromium (Playwright's own browser download cannot work on these machines).
// The localnet each worker uses is @mixnet/playwright's `localnet` fixture, serving the
// demo site (the pages the tests open).
export default defineConfig<object, Pick<MixnetWorkerFixtures, 'localnetOptions'>>({
  testDir: './tests',
  // one worker: the machines are 2-core, and tests that measure rates at a gateway
  // must not share it with other tests' clients
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  timeout: 90_000,
  expect: { timeout: 20_000 },
  reporter: process.env.CI ? [['list']] : [['list'], ['html', { open: 'never', outputFolder: '../playwright-report' }]],
  outputDir: '../test-results',
  use: {
    localnetOptions: { site: DEMO_SITE },
    browserName: 'chromium',
    headless: true,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});
