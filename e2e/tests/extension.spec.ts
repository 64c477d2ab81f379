// The Manifest V3 extension example (examples/extension): built here, loaded unpacked
// into headless Chromium (Playwright's default --disable-extensions dropped), and its
// popup does a message round trip and a MixFetch through the offscreen document's client.

import { chromium } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, expect, type TestServers } from '../servers';
import base from '../playwright.config';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let servers: TestServers;
test.beforeAll(({ servers: s }) => {
  servers = s;
});

test('the MV3 extension: its popup sends a message to itself and fetches through the mixnet', async ({ localnet }) => {
  test.setTimeout(120_000);
  const dir = path.join(root, 'examples/extension');
  execFileSync(process.execPath, ['build.mjs'], { cwd: dir, stdio: 'pipe' });
  const ext = path.join(dir, 'dist');
  const profile = mkdtempSync(path.join(tmpdir(), 'e2e-extension-'));
  const launch = base.use?.launchOptions ?? {};
  const context = await chromium.launchPersistentContext(profile, {
    ...launch,
    headless: true,
    ignoreDefaultArgs: ['--disable-extensions'],
    args: [...(launch.args ?? []), `--disable-extensions-except=${ext}`, `--load-extension=${ext}`],
  });
  try {
    const worker = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker'));
    const id = new URL(worker.url()).host;
    const page = await context.newPage();
    const q = new URLSearchParams({
      directory: localnet.info.directory,
      directoryKey: localnet.info.directoryKey,
      ca: servers.caPem,
      url: `${servers.https}/json`,
    });
    await page.goto(`chrome-extension://${id}/popup.html?${q}`);
    await page.locator('#echo').click();
    await expect(page.locator('#echo-out')).toHaveAttribute('data-done', 'true', { timeout: 60_000 });
    expect(JSON.parse((await page.locator('#echo-out').textContent()) ?? '{}')).toMatchObject({ text: 'hello from the extension' });
    await page.locator('#fetch').click();
    await expect(page.locator('#fetch-out')).toHaveAttribute('data-done', 'true', { timeout: 60_000 });
    expect(JSON.parse((await page.locator('#fetch-out').textContent()) ?? '{}')).toEqual({ status: 200, text: '{"ok":true,"items":[1,2,3]}' });
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
});
