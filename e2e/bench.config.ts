import { defineConfig } from '@playwright/test';
import base from './playwright.config';

// `npm run bench:browser`: the browser client's benchmarks (not tests: they assert
// nothing about speed; they print figures and write target/bench-browser.json).
export default defineConfig({
  ...base,
  testDir: './bench',
  testMatch: '*.bench.ts',
  timeout: 600_000,
  reporter: [['list']],
});
