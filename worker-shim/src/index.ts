// @mixnet/worker-shim: a mixnet client in a WebWorker (client.ts) and fetch over the
// mixnet on top of it (mixfetch.ts).

export {
  MixnetClient,
  MixnetError,
  PROTOCOL_VERSION,
  createMixnetClient,
  generateIdentity,
  type ClientConfig,
  type ClientEvents,
  type Progress,
  type ConnectionState,
  type ErrorCode,
  type FetchErrorCode,
  type MixnetClientOptions,
  type Mode,
  type ReceivedMessage,
  type RouteHop,
  type RouteRecord,
  type SendOptions,
  type Stats,
  type TransportChoice,
  type TransportKind,
} from './client.js';
export { MixFetch, createMixFetch, disconnectMixFetch, mixFetch, type MixFetchOptions } from './mixfetch.js';
export { registerMixFetchServiceWorker, type MixFetchServiceWorkerOptions } from './service-worker.js';
