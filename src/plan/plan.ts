/**
 * The steady-state planner: a pure function from (desired, observed) to an ordered list
 * of typed actions plus the problems that block some of them. Same inputs, same plan,
 * byte for byte: everything is sorted and nothing reads the clock.
 */

import { createHash } from 'node:crypto';
import type { DesiredChannel, DesiredPublication, DesiredState, PublishedTable } from '../model/desired.js';
import { catalogHash, parseMarker } from '../model/marker.js';
import { MANAGED_PREFIX } from '../model/names.js';
import type { Observed, ReachableRegion, RegionObservation } from '../model/observed.js';
import { reachableRegion } from '../model/observed.js';
import type { Action } from './actions.js';
import { actionKey } from './actions.js';

export interface Problem {
  code: string;
  severity: 'error' | 'warning';
  region?: string;
  channel?: string;
  message: string;
  hint: string;
}

export interface Plan {
  database: string;
  primary: string;
  actions: Action[];
  problems: Problem[];
  /** Regions that could not be observed; their actions are deferred. */
  unreachable: { region: string; reason: string }[];
  /** sha256 over actions and problems: stale-plan protection compares it. */
  hash: string;
}

const MIN_SERVER_VERSION = 150000; // row filters and column lists arrived in PostgreSQL 15

function channelLabel(c: DesiredChannel): string {
  return `${c.from} → ${c.to}`;
}

function sameTableDef(a: PublishedTable, b: PublishedTable): boolean {
  return (
    (a.rowFilter ?? null) === (b.rowFilter ?? null) &&
    JSON.stringify(a.columns ?? null) === JSON.stringify(b.columns ?? null)
  );
}

/** Problems of one region that block everything there. */
function regionProblems(o: RegionObservation, desired: DesiredState, isPublisher: boolean): Problem[] {
  if (!o.reachable) {
    return [
      {
        code: 'E_REGION_UNREACHABLE',
        severity: 'warning',
        region: o.region,
        message: `region ${o.region} could not be reached: ${o.reason}`,
        hint: 'its actions are deferred; run plan again when it is back (`regionctl lab start` in the lab)',
      },
    ];
  }
  const out: Problem[] = [];
  if (o.serverVersionNum < MIN_SERVER_VERSION) {
    out.push({
      code: 'E_SERVER_VERSION',
      severity: 'error',
      region: o.region,
      message: `region ${o.region} runs PostgreSQL ${o.serverVersionNum}; regionctl needs 15 or newer`,
      hint: 'upgrade the server: row filters and column lists need PostgreSQL 15',
    });
  }
  if (!o.databaseExists) {
    out.push({
      code: 'E_DATABASE_MISSING',
      severity: 'error',
      region: o.region,
      message: `database ${desired.database} does not exist in region ${o.region}`,
      hint: 'create the database and its schema there first (DDL is not replicated)',
    });
  }
  if (isPublisher && o.settings.walLevel !== 'logical') {
    out.push({
      code: 'E_WAL_LEVEL',
      severity: 'error',
      region: o.region,
      message: `region ${o.region} has wal_level=${o.settings.walLevel}; publishing needs wal_level=logical`,
      hint: 'ALTER SYSTEM SET wal_level = logical; then restart the server',
    });
  }
  if (o.inRecovery) {
    out.push({
      code: 'E_IN_RECOVERY',
      severity: 'error',
      region: o.region,
      message: `region ${o.region} is a physical standby (in recovery); it cannot take logical replication objects`,
      hint: 'point the region endpoint at the writable server of that region',
    });
  }
  return out;
}

