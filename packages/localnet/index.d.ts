/** What localnet writes to its JSON file (also served at `<url>localnet.json`). */
export interface LocalnetInfo {
  /** The directory's URL: pass it as `directory` to createMixnetClient / createMixFetch. */
  directory: string;
  /** The directory's signing key: pass it as `directoryKey`. */
  directoryKey: string;
  mode: 'mixnet' | 'fast';
  entryGateway: string;
  entryWs: string;
  /** The entry gateway's WebTransport endpoint (absent with `webTransport: false`). */
  entryWt?: { url: string; cert_sha256?: string };
  exitGateway: string;
  exitWs: string;
  exitWt?: { url: string; cert_sha256?: string };
  exitAddress: string;
  entryMetrics: string;
  exitMetrics: string;
  mixes: { identity: string; metrics: string }[];
  publishService?: string;
  /** An HTTP and an HTTPS origin on loopback (its CA in `ca`, for `extraRoots`). */
  demoOrigin?: { https: string; http: string; ca: string };
  demo?: string;
}

export interface LocalnetOptions {
  /** The route mode clients are told to use (`mixnet`: three layers, delays, cover; `fast`: straight to the exit). */
  mode?: 'mixnet' | 'fast';
  /** Mix nodes per layer (2). */
  mixesPerLayer?: number;
  /** Gateways offer WebTransport beside WebSocket (true). */
  webTransport?: boolean;
  /** Serve the fault-injection endpoints (true). */
  control?: boolean;
  /**
   * The exit may also connect to private addresses (a test's own servers on a LAN or a
   * container network); loopback is always allowed, public addresses too (false).
   */
  exitAllowPrivate?: boolean;
  /**
   * Derive the nodes' and the directory's long-term keys from this number (0 … 2⁵³):
   * the same node identities and `directoryKey` on every run, for screenshots and
   * recorded fixtures. Per-epoch Sphinx keys and packet timing stay random.
   */
  seed?: number;
  /** A directory of static files to serve at `url` (none: only `/localnet.json`). */
  site?: string;
  /** Keep keys and inboxes here (a temporary directory, removed by `stop()`, otherwise). */
  dataDir?: string;
  /** `host:port` of its web server (`127.0.0.1:0`: a port the OS picks). */
  http?: string;
}

export interface Localnet {
  /** Its web server: `/localnet.json`, and `site` if given. */
  url: string;
  info: LocalnetInfo;
  /** Stops gateway 0 (entry) or 1 (exit); its inbox stays on disk. */
  stopGateway(i: 0 | 1): Promise<void>;
  /** Starts it again on the same ports with the same keys and inbox. */
  startGateway(i: 0 | 1): Promise<void>;
  /** Closes the gateway's WebTransport port (UDP) while WebSocket keeps serving, as on a network that blocks UDP. */
  closeWebTransport(i: 0 | 1): Promise<void>;
  /** The same, but the port swallows packets without an answer: clients time out. */
  blackholeWebTransport(i: 0 | 1): Promise<void>;
  /** Kills mix `i` (an index into `info.mixes`): it stops at once; the directory drops it once its heartbeat lapses. */
  killMix(i: number): Promise<void>;
  /** The value of a Prometheus counter or gauge at `metricsUrl` (summed over labels). */
  metric(metricsUrl: string, name: string): Promise<number>;
  /** Stops every node and removes its temporary files. */
  stop(): Promise<void>;
}

/** Starts a network on loopback; resolves once it serves. */
export function startLocalnet(options?: LocalnetOptions): Promise<Localnet>;
/** The value of a Prometheus counter or gauge, summed over its labels. */
export function metric(metricsUrl: string, name: string): Promise<number>;
/** The binary in use: `MIXNET_LOCALNET_BIN`, or the one for this platform (throws, saying how to build one, where there is none). */
export function localnetBinary(): string;
