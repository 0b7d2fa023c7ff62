/**
 * What the schema cannot say: cross-references, uniqueness, ordering, and the filter
 * semantics the planner relies on (DESIGN.md, "Filters under failover"). Pure.
 *
 * Each check declares the top-level sections it reads and runs only when those sections
 * passed the schema, so it can trust their types; the others still run, so one typo does
 * not hide every other problem.
 */
import { regionIdent } from '../model/names.js';
import { DEFAULT_LEASE_SECONDS, PROMOTION_MARGIN_SECONDS } from './authority-defaults.js';
import { type Finding, pointer } from './diagnostic.js';
import { checkExpression } from './expression.js';
import type { ChannelSpec, RegionSpec, RegionsSpec } from './schema.js';
import { closest, didYouMean } from './suggest.js';

/** A top-level section, or `regionNames`: every region has a string name (even if the rest is broken). */
type Section = keyof RegionsSpec | 'regionNames';

interface Check {
  needs: Section[];
  run(ctx: Context): void;
}

interface Context {
  spec: RegionsSpec;
  out: Finding[];
  regionNames: Set<string>;
  /** The primary's name when exactly one region says role: primary. */
  primary: string | undefined;
}

function error(ctx: Context, path: string, code: string, message: string, at?: 'key'): void {
  ctx.out.push({ path, severity: 'error', code, message, ...(at ? { at } : {}) });
}

function warning(ctx: Context, path: string, code: string, message: string, at?: 'key'): void {
  ctx.out.push({ path, severity: 'warning', code, message, ...(at ? { at } : {}) });
}

function unknownRegion(ctx: Context, path: string, what: string, name: string, at?: 'key'): void {
  error(
    ctx,
    path,
    'E_UNKNOWN_REGION',
    `${what} '${name}' is not a declared region${didYouMean(name, ctx.regionNames)}`,
    at,
  );
}

const regions: Check = {
  needs: ['regions'],
  run(ctx) {
    const byName = new Map<string, number>();
    const byIdent = new Map<string, string>();
    const byEndpoint = new Map<string, string>();
    const primaries: number[] = [];
    ctx.spec.regions.forEach((r, i) => {
      const first = byName.get(r.name);
      if (first !== undefined) {
        error(
          ctx,
          pointer('regions', i, 'name'),
          'E_DUPLICATE_REGION',
          `region '${r.name}' is declared twice (first as regions[${first}]): region names must be unique`,
        );
      } else {
        byName.set(r.name, i);
        const ident = regionIdent(r.name);
        const other = byIdent.get(ident);
        if (other !== undefined)
          error(
            ctx,
            pointer('regions', i, 'name'),
            'E_REGION_NAME',
            `region names '${other}' and '${r.name}' both map to the SQL identifier fragment '${ident}': rename one`,
          );
        byIdent.set(ident, r.name);
      }
      if (r.role === 'primary') primaries.push(i);
      const endpoint = `${r.endpoint.host}:${r.endpoint.port}`;
      const sameServer = byEndpoint.get(endpoint);
      if (sameServer !== undefined && sameServer !== r.name)
        error(
          ctx,
          pointer('regions', i, 'endpoint', 'host'),
          'E_DUPLICATE_ENDPOINT',
          `region '${r.name}' uses the same server (${endpoint}) as region '${sameServer}': every region needs its own PostgreSQL server`,
        );
      byEndpoint.set(endpoint, r.name);
    });
    if (primaries.length === 0)
      error(
        ctx,
        '/regions',
        'E_PRIMARY_COUNT',
        'no region has role: primary; exactly one region must be the primary',
      );
    const firstPrimary = primaries[0];
    for (const i of primaries.slice(1))
      error(
        ctx,
        pointer('regions', i, 'role'),
        'E_PRIMARY_COUNT',
        `region '${ctx.spec.regions[i]?.name}' is a second primary ('${ctx.spec.regions[firstPrimary ?? 0]?.name}' is one already): set role: secondary`,
      );

    const secondaries = ctx.spec.regions.filter((r) => r.role === 'secondary');
    if (secondaries.length > 0 && !secondaries.some((r) => r.failover?.candidate))
      warning(
        ctx,
        '/regions',
        'W_NO_CANDIDATE',
        'no secondary is a failover candidate (failover: { candidate: true }): a failover will have nowhere to go',
      );
    const byPriority = new Map<number, string>();
    ctx.spec.regions.forEach((r, i) => {
      const p = r.failover?.candidate ? r.failover.priority : undefined;
      if (p === undefined) return;
      const other = byPriority.get(p);
      if (other !== undefined)
        warning(
          ctx,
          pointer('regions', i, 'failover', 'priority'),
          'W_DUPLICATE_PRIORITY',
          `candidates '${other}' and '${r.name}' share priority ${p}: ties are broken by region name; give each a distinct priority`,
        );
      else byPriority.set(p, r.name);
    });
  },
};

