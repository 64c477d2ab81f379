// The demo page: joins the local network described by /localnet.json, publishes texts
// anonymously, exchanges messages with other pages, and shows the client's traffic.
//
// Query parameters: mode=fast|mixnet, gateway=entry|exit, persist=1 (keep the identity
// in localStorage, so the address and its inbox survive a reload), sendDelayMs,
// loopCoverMs (numbers), transport=auto|websocket|webtransport.

import { createMixnetClient, generateIdentity, type MixnetClient, type ReceivedMessage, type Stats } from '@mixnet/worker-shim';
import { drawChart } from './chart';
import { NetworkPicture } from './network';
import { $, localnetInfo, type LocalnetInfo } from './page';
import { routeRow, short } from './route';
import { showTransport, transportParam } from './transport';

interface Receipt {
  ok: boolean;
  id?: number;
  bytes?: number;
  error?: string;
}

const params = new URLSearchParams(location.search);
const IDENTITY_KEY = 'mixnet-demo-identity';

function showError(message: string): void {
  const el = $('error');
  el.textContent = message;
  el.hidden = false;
}

function setState(state: string, reason: string | null): void {
  const el = $('state');
  el.textContent = state;
  el.dataset.state = state;
  el.title = reason ?? '';
}

function numberParam(name: string): number | undefined {
  const v = params.get(name);
  return v === null ? undefined : Number(v);
}

async function main(): Promise<void> {
  const info = await localnetInfo();
  const mode = params.get('mode') === 'fast' ? 'fast' : params.get('mode') === 'mixnet' ? 'mixnet' : info.mode;
  $('mode').textContent = mode;
  let identity: string | undefined;
  if (params.get('persist') === '1') {
    identity = localStorage.getItem(IDENTITY_KEY) ?? generateIdentity();
    localStorage.setItem(IDENTITY_KEY, identity);
  }
  const started = performance.now();
  const client = await createMixnetClient({
    directory: info.directory,
    directoryKey: info.directoryKey,
    gateway: params.get('gateway') === 'exit' ? info.exitGateway : info.entryGateway,
    mode,
    identity,
    transport: transportParam(params),
    sendDelayMs: numberParam('sendDelayMs'),
    loopCoverMs: numberParam('loopCoverMs'),
  });
  $('ready-ms').textContent = `ready in ${Math.round(performance.now() - started)} ms`;
  setState(client.state, null);
  client.on('state', ({ state, reason }) => setState(state, reason));
  showTransport(client, $('transport'));
  client.on('fatal', (e) => showError(e.message));
  $('self-address').textContent = client.selfAddress;
  document.body.dataset.ready = 'true';
  setupPublishing(client, info);
  setupMessages(client, info);
  await setupLiveView(client, info, mode);
}

function setupPublishing(client: MixnetClient, info: LocalnetInfo): void {
  const form = $<HTMLFormElement>('publish-form');
  const button = $<HTMLButtonElement>('publish-button');
  const text = $<HTMLTextAreaElement>('publish-text');
  const receipt = $('publish-receipt');
  const service = info.publishService;
  if (!service) {
    receipt.textContent = 'The publishing service is not running on this network.';
    receipt.hidden = false;
    return;
  }
  button.disabled = false;
  client.on('message', (m) => {
    if (m.replyFrom !== service) return;
    let r: Receipt;
    try {
      r = JSON.parse(m.text()) as Receipt;
    } catch {
      r = { ok: false, error: 'the service sent something unreadable' };
    }
    receipt.textContent = r.ok ? `Published as #${r.id} (${r.bytes} bytes). The service answered through your SURBs.` : `Refused: ${r.error}`;
    if (r.ok) text.value = '';
    receipt.dataset.ok = String(r.ok);
    receipt.hidden = false;
    button.disabled = false;
    void refreshPosts();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    button.disabled = true;
    receipt.hidden = false;
    receipt.dataset.ok = '';
    receipt.textContent = 'Sending through the mixnet…';
    client.send(service, text.value, { replySurbs: 3 }).catch((err: Error) => {
      receipt.textContent = `Could not send: ${err.message}`;
      button.disabled = false;
    });
  });
  void refreshPosts();
}