function tableProblems(
  c: DesiredChannel,
  pub: ReachableRegion,
  sub: ReachableRegion | null,
  heartbeatTable: string,
): Problem[] {
  const out: Problem[] = [];
  const label = channelLabel(c);
  for (const t of c.publication.tables) {
    if (t.table === heartbeatTable) continue; // installed by regionctl itself
    const onPub = pub.tables.find((x) => x.table === t.table);
    if (!onPub) {
      out.push({
        code: 'E_TABLE_MISSING',
        severity: 'error',
        region: pub.region,
        channel: label,
        message: `table ${t.table} is replicated by the spec but does not exist on the primary ${pub.region}`,
        hint: 'create it (DDL is not replicated) or remove it from replication.tables',
      });
      continue;
    }
    const identityOk =
      onPub.replicaIdentity === 'f' ||
      onPub.replicaIdentity === 'i' ||
      (onPub.replicaIdentity === 'd' && onPub.hasPrimaryKey);
    if (!identityOk) {
      out.push({
        code: 'E_NO_REPLICA_IDENTITY',
        severity: 'error',
        region: pub.region,
        channel: label,
        message: `table ${t.table} has no replica identity: the publisher would reject its UPDATEs and DELETEs`,
        hint: `add a primary key, or run ALTER TABLE ${t.table} REPLICA IDENTITY FULL on ${pub.region}`,
      });
    } else if ((t.rowFilter || t.columns) && onPub.replicaIdentity !== 'f') {
      // Filter and column-list columns must be covered by the replica identity, or the
      // publisher fails every UPDATE/DELETE of the table: refuse before that can happen.
      out.push({
        code: 'E_FILTER_NEEDS_IDENTITY_FULL',
        severity: 'error',
        region: pub.region,
        channel: label,
        message: `table ${t.table} is filtered on channel ${label} but its replica identity is not FULL: UPDATE and DELETE would fail on the primary`,
        hint: `run ALTER TABLE ${t.table} REPLICA IDENTITY FULL on ${pub.region} (and on every candidate region)`,
      });
    }
    if (sub?.databaseExists) {
      const onSub = sub.tables.find((x) => x.table === t.table);
      if (!onSub) {
        out.push({
          code: 'E_TABLE_MISSING',
          severity: 'error',
          region: sub.region,
          channel: label,
          message: `table ${t.table} does not exist on secondary ${sub.region}`,
          hint: `create it on ${sub.region} with the same columns as on ${pub.region} (DDL is not replicated)`,
        });
      } else if (onSub.columnsSignature !== onPub.columnsSignature && !t.columns) {
        out.push({
          code: 'E_SCHEMA_DRIFT',
          severity: 'error',
          region: sub.region,
          channel: label,
          message: `table ${t.table} differs between ${pub.region} and ${sub.region}: ${onPub.columnsSignature} vs ${onSub.columnsSignature}`,
          hint: `apply the same DDL on ${sub.region} as on ${pub.region}`,
        });
      }
    }
  }
  return out;
}

function publicationActions(c: DesiredChannel, pub: ReachableRegion, sub: ReachableRegion | null): Action[] {
  const desired = c.publication;
  const observed = pub.publications.find((p) => p.name === desired.name);
  const subName = c.subscription.name;
  const subExists = sub?.subscriptions.some((s) => s.name === subName) ?? false;
  if (!observed) {
    return [
      {
        kind: 'create-publication',
        region: pub.region,
        risk: 'create',
        reason: `channel ${channelLabel(c)} has no publication`,
        publication: desired,
      },
    ];
  }
  const marker = parseMarker(observed.comment);
  const handEdited = !marker || marker.catalogHash !== catalogHash(observed.tables);
  if (marker && !handEdited && marker.defHash === desired.defHash) return [];

  // What the subscriber holds was shaped by the previous definition; a hand-edited
  // publication's filters are unknown, so every table of it counts as changed.
  const prev: PublishedTable[] = handEdited
    ? observed.tables.map((t) => ({ table: t.table, rowFilter: `(hand-edited) ${t.rowFilter ?? ''}` }))
    : (marker?.tables ?? []);
  const prevByName = new Map(prev.map((t) => [t.table, t]));
  const desiredNames = new Set(desired.tables.map((t) => t.table));
  const added = desired.tables.filter((t) => !prevByName.has(t.table)).map((t) => t.table);
  const removed = prev.filter((t) => !desiredNames.has(t.table)).map((t) => t.table);
  const changed = desired.tables
    .filter((t) => {
      const p = prevByName.get(t.table);
      return p !== undefined && !sameTableDef(p, t);
    })
    .map((t) => t.table);
  const why = handEdited
    ? `publication ${desired.name} was changed outside regionctl`
    : `the spec changed what channel ${channelLabel(c)} carries`;
  const actions: Action[] = [];
  // REFRESH PUBLICATION is refused on a disabled subscription: enable it first.
  if (sub && sub.subscriptions.find((x) => x.name === subName)?.enabled === false) {
    actions.push({
      kind: 'enable-subscription',
      region: sub.region,
      risk: 'alter',
      reason: `subscription ${subName} is disabled and must apply the changed publication`,
      name: subName,
    });
  }
  if (changed.length > 0 && subExists && sub) {
    // Rows already copied under the old filter may now be forbidden (or missing): take
    // the changed tables out of the channel, empty them on the secondary, put them back.
    const keep = desired.tables.filter((t) => !changed.includes(t.table));
    const intermediate: DesiredPublication = {
      ...desired,
      tables: keep,
      defHash: `${desired.defHash}-stage1`,
    };
    actions.push(
      {
        kind: 'alter-publication',
        region: pub.region,
        risk: 'resync',
        reason: `${why}: filters changed on ${changed.join(', ')}; take them out of the channel first`,
        publication: intermediate,
        added: [],
        removed: [...changed, ...removed].sort(),
      },
      {
        kind: 'refresh-subscription',
        region: sub.region,
        risk: 'alter',
        reason: 'the subscriber must stop applying the tables being re-copied',
        name: subName,
      },
      {
        kind: 'truncate-tables',
        region: sub.region,
        risk: 'resync',
        reason: `rows copied under the old definition must go; they are copied again under the new one`,
        tables: [...changed, ...removed].sort(),
      },
    );
  }
  actions.push({
    kind: 'alter-publication',
    region: pub.region,
    risk: changed.length > 0 ? 'resync' : 'alter',
    reason: why,
    publication: desired,
    added: changed.length > 0 && subExists ? [...added, ...changed].sort() : added,
    removed: changed.length > 0 && subExists ? [] : removed,
  });
  if (subExists && sub) {
    actions.push({
      kind: 'refresh-subscription',
      region: sub.region,
      risk: 'resync',
      reason: 'copy the tables the publication now carries',
      name: subName,
    });
    if (removed.length > 0 && changed.length === 0) {
      actions.push({
        kind: 'truncate-tables',
        region: sub.region,
        risk: 'resync',
        reason: `the channel no longer carries ${removed.join(', ')}: the secondary must not keep stale copies`,
        tables: removed,
      });
    }
  }
  return actions;
}