const controlStore: Check = {
  needs: ['regions', 'controlStore', 'database'],
  run(ctx) {
    const cs = ctx.spec.controlStore;
    const region = ctx.spec.regions.find((r) => r.endpoint.host === cs.host && r.endpoint.port === cs.port);
    if (region && cs.database === ctx.spec.database)
      error(
        ctx,
        '/controlStore/database',
        'E_DUPLICATE_ENDPOINT',
        `the control store is the replicated database '${cs.database}' of region '${region.name}': give it its own database (or server)`,
      );
  },
};

function channelTargets(spec: RegionsSpec): Map<string, number> {
  const channelOf = new Map<string, number>();
  spec.channels.forEach((c, i) => {
    if (c.from !== c.to && !channelOf.has(c.to)) channelOf.set(c.to, i);
  });
  return channelOf;
}

const channels: Check = {
  needs: ['regionNames', 'channels'],
  run(ctx) {
    const { spec, primary } = ctx;
    const channelOf = new Map<string, number>();
    spec.channels.forEach((c, i) => {
      const from = pointer('channels', i, 'from');
      const to = pointer('channels', i, 'to');
      if (!ctx.regionNames.has(c.from)) unknownRegion(ctx, from, 'channel source', c.from);
      else if (primary !== undefined && c.from !== primary && c.from !== c.to)
        error(
          ctx,
          from,
          'E_CHANNEL_SOURCE',
          `channel source '${c.from}' is a secondary: channels run from the primary to each secondary (hub and spoke); write from: ${primary}`,
        );
      if (!ctx.regionNames.has(c.to)) unknownRegion(ctx, to, 'channel target', c.to);
      if (c.from === c.to) {
        error(
          ctx,
          to,
          'E_SELF_CHANNEL',
          `channel from '${c.from}' to itself: a region cannot replicate to itself`,
        );
        return;
      }
      if (c.to === primary && c.from !== primary)
        error(
          ctx,
          to,
          'E_CHANNEL_TARGET',
          `channel target '${c.to}' is the primary: targets are secondaries`,
        );
      const first = channelOf.get(c.to);
      if (first !== undefined && ctx.regionNames.has(c.to))
        error(
          ctx,
          to,
          'E_DUPLICATE_CHANNEL',
          `'${c.to}' already has a channel (channels[${first}]): each secondary has exactly one channel`,
        );
      else channelOf.set(c.to, i);
    });
  },
};

const missingChannels: Check = {
  needs: ['regions', 'channels'],
  run(ctx) {
    const { spec, primary } = ctx;
    if (primary === undefined) return;
    const channelOf = channelTargets(spec);
    // A channel to a misspelt region is reported as unknown, with this one as the suggestion.
    const typoTargets = new Set(
      [...channelOf.keys()].filter((t) => !ctx.regionNames.has(t)).map((t) => closest(t, ctx.regionNames)),
    );
    spec.regions.forEach((r, i) => {
      if (r.role === 'secondary' && !channelOf.has(r.name) && !typoTargets.has(r.name))
        error(
          ctx,
          pointer('regions', i, 'name'),
          'E_MISSING_CHANNEL',
          `secondary '${r.name}' has no channel: add { from: ${primary}, to: ${r.name}, rpo: { alertSeconds, failoverMaxLagSeconds } } to channels`,
        );
    });
  },
};

