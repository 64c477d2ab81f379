// One table row per route: a cell per mix layer and the gateway, ids shortened.

import type { RouteRecord } from '@mixnet/worker-shim';

/** `ABCDEF…` for a long base58 id. */
export function short(id: string): string {
  return id.length > 10 ? `${id.slice(0, 6)}…` : id;
}

/** A `<tr>` with the route's hop in each layer's column (the full id as the title). */
export function routeRow(r: RouteRecord, withKind: boolean): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.className = r.kind;
  if (withKind) {
    const kind = document.createElement('td');
    kind.className = 'kind';
    kind.textContent = r.kind;
    tr.append(kind);
  }
  for (const layer of [1, 2, 3, 'gateway'] as const) {
    const td = document.createElement('td');
    const hop = r.hops.find((h) => h.layer === layer);
    td.textContent = hop ? short(hop.id) : '—';
    td.className = 'id';
    if (hop) td.title = hop.id;
    tr.append(td);
  }
  return tr;
}
