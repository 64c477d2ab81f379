// @mixnet/worker-shim in Node.js (≥ 20): the same API as in a browser, for CLIs,
// servers and tests. Package.json's `node` export condition picks this entry; browsers
// and bundlers never see it. The client runs in a worker thread (node-worker.ts) that
// gives the wasm what a browser worker would: a WebSocket (Node's own from 22, the `ws`
// package before that), and the wasm file read from disk.

import { Worker as ThreadWorker } from 'node:worker_threads';
import { _setWorkerFactory, type WorkerKind } from './client.js';

export * from './index.js';

/**
 * The process's Node options, for the thread, without those about the main script
 * (`node --input-type=module -e …` would otherwise fail in the thread).
 */
function threadExecArgv(): string[] {
  const out: string[] = [];
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a.startsWith('--input-type')) continue;
    if (['-e', '--eval', '-p', '--print'].includes(a)) {
      i++; // and its script
      continue;
    }
    if (/^(--eval|--print)=/.test(a)) continue;
    out.push(a);
  }
  return out;
}

/** A worker thread behind the slice of the `Worker` interface the client uses. */
class ThreadAdapter {
  #thread: ThreadWorker;
  constructor(kind: WorkerKind, url: string | URL | undefined) {
    this.#thread = new ThreadWorker(new URL('./node-worker.js', import.meta.url), {
      name: kind === 'mixfetch' ? 'mixfetch' : 'mixnet-client',
      workerData: { kind, url: url === undefined ? null : String(url) },
      execArgv: threadExecArgv(),
    });
  }
  addEventListener(type: string, listener: (e: unknown) => void): void {
    if (type === 'message') this.#thread.on('message', (data: unknown) => listener({ data }));
    else if (type === 'messageerror') this.#thread.on('messageerror', () => listener({}));
    else if (type === 'error')
      this.#thread.on('error', (err: Error) =>
        listener({
          message: err.message,
          preventDefault() {},
        }),
      );
  }
  postMessage(message: unknown, transfer: Transferable[] = []): void {
    this.#thread.postMessage(message, transfer as never);
  }
  terminate(): void {
    void this.#thread.terminate();
  }
}

_setWorkerFactory((kind, url) => new ThreadAdapter(kind, url) as unknown as Worker);