const thresholds: Check = {
  needs: ['channels', 'heartbeat'],
  run(ctx) {
    const beat = ctx.spec.heartbeat?.intervalSeconds;
    ctx.spec.channels.forEach((c, i) => {
      const { alertSeconds, failoverMaxLagSeconds } = c.rpo;
      if (alertSeconds >= failoverMaxLagSeconds)
        error(
          ctx,
          pointer('channels', i, 'rpo', 'alertSeconds'),
          'E_THRESHOLD_ORDER',
          `alertSeconds (${alertSeconds}) must be less than failoverMaxLagSeconds (${failoverMaxLagSeconds}): the alert has to fire before failover stops trusting this channel`,
        );
      else if (beat !== undefined && beat >= alertSeconds)
        warning(
          ctx,
          pointer('channels', i, 'rpo', 'alertSeconds'),
          'W_HEARTBEAT_INTERVAL',
          `heartbeat.intervalSeconds (${beat}) is not below alertSeconds (${alertSeconds}): lag cannot be measured finely enough to alert on time`,
        );
    });
  },
};

interface TableIndex {
  replicated: Set<string>;
  excluded: Set<string>;
  pinned: Set<string>;
}

function tableIndex(spec: RegionsSpec): TableIndex {
  const r = spec.replication;
  return {
    replicated: new Set(r.tables),
    excluded: new Set((r.exclude ?? []).map((e) => e.table)),
    pinned: new Set((r.pinned ?? []).map((p) => p.table)),
  };
}

/** A filter or rule naming a table that is not replicated: either a conflict or a typo. */
function requireReplicated(
  ctx: Context,
  idx: TableIndex,
  path: string,
  table: string,
  what: string,
): boolean {
  if (idx.replicated.has(table)) return true;
  if (idx.excluded.has(table) || idx.pinned.has(table)) {
    const list = idx.excluded.has(table) ? 'excluded' : 'pinned';
    error(
      ctx,
      path,
      'E_TABLE_CONFLICT',
      `${what} names ${table}, which is ${list} (never replicated): remove the ${what}, or replicate the table`,
    );
  } else {
    error(
      ctx,
      path,
      'E_UNKNOWN_TABLE',
      `${what} names ${table}, which is not in replication.tables${didYouMean(table, idx.replicated)}`,
    );
  }
  return false;
}

const tables: Check = {
  needs: ['replication'],
  run(ctx) {
    const r = ctx.spec.replication;
    const seen = new Set<string>();
    r.tables.forEach((t, i) => {
      if (seen.has(t))
        warning(ctx, pointer('replication', 'tables', i), 'W_DUPLICATE_TABLE', `${t} is listed twice`);
      seen.add(t);
    });
    const excluded = new Set<string>();
    (r.exclude ?? []).forEach((e, i) => {
      const path = pointer('replication', 'exclude', i, 'table');
      if (seen.has(e.table))
        error(
          ctx,
          path,
          'E_TABLE_CONFLICT',
          `${e.table} is both replicated and excluded: remove it from replication.tables or from exclude`,
        );
      else if (excluded.has(e.table)) warning(ctx, path, 'W_DUPLICATE_TABLE', `${e.table} is excluded twice`);
      excluded.add(e.table);
    });
    const pinned = new Map<string, string>();
    (r.pinned ?? []).forEach((p, i) => {
      const path = pointer('replication', 'pinned', i, 'table');
      if (seen.has(p.table))
        error(
          ctx,
          path,
          'E_TABLE_CONFLICT',
          `${p.table} is both replicated and pinned to '${p.region}': a pinned table never leaves its region; remove it from replication.tables or from pinned`,
        );
      else if (excluded.has(p.table))
        error(
          ctx,
          path,
          'E_TABLE_CONFLICT',
          `${p.table} is both excluded and pinned: keep it in one list (pinned if it must stay in '${p.region}')`,
        );
      else if (pinned.has(p.table) && pinned.get(p.table) !== p.region)
        error(
          ctx,
          path,
          'E_TABLE_CONFLICT',
          `${p.table} is pinned to both '${pinned.get(p.table)}' and '${p.region}': a table is pinned to one region`,
        );
      pinned.set(p.table, p.region);
    });
  },
};

