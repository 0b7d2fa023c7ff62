/** `regionctl route`: the read routing table, or one choice from it. */
import { logSink } from '../alerts/sink.js';
import { reconcileOnce } from '../reconcile/reconcile.js';
import { readRoutingDocument, routingDocumentPath } from '../routing/document.js';
import type { LatLon } from '../routing/geo.js';
import { RoutingPublisher } from '../routing/publish.js';
import {
  chooseRoute,
  DEFAULT_CLASS,
  type RouteChoice,
  type RoutingDocument,
  regionLocation,
} from '../routing/table.js';
import { loadSpecOrThrow } from '../spec/load.js';
import { controlTarget } from '../sql/connect.js';
import { openStore, type Store } from '../store/store.js';

export async function runRoute(opts: {
  spec: string;
  region?: string;
  near?: LatLon;
  class?: string;
  fresh?: boolean;
  format: string;
}): Promise<number> {
  const { spec, dir } = await loadSpecOrThrow(opts.spec);
  const path = routingDocumentPath(spec, dir);
  const published = opts.fresh ? null : readRoutingDocument(path);
  const doc = published ?? (await observeNow(spec, dir));
  const source = published ? path : 'observed now';
  const cls = opts.class ?? DEFAULT_CLASS;
  if (opts.region !== undefined || opts.near !== undefined) {
    const from = opts.near ?? regionLocation(doc, opts.region ?? '');
    const choice = chooseRoute(doc, from, cls);
    const out = {
      from: opts.region !== undefined ? { region: opts.region, ...from } : from,
      class: cls,
      choice,
      primary: doc.primary,
      epoch: doc.epoch,
      generatedAt: doc.generatedAt,
      source,
    };
    process.stdout.write(
      opts.format === 'json' ? `${JSON.stringify(out, null, 2)}\n` : `${renderChoice(doc, choice, cls)}\n`,
    );
    return 0;
  }
  if (opts.class !== undefined) chooseRoute(doc, doc.regions[0]?.location ?? { lat: 0, lon: 0 }, cls);
  process.stdout.write(
    opts.format === 'json' ? `${JSON.stringify(doc, null, 2)}\n` : renderTable(doc, source, opts.class),
  );
  return 0;
}

async function observeNow(spec: Parameters<typeof reconcileOnce>[0]['spec'], dir: string) {
  let store: Store | null = null;
  try {
    store = await openStore(controlTarget(spec, dir));
  } catch (e) {
    process.stderr.write(`warning: ${(e as Error).message}; routing without hysteresis history\n`);
  }
  try {
    const sink = logSink((l) => process.stderr.write(`${l}\n`));
    const r = await reconcileOnce({ spec, specDir: dir, store, sink, leader: false });
    return await new RoutingPublisher({ spec, specDir: dir, store, dns: null }).preview(r);
  } finally {
    await store?.close();
  }
}

function lag(s: number | null): string {
  return s === null ? '?' : `${s.toFixed(1)} s`;
}

function renderChoice(doc: RoutingDocument, c: RouteChoice, cls: string): string {
  const r = doc.regions.find((x) => x.name === c.region);
  const detail =
    c.kind === 'primary'
      ? 'primary'
      : `replica, lag ${lag(r?.lagSeconds ?? null)} ≤ budget ${doc.budgets[cls]} s`;
  return `${c.region} (${detail}, ${c.distanceKm} km)`;
}

function renderTable(doc: RoutingDocument, source: string, only?: string): string {
  const classes = only ? [only] : Object.keys(doc.budgets).sort();
  const lines = [
    `read routing of ${doc.name} — primary ${doc.primary}, epoch ${doc.epoch}, generated ${doc.generatedAt} (${source})`,
    `budgets: ${classes.map((k) => `${k} ${doc.budgets[k]} s`).join(', ')}; a replica out of rotation returns after ${doc.recovery.passes} passes under ${doc.recovery.fraction} × budget`,
    '',
    'servers:',
  ];
  for (const r of doc.regions) {
    const state = classes
      .map((k) => (r.serving[k] ? `${k}: serving` : `${k}: out (${r.why[k] ?? '?'})`))
      .join('; ');
    const extra =
      r.role === 'replica' ? ` lag ${lag(r.lagSeconds)}${r.filtered ? ', filtered subset' : ''}` : '';
    lines.push(`  ${r.name.padEnd(18)} ${r.role.padEnd(8)}${extra} — ${state}`);
  }
  lines.push('', 'reads from → served by:');
  for (const [region, byClass] of Object.entries(doc.routes)) {
    const cells = classes.map((k) => {
      const c = byClass[k];
      return c ? `${k}: ${c.region} (${c.kind}, ${c.distanceKm} km)` : `${k}: ?`;
    });
    lines.push(`  ${region.padEnd(18)} ${cells.join('; ')}`);
  }
  return `${lines.join('\n')}\n`;
}
