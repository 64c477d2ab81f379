// Type tests for the public API (checked by `tsc --noEmit` in npm test; never run).
// Each `@ts-expect-error` must be an error, or tsc fails: the API stays as strict as written.

import { createMixnetClient, generateIdentity, MixnetError, type MixnetClient, type Stats } from '../src/index.js';
import type { Request, Response } from '../src/protocol.js';

declare const client: MixnetClient;

export async function usage(): Promise<void> {
  const c = await createMixnetClient({ directory: 'http://127.0.0.1:1', directoryKey: 'k', mode: 'fast', identity: generateIdentity() });
  const id: number = await c.send(c.selfAddress, 'text', { replySurbs: 3, waitForDelivery: true, signal: AbortSignal.timeout(1000) });
  await c.send(c.selfAddress, new Uint8Array([1, 2]));
  await c.send(c.selfAddress, new ArrayBuffer(4));
  await c.reply('tag', 'answer');
  const s: Stats = await c.stats();
  const kinds: ('real' | 'cover')[] = s.routes.map((r) => r.kind);
  void id;
  void kinds;

  const off = client.on('message', (m) => {
    const bytes: Uint8Array = m.data;
    const tag: string | null = m.senderTag;
    const text: string = m.text();
    void bytes;
    void tag;
    void text;
  });
  off();
  client.on('state', ({ state }) => {
    // @ts-expect-error: not a connection state
    if (state === 'open') return;
  });
  client.on('transport', ({ transport, fallbackReason }) => {
    const kind: 'websocket' | 'webtransport' = transport;
    const why: string | null = fallbackReason;
    void kind;
    void why;
  });
  const now: 'websocket' | 'webtransport' | null = client.transport;
  const failure: string | null = client.webTransportFailure;
  void failure;
  const used: 'websocket' | 'webtransport' | null = s.transport;
  void now;
  void used;
  await createMixnetClient({ directory: 'd', directoryKey: 'k', transport: 'webtransport', webTransportTimeoutMs: 500 });
  // @ts-expect-error: transport is auto, websocket or webtransport
  await createMixnetClient({ directory: 'd', directoryKey: 'k', transport: 'quic' });
  client.on('fatal', (e) => {
    const err: MixnetError = e;
    void err.code;
  });

  // @ts-expect-error: unknown event
  client.on('nonsense', () => {});
  // @ts-expect-error: the directory is required
  await createMixnetClient({ directoryKey: 'k' });
  // @ts-expect-error: mode is mixnet or fast
  await createMixnetClient({ directory: 'd', directoryKey: 'k', mode: 'slow' });
  // @ts-expect-error: data is bytes or text
  await client.send('addr', 42);
  // @ts-expect-error: replySurbs is a number
  await client.send('addr', 'x', { replySurbs: '3' });
}

// The wire protocol is a discriminated union: a request type fixes its fields.
export const ok: Request = { v: 1, id: 1, type: 'send', recipient: 'r', data: new ArrayBuffer(0), replySurbs: 0 };
// @ts-expect-error: a `stats` request has no data
export const bad: Request = { v: 1, id: 1, type: 'stats', data: new ArrayBuffer(0) };
// @ts-expect-error: the version is fixed
export const old: Request = { v: 0, id: 1, type: 'stats' };
// a successful `stats` result carries Stats, not a number
// @ts-expect-error: wrong value type for the request
export const wrong: Response = { v: 1, type: 'result', id: 1, request: 'stats', ok: true, value: 3 };
