// What a team outside the mixnet's repository writes: @mixnet/playwright's `test` gives
// each worker a real mixnet on loopback (`localnet`); the app's page is served by the
// team's own server (a worker fixture here) and pointed at the network by its URL.
import { createReadStream, existsSync, statSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test as mixnet, expect, waitForClient, clientStats } from '@mixnet/playwright';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };

const test = mixnet.extend({
  // the app: site/ and the installed packages, on a port the OS picks
  site: [
    async ({}, use) => {
      const server = http.createServer((req, res) => {
        const rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
        const file = path.join(root, rel.startsWith('/node_modules/') ? rel : path.join('site', rel));
        if (!file.startsWith(root) || !existsSync(file) || !statSync(file).isFile()) return res.writeHead(404).end();
        res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
        createReadStream(file).pipe(res);
      });
      await new Promise((r) => server.listen(0, '127.0.0.1', r));
      await use(`http://127.0.0.1:${server.address().port}/`);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
    { scope: 'worker' },
  ],
});

// runs in both projects of playwright.config.js: the network's mode is theirs
test('the app sends itself a message and fetches over the mixnet', async ({ page, localnet, site }) => {
  const { directory, directoryKey, mode, demoOrigin } = localnet.info;
  const q = new URLSearchParams({ directory, directoryKey, mode, ca: demoOrigin.ca, fetch: `${demoOrigin.https}json` });
  await page.goto(`${site}index.html?${q}`);
  await waitForClient(page);
  await expect(page.locator('#inbox')).toHaveText('hello through the mixnet');
  await expect(page.locator('#fetched')).toHaveText(/^200 \{"ok":true/);
  const [stats] = await clientStats(page);
  expect(stats.realSent).toBeGreaterThan(0);
});
