#!/usr/bin/env node
// `npx @mixnet/localnet [--mode fast] [--out localnet.json] …`: the network in the
// foreground, as `cargo run -p localnet` runs it (same options; `--help` lists them).
import { spawn } from 'node:child_process';
import { localnetBinary } from '../index.js';

let bin;
try {
  bin = localnetBinary();
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
const args = process.argv.slice(2);
// without a site of its own it serves only /localnet.json (not the repository's demo)
if (!args.some((a) => a === '--site' || a.startsWith('--site='))) args.push('--no-site');
if (!args.some((a) => a === '--http' || a.startsWith('--http='))) args.push('--http', '127.0.0.1:0');
const child = spawn(bin, args, { stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
