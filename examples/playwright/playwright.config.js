import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: './tests',
  workers: 1,
  timeout: 90_000,
  expect: { timeout: 30_000 },
  reporter: [['list']],
  // one network per worker: a project per route mode (a worker option can only vary by project)
  projects: [
    { name: 'fast', use: { localnetOptions: { mode: 'fast' } } },
    { name: 'mixnet', use: { localnetOptions: { mode: 'mixnet' } } },
  ],
  use: {
    browserName: 'chromium',
    headless: true,
    // this repository's machines use Debian's Chromium; elsewhere, drop this line
    // and `npx playwright install chromium`
    launchOptions: { executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: ['--no-sandbox'] },
  },
});