const pinnedRegions: Check = {
  needs: ['replication', 'regionNames'],
  run(ctx) {
    (ctx.spec.replication.pinned ?? []).forEach((p, i) => {
      const path = pointer('replication', 'pinned', i, 'region');
      if (!ctx.regionNames.has(p.region)) unknownRegion(ctx, path, 'pinned region', p.region);
      else if (ctx.primary !== undefined && p.region !== ctx.primary)
        warning(
          ctx,
          path,
          'W_PINNED_NOT_PRIMARY',
          `${p.table} is pinned to '${p.region}', which is not the primary: applications cannot write it until '${p.region}' is primary again (expected only right after a failover)`,
        );
    });
  },
};

const residency: Check = {
  needs: ['replication', 'regionNames'],
  run(ctx) {
    const idx = tableIndex(ctx.spec);
    const names = new Map<string, number>();
    (ctx.spec.replication.residency ?? []).forEach((rule, i) => {
      const at = (...rest: Array<string | number>) => pointer('replication', 'residency', i, ...rest);
      const first = names.get(rule.name);
      if (first !== undefined)
        error(
          ctx,
          at('name'),
          'E_RESIDENCY_CONFLICT',
          `residency rule '${rule.name}' is declared twice (first as residency[${first}]): rule names must be unique`,
        );
      else names.set(rule.name, i);
      requireReplicated(ctx, idx, at('table'), rule.table, 'residency rule');
      const problem = checkExpression(rule.rows).problem;
      if (problem)
        error(
          ctx,
          at('rows'),
          'E_ROW_FILTER',
          `residency rule '${rule.name}' rows is not a single expression: ${problem}`,
        );
      rule.allowedRegions.forEach((name, j) => {
        if (!ctx.regionNames.has(name)) unknownRegion(ctx, at('allowedRegions', j), 'allowed region', name);
      });
      if (ctx.primary !== undefined && !rule.allowedRegions.includes(ctx.primary))
        error(
          ctx,
          at('allowedRegions'),
          'E_RESIDENCY_CONFLICT',
          `residency rule '${rule.name}' does not allow the primary '${ctx.primary}', which holds every row: add it to allowedRegions (or move the primary)`,
        );
      else if ([...ctx.regionNames].every((n) => rule.allowedRegions.includes(n)))
        warning(
          ctx,
          at('allowedRegions'),
          'W_RESIDENCY_NOOP',
          `residency rule '${rule.name}' allows every region, so it filters nothing`,
        );
    });
  },
};

