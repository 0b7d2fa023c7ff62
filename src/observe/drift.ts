/**
 * The drift report: what differs between regions.yaml and reality, and who should act.
 * Pure: derived from the desired state, the observation and the steady-state plan.
 *
 * Most findings are read from the observation directly, because the observation says
 * *what* changed (which tables, which columns, how many bytes a slot retains) where the
 * plan only says what apply would do about it. The plan contributes what no observation
 * check covers (its remaining actions and problems); a finding is reported once.
 */

import type { DesiredChannel, DesiredState, PublishedTable } from '../model/desired.js';
import { catalogHash, parseMarker } from '../model/marker.js';
import { MANAGED_PREFIX } from '../model/names.js';
import type {
  Observed,
  ObservedPublication,
  ObservedPublishedTable,
  ObservedSlot,
  ReachableRegion,
} from '../model/observed.js';
import { reachableRegion } from '../model/observed.js';
import { type Action, describeAction } from '../plan/actions.js';
import type { Plan, Problem } from '../plan/plan.js';
import { ident, literal, tableRef } from '../sql/quote.js';

export type DriftOwner = 'regionctl apply' | 'operator' | 'spec author';

export interface DriftItem {
  kind: string;
  region: string;
  /** The object concerned: a publication, subscription, slot, table, setting. */
  object: string;
  message: string;
  /** Who should act. */
  owner: DriftOwner;
  advice: string;
}

/** Every kind the report can contain (plan problems without a dedicated kind keep their code). */
export const DRIFT_KINDS = [
  'region-unreachable',
  'database-missing',
  'prerequisite',
  'heartbeat-missing',
  'publication-missing',
  'publication-hand-edited',
  'spec-not-applied',
  'orphaned-publication',
  'unmanaged-publication',
  'subscription-missing',
  'subscription-disabled',
  'subscription-misconfigured',
  'orphaned-subscription',
  'unmanaged-subscription',
  'orphaned-slot',
  'unmanaged-slot',
  'table-missing',
  'schema-drift',
  'replica-identity',
  'table-unclassified',
  'guard-lost',
  'primary-not-writable',
  'role-missing',
] as const;

const REVIEW = 'run `regionctl plan` to review, then `regionctl apply`';

