// The popup: asks the offscreen document to fetch through the mixnet, or to send a
// message to its own address. The network comes from the popup's query string or from
// what was saved last time (chrome.storage).
import { ensureOffscreen } from './offscreen-control.js';

const $ = (id) => document.getElementById(id);

async function config() {
  const q = new URLSearchParams(location.search);
  if (q.get('directory')) {
    const c = { directory: q.get('directory'), directoryKey: q.get('directoryKey'), mode: q.get('mode') ?? 'fast', extraRoots: q.get('ca') ?? undefined };
    await chrome.storage.local.set({ network: c });
    return c;
  }
  return (await chrome.storage.local.get('network')).network;
}

async function ask(request, out) {
  out.textContent = '…';
  delete out.dataset.done;
  try {
    await ensureOffscreen();
    const c = await config();
    if (!c) throw new Error('no network configured: open the popup once with ?directory=…&directoryKey=…');
    const r = await chrome.runtime.sendMessage({ target: 'offscreen', config: c, ...request });
    out.textContent = r.ok ? JSON.stringify(r.value) : `error: ${r.error}`;
  } catch (e) {
    out.textContent = `error: ${e.message}`;
  }
  out.dataset.done = 'true';
}

$('fetch').addEventListener('click', () => ask({ type: 'fetch', url: $('url').value }, $('fetch-out')));
$('echo').addEventListener('click', () => ask({ type: 'echo', text: $('text').value }, $('echo-out')));
const q = new URLSearchParams(location.search);
if (q.get('url')) $('url').value = q.get('url');