function subscriptionActions(c: DesiredChannel, sub: ReachableRegion): Action[] {
  const d = c.subscription;
  const o = sub.subscriptions.find((s) => s.name === d.name);
  const replicated = c.publication.tables.map((t) => t.table).sort();
  const recreate = (why: string): Action[] => [
    {
      kind: 'truncate-tables',
      region: sub.region,
      risk: 'resync',
      reason: `initial copy replaces ${sub.region}'s content of the replicated tables (${why})`,
      tables: replicated,
    },
    {
      kind: 'create-subscription',
      region: sub.region,
      risk: 'resync',
      reason: why,
      subscription: d,
    },
  ];
  if (!o) return recreate(`channel ${channelLabel(c)} has no subscription`);
  const src = d.source;
  const wrongSource =
    !o.publications.includes(d.publication) ||
    o.slotName !== d.slotName ||
    (o.host !== null && o.host !== src.host) ||
    (o.port !== null && o.port !== src.port) ||
    (o.dbname !== null && o.dbname !== src.database);
  if (wrongSource) {
    return [
      {
        kind: 'drop-subscription',
        region: sub.region,
        risk: 'drop',
        reason: `subscription ${d.name} does not follow publication ${d.publication} with slot ${d.slotName}`,
        name: d.name,
      },
      ...recreate('the subscription was re-created'),
    ];
  }
  if (!o.enabled) {
    return [
      {
        kind: 'enable-subscription',
        region: sub.region,
        risk: 'alter',
        reason: `subscription ${d.name} is disabled: nothing flows to ${sub.region}`,
        name: d.name,
      },
    ];
  }
  return [];
}

function guardActions(desired: DesiredState, o: ReachableRegion): Action[] {
  const g = desired.guards.find((x) => x.region === o.region);
  if (!g || !o.databaseExists) return [];
  const tables = desired.applicationTables.filter((t) => o.tables.some((x) => x.table === t));
  const ok = g.roles.every((role) => {
    const r = o.guards.find((x) => x.role === role);
    if (!r?.exists) return true; // a missing role cannot write; reported as drift elsewhere
    if (g.mode === 'read-only') return r.writableTables.length === 0 && r.defaultReadOnly;
    return !r.defaultReadOnly && tables.every((t) => r.writableTables.includes(t));
  });
  if (ok) return [];
  return [
    {
      kind: 'set-guard',
      region: o.region,
      risk: 'alter',
      reason:
        g.mode === 'read-only'
          ? `application roles can write on secondary ${o.region}`
          : `application roles cannot write on primary ${o.region}`,
      guard: g,
      tables,
    },
  ];
}

function orphanActions(desired: DesiredState, o: ReachableRegion): Action[] {
  const wantSubs = new Set(desired.channels.filter((c) => c.to === o.region).map((c) => c.subscription.name));
  const wantPubs = new Set(
    desired.channels.filter((c) => c.from === o.region).map((c) => c.publication.name),
  );
  const out: Action[] = [];
  for (const s of [...o.subscriptions].sort((a, b) => a.name.localeCompare(b.name))) {
    if (s.name.startsWith(`${MANAGED_PREFIX}sub_`) && !wantSubs.has(s.name)) {
      out.push({
        kind: 'drop-subscription',
        region: o.region,
        risk: 'drop',
        reason: `subscription ${s.name} is managed by regionctl but no channel in the spec needs it`,
        name: s.name,
      });
    }
  }
  for (const p of [...o.publications].sort((a, b) => a.name.localeCompare(b.name))) {
    if (p.name.startsWith(`${MANAGED_PREFIX}pub_`) && !wantPubs.has(p.name) && parseMarker(p.comment)) {
      out.push({
        kind: 'drop-publication',
        region: o.region,
        risk: 'drop',
        reason: `publication ${p.name} is managed by regionctl but no channel in the spec needs it`,
        name: p.name,
      });
    }
  }
  return out;
}