/** 1536 → "1.5 KiB": retained WAL is read by people deciding whether to drop a slot. */
export function humanBytes(n: number): string {
  if (!Number.isFinite(n) || n < 1024) return `${Math.max(0, Math.round(n))} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

// ---------------------------------------------------------------------------------
// Column signatures (catalog TABLES_SQL): `name:type[:nn][:gen]`, comma separated, by name.

interface ColumnDef {
  name: string;
  type: string;
  notNull: boolean;
  generated: boolean;
}

/** Types such as numeric(10,2) contain commas: split only outside parentheses. */
export function parseColumnsSignature(sig: string): ColumnDef[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < sig.length; i++) {
    const ch = sig[i];
    if (ch === '(') depth++;
    else if (ch === ')') depth = Math.max(0, depth - 1);
    else if (ch === ',' && depth === 0) {
      parts.push(sig.slice(start, i));
      start = i + 1;
    }
  }
  if (sig.length > 0) parts.push(sig.slice(start));
  return parts.map((p) => {
    const bits = p.split(':');
    const name = bits.shift() ?? '';
    let generated = false;
    let notNull = false;
    if (bits.at(-1) === 'gen') {
      generated = true;
      bits.pop();
    }
    if (bits.at(-1) === 'nn') {
      notNull = true;
      bits.pop();
    }
    return { name, type: bits.join(':'), notNull, generated };
  });
}

function describeColumn(c: ColumnDef): string {
  return `${c.type}${c.notNull ? ' NOT NULL' : ''}${c.generated ? ' GENERATED' : ''}`;
}

interface SchemaDiff {
  missingOnSecondary: ColumnDef[];
  extraOnSecondary: ColumnDef[];
  different: { primary: ColumnDef; secondary: ColumnDef }[];
}

function diffColumns(primarySig: string, secondarySig: string, only: string[] | null): SchemaDiff {
  const keep = (c: ColumnDef) => only === null || only.includes(c.name);
  const p = parseColumnsSignature(primarySig).filter(keep);
  const s = parseColumnsSignature(secondarySig);
  const sByName = new Map(s.map((c) => [c.name, c]));
  const pByName = new Map(p.map((c) => [c.name, c]));
  const diff: SchemaDiff = { missingOnSecondary: [], extraOnSecondary: [], different: [] };
  for (const c of p) {
    const other = sByName.get(c.name);
    if (!other) diff.missingOnSecondary.push(c);
    else if (describeColumn(c) !== describeColumn(other))
      diff.different.push({ primary: c, secondary: other });
  }
  // With a column list the secondary may legitimately hold more columns than are sent.
  if (only === null) for (const c of s) if (!pByName.has(c.name)) diff.extraOnSecondary.push(c);
  return diff;
}

// ---------------------------------------------------------------------------------

interface Ctx {
  desired: DesiredState;
  observed: Observed;
  items: DriftItem[];
}

/** A region whose catalog can be compared with the spec at all. */
function usable(observed: Observed, region: string): ReachableRegion | null {
  const o = reachableRegion(observed, region);
  return o?.databaseExists && !o.inRecovery ? o : null;
}

function push(ctx: Ctx, item: DriftItem): void {
  ctx.items.push(item);
}

function slotRetention(slot: ObservedSlot | undefined): string {
  if (!slot) return '';
  const bytes = slot.retainedBytes === null ? 'an unknown amount of' : humanBytes(slot.retainedBytes);
  return `${bytes} WAL`;
}

function prerequisites(ctx: Ctx): void {
  const { desired, observed } = ctx;
  for (const region of desired.regions) {
    const o = reachableRegion(observed, region);
    if (!o) continue;
    const s = o.settings;
    const outgoing = desired.channels.filter((c) => c.from === region);
    const incoming = desired.channels.filter((c) => c.to === region);
    const restart = 'then restart the server (these settings only change at server start)';
    if (region === desired.primary && s.walLevel !== 'logical') {
      push(ctx, {
        kind: 'prerequisite',
        region,
        object: 'wal_level',
        message: `wal_level is ${s.walLevel} on the primary ${region}: no publication can send changes (was the setting lost in a restart or a config rewrite?)`,
        owner: 'operator',
        advice: `ALTER SYSTEM SET wal_level = logical; ${restart}`,
      });
    }
    if (outgoing.length > 0) {
      const wanted = new Set(outgoing.map((c) => c.subscription.slotName));
      const missing = [...wanted].filter((n) => !o.slots.some((x) => x.name === n)).length;
      const free = s.maxReplicationSlots - o.slots.length;
      if (s.maxReplicationSlots < wanted.size || free < missing) {
        push(ctx, {
          kind: 'prerequisite',
          region,
          object: 'max_replication_slots',
          message: `max_replication_slots is ${s.maxReplicationSlots} on ${region} with ${o.slots.length} slot(s) in use; its ${wanted.size} channel(s) need ${wanted.size} (${missing} not yet created)`,
          owner: 'operator',
          advice: `ALTER SYSTEM SET max_replication_slots = ${Math.max(10, o.slots.length + missing + 4)}; ${restart}`,
        });
      }
      if (s.maxWalSenders < outgoing.length) {
        push(ctx, {
          kind: 'prerequisite',
          region,
          object: 'max_wal_senders',
          message: `max_wal_senders is ${s.maxWalSenders} on ${region}; its ${outgoing.length} channel(s) need one WAL sender each`,
          owner: 'operator',
          advice: `ALTER SYSTEM SET max_wal_senders = ${Math.max(10, outgoing.length + 4)}; ${restart}`,
        });
      }
    }
    if (incoming.length > 0 && s.maxLogicalReplicationWorkers < incoming.length) {
      push(ctx, {
        kind: 'prerequisite',
        region,
        object: 'max_logical_replication_workers',
        message: `max_logical_replication_workers is ${s.maxLogicalReplicationWorkers} on ${region}: its ${incoming.length} subscription(s) cannot start an apply worker`,
        owner: 'operator',
        advice: `ALTER SYSTEM SET max_logical_replication_workers = ${Math.max(4, incoming.length + 2)}; ${restart}`,
      });
    }
  }
}

/** What changed by hand between the definition regionctl applied and the catalog now. */
function handEditDetail(marked: PublishedTable[] | null, now: ObservedPublishedTable[]): string[] {
  if (!marked) return ['it carries no regionctl marker (COMMENT ON PUBLICATION was removed or replaced)'];
  const out: string[] = [];
  const before = new Map(marked.map((t) => [t.table, t]));
  const after = new Map(now.map((t) => [t.table, t]));
  const added = [...after.keys()].filter((t) => !before.has(t)).sort();
  const removed = [...before.keys()].filter((t) => !after.has(t)).sort();
  if (added.length) out.push(`tables added: ${added.join(', ')}`);
  if (removed.length) out.push(`tables removed: ${removed.join(', ')}`);
  const filterTouched: string[] = [];
  for (const [name, b] of [...before].sort(([x], [y]) => x.localeCompare(y))) {
    const a = after.get(name);
    if (!a) continue;
    const bCols = b.columns ? [...b.columns].sort().join(',') : null;
    const aCols = a.columns ? [...a.columns].sort().join(',') : null;
    if (bCols !== aCols) out.push(`column list of ${name}: ${bCols ?? 'all'} → ${aCols ?? 'all'}`);
    if (!b.rowFilter && a.rowFilter) out.push(`row filter added on ${name}: ${a.rowFilter}`);
    else if (b.rowFilter && !a.rowFilter) out.push(`row filter removed from ${name} (was ${b.rowFilter})`);
    else if (b.rowFilter && a.rowFilter) filterTouched.push(name);
  }
  if (out.length === 0) {
    // The server deparses row filters into its own text, so only the fingerprint can tell
    // that one of them changed, not which.
    out.push(`a row filter changed on one of: ${filterTouched.join(', ') || '(unknown)'}`);
  }
  return out;
}

function publications(ctx: Ctx): void {
  const { desired, observed } = ctx;
  const pub = usable(observed, desired.primary);
  if (!pub) return;
  for (const c of desired.channels) {
    const o = pub.publications.find((p) => p.name === c.publication.name);
    if (!o) {
      push(ctx, {
        kind: 'publication-missing',
        region: pub.region,
        object: c.publication.name,
        message: `channel ${c.from} → ${c.to} has no publication ${c.publication.name} on ${pub.region}`,
        owner: 'regionctl apply',
        advice: REVIEW,
      });
      continue;
    }
    const marker = parseMarker(o.comment);
    const handEdited = !marker || marker.catalogHash !== catalogHash(o.tables);
    if (handEdited) {
      const detail = handEditDetail(marker?.tables ?? null, o.tables);
      const alsoSpec = marker && marker.defHash !== c.publication.defHash ? '; the spec changed it too' : '';
      push(ctx, {
        kind: 'publication-hand-edited',
        region: pub.region,
        object: o.name,
        message: `publication ${o.name} (channel ${c.from} → ${c.to}) was changed outside regionctl: ${detail.join('; ')}${alsoSpec}`,
        owner: 'regionctl apply',
        advice:
          `${REVIEW}: apply restores the spec's definition and re-copies the affected tables on ${c.to}. ` +
          'If the change was intended, make it in regions.yaml by pull request instead — the next apply undoes a hand edit',
      });
    } else if (marker.defHash !== c.publication.defHash) {
      push(ctx, {
        kind: 'spec-not-applied',
        region: pub.region,
        object: o.name,
        message: `regions.yaml changed what channel ${c.from} → ${c.to} carries; publication ${o.name} still has the previous definition`,
        owner: 'regionctl apply',
        advice: `${REVIEW} (tables whose filters changed are re-copied on ${c.to})`,
      });
    }
  }
}

