// What every demo page shares: what localnet serves at /localnet.json, and element lookup.

/** The fields of /localnet.json the pages use (localnet's `LocalnetInfo`). */
export interface LocalnetInfo {
  directory: string;
  directoryKey: string;
  mode: 'mixnet' | 'fast';
  entryGateway: string;
  exitGateway: string;
  publishService?: string;
  demoOrigin?: { https: string; http: string; ca: string };
}

/** The network this page is served by. */
export async function localnetInfo(): Promise<LocalnetInfo> {
  return (await (await fetch('./localnet.json')).json()) as LocalnetInfo;
}

/** The element with this id (a missing one is a bug in the page). */
export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

/** An SVG element with these attributes (and text). */
export function svg<K extends keyof SVGElementTagNameMap>(name: K, attrs: Record<string, string | number>, text?: string): SVGElementTagNameMap[K] {
  const e = document.createElementNS('http://www.w3.org/2000/svg', name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}
