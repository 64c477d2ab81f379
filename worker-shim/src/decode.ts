// Content-Encoding, as a browser's fetch handles it: the request says which codings
// the page can decode (`Accept-Encoding`), and a response body in them is decoded as
// its bytes stream in. The decoders are the platform's own `DecompressionStream`
// (gzip and deflate in every browser and in Node 18+), so this adds nothing to the
// wasm. Brotli is not offered: no `DecompressionStream` here decodes it, and a wasm
// decoder would add ~81 KB gzip to the module (measured; see BENCHMARKS.md).

type Coding = 'gzip' | 'deflate';

function supported(format: string): boolean {
  try {
    new DecompressionStream(format as CompressionFormat);
    return true;
  } catch {
    return false;
  }
}

let offered: string | null | undefined;

/** The `Accept-Encoding` this platform can honour (`gzip, deflate`), or null for none. */
export function acceptEncoding(): string | null {
  if (offered === undefined) {
    const ok = typeof DecompressionStream === 'function' && supported('gzip') && supported('deflate') && supported('deflate-raw');
    offered = ok ? 'gzip, deflate' : null;
  }
  return offered;
}

/**
 * The codings of a `Content-Encoding` value, in the order they were applied, or null
 * when the body is to be handed over as it came: no coding, or one this client does
 * not know (a browser passes those through untouched too).
 */
export function contentCodings(value: string | null): Coding[] | null {
  if (value === null || acceptEncoding() === null) return null;
  const codings: Coding[] = [];
  for (const raw of value.split(',')) {
    const c = raw.trim().toLowerCase();
    if (c === '' || c === 'identity') continue;
    if (c === 'gzip' || c === 'x-gzip') codings.push('gzip');
    else if (c === 'deflate') codings.push('deflate');
    else return null;
  }
  return codings.length ? codings : null;
}

/**
 * `input` decoded from one coding, pulled as the reader asks (a small compressed body
 * can inflate a thousandfold: nothing is decoded ahead of demand). The decoder is made
 * on the first bytes: an empty body decodes to an empty body (as in a browser;
 * `DecompressionStream` would call it truncated), and for `deflate`, meant to be
 * zlib-wrapped but also sent raw, the first two bytes say which (browsers accept both).
 */
function decodeStage(input: ReadableStream<Uint8Array>, coding: Coding): ReadableStream<Uint8Array> {
  const source = input.getReader();
  let out: ReadableStreamDefaultReader<Uint8Array> | null = null;
  const open = async (): Promise<ReadableStreamDefaultReader<Uint8Array> | null> => {
    let head: Uint8Array = new Uint8Array(0);
    let ended = false;
    while (head.length < 2 && !ended) {
      const r = await source.read();
      if (r.done) ended = true;
      else head = concat(head, r.value);
    }
    if (head.length === 0) return null;
    const [cmf = 0, flg = 0] = head;
    const zlib = (cmf & 0x0f) === 8 && cmf >> 4 <= 7 && ((cmf << 8) | flg) % 31 === 0;
    const format: CompressionFormat = coding === 'gzip' ? 'gzip' : zlib ? 'deflate' : 'deflate-raw';
    // the bytes read ahead, then the rest of the body, on demand
    const replay = new ReadableStream<Uint8Array>(
      {
        start(c) {
          c.enqueue(head);
          if (ended) c.close();
        },
        async pull(c) {
          const r = await source.read();
          if (r.done) c.close();
          else c.enqueue(r.value);
        },
        cancel: (reason) => source.cancel(reason),
      },
      { highWaterMark: 0 },
    );
    // (the DOM types want an ArrayBuffer-backed view; ours are)
    return replay.pipeThrough(new DecompressionStream(format) as unknown as TransformStream<Uint8Array, Uint8Array>).getReader();
  };
  let opened = false;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!opened) {
          opened = true;
          out = await open();
        }
        if (out === null) return controller.close();
        const r = await out.read();
        if (r.done) controller.close();
        else controller.enqueue(r.value);
      },
      cancel: (reason) => (out ? out.cancel(reason) : source.cancel(reason)),
    },
    { highWaterMark: 0 },
  );
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * `body` decoded from `codings` (last applied, first undone). A body that does not
 * decode errors the stream with a TypeError (`cause.code` `decode`), as a browser's
 * fetch fails a body it cannot decode; cancelling the result cancels `body`.
 */
export function decodeBody(body: ReadableStream<Uint8Array>, codings: Coding[]): ReadableStream<Uint8Array> {
  let decoded = body;
  for (const c of [...codings].reverse()) {
    decoded = decodeStage(decoded, c);
  }
  const reader = decoded.getReader();
  const name = codings.join(', ');
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let next: ReadableStreamReadResult<Uint8Array>;
      try {
        next = await reader.read();
      } catch (e) {
        if (e instanceof DOMException && e.name === 'AbortError') throw e;
        // a network error from below keeps its own message
        if (e instanceof TypeError && e.message.startsWith('MixFetch:')) throw e;
        throw new TypeError(`MixFetch: the response body is not valid ${name} (Content-Encoding: ${name})`, { cause: { code: 'decode', error: e } });
      }
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
}