function subscriptionSourceWrong(
  c: DesiredChannel,
  o: ReachableRegion['subscriptions'][number],
): string | null {
  const d = c.subscription;
  if (!o.publications.includes(d.publication)) return `it follows ${o.publications.join(', ') || 'nothing'}`;
  if (o.slotName !== d.slotName) return `it uses slot ${o.slotName ?? 'NONE'} instead of ${d.slotName}`;
  const src = d.source;
  if ((o.host !== null && o.host !== src.host) || (o.port !== null && o.port !== src.port)) {
    return `it connects to ${o.host ?? '?'}:${o.port ?? '?'} instead of ${src.host}:${src.port}`;
  }
  if (o.dbname !== null && o.dbname !== src.database) return `it reads database ${o.dbname}`;
  return null;
}

function subscriptions(ctx: Ctx): void {
  const { desired, observed } = ctx;
  const pub = reachableRegion(observed, desired.primary);
  for (const c of desired.channels) {
    const sub = usable(observed, c.to);
    if (!sub) continue;
    const d = c.subscription;
    const o = sub.subscriptions.find((s) => s.name === d.name);
    const slot = pub?.slots.find((s) => s.name === d.slotName);
    if (!o) {
      const leftover = slot
        ? `; its slot ${slot.name} is still on ${c.from}, ${slot.active ? 'in use by another consumer' : `retaining ${slotRetention(slot)}`}`
        : '';
      push(ctx, {
        kind: 'subscription-missing',
        region: sub.region,
        object: d.name,
        message: `channel ${c.from} → ${c.to} has no subscription ${d.name} on ${sub.region}: nothing flows there${leftover}`,
        owner: 'regionctl apply',
        advice:
          `${REVIEW}: apply creates it with an initial copy (the replicated tables on ${c.to} are emptied and copied again` +
          `${slot && !slot.active ? `; the leftover slot ${slot.name} is dropped and re-created` : ''})`,
      });
      continue;
    }
    const wrong = subscriptionSourceWrong(c, o);
    if (wrong) {
      push(ctx, {
        kind: 'subscription-misconfigured',
        region: sub.region,
        object: d.name,
        message: `subscription ${d.name} on ${sub.region} does not follow publication ${d.publication} on ${c.from} with slot ${d.slotName}: ${wrong}`,
        owner: 'regionctl apply',
        advice: `${REVIEW}: apply drops and re-creates it (with an initial copy on ${c.to})`,
      });
      continue;
    }
    if (!o.enabled) {
      const errors = o.applyErrorCount + o.syncErrorCount;
      const retaining =
        slot && !slot.active ? `; slot ${slot.name} on ${c.from} retains ${slotRetention(slot)}` : '';
      const base = `subscription ${d.name} on ${sub.region} is disabled: nothing flows from ${c.from}${retaining}`;
      if (errors > 0) {
        push(ctx, {
          kind: 'subscription-disabled',
          region: sub.region,
          object: d.name,
          message: `${base}; its workers recorded ${o.applyErrorCount} apply and ${o.syncErrorCount} sync error(s)`,
          owner: 'operator',
          advice:
            `find the error in ${sub.region}'s server log (often a duplicate key or a missing column on ${sub.region}), ` +
            'fix its cause, then `regionctl apply` enables the subscription — enabling it first only repeats the error',
        });
      } else {
        push(ctx, {
          kind: 'subscription-disabled',
          region: sub.region,
          object: d.name,
          message: base,
          owner: 'regionctl apply',
          advice: `${REVIEW}: apply enables it and ${sub.region} catches up from where it stopped (nothing is lost while the slot is kept)`,
        });
      }
    }
  }
}