const channelFilters: Check = {
  needs: ['replication', 'channels'],
  run(ctx) {
    const idx = tableIndex(ctx.spec);
    ctx.spec.channels.forEach((c, i) => {
      const f = c.filters;
      if (!f) return;
      const at = (...rest: Array<string | number>) => pointer('channels', i, 'filters', ...rest);
      const columnLists = new Map<string, string[]>();
      (f.columns ?? []).forEach((cl, j) => {
        if (!requireReplicated(ctx, idx, at('columns', j, 'table'), cl.table, 'column list')) return;
        if (columnLists.has(cl.table))
          error(
            ctx,
            at('columns', j, 'table'),
            'E_DUPLICATE_FILTER',
            `${cl.table} has two column lists on this channel: merge them into one`,
          );
        else columnLists.set(cl.table, cl.columns);
      });
      const filtered = new Set<string>(columnLists.keys());
      (f.rows ?? []).forEach((rf, j) => {
        const ok = requireReplicated(ctx, idx, at('rows', j, 'table'), rf.table, 'row filter');
        const check = checkExpression(rf.where);
        if (check.problem) {
          error(
            ctx,
            at('rows', j, 'where'),
            'E_ROW_FILTER',
            `row filter on ${rf.table} is not a single expression: ${check.problem}`,
          );
          return;
        }
        if (!ok) return;
        filtered.add(rf.table);
        const cols = columnLists.get(rf.table);
        const missing = cols ? check.columns.filter((col) => !cols.includes(col)) : [];
        if (missing.length > 0)
          error(
            ctx,
            at('rows', j, 'where'),
            'E_FILTER_COLUMNS',
            `row filter on ${rf.table} uses ${missing.join(', ')}, not in this channel's column list: PostgreSQL needs row-filter columns in the replica identity, which the column list must include`,
          );
      });
      (f.withhold ?? []).forEach((t, j) => {
        if (!requireReplicated(ctx, idx, at('withhold', j), t, 'withhold entry')) return;
        if (filtered.has(t))
          error(
            ctx,
            at('withhold', j),
            'E_TABLE_CONFLICT',
            `${t} is withheld from this channel and also filtered on it: drop the filter or the withhold`,
          );
      });
      const withheld = new Set(f.withhold ?? []);
      for (const rule of ctx.spec.replication.residency ?? []) {
        if (rule.allowedRegions.includes(c.to) || withheld.has(rule.table)) continue;
        const cols = columnLists.get(rule.table);
        if (!cols) continue;
        const missing = checkExpression(rule.rows).columns.filter((col) => !cols.includes(col));
        const j = (f.columns ?? []).findIndex((cl) => cl.table === rule.table);
        if (missing.length > 0)
          error(
            ctx,
            at('columns', j, 'columns'),
            'E_RESIDENCY_CONFLICT',
            `residency rule '${rule.name}' filters ${rule.table} on ${missing.join(', ')}, which this column list leaves out: the residency filter for '${c.to}' needs those columns (add them, or withhold the table)`,
          );
      }
    });
  },
};

/** Why a channel's target would lack data that is not loss-acceptable, if it would. */
function dropsData(spec: RegionsSpec, channel: ChannelSpec): string[] {
  const reasons: string[] = [];
  const f = channel.filters;
  for (const r of f?.rows ?? []) reasons.push(`row filter on ${r.table}`);
  for (const c of f?.columns ?? []) reasons.push(`column list on ${c.table}`);
  for (const t of f?.withhold ?? []) reasons.push(`${t} withheld`);
  const replicated = new Set(spec.replication.tables);
  for (const rule of spec.replication.residency ?? [])
    if (replicated.has(rule.table) && !rule.allowedRegions.includes(channel.to))
      reasons.push(`residency rule '${rule.name}' keeps rows of ${rule.table} out`);
  return reasons;
}

const candidates: Check = {
  needs: ['regions', 'channels', 'replication'],
  run(ctx) {
    ctx.spec.regions.forEach((r: RegionSpec, i) => {
      if (r.role !== 'secondary' || !r.failover?.candidate) return;
      const reasons = ctx.spec.channels.filter((c) => c.to === r.name).flatMap((c) => dropsData(ctx.spec, c));
      if (reasons.length > 0)
        error(
          ctx,
          pointer('regions', i, 'failover', 'candidate'),
          'E_CANDIDATE_FILTERED',
          `'${r.name}' is a failover candidate, but its channel drops data that is not loss-acceptable (${reasons.join('; ')}): promoting it would lose that data; set candidate: false, or remove the filters`,
        );
    });
  },
};