export function planSteadyState(desired: DesiredState, observed: Observed): Plan {
  const problems: Problem[] = [];
  const unreachable: Plan['unreachable'] = [];
  const blockedRegions = new Set<string>();
  for (const region of desired.regions) {
    const o = observed.regions.find((r) => r.region === region);
    if (!o) continue;
    if (!o.reachable) unreachable.push({ region, reason: o.reason });
    const ps = regionProblems(o, desired, region === desired.primary);
    problems.push(...ps);
    if (!o.reachable || ps.some((p) => p.severity === 'error')) blockedRegions.add(region);
  }

  const prelude: Action[] = [];
  for (const region of desired.regions) {
    const o = reachableRegion(observed, region);
    if (!o || blockedRegions.has(region)) continue;
    if (!o.heartbeatInstalled) {
      prelude.push({
        kind: 'install-heartbeat',
        region,
        risk: 'create',
        reason: 'lag in seconds is measured by a heartbeat row that rides every channel',
      });
    }
    prelude.push(...guardActions(desired, o));
  }

  const channelActions: Action[] = [];
  const pub = reachableRegion(observed, desired.primary);
  for (const c of desired.channels) {
    if (!pub || blockedRegions.has(c.from)) continue;
    const sub = reachableRegion(observed, c.to);
    const subUsable = sub && !blockedRegions.has(c.to) ? sub : null;
    const tp = tableProblems(c, pub, subUsable, desired.heartbeatTable);
    problems.push(...tp);
    if (tp.some((p) => p.severity === 'error')) continue;
    const pa = publicationActions(c, pub, subUsable);
    channelActions.push(...pa);
    // A resync of the channel already rebuilds what the subscription holds.
    if (subUsable && !pa.some((a) => a.kind === 'truncate-tables')) {
      const planned = new Set(pa.map(actionKey));
      channelActions.push(...subscriptionActions(c, subUsable).filter((a) => !planned.has(actionKey(a))));
    }
  }

  const cleanup: Action[] = [];
  for (const region of desired.regions) {
    const o = reachableRegion(observed, region);
    if (!o || blockedRegions.has(region)) continue;
    cleanup.push(...orphanActions(desired, o));
  }
  // Subscriptions go before publications so no apply worker loses its source mid-drop.
  cleanup.sort((a, b) => Number(a.kind === 'drop-publication') - Number(b.kind === 'drop-publication'));

  const actions = [...prelude, ...channelActions, ...cleanup];
  const sortedProblems = [...problems].sort((a, b) =>
    `${a.region ?? ''}\u0000${a.code}\u0000${a.message}`.localeCompare(
      `${b.region ?? ''}\u0000${b.code}\u0000${b.message}`,
    ),
  );
  return {
    database: desired.database,
    primary: desired.primary,
    actions,
    problems: sortedProblems,
    unreachable,
    hash: planHash(actions, sortedProblems),
  };
}

export function planHash(actions: Action[], problems: Problem[]): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ actions: actions.map((a) => [actionKey(a), a]), problems }));
  return h.digest('hex');
}

export function hasBlockingProblems(plan: Plan): boolean {
  return plan.problems.some((p) => p.severity === 'error');
}

/**
 * The steady-state plan of one channel, split by resource: what the publication needs
 * (including the resync steps a filter change forces on the subscriber) and what the
 * subscription needs. The Pulumi dynamic providers (infra/) run exactly these, so a
 * channel converges the same way under `pulumi up` as under `regionctl apply`.
 */
export function planChannel(
  c: DesiredChannel,
  pub: ReachableRegion,
  sub: ReachableRegion | null,
  heartbeatTable: string,
): { publication: Action[]; subscription: Action[]; problems: Problem[] } {
  const problems = tableProblems(c, pub, sub, heartbeatTable);
  if (problems.some((p) => p.severity === 'error')) return { publication: [], subscription: [], problems };
  const publication = publicationActions(c, pub, sub);
  const subscription =
    sub && !publication.some((a) => a.kind === 'truncate-tables') ? subscriptionActions(c, sub) : [];
  return { publication, subscription, problems };
}