function unmanagedAndOrphans(ctx: Ctx): void {
  const { desired, observed } = ctx;
  for (const region of desired.regions) {
    const o = usable(observed, region);
    if (!o) continue;
    const wantSubs = new Set(desired.channels.filter((c) => c.to === region).map((c) => c.subscription.name));
    const wantPubs = new Set(
      desired.channels.filter((c) => c.from === region).map((c) => c.publication.name),
    );
    for (const s of o.subscriptions) {
      if (wantSubs.has(s.name)) continue;
      if (s.name.startsWith(`${MANAGED_PREFIX}sub_`)) {
        push(ctx, {
          kind: 'orphaned-subscription',
          region,
          object: s.name,
          message: `subscription ${s.name} on ${region} is named like regionctl's but no channel of regions.yaml needs it`,
          owner: 'regionctl apply',
          advice: `${REVIEW}: apply drops it (and its slot on the publisher); if the channel should exist, add it to regions.yaml`,
        });
        continue;
      }
      const from = s.host ? `${s.host}:${s.port ?? 5432}/${s.dbname ?? '?'}` : 'an unknown publisher';
      push(ctx, {
        kind: 'unmanaged-subscription',
        region,
        object: s.name,
        message:
          `subscription ${s.name} on ${region} is not managed by regionctl: it follows ${s.publications.join(', ') || 'no publication'} ` +
          `on ${from} (${s.enabled ? 'enabled' : 'disabled'}, slot ${s.slotName ?? 'NONE'})`,
        owner: 'operator',
        advice:
          'regionctl never touches it. Rows it applies into replicated tables conflict with the channel from the primary. ' +
          `If it is not needed: DROP SUBSCRIPTION ${ident(s.name)}; (this also drops its slot on the publisher)`,
      });
    }
    for (const p of o.publications) {
      if (wantPubs.has(p.name)) continue;
      const managedName = p.name.startsWith(`${MANAGED_PREFIX}pub_`);
      if (managedName && parseMarker(p.comment)) {
        push(ctx, {
          kind: 'orphaned-publication',
          region,
          object: p.name,
          message: `publication ${p.name} on ${region} was created by regionctl but no channel of regions.yaml needs it`,
          owner: 'regionctl apply',
          advice: `${REVIEW}: apply drops it`,
        });
        continue;
      }
      push(ctx, {
        kind: 'unmanaged-publication',
        region,
        object: p.name,
        message:
          `publication ${p.name} on ${region} is not managed by regionctl${managedName ? ' (named like regionctl’s, but without its marker)' : ''}: ` +
          `${describePublication(p)}`,
        owner: 'operator',
        advice:
          'regionctl never touches it. A publication costs nothing by itself, but a slot that streams it keeps WAL. ' +
          `If it is not needed: DROP PUBLICATION ${ident(p.name)};`,
      });
    }
  }
}