const dns: Check = {
  needs: ['dns', 'regionNames'],
  run(ctx) {
    const d = ctx.spec.dns;
    if (!d) return;
    for (const name of Object.keys(d.readRecords ?? {}))
      if (!ctx.regionNames.has(name))
        unknownRegion(ctx, pointer('dns', 'readRecords', name), 'read record region', name, 'key');
    const settings: Record<typeof d.provider, string> = {
      file: 'file: { path }',
      rfc2136: 'rfc2136: { server, keyName, keySecret }',
      route53: 'route53: { hostedZoneId }',
    };
    if (d[d.provider] === undefined)
      error(
        ctx,
        '/dns/provider',
        'E_DNS_PROVIDER_SETTINGS',
        `DNS provider '${d.provider}' needs its settings: add ${settings[d.provider]} under dns`,
      );
    for (const other of Object.keys(settings) as Array<typeof d.provider>)
      if (other !== d.provider && d[other] !== undefined)
        warning(
          ctx,
          pointer('dns', other),
          'W_DNS_UNUSED_SETTINGS',
          `dns.${other} is ignored: the provider is '${d.provider}'`,
          'key',
        );
    const zone = d.zone.replace(/\.$/, '');
    const inZone = (rec: string) => {
      const r = rec.replace(/\.$/, '');
      return r === zone || r.endsWith(`.${zone}`);
    };
    if (!inZone(d.primaryRecord))
      warning(ctx, '/dns/primaryRecord', 'W_DNS_OUTSIDE_ZONE', `${d.primaryRecord} is not in zone ${d.zone}`);
    for (const [name, rec] of Object.entries(d.readRecords ?? {}))
      if (!inZone(rec))
        warning(
          ctx,
          pointer('dns', 'readRecords', name),
          'W_DNS_OUTSIDE_ZONE',
          `${rec} is not in zone ${d.zone}`,
        );
  },
};

/** Hosts that only the local machine reaches: an authority on them is a lab, not a deployment. */
function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

const authority: Check = {
  needs: ['authority', 'failover'],
  run(ctx) {
    const a = ctx.spec.authority;
    if (!a) return;
    const schemes = new Set<string>();
    const seen = new Map<string, number>();
    let loopbackOnly = true;
    a.endpoints.forEach((endpoint, i) => {
      const path = pointer('authority', 'endpoints', i);
      let url: URL | undefined;
      try {
        url = new URL(endpoint);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname) {
        error(
          ctx,
          path,
          'E_AUTHORITY_ENDPOINT',
          `'${endpoint}' is not an etcd client URL: write http://host:port or https://host:port (etcd's default client port is 2379)`,
        );
        return;
      }
      if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
        error(
          ctx,
          path,
          'E_AUTHORITY_ENDPOINT',
          `'${endpoint}' has a path, query or user part: an etcd endpoint is just scheme://host:port (credentials go in authority.username/password)`,
        );
        return;
      }
      schemes.add(url.protocol);
      if (!isLoopback(url.hostname)) loopbackOnly = false;
      const key = `${url.hostname}:${url.port || '2379'}`;
      const first = seen.get(key);
      if (first !== undefined)
        error(
          ctx,
          path,
          'E_AUTHORITY_ENDPOINT',
          `'${endpoint}' is the same member as endpoints[${first}]: list each etcd member once`,
        );
      else seen.set(key, i);
    });
    if (schemes.size > 1)
      error(
        ctx,
        '/authority/endpoints',
        'E_AUTHORITY_ENDPOINT',
        'endpoints mix http:// and https://: a client talks to all members the same way; use https:// for all of them',
      );
    const members = seen.size;
    // A lab on loopback may run any number of members; a deployment needs a majority to
    // survive the loss of a region, which 1 or 2 members cannot give, and an even count
    // adds a member to lose without adding a failure it tolerates.
    if (!loopbackOnly && members > 0 && (members < 3 || members % 2 === 0))
      warning(
        ctx,
        '/authority/endpoints',
        'W_AUTHORITY_QUORUM',
        `${members} etcd member${members === 1 ? '' : 's'} tolerate${members === 1 ? 's' : ''} ${Math.floor((members - 1) / 2)} failure${Math.floor((members - 1) / 2) === 1 ? '' : 's'}: without a majority, automatic transitions stop; use 3 or 5 members, one per region or witness site`,
      );
    const https = schemes.has('https:');
    if (a.tls && !https && schemes.size > 0)
      error(
        ctx,
        '/authority/tls',
        'E_AUTHORITY_TLS',
        'authority.tls is set, but the endpoints are http://: TLS needs https:// endpoints',
        'key',
      );
    if (a.tls && (a.tls.cert === undefined) !== (a.tls.key === undefined))
      error(
        ctx,
        a.tls.cert ? '/authority/tls/cert' : '/authority/tls/key',
        'E_AUTHORITY_TLS',
        'a client certificate needs its private key and the other way round: give both tls.cert and tls.key, or neither',
        'key',
      );
    if ((a.username === undefined) !== (a.password === undefined))
      error(
        ctx,
        a.username !== undefined ? '/authority/username' : '/authority/password',
        'E_AUTHORITY_CREDENTIALS',
        'etcd password authentication needs both authority.username and authority.password (a secret reference)',
        'key',
      );
    const lease = a.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
    const { intervalSeconds, failureThreshold } = ctx.spec.failover.probe;
    const detection = intervalSeconds * failureThreshold;
    if (lease + PROMOTION_MARGIN_SECONDS > detection)
      warning(
        ctx,
        a.leaseSeconds !== undefined ? '/authority/leaseSeconds' : '/authority',
        'W_AUTHORITY_LEASE_SLOW',
        `a candidate is promoted only ${lease + PROMOTION_MARGIN_SECONDS} s after the primary's last lease renewal (leaseSeconds ${lease} + ${PROMOTION_MARGIN_SECONDS} s margin), later than the ${detection} s detection takes (probe ${intervalSeconds} s × ${failureThreshold}): the lease, not detection, sets failover time; lower leaseSeconds or accept the slower failover`,
        a.leaseSeconds !== undefined ? undefined : 'key',
      );
  },
};

