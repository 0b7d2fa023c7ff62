/**
 * The topology guard: `regionctl apply` and the Pulumi program (infra/) both call
 * `guardTopology` before they change anything. After an automated failover the control
 * store knows the new primary before regions.yaml does (the write-back commit waits on a
 * pull request); until that is merged, the spec describes the world as it was, and
 * applying it would re-create the old channels and undo the failover. So the guard
 * refuses, and says which event and which branch to merge.
 */
import { RegionctlError } from '../errors.js';
import type { FailoverEventRow, Topology } from '../store/store.js';

/** What the guard needs from the control store (a `Store` has all of it). */
export interface TopologySource {
  getTopology(): Promise<Topology | null>;
  initTopology(primaryRegion: string): Promise<Topology>;
  getFailoverEvent(id: number): Promise<FailoverEventRow | null>;
}

/**
 * Where the write-back of an event was pushed. src/providers/git/write-back.ts returns
 * it, and whoever ran the failover merges it into the event's evidence as `writeBack`.
 */
export interface WriteBackRecord {
  remote: string;
  branch: string;
  commit: string;
  /** Set when a pull request was opened for the branch (by CI or by hand). */
  pullRequest?: string;
}

/** The branch write-back uses for an event unless told otherwise; the guard names it when the event has no record. */
export const DEFAULT_WRITE_BACK_PREFIX = 'regionctl/';

export function writeBackBranch(prefix: string, kind: string, eventId: number, newPrimary: string): string {
  return `${prefix}${kind}-${eventId}-${newPrimary}`;
}

export function writeBackOf(event: FailoverEventRow | null): WriteBackRecord | null {
  const ev = event?.evidence as { writeBack?: Partial<WriteBackRecord> } | null | undefined;
  const wb = ev?.writeBack;
  if (!wb || typeof wb.branch !== 'string') return null;
  const out: WriteBackRecord = {
    remote: typeof wb.remote === 'string' ? wb.remote : 'origin',
    branch: wb.branch,
    commit: typeof wb.commit === 'string' ? wb.commit : '',
  };
  if (typeof wb.pullRequest === 'string') out.pullRequest = wb.pullRequest;
  return out;
}

/** null from guardTopology: no topology recorded yet and a dry run must not record one. */
export interface GuardResult {
  topology: Topology;
  /** True when this call recorded the spec's primary (a fresh install). */
  initialized: boolean;
}

/**
 * Passes when the control store agrees with the spec about the primary; records the
 * spec's primary (epoch 0) when the store has no topology yet; otherwise throws
 * E_TOPOLOGY_MISMATCH naming the failover event and the write-back branch to merge.
 */
export async function guardTopology(
  store: TopologySource,
  specPrimary: string,
  opts: {
    who?: 'regionctl apply' | 'pulumi up' | 'pulumi preview';
    /** false: a dry run (preview) that must not write, not even the first topology row. */
    record?: boolean;
  } = {},
): Promise<GuardResult | null> {
  const who = opts.who ?? 'regionctl apply';
  const current = await store.getTopology();
  if (!current) {
    if (opts.record === false) return null;
    const topology = await store.initTopology(specPrimary);
    // Two first runs may race; the row that won is the truth, so check against it.
    if (topology.primaryRegion === specPrimary) return { topology, initialized: true };
    return mismatch(store, topology, specPrimary, who);
  }
  if (current.primaryRegion === specPrimary) return { topology: current, initialized: false };
  return mismatch(store, current, specPrimary, who);
}

async function mismatch(
  store: TopologySource,
  t: Topology,
  specPrimary: string,
  who: string,
): Promise<never> {
  const event = t.lastEventId === null ? null : await store.getFailoverEvent(t.lastEventId);
  const wb = writeBackOf(event);
  const branch =
    wb?.branch ??
    (event
      ? writeBackBranch(DEFAULT_WRITE_BACK_PREFIX, event.kind, event.id, event.toRegion)
      : '(no failover event is recorded)');
  const eventText = event
    ? `failover event #${event.id} (${event.kind} ${event.fromRegion} → ${event.toRegion}, ${event.status}, started ${event.startedAt.toISOString()})`
    : 'no recorded failover event';
  const mergeWhat = wb?.pullRequest
    ? `merge pull request ${wb.pullRequest} (branch ${branch})`
    : `merge the write-back branch ${branch}${wb ? ` on ${wb.remote}` : ''} (open a pull request for it if none exists)`;
  throw new RegionctlError(
    'E_TOPOLOGY_MISMATCH',
    `${who} refused: the control store says the primary is ${t.primaryRegion} (epoch ${t.epoch}, after ${eventText}), but regions.yaml says ${specPrimary}; acting on this spec would undo that failover`,
    `${mergeWhat} so regions.yaml names ${t.primaryRegion} as primary, then run again`,
  );
}