function describePublication(p: ObservedPublication): string {
  if (p.tables.length === 0) return 'no tables';
  return `tables ${p.tables.map((t) => t.table).join(', ')}`;
}

const TABLE_SYNC_SLOT = /^pg_\d+_sync_\d+_\d+$/;

function slots(ctx: Ctx): void {
  const { desired, observed } = ctx;
  const consumers = new Map<string, string>();
  for (const r of observed.regions) {
    if (!r.reachable) continue;
    for (const s of r.subscriptions)
      if (s.slotName) consumers.set(s.slotName, `subscription ${s.name} on ${r.region}`);
  }
  for (const region of desired.regions) {
    const o = reachableRegion(observed, region);
    if (!o) continue;
    const desiredSlots = new Set(
      desired.channels.filter((c) => c.from === region).map((c) => c.subscription.slotName),
    );
    for (const slot of o.slots) {
      // Slots are per server; only this database's (and physical ones, which hold WAL for all) concern this spec.
      if (slot.slotType === 'logical' && slot.database !== desired.database) continue;
      if (desiredSlots.has(slot.name)) continue;
      // A table-sync worker's slot (pg_<subid>_sync_<relid>_<sysid>) lives only while its
      // initial copy runs; an inactive one was left by a copy that stopped.
      const tableSync = TABLE_SYNC_SLOT.test(slot.name);
      if (tableSync && slot.active) continue;
      const managedName = slot.name.startsWith(MANAGED_PREFIX);
      const kind = managedName ? 'orphaned-slot' : 'unmanaged-slot';
      const what = `${slot.slotType} slot ${slot.name} on ${region}`;
      const consumer = consumers.get(slot.name);
      const whose = managedName
        ? 'is named like regionctl’s but belongs to no channel of regions.yaml'
        : tableSync
          ? 'is a table-sync slot left by an initial copy that stopped'
          : 'is not managed by regionctl';
      if (slot.active) {
        push(ctx, {
          kind,
          region,
          object: slot.name,
          message: `${what} ${whose}; it is in use${consumer ? ` by ${consumer}` : ''}`,
          owner: 'operator',
          advice: `find its consumer (SELECT * FROM pg_stat_replication on ${region}); regionctl never drops a slot it does not own`,
        });
        continue;
      }
      const status = slot.walStatus && slot.walStatus !== 'reserved' ? ` (wal_status ${slot.walStatus})` : '';
      push(ctx, {
        kind,
        region,
        object: slot.name,
        message: `${what} ${whose}; nothing consumes it and it retains ${slotRetention(slot)}${status}${consumer ? ` (${consumer} would use it but is not streaming)` : ''}`,
        owner: 'operator',
        advice:
          (managedName
            ? 'it may be kept on purpose as evidence of a failover (the transactions the old primary never shipped): check `regionctl status` and the failover events first. '
            : '') +
          `If it is truly unneeded, on ${region}: SELECT pg_drop_replication_slot(${literal(slot.name)}); — until then the WAL it retains keeps growing`,
      });
    }
  }
}

