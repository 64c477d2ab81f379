// Web servers for the MixFetch tests, written with Node's own http/https (a different
// HTTP implementation from ours, on purpose): a local CA made with openssl, an HTTPS
// server whose certificate it signed, the same routes over plain HTTP, and an HTTPS
// server with a certificate nobody signed. All on OS-chosen loopback ports.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { test as mixnetTest } from '@mixnet/playwright';

export interface TestServers {
  /** `https://localhost:port` (certificate signed by `caPem`). */
  https: string;
  /** `http://127.0.0.1:port`, the same routes. */
  http: string;
  /** `https://localhost:port` with a self-signed certificate (must be refused). */
  badHttps: string;
  /** The CA to pass as `extraRoots`. */
  caPem: string;
  /** The leaf (localhost, 127.0.0.1) the CA signed, for other servers to use (nginx.ts). */
  leaf: { cert: string; key: string };
  /** SHA-256 (hex) of what `/binary` serves. */
  binarySha256: string;
  /** Bytes of `/binary`. */
  binaryLength: number;
  /** `http://127.0.0.1:port`, the same routes on another port (another origin). */
  httpAlt: string;
  /** Requests the servers saw, by path. */
  hits: Map<string, number>;
  /** The User-Agent of the last request for each path and query. */
  agents: Map<string, string>;
  close(): Promise<void>;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA, a leaf for localhost/127.0.0.1 signed by it, and a self-signed leaf. */
function makeCerts() {
  const dir = mkdtempSync(path.join(tmpdir(), 'e2e-ca-'));
  try {
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    openssl(dir, 'req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=MixFetch e2e CA',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
    openssl(dir, 'req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=localhost');
    const ext = 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n';
    writeFileSync(path.join(dir, 'leaf.ext'), ext);
    openssl(dir, 'x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'leaf.ext');
    openssl(dir, 'req', '-x509', ...ec, '-keyout', 'self.key', '-out', 'self.pem', '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:FALSE');
    const read = (f: string) => readFileSync(path.join(dir, f), 'utf8');
    return { ca: read('ca.pem'), key: read('leaf.key'), cert: read('leaf.pem'), selfKey: read('self.key'), selfCert: read('self.pem') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `n` deterministic bytes. */
export function pattern(n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31) % 251;
  return b;
}

const BINARY = pattern(5 * 1024 * 1024);

/** A compressible text (~600 KB), served content-coded by /encoded/*. */
export const ENCODED_TEXT = Array.from({ length: 12_000 }, (_, i) => `line ${i}: the quick brown fox jumps over the lazy dog\n`).join('');

// a 1×1 PNG
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

function handler(hits: Map<string, number>, agents: Map<string, string>): http.RequestListener {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = url.pathname;
    hits.set(p, (hits.get(p) ?? 0) + 1);
    agents.set(`${p}${url.search}`, req.headers['user-agent'] ?? '');
    res.setHeader('Access-Control-Allow-Origin', '*');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (p === '/text') {
        res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' }).end('hello from the test server ✓');
      } else if (p === '/json') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ ok: true, items: [1, 2, 3] }));
      } else if (p === '/binary') {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': BINARY.length }).end(BINARY);
      } else if (p === '/echo') {
        res.writeHead(200, {
          'Content-Type': req.headers['content-type'] ?? 'application/octet-stream',
          'X-Method': req.method ?? '',
          'X-Echo-Header': String(req.headers['x-test'] ?? ''),
        });
        res.end(body);
      } else if (p.startsWith('/redirect/')) {
        const n = Number(p.slice('/redirect/'.length));
        res.writeHead(302, { Location: n <= 1 ? '/text' : `/redirect/${n - 1}` }).end();
      } else if (p === '/status/404') {
        res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found here');
      } else if (p === '/status/500') {
        res.writeHead(500, { 'Content-Type': 'text/plain' }).end('server error');
      } else if (p === '/chunked') {
        // no Content-Length: Node sends Transfer-Encoding: chunked
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('alpha ');
        res.write('beta ');
        setImmediate(() => res.end('gamma'));
      } else if (p === '/slow') {
        // a body that never ends on its own: 16 KiB every 20 ms
        res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
        const piece = pattern(16 * 1024);
        const timer = setInterval(() => res.write(piece), 20);
        res.on('close', () => clearInterval(timer));
      } else if (p.startsWith('/bytes/')) {
        const n = Math.min(Number(p.slice('/bytes/'.length)) || 0, 100_000_000);
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': n }).end(pattern(n));
      } else if (p === '/image.png') {
        res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': PNG.length }).end(PNG);
      } else if (p === '/headers') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(req.headers));
      } else if (p.startsWith('/encoded/')) {
        // the same text, content-coded as the path says (what nginx's gzip does, and the odd servers)
        const kind = p.slice('/encoded/'.length);
        const plain = Buffer.from(ENCODED_TEXT);
        const coded: Record<string, [string, Buffer]> = {
          gzip: ['gzip', zlib.gzipSync(plain)],
          'x-gzip': ['x-gzip', zlib.gzipSync(plain)],
          deflate: ['deflate', zlib.deflateSync(plain)],
          'deflate-raw': ['deflate', zlib.deflateRawSync(plain)],
          twice: ['deflate, gzip', zlib.gzipSync(zlib.deflateSync(plain))],
          empty: ['gzip', Buffer.alloc(0)],
          unknown: ['x-custom', plain],
          corrupt: ['gzip', Buffer.concat([zlib.gzipSync(plain).subarray(0, 40), Buffer.from('not gzip at all')])],
        };
        const entry = coded[kind];
        if (!entry) {
          res.writeHead(404).end('no such coding');
        } else {
          res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Encoding': entry[0], 'Content-Length': entry[1].length, Vary: 'Accept-Encoding' });
          res.end(entry[1]);
        }
      } else if (p.startsWith('/n/')) {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end(`response ${p.slice(3)}`);
      } else {
        res.writeHead(404).end('no such route');
      }
    });
  };
}

function listen(server: http.Server | https.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

export async function startTestServers(): Promise<TestServers> {
  const certs = makeCerts();
  const hits = new Map<string, number>();
  const agents = new Map<string, string>();
  const h = handler(hits, agents);
  const secure = https.createServer({ key: certs.key, cert: certs.cert }, h);
  const plain = http.createServer(h);
  const bad = https.createServer({ key: certs.selfKey, cert: certs.selfCert }, h);
  const alt = http.createServer(h);
  const servers = [secure, plain, bad, alt];
  const [sp, pp, bp, ap] = await Promise.all(servers.map(listen));
  return {
    https: `https://localhost:${sp}`,
    http: `http://127.0.0.1:${pp}`,
    httpAlt: `http://127.0.0.1:${ap}`,
    badHttps: `https://localhost:${bp}`,
    caPem: certs.ca,
    leaf: { cert: certs.cert, key: certs.key },
    binarySha256: createHash('sha256').update(BINARY).digest('hex'),
    binaryLength: BINARY.length,
    hits,
    agents,
    async close() {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((r) => {
              s.closeAllConnections();
              s.close(() => r());
            }),
        ),
      );
    },
  };
}

/**
 * `@mixnet/playwright`'s `test` (a localnet per worker) with these servers as another
 * worker fixture: what an application's own suite would add for its own servers.
 */
export const test = mixnetTest.extend<object, { servers: TestServers }>({
  servers: [
    async ({}, use) => {
      const s = await startTestServers();
      await use(s);
      await s.close();
    },
    { scope: 'worker' },
  ],
});
export { expect } from '@mixnet/playwright';
