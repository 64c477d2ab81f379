// The bundler examples (examples/vite, webpack, esbuild): each is built here with the
// repository's bundler versions, served with the strict CSP a page using the package
// needs (examples/README.md), and must fetch through the mixnet in Chromium.

import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, expect, type TestServers } from '../servers';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const npx = (cwd: string, ...args: string[]) => execFileSync('npx', args, { cwd, stdio: 'pipe', encoding: 'utf8' });

const EXAMPLES: Record<string, (dir: string) => void> = {
  vite: (dir) => npx(dir, 'vite', 'build', '--logLevel', 'warn'),
  webpack: (dir) => {
    npx(dir, 'webpack', '--no-stats');
    execFileSync('cp', ['index.html', 'dist/'], { cwd: dir });
  },
  esbuild: (dir) => execFileSync(process.execPath, ['build.mjs'], { cwd: dir, stdio: 'pipe' }),
};

const CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  // the directory, and the gateways' WebSocket and WebTransport (on loopback here)
  "connect-src 'self' http://127.0.0.1:* ws://127.0.0.1:* https://127.0.0.1:*",
].join('; ');

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.map': 'application/json' };

/** Serves `dir` on a loopback port with the CSP above. */
async function serve(dir: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.join(dir, rel.endsWith('/') ? `${rel}index.html` : rel);
    if (!file.startsWith(dir) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'Content-Security-Policy': CSP });
    createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

let servers: TestServers;
test.beforeAll(({ servers: s }) => {
  servers = s;
});

for (const [name, build] of Object.entries(EXAMPLES)) {
  test(`the ${name} example builds, and fetches through the mixnet under a strict CSP`, async ({ page, localnet }) => {
    test.setTimeout(120_000);
    const dir = path.join(root, 'examples', name);
    build(dir);
    const site = await serve(path.join(dir, 'dist'));
    try {
      const csp: string[] = [];
      page.on('console', (m) => {
        if (m.text().includes('Content Security Policy')) csp.push(m.text());
      });
      const q = new URLSearchParams({
        directory: localnet.info.directory,
        directoryKey: localnet.info.directoryKey,
        fetch: `${servers.https}/json`,
        ca: servers.caPem,
      });
      await page.goto(`${site.url}index.html?${q}`);
      await expect(page.locator('#out')).toHaveAttribute('data-done', 'true', { timeout: 60_000 });
      await expect(page.locator('#out')).toHaveText('200 {"ok":true,"items":[1,2,3]}');
      expect(csp).toEqual([]);
    } finally {
      await site.close();
    }
  });
}