function tables(ctx: Ctx): void {
  const { desired, observed } = ctx;
  const pub = usable(observed, desired.primary);
  if (!pub) return;
  const reported = new Set<string>();
  for (const c of desired.channels) {
    const sub = usable(observed, c.to);
    for (const t of c.publication.tables) {
      if (t.table === desired.heartbeatTable) continue;
      const onPub = pub.tables.find((x) => x.table === t.table);
      if (!onPub) {
        if (reported.has(`${pub.region}:${t.table}`)) continue;
        reported.add(`${pub.region}:${t.table}`);
        push(ctx, {
          kind: 'table-missing',
          region: pub.region,
          object: t.table,
          message: `table ${t.table} is replicated by regions.yaml but does not exist on the primary ${pub.region}`,
          owner: 'spec author',
          advice: `if the table was dropped on purpose, remove it from replication.tables; otherwise create it on ${pub.region} (DDL is not replicated)`,
        });
        continue;
      }
      if (!sub) continue;
      const onSub = sub.tables.find((x) => x.table === t.table);
      if (!onSub) {
        push(ctx, {
          kind: 'table-missing',
          region: sub.region,
          object: t.table,
          message: `table ${t.table} is published to ${sub.region} but does not exist there: the channel cannot be created or refreshed`,
          owner: 'operator',
          advice: `create it on ${sub.region} with the same columns as on ${pub.region} (DDL is not replicated), then \`regionctl apply\``,
        });
        continue;
      }
      if (onSub.columnsSignature === onPub.columnsSignature) continue;
      const diff = diffColumns(onPub.columnsSignature, onSub.columnsSignature, t.columns ?? null);
      const parts: string[] = [];
      if (diff.missingOnSecondary.length) {
        parts.push(
          `missing on ${sub.region}: ${diff.missingOnSecondary.map((x) => `${x.name} (${describeColumn(x)})`).join(', ')}`,
        );
      }
      if (diff.extraOnSecondary.length) {
        parts.push(
          `only on ${sub.region}: ${diff.extraOnSecondary.map((x) => `${x.name} (${describeColumn(x)})`).join(', ')}`,
        );
      }
      for (const d of diff.different) {
        parts.push(
          `${d.primary.name} is ${describeColumn(d.primary)} on ${pub.region} but ${describeColumn(d.secondary)} on ${sub.region}`,
        );
      }
      if (parts.length === 0) continue; // differences only in columns the channel does not send
      const ddl = diff.missingOnSecondary.map(
        (x) => `ALTER TABLE ${tableRef(t.table)} ADD COLUMN ${ident(x.name)} ${x.type};`,
      );
      push(ctx, {
        kind: 'schema-drift',
        region: sub.region,
        object: t.table,
        message:
          `table ${t.table} differs between ${pub.region} and ${sub.region} (DDL is not replicated): ${parts.join('; ')}` +
          (diff.missingOnSecondary.length > 0
            ? ` — applying changes to ${t.table} on ${sub.region} fails until this is fixed`
            : diff.different.length > 0
              ? ` — applying changes fails for values that ${sub.region}'s types cannot hold`
              : ''),
        owner: 'operator',
        advice:
          `run on ${sub.region} the DDL that was run on ${pub.region}` +
          (ddl.length ? `: ${ddl.join(' ')}` : '') +
          (diff.missingOnSecondary.some((x) => x.notNull)
            ? ' (add NOT NULL after the column is filled)'
            : '') +
          (diff.different.length
            ? `; give ${diff.different.map((d) => d.primary.name).join(', ')} the primary's type`
            : '') +
          (diff.extraOnSecondary.some((x) => x.notNull)
            ? `; a NOT NULL column only ${sub.region} has makes every replicated INSERT fail: drop it or give it a default`
            : ''),
      });
    }
  }
  const known = new Set(desired.applicationTables);
  const controlSchema = desired.heartbeatTable.split('.')[0];
  for (const t of pub.tables) {
    if (known.has(t.table) || t.table.startsWith(`${controlSchema}.`)) continue;
    push(ctx, {
      kind: 'table-unclassified',
      region: pub.region,
      object: t.table,
      message: `table ${t.table} exists on the primary ${pub.region} but regions.yaml neither replicates, excludes nor pins it: it is not replicated and a failover starts without it`,
      owner: 'spec author',
      advice: `add ${t.table} to replication.tables, or to replication.exclude with the reason its loss is acceptable`,
    });
  }
}

