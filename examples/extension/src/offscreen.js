// The offscreen document: owns MixFetch (and through it, the mixnet client) and answers
// the popup's requests. The worker and its wasm are files of the extension.
import { createMixFetch } from '@mixnet/worker-shim';

let mf = null;
let starting = null;

async function start(config) {
  if (mf) return mf;
  starting ??= createMixFetch({
    ...config,
    workerUrl: chrome.runtime.getURL('mixfetch-worker.js'),
  }).then((m) => (mf = m));
  return starting;
}

async function handle(msg) {
  const m = await start(msg.config);
  if (msg.type === 'fetch') {
    const res = await m.fetch(msg.url);
    return { status: res.status, text: await res.text() };
  }
  if (msg.type === 'echo') {
    // a message to ourselves, through the mixnet and back
    const got = new Promise((resolve) => {
      const off = m.client.on('message', (e) => {
        off();
        resolve(e.text());
      });
    });
    await m.client.send(m.client.selfAddress, msg.text);
    return { text: await got, address: m.client.selfAddress };
  }
  throw new Error(`unknown request ${msg.type}`);
}

chrome.runtime.onMessage.addListener((msg, _sender, reply) => {
  if (msg?.target !== 'offscreen') return false;
  handle(msg).then(
    (value) => reply({ ok: true, value }),
    (e) => reply({ ok: false, error: e.message }),
  );
  return true; // answers asynchronously
});
