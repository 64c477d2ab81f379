// Packets per second over the last minute, real stacked on cover, with axes and a
// legend (SVG).

import { svg } from './page';

const W = 900;
const H = 150;
const LEFT = 40;
const BOTTOM = 22;
const TOP = 24;
const SPAN = 60;

/** A round maximum for the y axis: 10, 20, 50, 100, … */
function niceMax(v: number): number {
  for (let m = 10; ; m *= 10) {
    for (const f of [1, 2, 5]) if (f * m >= v) return f * m;
  }
}

export function drawChart(container: HTMLElement, history: { real: number; cover: number }[]): void {
  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'packets per second, last 60 s' });
  const max = niceMax(Math.max(0, ...history.map((h) => h.real + h.cover)));
  const plotW = W - LEFT - 8;
  const plotH = H - TOP - BOTTOM;
  const y = (v: number) => TOP + plotH - (v / max) * plotH;
  // axes, ticks and grid
  for (const v of [0, max / 2, max]) {
    root.append(svg('line', { x1: LEFT, x2: W - 8, y1: y(v), y2: y(v), class: v === 0 ? 'axis' : 'grid' }));
    root.append(svg('text', { x: LEFT - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, String(v)));
  }
  root.append(svg('line', { x1: LEFT, x2: LEFT, y1: TOP, y2: TOP + plotH, class: 'axis' }));
  for (const s of [60, 30, 0]) {
    const x = LEFT + plotW - (s / SPAN) * plotW;
    root.append(svg('text', { x, y: H - 6, 'text-anchor': s === 60 ? 'start' : s === 0 ? 'end' : 'middle', class: 'tick' }, s === 0 ? 'now' : `−${s} s`));
  }
  root.append(svg('text', { x: 4, y: 12, class: 'tick' }, 'packets/s'));
  // legend
  const legend = [
    ['real', 'real'],
    ['cover', 'cover'],
  ] as const;
  legend.forEach(([cls, label], i) => {
    const x = W - 150 + i * 75;
    root.append(svg('rect', { x, y: 4, width: 12, height: 12, class: `bar-${cls}` }), svg('text', { x: x + 16, y: 14, class: 'tick' }, label));
  });
  // bars: one per second, newest on the right
  const bw = plotW / SPAN;
  history.slice(-SPAN).forEach((h, i, all) => {
    const x = LEFT + plotW - (all.length - i) * bw;
    root.append(svg('rect', { x: x + 0.5, y: y(h.cover), width: bw - 1, height: y(0) - y(h.cover), class: 'bar-cover' }));
    root.append(svg('rect', { x: x + 0.5, y: y(h.cover + h.real), width: bw - 1, height: y(h.cover) - y(h.cover + h.real), class: 'bar-real' }));
  });
  container.replaceChildren(root);
}