function guards(ctx: Ctx): void {
  const { desired, observed } = ctx;
  for (const g of desired.guards) {
    const o = usable(observed, g.region);
    if (!o) continue;
    for (const role of g.roles) {
      const r = o.guards.find((x) => x.role === role);
      if (!r?.exists) {
        push(ctx, {
          kind: 'role-missing',
          region: g.region,
          object: role,
          message: `application role ${role} does not exist on ${g.region}`,
          owner: 'operator',
          advice: `create it on ${g.region} (roles are not replicated), or remove it from applicationRoles in regions.yaml`,
        });
        continue;
      }
      if (g.mode === 'read-only' && (r.writableTables.length > 0 || !r.defaultReadOnly)) {
        const what = [
          r.writableTables.length ? `it can write ${r.writableTables.join(', ')}` : '',
          r.defaultReadOnly ? '' : 'default_transaction_read_only is not set for it',
        ].filter(Boolean);
        push(ctx, {
          kind: 'guard-lost',
          region: g.region,
          object: role,
          message: `application role ${role} is not read-only on secondary ${g.region}: ${what.join('; ')}`,
          owner: 'regionctl apply',
          advice:
            `${REVIEW}: apply revokes the writes again. Until then a write on ${g.region} diverges from the primary silently; ` +
            'rows written there are not replicated back and may block the channel with conflicts',
        });
      }
      const present = desired.applicationTables.filter((t) => o.tables.some((x) => x.table === t));
      const blocked = present.filter((t) => !r.writableTables.includes(t));
      if (g.mode === 'read-write' && (r.defaultReadOnly || blocked.length > 0)) {
        if (!r.canLogin) {
          push(ctx, {
            kind: 'primary-not-writable',
            region: g.region,
            object: role,
            message: `application role ${role} cannot log in on the primary ${g.region}: the region is fenced`,
            owner: 'operator',
            advice:
              'a fence is deliberate (a failover or switchover in progress, or one that stopped half way): check `regionctl status` ' +
              'and the failover events before changing anything; do not apply',
          });
        } else {
          push(ctx, {
            kind: 'primary-not-writable',
            region: g.region,
            object: role,
            message: `application role ${role} cannot write on the primary ${g.region}: ${
              r.defaultReadOnly
                ? 'default_transaction_read_only is set for it'
                : `no write privilege on ${blocked.join(', ')}`
            }`,
            owner: 'regionctl apply',
            advice: `${REVIEW}: apply grants the writes on the application tables again`,
          });
        }
      }
    }
  }
}

function heartbeats(ctx: Ctx): void {
  for (const region of ctx.desired.regions) {
    const o = usable(ctx.observed, region);
    if (!o || o.heartbeatInstalled) continue;
    push(ctx, {
      kind: 'heartbeat-missing',
      region,
      object: ctx.desired.heartbeatTable,
      message: `heartbeat table ${ctx.desired.heartbeatTable} is missing on ${region}: lag in seconds cannot be measured`,
      owner: 'regionctl apply',
      advice: REVIEW,
    });
  }
}