async function refreshPosts(): Promise<void> {
  const res = await fetch('./posts');
  if (!res.ok) return;
  const posts = (await res.json()) as { id: number; text: string }[];
  const list = $('posts');
  list.replaceChildren(
    ...posts.slice(-20).reverse().map((p) => {
      const li = document.createElement('li');
      li.value = p.id;
      li.textContent = p.text;
      return li;
    }),
  );
}

function setupMessages(client: MixnetClient, info: LocalnetInfo): void {
  const form = $<HTMLFormElement>('send-form');
  const button = $<HTMLButtonElement>('send-button');
  const status = $('send-status');
  const inbox = $('inbox');
  let received = 0;
  let sent = 0;
  button.disabled = false;
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const to = $<HTMLInputElement>('recipient').value.trim();
    const textArea = $<HTMLTextAreaElement>('message-text');
    const text = textArea.value;
    const surbs = $<HTMLInputElement>('attach-surbs').checked ? 3 : 0;
    status.textContent = 'sending…';
    status.dataset.status = 'sending';
    client.send(to, text, { replySurbs: surbs, waitForDelivery: true }).then(
      () => {
        // the client's own ids count acknowledgements and cover too: number the user's
        sent += 1;
        status.textContent = `message ${sent} delivered to the recipient's gateway`;
        status.dataset.status = 'delivered';
        if (textArea.value === text) textArea.value = '';
      },
      (err: Error) => {
        status.textContent = `not sent: ${err.message}`;
        status.dataset.status = 'failed';
      },
    );
  });
  client.on('message', (m: ReceivedMessage) => {
    if (m.replyFrom !== null && m.replyFrom === info.publishService) return;
    received += 1;
    $('received').textContent = String(received);
    $('received-label').textContent = received === 1 ? 'message received' : 'messages received';
    const li = document.createElement('li');
    li.className = 'message';
    const body = document.createElement('span');
    body.className = 'text';
    body.textContent = m.text();
    const from = document.createElement('span');
    from.className = 'from muted';
    from.textContent = m.replyFrom ? `reply from ${short(m.replyFrom)}` : m.senderTag ? 'anonymous sender' : 'sender without reply SURBs';
    li.append(body, ' ', from);
    if (m.senderTag) {
      const tag = m.senderTag;
      const reply = document.createElement('button');
      reply.className = 'reply';
      reply.textContent = 'Reply anonymously';
      reply.addEventListener('click', () => {
        const answer = `re: ${m.text()}`;
        reply.disabled = true;
        client.reply(tag, answer).then(
          () => (reply.textContent = 'replied'),
          (err: Error) => (reply.textContent = `reply failed: ${err.message}`),
        );
      });
      li.append(' ', reply);
    }
    inbox.prepend(li);
  });
}

async function setupLiveView(client: MixnetClient, info: LocalnetInfo, mode: string): Promise<void> {
  const history: { real: number; cover: number }[] = [];
  let last: Stats | null = null;
  let lastAt = 0;
  const chart = $('chart');
  drawChart(chart, history);
  const fast = mode === 'fast';
  if (fast) {
    // no layers to show: the packets go straight to the gateway
    $('routes-heading').hidden = true;
    $('routes-table').hidden = true;
  }
  let picture: NetworkPicture | null = null;
  try {
    picture = await NetworkPicture.create($('network'), info.directory, fast);
  } catch (e) {
    $('network').textContent = `The network picture is unavailable: ${e instanceof Error ? e.message : String(e)}`;
  }
  client.on('stats', (s) => {
    const now = performance.now();
    picture?.update(s);
    if (last) {
      const dt = (now - lastAt) / 1000;
      const real = (s.realSent - last.realSent) / dt;
      const cover = (s.coverSent - last.coverSent) / dt;
      $('rate-real').textContent = real.toFixed(1);
      $('rate-cover').textContent = cover.toFixed(1);
      history.push({ real, cover });
      if (history.length > 60) history.shift();
      drawChart(chart, history);
    }
    last = s;
    lastAt = now;
    if (!fast) {
      const latest = (kind: 'real' | 'cover') => s.routes.filter((r) => r.kind === kind).slice(-6);
      const shown = [...latest('real'), ...latest('cover')].sort((x, y) => y.atMs - x.atMs);
      $('routes').replaceChildren(...shown.map((r) => routeRow(r, true)));
    }
  });
}

main().catch((e: unknown) => {
  setState('failed', null);
  showError(e instanceof Error ? e.message : String(e));
});
