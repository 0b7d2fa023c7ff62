/**
 * The desired state derived from a validated spec: which publications, subscriptions,
 * guards and heartbeats must exist in which region. Pure; shared by the planner,
 * `regionctl apply` and the Pulumi program.
 */
import { createHash } from 'node:crypto';
import type { ChannelSpec, RegionsSpec } from '../spec/schema.js';
import { HEARTBEAT_TABLE, publicationName, slotName, subscriptionName } from './names.js';

export interface PublishedTable {
  /** schema.table */
  table: string;
  /** Row filter expression (spec text, combined with residency rules), if any. */
  rowFilter?: string;
  /** Column list, if the channel narrows the columns. */
  columns?: string[];
}

export interface DesiredPublication {
  kind: 'publication';
  name: string;
  /** Region that publishes (the primary). */
  region: string;
  /** Region the publication feeds. */
  forRegion: string;
  tables: PublishedTable[];
  /** Hash of the definition, recorded on the object to detect spec changes and hand edits. */
  defHash: string;
}

export interface DesiredSubscription {
  kind: 'subscription';
  name: string;
  /** Region that subscribes (a secondary). */
  region: string;
  fromRegion: string;
  publication: string;
  slotName: string;
  /** Where the publisher is (no secrets): a subscription pointing elsewhere is re-created. */
  source: { host: string; port: number; database: string };
}

export type GuardMode = 'read-write' | 'read-only';

export interface DesiredGuard {
  region: string;
  mode: GuardMode;
  roles: string[];
}

export interface DesiredChannel {
  from: string;
  to: string;
  publication: DesiredPublication;
  subscription: DesiredSubscription;
  channel: ChannelSpec;
}

export interface DesiredState {
  database: string;
  primary: string;
  regions: string[];
  channels: DesiredChannel[];
  guards: DesiredGuard[];
  /** Every table an application may write on the primary (replicated, excluded, pinned). */
  applicationTables: string[];
  heartbeatTable: string;
}

export function primaryOf(spec: RegionsSpec): string {
  const p = spec.regions.find((r) => r.role === 'primary');
  if (!p) throw new Error('spec has no primary (validate it first)');
  return p.name;
}

/** The filter that keeps residency-restricted rows out of a region. NULL counts as not restricted. */
export function residencyExclusion(rows: string): string {
  return `NOT coalesce((${rows}), false)`;
}

export function publishedTables(spec: RegionsSpec, channel: ChannelSpec): PublishedTable[] {
  const withheld = new Set(channel.filters?.withhold ?? []);
  const out: PublishedTable[] = [];
  for (const table of [...spec.replication.tables].sort()) {
    if (withheld.has(table)) continue;
    const filters: string[] = [];
    for (const f of channel.filters?.rows ?? []) if (f.table === table) filters.push(`(${f.where})`);
    for (const r of spec.replication.residency ?? []) {
      if (r.table === table && !r.allowedRegions.includes(channel.to))
        filters.push(residencyExclusion(r.rows));
    }
    const cols = channel.filters?.columns?.find((c) => c.table === table)?.columns;
    const t: PublishedTable = { table };
    if (filters.length > 0) t.rowFilter = filters.join(' AND ');
    if (cols) t.columns = [...cols];
    out.push(t);
  }
  // The heartbeat rides every channel: it is how lag in seconds is measured.
  out.push({ table: HEARTBEAT_TABLE });
  return out;
}

function sourceOf(spec: RegionsSpec, region: string): DesiredSubscription['source'] {
  const r = spec.regions.find((x) => x.name === region);
  if (!r) throw new Error(`channel names unknown region '${region}' (validate the spec first)`);
  return { host: r.endpoint.host, port: r.endpoint.port, database: spec.database };
}

export function hashDefinition(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

export function desiredState(spec: RegionsSpec): DesiredState {
  const primary = primaryOf(spec);
  const channels: DesiredChannel[] = [...spec.channels]
    .sort((a, b) => a.to.localeCompare(b.to))
    .map((channel) => {
      const tables = publishedTables(spec, channel);
      const pubName = publicationName(channel.to);
      const publication: DesiredPublication = {
        kind: 'publication',
        name: pubName,
        region: channel.from,
        forRegion: channel.to,
        tables,
        defHash: hashDefinition(tables),
      };
      const subscription: DesiredSubscription = {
        kind: 'subscription',
        name: subscriptionName(channel.from, channel.to),
        region: channel.to,
        fromRegion: channel.from,
        publication: pubName,
        slotName: slotName(spec.database, channel.from, channel.to),
        source: sourceOf(spec, channel.from),
      };
      return { from: channel.from, to: channel.to, publication, subscription, channel };
    });
  const regions = spec.regions.map((r) => r.name).sort();
  const guards: DesiredGuard[] = regions.map((region) => ({
    region,
    mode: region === primary ? 'read-write' : 'read-only',
    roles: [...spec.applicationRoles].sort(),
  }));
  const applicationTables = [
    ...spec.replication.tables,
    ...(spec.replication.exclude ?? []).map((e) => e.table),
    ...(spec.replication.pinned ?? []).map((p) => p.table),
  ].sort();
  return {
    database: spec.database,
    primary,
    regions,
    channels,
    guards,
    applicationTables: [...new Set(applicationTables)],
    heartbeatTable: HEARTBEAT_TABLE,
  };
}
