// The app every bundler example builds: MixFetch from the page's query string.
// (Each example's src/main.js imports this file, so the three stay the same app.)

import { createMixFetch } from '@mixnet/worker-shim';

export async function run(extra = {}) {
  const q = new URLSearchParams(location.search);
  const out = document.getElementById('out');
  try {
    const mf = await createMixFetch({
      directory: q.get('directory'),
      directoryKey: q.get('directoryKey'),
      mode: q.get('mode') ?? 'fast',
      extraRoots: q.get('ca') ?? undefined,
      ...extra,
    });
    const res = await mf.fetch(q.get('fetch'));
    out.textContent = `${res.status} ${await res.text()}`;
    await mf.disconnect();
  } catch (e) {
    out.textContent = `error: ${e.message}`;
  }
  out.dataset.done = 'true';
}
