// @mixnet/localnet's command line, as `npx @mixnet/localnet` runs it: the network comes
// up, prints where, serves its localnet.json, and stops on Ctrl-C.

import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, expect, startLocalnet } from '@mixnet/playwright';

const require = createRequire(import.meta.url);

test('npx @mixnet/localnet: up, serving localnet.json, and down on SIGINT', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'localnet-cli-'));
  const cli = path.join(path.dirname(require.resolve('@mixnet/localnet/package.json')), 'bin/localnet.js');
  const child = spawn(process.execPath, [cli, '--mode', 'fast', '--out', path.join(dir, 'localnet.json'), '--data-dir', path.join(dir, 'data')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        const m = out.match(/demo site: (http:\/\/\S+)/);
        if (m) resolve(m[1]!);
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    const written = JSON.parse(readFileSync(path.join(dir, 'localnet.json'), 'utf8')) as { directory: string; mode: string };
    const served = (await (await fetch(`${url}localnet.json`)).json()) as { directory: string; mode: string };
    expect([served.directory, served.mode]).toEqual([written.directory, 'fast']);
    const exited = new Promise<number | null>((r) => child.once('exit', r));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('killMix stops a mix node: its metrics endpoint goes away, a second kill is refused', async () => {
  const net = await startLocalnet({ mode: 'fast' });
  try {
    const metrics = net.info.mixes[0]!.metrics;
    expect((await fetch(metrics)).ok).toBe(true);
    await net.killMix(0);
    await expect(fetch(metrics)).rejects.toThrow();
    await expect(net.killMix(0)).rejects.toThrow(/409 already killed/);
  } finally {
    await net.stop();
  }
});

test('exitAllowPrivate lets the exit reach private addresses (denied by default)', async () => {
  const { createMixFetch } = await import('@mixnet/worker-shim');
  const attempt = async (exitAllowPrivate: boolean) => {
    const net = await startLocalnet({ mode: 'fast', exitAllowPrivate });
    const mf = await createMixFetch({ directory: net.info.directory, directoryKey: net.info.directoryKey, mode: 'fast', timeoutMs: 3000 });
    try {
      await mf.fetch('http://10.255.255.1:9/');
      return 'fetched';
    } catch (e) {
      return (e as Error).message;
    } finally {
      await mf.disconnect();
      await net.stop();
    }
  };
  expect(await attempt(false)).toMatch(/could not connect to 10\.255\.255\.1:9: .*private/);
  // allowed: the exit tries (nothing answers at that address here)
  expect(await attempt(true)).not.toMatch(/policy|private/);
});

test('seed gives the same node identities and directory key on every run', async () => {
  const ids = async (seed: number) => {
    const net = await startLocalnet({ mode: 'fast', seed });
    try {
      return { key: net.info.directoryKey, mixes: net.info.mixes.map((m) => m.identity).sort(), entry: net.info.entryGateway };
    } finally {
      await net.stop();
    }
  };
  const [a, b, c] = [await ids(7), await ids(7), await ids(8)];
  expect(b).toEqual(a);
  expect(c.key).not.toBe(a.key);
  expect(c.mixes).not.toEqual(a.mixes);
});

test('without a binary for the platform, @mixnet/localnet says how to build one', async () => {
  // the package alone, where no @mixnet/localnet-<platform> package can be found
  const dir = mkdtempSync(path.join(tmpdir(), 'localnet-nobin-'));
  try {
    const pkg = path.dirname(require.resolve('@mixnet/localnet/package.json'));
    copyFileSync(path.join(pkg, 'index.js'), path.join(dir, 'index.js'));
    writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    const script = "import('./index.js').then((m) => { try { m.localnetBinary(); } catch (e) { console.log(e.message); } })";
    const out = execFileSync(process.execPath, ['-e', script], { cwd: dir, encoding: 'utf8', env: { ...process.env, MIXNET_LOCALNET_BIN: '' } });
    expect(out).toContain(`no prebuilt binary for ${process.platform}-${process.arch}`);
    expect(out).toContain('cargo build --release -p localnet');
    expect(out).toContain('MIXNET_LOCALNET_BIN');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
