// nginx (Debian's, installed by scripts/setup) as a third-party origin for MixFetch:
// HTTP and HTTPS (TLS 1.3 and 1.2) on loopback, gzip on, keep-alive, sendfile, Range
// and conditional requests as nginx does them. Its own prefix in a temporary
// directory; stopped (and the directory removed) by `close()`.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface Nginx {
  /** `http://127.0.0.1:port` */
  http: string;
  /** `https://localhost:port` (the certificate given; TLS 1.3 or 1.2) */
  https: string;
  /** The same over TLS 1.2 only. */
  https12: string;
  /** What nginx logged so far: one line per request, `connection-number request-uri`. */
  accessLog(): string[];
  close(): Promise<void>;
}

/** A port the OS just handed out (nginx cannot be told to take port 0 and report it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function config(dir: string, httpPort: number, httpsPort: number, tls12Port: number): string {
  const user = process.getuid?.() === 0 ? 'user root root;' : '';
  return `${user}
worker_processes 1;
daemon off;
error_log stderr notice;
pid ${dir}/nginx.pid;
events { worker_connections 256; }
http {
  log_format conns '$connection $request_uri';
  access_log ${dir}/access.log conns;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  types { text/plain txt; application/json json; text/html html; application/octet-stream bin; }
  default_type application/octet-stream;
  sendfile on;
  keepalive_timeout 65;
  gzip on;
  gzip_types text/plain application/json;
  gzip_min_length 256;
  server {
    listen 127.0.0.1:${httpPort};
    listen 127.0.0.1:${httpsPort} ssl;
    server_name localhost;
    ssl_certificate ${dir}/leaf.pem;
    ssl_certificate_key ${dir}/leaf.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    root ${dir}/html;
    location = /moved { return 301 /small.txt; }
  }
  server {
    listen 127.0.0.1:${tls12Port} ssl;
    server_name localhost;
    ssl_certificate ${dir}/leaf.pem;
    ssl_certificate_key ${dir}/leaf.key;
    ssl_protocols TLSv1.2;
    root ${dir}/html;
  }
}
`;
}

/**
 * Starts nginx serving `files` (path → content) over HTTP and HTTPS with `cert`/`key`
 * (PEM). Resolves once its worker runs (its log says so), not after a guessed delay.
 */
export async function startNginx(tls: { cert: string; key: string }, files: Record<string, string | Uint8Array>): Promise<Nginx> {
  const dir = mkdtempSync(path.join(tmpdir(), 'e2e-nginx-'));
  mkdirSync(path.join(dir, 'tmp'));
  mkdirSync(path.join(dir, 'html'));
  writeFileSync(path.join(dir, 'leaf.pem'), tls.cert);
  writeFileSync(path.join(dir, 'leaf.key'), tls.key);
  for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, 'html', name), content);
  let lastError = '';
  // another process may take a port between freePort() and nginx's bind: try again
  for (let attempt = 0; attempt < 3; attempt++) {
    const [httpPort, httpsPort, tls12Port] = [await freePort(), await freePort(), await freePort()];
    writeFileSync(path.join(dir, 'nginx.conf'), config(dir, httpPort, httpsPort, tls12Port));
    const child: ChildProcess = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    const started = await new Promise<boolean>((resolve, reject) => {
      let log = '';
      child.once('error', (e) => reject(new Error(`nginx could not start (is it installed? scripts/setup installs it): ${e.message}`)));
      child.stderr!.on('data', (b: Buffer) => {
        log += b.toString();
        if (log.includes('start worker process')) resolve(true);
      });
      child.once('exit', () => {
        lastError = log.trim();
        resolve(false);
      });
    });
    if (!started) {
      if (lastError.includes('Address already in use')) continue;
      break;
    }
    child.stderr!.resume();
    return {
      http: `http://127.0.0.1:${httpPort}`,
      https: `https://localhost:${httpsPort}`,
      https12: `https://localhost:${tls12Port}`,
      accessLog: () => {
        const file = path.join(dir, 'access.log');
        return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
      },
      close: () =>
        new Promise<void>((resolve) => {
          const done = () => {
            rmSync(dir, { recursive: true, force: true });
            resolve();
          };
          if (child.exitCode !== null) return done();
          child.once('exit', done);
          child.kill('SIGTERM'); // nginx's fast shutdown; the master stops its worker
        }),
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`nginx did not start:\n${lastError}`);
}
