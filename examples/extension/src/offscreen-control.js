// Opening the offscreen document that owns the client, from the service worker or the
// popup (whichever asks first; Chrome allows one per extension).

export async function ensureOffscreen() {
  const url = chrome.runtime.getURL('offscreen.html');
  const existing = await chrome.runtime.getContexts({ contextTypes: ['OFFSCREEN_DOCUMENT'], documentUrls: [url] });
  if (existing.length > 0) return;
  try {
    await chrome.offscreen.createDocument({
      url: 'offscreen.html',
      reasons: ['WORKERS'],
      justification: 'runs the mixnet client (a worker with its wasm) for as long as the browser runs',
    });
  } catch (e) {
    // created meanwhile by the other caller
    if (!String(e?.message).includes('single offscreen')) throw e;
  }
}
