// @mixnet/worker-shim in Node.js (this runner's own Node, 20 here: a worker thread, and
// the `ws` package for WebSocket): the client and MixFetch with the browser's API, in
// both modes, against the same localnet. No browser is started by these tests.

import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createMixFetch, createMixnetClient } from '@mixnet/worker-shim';
import { test, expect, type TestServers } from '../servers';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let servers: TestServers;
test.beforeAll(({ servers: s }) => {
  servers = s;
});

for (const mode of ['fast', 'mixnet'] as const) {
  test(`Node ${process.versions.node}, ${mode} mode: a message to ourselves, and MixFetch over HTTPS`, async ({ localnet }) => {
    test.setTimeout(90_000);
    const { directory, directoryKey } = localnet.info;
    const stages: string[] = [];
    const client = await createMixnetClient({ directory, directoryKey, mode, onProgress: (p) => stages.push(p.stage) });
    try {
      expect(stages).toEqual(['topology', 'transport-open', 'handshake', 'authenticated']);
      expect(client.transport).toBe('websocket'); // Node has no WebTransport
      const got = new Promise<string>((resolve) => client.on('message', (m) => resolve(m.text())));
      await client.send(client.selfAddress, `hello from Node, ${mode}`, { waitForDelivery: true });
      expect(await got).toBe(`hello from Node, ${mode}`);
    } finally {
      await client.disconnect();
    }

    const mf = await createMixFetch({ directory, directoryKey, mode, extraRoots: servers.caPem });
    try {
      const json = await mf.fetch(`${servers.https}/json`);
      expect([json.status, await json.json()]).toEqual([200, { ok: true, items: [1, 2, 3] }]);
      const posted = await mf.fetch(`${servers.https}/echo`, { method: 'POST', body: 'posted from Node' });
      expect(await posted.text()).toBe('posted from Node');
      const gz = await mf.fetch(`${servers.https}/encoded/gzip`);
      expect([gz.headers.get('content-encoding'), (await gz.text()).slice(0, 8)]).toEqual(['gzip', 'line 0: ']);
    } finally {
      await mf.disconnect();
    }
  });
}

test('a Node script exits by itself once it has disconnected (no handle left behind)', async ({ localnet }) => {
  const script = `
    import { createMixnetClient } from '@mixnet/worker-shim';
    const c = await createMixnetClient(${JSON.stringify({ directory: localnet.info.directory, directoryKey: localnet.info.directoryKey, mode: 'fast' })});
    const got = new Promise((r) => c.on('message', (m) => r(m.text())));
    await c.send(c.selfAddress, 'ping');
    console.log(await got);
    await c.disconnect();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  expect([code, out.trim()]).toEqual([0, 'ping']);
});