/** Kind and owner of a plan problem no observation check already reports. */
function fromProblem(p: Problem): DriftItem | null {
  const region = p.region ?? '';
  const base = { region, message: p.message, advice: p.hint };
  switch (p.code) {
    case 'E_WAL_LEVEL':
    case 'E_TABLE_MISSING':
    case 'E_SCHEMA_DRIFT':
      return null; // reported by prerequisites() / tables() with more detail
    case 'E_REGION_UNREACHABLE':
      return { ...base, kind: 'region-unreachable', object: region, owner: 'operator' };
    case 'E_DATABASE_MISSING':
      return { ...base, kind: 'database-missing', object: region, owner: 'operator' };
    case 'E_SERVER_VERSION':
      return { ...base, kind: 'prerequisite', object: 'server_version', owner: 'operator' };
    case 'E_IN_RECOVERY':
      return { ...base, kind: 'prerequisite', object: 'recovery', owner: 'operator' };
    case 'E_NO_REPLICA_IDENTITY':
    case 'E_FILTER_NEEDS_IDENTITY_FULL':
      return {
        ...base,
        kind: 'replica-identity',
        object: /table (\S+)/.exec(p.message)?.[1] ?? p.channel ?? region,
        owner: 'operator',
      };
    default:
      return { ...base, kind: p.code, object: p.channel ?? region, owner: 'operator' };
  }
}

/**
 * Kind of the drift item that already explains an action, so the action is not reported
 * twice. refresh-subscription and truncate-tables only ever come with an alter-publication
 * or a create-subscription (src/plan/plan.ts), whose item names the re-copy.
 */
function coveredBy(a: Action): { kinds: string[]; object: string } | null {
  switch (a.kind) {
    case 'install-heartbeat':
      return { kinds: ['heartbeat-missing'], object: '' };
    case 'set-guard':
      return { kinds: ['guard-lost', 'primary-not-writable', 'role-missing'], object: '' };
    case 'create-publication':
      return { kinds: ['publication-missing'], object: a.publication.name };
    case 'alter-publication':
      return { kinds: ['publication-hand-edited', 'spec-not-applied'], object: a.publication.name };
    case 'drop-publication':
      return { kinds: ['orphaned-publication'], object: a.name };
    case 'create-subscription':
      return { kinds: ['subscription-missing', 'subscription-misconfigured'], object: a.subscription.name };
    case 'enable-subscription':
      return { kinds: ['subscription-disabled'], object: a.name };
    case 'drop-subscription':
      return { kinds: ['orphaned-subscription', 'subscription-misconfigured'], object: a.name };
    case 'refresh-subscription':
    case 'truncate-tables':
      return null;
  }
}

export function driftReport(desired: DesiredState, observed: Observed, plan: Plan): DriftItem[] {
  const ctx: Ctx = { desired, observed, items: [] };
  prerequisites(ctx);
  heartbeats(ctx);
  publications(ctx);
  subscriptions(ctx);
  unmanagedAndOrphans(ctx);
  slots(ctx);
  tables(ctx);
  guards(ctx);

  for (const p of plan.problems) {
    const item = fromProblem(p);
    if (item) push(ctx, item);
  }
  const seen = new Set<string>();
  for (const a of plan.actions) {
    if (a.kind === 'refresh-subscription' || a.kind === 'truncate-tables') continue;
    const cover = coveredBy(a);
    const explained = ctx.items.some(
      (i) =>
        i.region === a.region &&
        (cover?.kinds.includes(i.kind) ?? false) &&
        (cover?.object === '' || i.object === cover?.object),
    );
    const key = `${a.kind}:${a.region}:${cover?.object ?? ''}`;
    if (explained || seen.has(key)) continue;
    seen.add(key);
    push(ctx, {
      kind: `pending-${a.kind}`,
      region: a.region,
      object: cover?.object || a.region,
      message: `${describeAction(a)}: ${a.reason}`,
      owner: 'regionctl apply',
      advice: REVIEW,
    });
  }

  const unique = new Map<string, DriftItem>();
  for (const i of ctx.items) unique.set(`${i.region}\u0000${i.kind}\u0000${i.object}\u0000${i.message}`, i);
  return [...unique.values()].sort(
    (a, b) =>
      cmp(a.region, b.region) || cmp(a.kind, b.kind) || cmp(a.object, b.object) || cmp(a.message, b.message),
  );
}

/** Code-unit order: localeCompare depends on the machine's ICU data. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