const applicationRoles: Check = {
  needs: ['applicationRoles', 'regions'],
  run(ctx) {
    const users = new Set(ctx.spec.regions.map((r) => r.endpoint.user));
    ctx.spec.applicationRoles.forEach((role, i) => {
      if (users.has(role))
        error(
          ctx,
          pointer('applicationRoles', i),
          'E_APP_ROLE_CONFLICT',
          `'${role}' is both an application role and the user regionctl connects as: fencing would lock regionctl out; give applications their own role`,
        );
    });
  },
};

const CHECKS: readonly Check[] = [
  regions,
  controlStore,
  channels,
  missingChannels,
  thresholds,
  tables,
  pinnedRegions,
  residency,
  channelFilters,
  candidates,
  dns,
  authority,
  applicationRoles,
];

/** Region names and the primary, read defensively: they are needed even when a region is malformed. */
function regionIndex(spec: RegionsSpec): { names: string[] | undefined; primary: string | undefined } {
  const raw: unknown = spec.regions;
  if (!Array.isArray(raw)) return { names: undefined, primary: undefined };
  const names: string[] = [];
  const primaries: string[] = [];
  for (const r of raw as unknown[]) {
    const name = r !== null && typeof r === 'object' ? (r as { name?: unknown }).name : undefined;
    if (typeof name !== 'string') return { names: undefined, primary: undefined };
    names.push(name);
    if ((r as { role?: unknown }).role === 'primary') primaries.push(name);
  }
  return { names, primary: primaries.length === 1 ? primaries[0] : undefined };
}

/**
 * Semantic findings for a spec whose top-level sections not in `invalidSections` conform
 * to the schema. Sections in it are not read (beyond region names, read defensively).
 */
export function semanticFindings(
  spec: RegionsSpec,
  invalidSections: ReadonlySet<string> = new Set(),
): Finding[] {
  const { names, primary } = regionIndex(spec);
  const invalid = new Set(invalidSections);
  if (names === undefined) invalid.add('regionNames');
  const ctx: Context = { spec, out: [], regionNames: new Set(names ?? []), primary };
  for (const check of CHECKS) if (check.needs.every((s) => !invalid.has(s))) check.run(ctx);
  return ctx.out;
}
