// The live picture of the network: the mix layers as columns of nodes (from the
// directory's topology), and each packet the client sends animated along its route,
// real and cover in two colours; what arrives back at the client (replies through
// SURBs, acknowledgements, loop cover) comes in along the bottom. Plain SVG and the Web
// Animations API: no library.

import type { RouteRecord, Stats } from '@mixnet/worker-shim';
import { svg } from './page';
import { short } from './route';

const W = 900;
const H = 240;
const COLUMNS = ['you', 'layer 1', 'layer 2', 'layer 3', 'gateways'] as const;
const MAX_FLYING = 40;

interface Topo {
  layers: Map<number, string[]>;
  gateways: string[];
}

/** The topology as the directory publishes it (shown only: the client verified its own copy). */
async function fetchTopology(directory: string): Promise<Topo> {
  const signed = (await (await fetch(new URL('v1/topology', directory))).json()) as { document: string };
  const doc = JSON.parse(signed.document) as { mixes: { identity: string; layer: number }[]; gateways: { identity: string }[] };
  const layers = new Map<number, string[]>();
  for (const m of doc.mixes) layers.set(m.layer, [...(layers.get(m.layer) ?? []), m.identity]);
  return { layers, gateways: doc.gateways.map((g) => g.identity) };
}

const columnX = (i: number) => 80 + (i * (W - 160)) / (COLUMNS.length - 1);

export class NetworkPicture {
  #svg: SVGSVGElement;
  #flying: SVGGElement;
  #pos = new Map<string, { x: number; y: number }>();
  #you = { x: columnX(0), y: H / 2 - 10 };
  #gatewayY = new Map<string, number>();
  #lastRouteAt = -1;
  #lastDeliveries: number | null = null;
  #reduced = matchMedia('(prefers-reduced-motion: reduce)').matches;

  private constructor(container: HTMLElement, topo: Topo, fast: boolean) {
    this.#svg = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'the mix network and the packets crossing it' });
    const nodes = svg('g', {});
    COLUMNS.forEach((name, i) => {
      const muted = fast && i >= 1 && i <= 3;
      nodes.append(svg('text', { x: columnX(i), y: 16, class: `column${muted ? ' muted-col' : ''}`, 'text-anchor': 'middle' }, name));
    });
    const place = (ids: string[], col: number, kind: string) => {
      ids.forEach((id, j) => {
        const y = 40 + ((j + 1) * (H - 80)) / (ids.length + 1);
        const x = columnX(col);
        this.#pos.set(id, { x, y });
        const g = svg('g', { class: `node ${kind}${fast && kind === 'mix' ? ' idle' : ''}` });
        const title = svg('title', {}, id);
        g.append(title, svg('circle', { cx: x, cy: y, r: 11 }), svg('text', { x, y: y + 26, 'text-anchor': 'middle', class: 'node-label' }, short(id)));
        nodes.append(g);
      });
    };
    for (const layer of [1, 2, 3]) place(topo.layers.get(layer) ?? [], layer, 'mix');
    place(topo.gateways, 4, 'gateway');
    topo.gateways.forEach((id) => this.#gatewayY.set(id, this.#pos.get(id)!.y));
    const you = svg('g', { class: 'node you' });
    you.append(svg('circle', { cx: this.#you.x, cy: this.#you.y, r: 14 }), svg('text', { x: this.#you.x, y: this.#you.y + 30, 'text-anchor': 'middle', class: 'node-label' }, 'this page (via its gateway)'));
    nodes.append(you);
    if (fast) {
      nodes.append(svg('text', { x: W / 2, y: H - 8, 'text-anchor': 'middle', class: 'note' }, 'fast mode: packets go straight to the gateway, unmixed'));
    }
    this.#flying = svg('g', { class: 'flying' });
    this.#svg.append(nodes, this.#flying);
    container.replaceChildren(this.#svg);
    container.dataset.nodes = String(this.#pos.size);
  }

  /** Draws the network of `directory` into `container`. */
  static async create(container: HTMLElement, directory: string, fast: boolean): Promise<NetworkPicture> {
    return new NetworkPicture(container, await fetchTopology(directory), fast);
  }

  /** Animates what the client sent and received since the last call. */
  update(s: Stats): void {
    const fresh = s.routes.filter((r) => r.atMs > this.#lastRouteAt).sort((a, b) => a.atMs - b.atMs);
    if (fresh.length) this.#lastRouteAt = fresh[fresh.length - 1]!.atMs;
    const first = this.#lastDeliveries === null;
    const arrived = first ? 0 : Math.min(12, s.deliveries - this.#lastDeliveries!);
    this.#lastDeliveries = s.deliveries;
    if (first) return; // the backlog of the first snapshot is history, not traffic
    fresh.slice(-16).forEach((r, i) => this.#send(r, i * 60));
    for (let i = 0; i < arrived; i++) this.#arrive(i * 80);
  }

  #fly(points: { x: number; y: number }[], cls: string, delay: number, ms: number): void {
    if (this.#flying.childElementCount >= MAX_FLYING) return;
    const dot = svg('circle', { r: 5, class: `packet ${cls}`, cx: 0, cy: 0 });
    this.#flying.append(dot);
    if (this.#reduced) {
      const last = points[points.length - 1]!;
      dot.setAttribute('transform', `translate(${last.x} ${last.y})`);
      setTimeout(() => dot.remove(), 600);
      return;
    }
    const frames = points.map((p) => ({ transform: `translate(${p.x}px, ${p.y}px)` }));
    const a = dot.animate(frames, { duration: ms, delay, easing: 'linear', fill: 'backwards' });
    a.finished.then(
      () => dot.remove(),
      () => dot.remove(),
    );
  }

  #send(r: RouteRecord, delay: number): void {
    const points = [this.#you, ...r.hops.map((h) => this.#pos.get(h.id)).filter((p): p is { x: number; y: number } => p !== undefined)];
    if (points.length < 2) return;
    this.#fly(points, r.kind, delay, 300 * (points.length - 1));
  }

  #arrive(delay: number): void {
    const gy = [...this.#gatewayY.values()];
    const from = { x: columnX(4), y: gy[0] ?? H / 2 };
    // replies travel the SURB's own route, which this page does not record: the bottom lane
    this.#fly([from, { x: columnX(4) - 20, y: H - 24 }, { x: this.#you.x + 20, y: H - 24 }, this.#you], 'arriving', delay, 1200);
  }
}
