// A Playwright fixture that runs a whole mixnet on loopback for a test worker:
// directory, 3 layers of mix nodes, an entry and an exit gateway, the demo's
// publishing service and the demo site, on OS-chosen ports. Reuse it in your suite:
//
//   import { test, expect } from '<this repo>/e2e/fixtures';
//   test('my page works over the mixnet', async ({ page, localnet }) => {
//     await page.goto(localnet.url);              // or your own page, given localnet.info
//   });
//
// LOCALNET_BIN overrides the binary (default: target/debug/localnet, built by `npm test`);
// LOCALNET_SITE the directory served at `localnet.url` (default: demo-site/dist).

import { test as base, expect } from '@playwright/test';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestServers, type TestServers } from './servers';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** What localnet writes to its JSON file. */
export interface LocalnetInfo {
  directory: string;
  directoryKey: string;
  mode: 'mixnet' | 'fast';
  entryGateway: string;
  entryWs: string;
  /** The entry gateway's WebTransport endpoint (absent with `--no-webtransport`). */
  entryWt?: { url: string; cert_sha256?: string };
  exitGateway: string;
  exitWs: string;
  exitWt?: { url: string; cert_sha256?: string };
  exitAddress: string;
  entryMetrics: string;
  exitMetrics: string;
  mixes: { identity: string; metrics: string }[];
  publishService?: string;
  demo?: string;
}

export interface Localnet {
  /** The demo site (and `/localnet.json`, `/posts`). */
  url: string;
  info: LocalnetInfo;
  /** Stops gateway 0 (entry) or 1 (exit); its inbox stays on disk. */
  stopGateway(i: 0 | 1): Promise<void>;
  /** Starts it again on the same ports with the same keys and inbox. */
  startGateway(i: 0 | 1): Promise<void>;
  /**
   * Closes the gateway's WebTransport port (UDP) while it keeps serving WebSocket; the topology
   * still offers WebTransport, as on a network that blocks UDP. Undone by a stop and start.
   */
  closeWebTransport(i: 0 | 1): Promise<void>;
  /** The same, but the port then swallows packets without an answer (UDP dropped silently): clients time out. */
  blackholeWebTransport(i: 0 | 1): Promise<void>;
  /** The value of a Prometheus counter or gauge at `metricsUrl` (summed over labels). */
  metric(metricsUrl: string, name: string): Promise<number>;
}

async function control(url: string, i: number, action: 'stop' | 'start' | 'close-webtransport' | 'blackhole-webtransport'): Promise<void> {
  const res = await fetch(`${url}_control/gateways/${i}/${action}`, { method: 'POST' });
  if (!res.ok) throw new Error(`localnet: ${action} gateway ${i}: ${res.status} ${await res.text()}`);
}

async function metric(metricsUrl: string, name: string): Promise<number> {
  const text = await (await fetch(metricsUrl)).text();
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+)$/);
    if (m && m[1] === name) {
      sum += Number(m[3]);
      found = true;
    }
  }
  if (!found) throw new Error(`metric ${name} not found at ${metricsUrl}`);
  return sum;
}

/** Starts a localnet process; resolves once it printed where the demo is. */
export async function startLocalnet(args: string[] = []): Promise<Localnet & { stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'localnet-'));
  const out = path.join(dir, 'localnet.json');
  const bin = process.env.LOCALNET_BIN ?? path.join(root, 'target/debug/localnet');
  const site = process.env.LOCALNET_SITE ?? path.join(root, 'demo-site/dist');
  const child: ChildProcess = spawn(
    bin,
    ['--out', out, '--http', '127.0.0.1:0', '--site', site, '--data-dir', path.join(dir, 'data'), '--control', ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      const m = log.match(/demo site: (http:\/\/\S+)/);
      if (m) resolve(m[1] as string);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (c: Buffer) => (log += c.toString()));
    child.once('error', (e) => reject(new Error(`cannot start ${bin}: ${e.message} (run npm test, which builds it)`)));
    child.once('exit', (code) => reject(new Error(`localnet exited (${code}) before it was up:\n${log}`)));
  });
  const info = JSON.parse(readFileSync(out, 'utf8')) as LocalnetInfo;
  return {
    url,
    info,
    stopGateway: (i) => control(url, i, 'stop'),
    startGateway: (i) => control(url, i, 'start'),
    closeWebTransport: (i) => control(url, i, 'close-webtransport'),
    blackholeWebTransport: (i) => control(url, i, 'blackhole-webtransport'),
    metric,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const test = base.extend<object, { localnet: Localnet; servers: TestServers }>({
  localnet: [
    async ({}, use) => {
      const net = await startLocalnet();
      await use(net);
      await net.stop();
    },
    { scope: 'worker', timeout: 60_000 },
  ],
  // the Node test web servers (servers.ts), started for the specs that use them
  servers: [
    async ({}, use) => {
      const s = await startTestServers();
      await use(s);
      await s.close();
    },
    { scope: 'worker' },
  ],
});

export { expect };
