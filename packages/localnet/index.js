// @mixnet/localnet: starts the `localnet` binary (from the per-platform package, as
// esbuild ships its own) and hands back what it printed: the network's URLs and keys,
// and controls to stop it and to inject faults.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** Where the binary is: `MIXNET_LOCALNET_BIN`, else the package for this platform. */
export function localnetBinary() {
  if (process.env.MIXNET_LOCALNET_BIN) return process.env.MIXNET_LOCALNET_BIN;
  const pkg = `@mixnet/localnet-${process.platform}-${process.arch}`;
  try {
    return require.resolve(`${pkg}/bin/localnet`);
  } catch {
    throw new Error(
      `@mixnet/localnet has no prebuilt binary for ${process.platform}-${process.arch} (only linux-x64 is published). ` +
        'Build it from the repository with `cargo build --release -p localnet` and point MIXNET_LOCALNET_BIN at target/release/localnet.',
    );
  }
}

function args(o, out, dir) {
  const a = ['--out', out, '--http', o.http ?? '127.0.0.1:0', '--data-dir', o.dataDir ?? path.join(dir, 'data')];
  if (o.site) a.push('--site', o.site);
  else a.push('--no-site');
  if (o.mode) a.push('--mode', o.mode);
  if (o.mixesPerLayer) a.push('--mixes-per-layer', String(o.mixesPerLayer));
  if (o.webTransport === false) a.push('--no-webtransport');
  if (o.control !== false) a.push('--control');
  if (o.exitAllowPrivate) a.push('--exit-allow-private');
  if (o.seed !== undefined) a.push('--seed', String(o.seed));
  return a;
}

/** The value of a Prometheus counter or gauge at `metricsUrl`, summed over its labels. */
export async function metric(metricsUrl, name) {
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

/** Starts a network; resolves once it serves, with its information and controls. */
export async function startLocalnet(options = {}) {
  const bin = localnetBinary();
  const dir = mkdtempSync(path.join(tmpdir(), 'localnet-'));
  const out = path.join(dir, 'localnet.json');
  const child = spawn(bin, args(options, out, dir), { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  let url;
  try {
    url = await new Promise((resolve, reject) => {
      child.stdout.on('data', (chunk) => {
        log += chunk.toString();
        const m = log.match(/demo site: (http:\/\/\S+)/);
        if (m) resolve(m[1]);
      });
      child.stderr.on('data', (c) => (log += c.toString()));
      child.once('error', (e) => reject(new Error(`cannot start ${bin}: ${e.message}`)));
      child.once('exit', (code) => reject(new Error(`localnet exited (${code}) before it was up:\n${log}`)));
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  // keep draining its output, so a chatty network never blocks on a full pipe
  child.stdout.resume();
  child.stderr.resume();
  const info = JSON.parse(readFileSync(out, 'utf8'));
  const control = async (what, i, action) => {
    const res = await fetch(`${url}_control/${what}/${i}/${action}`, { method: 'POST' });
    if (!res.ok) throw new Error(`localnet: ${action} ${what} ${i}: ${res.status} ${await res.text()}`);
  };
  return {
    url,
    info,
    stopGateway: (i) => control('gateways', i, 'stop'),
    startGateway: (i) => control('gateways', i, 'start'),
    closeWebTransport: (i) => control('gateways', i, 'close-webtransport'),
    blackholeWebTransport: (i) => control('gateways', i, 'blackhole-webtransport'),
    killMix: (i) => control('mixes', i, 'kill'),
    metric,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
