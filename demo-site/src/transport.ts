// The transport badge both demo pages show: WebTransport, or WebSocket (with why, when
// WebTransport failed and the client fell back).

import type { MixnetClient, TransportChoice } from '@mixnet/worker-shim';

/** `?transport=auto|websocket|webtransport` (default auto). */
export function transportParam(params: URLSearchParams): TransportChoice {
  const t = params.get('transport');
  return t === 'websocket' || t === 'webtransport' ? t : 'auto';
}

export function showTransport(client: MixnetClient, el: HTMLElement): void {
  const show = (transport: string | null, fallbackReason: string | null): void => {
    if (transport === null) return;
    el.hidden = false;
    el.textContent = transport === 'webtransport' ? 'WebTransport' : 'WebSocket';
    el.dataset.transport = transport;
    el.title = fallbackReason ? `fell back to WebSocket: ${fallbackReason}` : '';
  };
  show(client.transport, client.webTransportFailure);
  client.on('transport', ({ transport, fallbackReason }) => show(transport, fallbackReason));
}
