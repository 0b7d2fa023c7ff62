/**
 * Failover: fence the old primary, promote the most advanced candidate, re-form every
 * other channel exactly, move the topology epoch and the DNS record. Journaled step by
 * step in the control store (failover_event, failover_step): a reconciler killed at any
 * step resumes the same failover, never starts a second one.
 *
 * Re-forming the other channels: a secondary that applied exactly as much of the old
 * primary as the promoted region (same origin LSN, so the same content) follows the new
 * primary from a slot created before the new primary accepts any write: nothing to
 * copy. A secondary that is behind (or ahead, after a forced choice) is emptied and
 * re-copied by PostgreSQL's own initial synchronisation, which is consistent with the
 * new slot's start; its cost grows with the data, not with the gap (see README).
 */

import type pg from 'pg';
import { executeAction, openClients } from '../apply/execute.js';
import { RegionctlError } from '../errors.js';
import { type DesiredChannel, type DesiredState, desiredState } from '../model/desired.js';
import { compareLsn } from '../model/lsn.js';
import { rejoinSlotName } from '../model/names.js';
import type { Observed, ReachableRegion } from '../model/observed.js';
import { reachableRegion } from '../model/observed.js';
import { effectiveSpec, promotedSpec, withoutRegions } from '../model/promote.js';
import { observe } from '../observe/observe.js';
import { currentSpec } from '../reconcile/reconcile.js';
import type { RegionsSpec } from '../spec/schema.js';
import { connect, conninfo, regionTarget } from '../sql/connect.js';
import { emptyTables } from '../sql/empty-tables.js';
import { verifyFence } from '../sql/fence-verify.js';
import { fenceSql, guardSql } from '../sql/guard.js';
import { ident, literal } from '../sql/quote.js';
import { dropIdleSlots } from '../sql/slots.js';
import { runStatements } from '../sql/statement.js';
import { createSubscriptionSql, dropSubscriptionSql } from '../sql/subscription.js';
import type { Store } from '../store/store.js';
import { type CandidateChoice, type Corroboration, chooseCandidate } from './choose.js';
import { moveDns } from './dns.js';
import { runFenceHooks } from './fence.js';
import { type StepRunner, stepRunner } from './steps.js';

/** Sequences jump this far past the old primary's last observed value (it may have issued more). */
export const SEQUENCE_MARGIN = 100_000;

export interface TransitionOptions {
  /** regions.yaml as written; the control store's topology is applied on top of it. */
  spec: RegionsSpec;
  specDir: string;
  store: Store;
  log: (line: string) => void;
  to?: string;
  force: boolean;
  trigger: string;
  corroboration?: Corroboration;
  /** Tests: stop (as if killed) right after the named step. */
  crashAfter?: string;
  /**
   * The promotion gate of the authority (src/safety/gate.ts): runs right before the
   * candidate accepts writes and throws unless the old primary can no longer take them.
   */
  gate?: (to: string, fenceConfirmed: boolean) => Promise<{ basis: string; epoch: number; waitedMs: number }>;
  /**
   * A person's `--accept-split-brain-risk`: the gate may promote without a confirmed
   * fence or an expired lease. Recorded in the event (params and the gate's basis).
   */
  acceptSplitBrainRisk?: boolean;
}

export interface FailoverOutcome {
  eventId: number;
  from: string;
  to: string;
  choice: CandidateChoice;
  fenceConfirmed: boolean;
  dnsMoved: boolean;
  executionMs: number;
}

export function appTables(o: ReachableRegion | null, desired: DesiredState): string[] {
  if (!o) return desired.applicationTables;
  return desired.applicationTables.filter((t) => o.tables.some((x) => x.table === t));
}

async function lastPrimarySighting(store: Store, epoch: number) {
  let lsn: string | null = null;
  let at: Date | null = null;
  for (const c of await store.listChannels()) {
    if (c.epoch !== epoch || !c.primaryLsn) continue;
    if (!lsn || compareLsn(c.primaryLsn, lsn) > 0) lsn = c.primaryLsn;
    if (!at || c.lastSeenAt > at) at = c.lastSeenAt;
  }
  return { lsn, at: at?.toISOString() ?? null };
}

export async function fenceRegion(
  spec: RegionsSpec,
  specDir: string,
  region: string,
  observed: Observed,
  desired: DesiredState,
): Promise<{ method: string; confirmed: boolean; detail: unknown }> {
  const o = reachableRegion(observed, region);
  if (o) {
    const c = await connect(regionTarget(spec, region, specDir), { applicationName: 'regionctl-fence' });
    try {
      const tables = appTables(o, desired);
      await runStatements(c, fenceSql(spec.applicationRoles, tables, spec.database));
      const confirmed = await verifyFence(c, spec.applicationRoles, tables);
      return { method: 'sql', confirmed, detail: { verifiedBy: 'write as each application role refused' } };
    } finally {
      await c.end().catch(() => {});
    }
  }
  const hooks = await runFenceHooks(spec, region);
  return { method: 'command', confirmed: hooks.some((h) => h.confirmed), detail: hooks };
}

async function appliedLsnOf(c: pg.ClientBase, sub: string): Promise<string | null> {
  const r = await c.query(
    `SELECT os.remote_lsn::text AS lsn FROM pg_subscription s
       JOIN pg_replication_origin_status os ON os.external_id = 'pg_' || s.oid
      WHERE s.subname = $1 AND s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [sub],
  );
  return r.rows[0]?.lsn ?? null;
}

async function subscriptionExists(c: pg.ClientBase, sub: string): Promise<boolean> {
  const r = await c.query(
    'SELECT 1 FROM pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())',
    [sub],
  );
  return r.rowCount === 1;
}

/** Cut point first, then detach without the publisher: its slot stays there as evidence. */
export async function detachKeepingSlot(c: pg.ClientBase, sub: string): Promise<{ cutLsn: string | null }> {
  const cutLsn = await appliedLsnOf(c, sub);
  if (await subscriptionExists(c, sub)) await runStatements(c, dropSubscriptionSql(sub, { keepSlot: true }));
  return { cutLsn };
}

/**
 * Per sequence, how far past its last observed value the old primary may have drawn:
 * twice its observed rate over the time since that observation, plus 10 s of it. Only
 * the ones above SEQUENCE_MARGIN matter (the caller takes the larger).
 */
export function sequenceMargins(
  snap: Map<string, { observedAt: Date; perSecond: number | null }>,
  nowMs: number,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, v] of snap) {
    if (v.perSecond === null || !(v.perSecond > 0)) continue;
    const seconds = Math.max(0, (nowMs - v.observedAt.getTime()) / 1000) + 10;
    const m = Math.ceil(2 * v.perSecond * seconds);
    if (m > SEQUENCE_MARGIN) out.set(name, m);
  }
  return out;
}

/** Moves every sequence on the new primary beyond what the old primary may have issued. */
export async function advanceSequences(
  c: pg.ClientBase,
  known: Map<string, string | null>,
  margin: number,
  /** A larger margin for some sequences (their observed draw rate), by name. */
  margins: Map<string, number> = new Map(),
): Promise<Record<string, string>> {
  const seqs = (
    await c.query(`SELECT s.schemaname || '.' || s.sequencename AS name, s.last_value::text AS last_value,
              (SELECT d.refobjid::regclass::text || '|' || a.attname FROM pg_depend d
                 JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
                WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = format('%I.%I', s.schemaname, s.sequencename)::regclass
                  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1) AS owner
         FROM pg_sequences s WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema', 'regionctl')`)
  ).rows;
  // Every column a sequence feeds: the one that owns it, and any whose DEFAULT calls it
  // (a free-standing sequence shared by columns: its values reached the candidate in
  // those columns' replicated rows even though the sequence itself is not replicated).
  const fed = (
    await c.query(`SELECT n.nspname || '.' || sc.relname AS seq, ad.adrelid::regclass::text AS rel, a.attname AS col
                     FROM pg_depend d
                     JOIN pg_class sc ON sc.oid = d.refobjid AND sc.relkind = 'S'
                     JOIN pg_namespace n ON n.oid = sc.relnamespace
                     JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
                     JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
                    WHERE d.refclassid = 'pg_class'::regclass
                      AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)`)
  ).rows as { seq: string; rel: string; col: string }[];
  const feeds = new Map<string, { rel: string; col: string }[]>();
  for (const s of seqs) {
    if (!s.owner) continue;
    const [rel, col] = String(s.owner).split('|');
    feeds.set(s.name, [{ rel: rel ?? '', col: col ?? '' }]);
  }
  for (const f of fed) {
    const name = f.seq;
    if (!seqs.some((s) => s.name === name)) continue;
    const list = feeds.get(name) ?? [];
    if (!list.some((x) => x.rel === f.rel && x.col === f.col)) list.push({ rel: f.rel, col: f.col });
    feeds.set(name, list);
  }
  // Across regions every round trip costs 70-220 ms: all maxima in one query, all
  // setvals in another, whatever the number of sequences.
  const maxima = new Map<string, string | null>();
  const parts = [...feeds].flatMap(([name, cols]) =>
    // rel is regclass::text: already quoted by the server.
    cols.map((x) => `SELECT ${literal(name)} AS name, max(${ident(x.col)})::text AS m FROM ${x.rel}`),
  );
  if (parts.length > 0) {
    for (const r of (await c.query(parts.join(' UNION ALL '))).rows) {
      const m = (r.m as string | null) ?? null;
      const prev = maxima.get(r.name as string);
      if (prev === undefined || (m !== null && (prev === null || BigInt(m) > BigInt(prev))))
        maxima.set(r.name as string, m);
    }
  }
  const out: Record<string, string> = {};
  for (const s of seqs) {
    let target = BigInt(s.last_value ?? 0);
    const k = known.get(s.name);
    if (k) target = BigInt(k) > target ? BigInt(k) : target;
    const v = maxima.get(s.name);
    if (v !== null && v !== undefined && BigInt(v) > target) target = BigInt(v);
    target += BigInt(Math.max(margin, margins.get(s.name) ?? 0));
    const current = BigInt(s.last_value ?? 0);
    if (target > current) out[s.name] = target.toString();
  }
  const sets = Object.entries(out);
  if (sets.length > 0) {
    await c.query(`SELECT ${sets.map(([n, t]) => `setval(${literal(n)}::regclass, ${t}, true)`).join(', ')}`);
  }
  return out;
}

/** The new primary's desired state: every channel from it, the old primary left out. */
export function promotedDesired(
  spec: RegionsSpec,
  to: string,
  exclude: string[],
): { spec: RegionsSpec; desired: DesiredState } {
  const next = withoutRegions(promotedSpec(spec, to), exclude);
  return { spec: next, desired: desiredState(next) };
}

async function follow(
  next: RegionsSpec,
  specDir: string,
  ch: DesiredChannel,
  client: (r: string) => Promise<pg.Client>,
  copy: boolean,
): Promise<Record<string, unknown>> {
  const c = await client(ch.to);
  if (await subscriptionExists(c, ch.subscription.name)) return { already: true };
  if (copy) {
    await emptyTables(
      c,
      ch.publication.tables.map((t) => t.table),
    );
  }
  const pub = await client(ch.from);
  const info = conninfo(regionTarget(next, ch.from, specDir));
  if (!copy) {
    // An exact follower's slot was made on the new primary before it accepted a write
    // (step 6): subscribe from it, with nothing to copy and nothing missed.
    const made = await pub.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [
      ch.subscription.slotName,
    ]);
    if (made.rowCount) {
      await runStatements(
        c,
        createSubscriptionSql(ch.subscription, info, { copyData: false, createSlot: false, enabled: true }),
      );
      return { copy, slot: 'made before the first write' };
    }
  }
  await dropIdleSlots(pub, [ch.subscription.slotName]);
  await runStatements(
    c,
    createSubscriptionSql(ch.subscription, info, { copyData: copy, createSlot: true, enabled: true }),
  );
  return { copy };
}

/**
 * Records the promotion in the control store (compare-and-set on the epoch, so two
 * processes can never both promote) and forgets the old primary's channels. Idempotent.
 */
export async function commitPromotion(
  store: Store,
  to: string,
  epoch: number,
  eventId: number,
  oldChannels: DesiredChannel[],
): Promise<Record<string, unknown>> {
  const cur = await store.getTopology();
  if (cur?.primaryRegion === to && cur.epoch === epoch + 1) return { already: true };
  const ok = await store.setTopology({ primaryRegion: to, epoch: epoch + 1, lastEventId: eventId }, epoch);
  if (!ok) {
    throw new RegionctlError(
      'E_TOPOLOGY_RACE',
      `another process changed the topology while event ${eventId} promoted ${to}`,
      'inspect `regionctl events`',
    );
  }
  for (const ch of oldChannels) await store.deleteChannel(ch.from, ch.to);
  return { epoch: epoch + 1 };
}

export interface PreparedFailover {
  desired: DesiredState;
  observed: Observed;
  choice: CandidateChoice;
  epoch: number;
}

/** The spec as it was when `from` was the primary (for a transition away from it). */
export async function specBefore(o: TransitionOptions, from: string): Promise<RegionsSpec> {
  const excluded = (await o.store.regionStates()).map((r) => r.region).filter((r) => r !== from);
  return effectiveSpec(o.spec, { primaryRegion: from }, excluded);
}

/**
 * An unfinished switchover away from `primary` that passed its catch-up: its target
 * applied everything up to the fence (the primary took no application write after it),
 * though its subscription — the usual source of that position — may be detached.
 */
async function switchoverCatchUp(
  store: TransitionOptions['store'],
  primary: string,
): Promise<Record<string, { lsn: string; why: string }>> {
  const u = await store.unfinishedFailoverEvent();
  if (u?.event.kind !== 'switchover' || u.event.fromRegion !== primary) return {};
  const step = u.steps.find((x) => x.name === 'wait-catch-up' && x.status === 'done');
  const lsn = (step?.detail as { fenceLsn?: unknown } | null)?.fenceLsn;
  if (typeof lsn !== 'string') return {};
  return {
    [u.event.toRegion]: {
      lsn,
      why: `caught up to the fence of switchover event ${u.event.id} (${lsn})`,
    },
  };
}

export async function prepareFailover(raw: TransitionOptions): Promise<PreparedFailover> {
  const o = { ...raw, spec: (await currentSpec(raw.spec, raw.store, { init: true })).spec };
  const desired = desiredState(o.spec);
  const observed = await observe(o.spec, o.specDir);
  const topo = (await o.store.getTopology()) ?? (await o.store.initTopology(desired.primary));
  const sighting = await lastPrimarySighting(o.store, topo.epoch);
  const p = reachableRegion(observed, desired.primary);
  const choice = chooseCandidate(desired, observed, o.spec, {
    knownApplied: await switchoverCatchUp(o.store, desired.primary),
    ...(o.to ? { to: o.to } : {}),
    lastPrimaryLsn: p?.currentLsn ?? sighting.lsn,
    lastPrimarySeenAt: p ? p.serverTime : sighting.at,
  });
  return { desired, observed, choice, epoch: topo.epoch };
}

export async function runFailover(
  o: TransitionOptions,
  prepared?: PreparedFailover,
): Promise<FailoverOutcome> {
  const unfinished = await o.store.unfinishedFailoverEvent();
  if (unfinished && unfinished.event.kind === 'failover') return resumeFailover(o, unfinished.event.id);
  if (unfinished?.event.kind === 'switchover') {
    // A switchover interrupted before its target took writes must not block the failover
    // an outage needs: the failover supersedes it (the old primary it fenced is what a
    // failover fences anyway). One that got further is finished instead: it loses nothing.
    const pastNoReturn = unfinished.steps.some((x) => x.name === 'lift-guard' && x.status === 'done');
    if (pastNoReturn) {
      throw new RegionctlError(
        'E_TRANSITION_IN_PROGRESS',
        `switchover event ${unfinished.event.id} (${unfinished.event.fromRegion} → ${unfinished.event.toRegion}) is past the point where ${unfinished.event.toRegion} took writes`,
        `finish it: \`regionctl switchover --to ${unfinished.event.toRegion}\` resumes it (no data is lost)`,
      );
    }
  } else if (unfinished) {
    throw new RegionctlError(
      'E_TRANSITION_IN_PROGRESS',
      `a ${unfinished.event.kind} (event ${unfinished.event.id}) is unfinished`,
      'let the reconciler finish it, or run the same command again to resume it',
    );
  }
  // Prepared first: the candidate choice reads the superseded switchover's catch-up.
  const prep = prepared ?? (await prepareFailover(o));
  if (unfinished?.event.kind === 'switchover') {
    await o.store.updateFailoverEvent(unfinished.event.id, {
      status: 'failed',
      completed: true,
      evidence: { supersededBy: 'failover', at: new Date().toISOString() },
    });
    o.log(
      `switchover event ${unfinished.event.id} was unfinished before its target took writes: superseded by this failover`,
    );
  }
  const { choice, desired } = prep;
  const before = { ...o, spec: await specBefore(o, desired.primary) };
  if (!choice.candidate || (choice.refusal && !o.force)) {
    const id = await o.store.createFailoverEvent({
      kind: 'failover',
      fromRegion: desired.primary,
      toRegion: choice.candidate ?? '-',
      triggerReason: o.trigger,
      epoch: prep.epoch,
      evidence: { choice, corroboration: o.corroboration ?? null },
      forced: false,
      estimatedLossBytes: choice.loss.bytes,
      status: 'refused',
    });
    throw new RegionctlError(
      'E_FAILOVER_REFUSED',
      `failover refused (event ${id}): ${choice.refusal ?? 'no candidate'}`,
      choice.candidate
        ? `to accept the loss, run \`regionctl failover --to ${choice.candidate} --force\` (the loss is written into the event)`
        : 'no region can be promoted: bring a candidate back or mark one as a candidate in regions.yaml',
    );
  }
  const eventId = await o.store.createFailoverEvent({
    kind: 'failover',
    fromRegion: desired.primary,
    toRegion: choice.candidate,
    triggerReason: o.trigger,
    epoch: prep.epoch + 1,
    evidence: {
      choice,
      corroboration: o.corroboration ?? null,
      params: {
        to: choice.candidate,
        force: o.force,
        epoch: prep.epoch,
        acceptSplitBrainRisk: o.acceptSplitBrainRisk ?? false,
      },
    },
    forced: o.force,
    estimatedLossBytes: choice.loss.bytes,
  });
  return execute(before, eventId, choice.candidate, prep.epoch, choice, prep.observed);
}

async function resumeFailover(o: TransitionOptions, eventId: number): Promise<FailoverOutcome> {
  const ev = await o.store.getFailoverEvent(eventId);
  const params = (ev?.evidence as { params?: { to: string; force: boolean; epoch: number } })?.params;
  const choice = (ev?.evidence as { choice?: CandidateChoice })?.choice;
  if (!ev || !params || !choice) {
    throw new RegionctlError(
      'E_STORE_MISSING',
      `failover event ${eventId} lacks its parameters`,
      'inspect it with `regionctl events`',
    );
  }
  o.log(`resuming failover event ${eventId}: ${ev.fromRegion} → ${params.to}`);
  const spec = await specBefore(o, ev.fromRegion);
  const observed = await observe(spec, o.specDir);
  return execute({ ...o, spec, force: params.force }, eventId, params.to, params.epoch, choice, observed);
}

async function execute(
  o: TransitionOptions,
  eventId: number,
  to: string,
  epoch: number,
  choice: CandidateChoice,
  observed: Observed,
): Promise<FailoverOutcome> {
  const t0 = performance.now();
  const desired = desiredState(o.spec);
  const from = desired.primary;
  const s: StepRunner = await stepRunner(o.store, eventId, o.log, o.crashAfter);
  const { spec: next, desired: nextDesired } = promotedDesired(o.spec, to, [from]);
  const clients = await openClients(next, o.specDir);
  try {
    // 1. Fence before promote: no instant with two writable regions.
    const fence = await s.step(1, 'fence', async () => {
      const f = await fenceRegion(o.spec, o.specDir, from, observed, desired);
      await o.store.setRegionState(from, 'fenced', eventId);
      await o.store.updateFailoverEvent(eventId, { fencing: f });
      return { ...f };
    });
    // 2. Record the cut point, then detach the candidate from the old primary.
    const cand = await clients.client(to);
    const candChannel = desired.channels.find((c) => c.to === to);
    if (!candChannel) throw new Error(`no channel feeds ${to}`);
    const cut = await s.step(2, 'detach-candidate', async () => {
      const r = await detachKeepingSlot(cand, candChannel.subscription.name);
      await o.store.updateFailoverEvent(eventId, { evidence: { cutLsn: r.cutLsn, cutEpoch: epoch } });
      return r;
    });
    // 3. Sequences are not replicated: move them past anything the old primary issued.
    //    Past the largest of: the value last observed on it, the largest value in any
    //    column the sequence feeds (replicated rows), plus a margin — SEQUENCE_MARGIN, or
    //    twice what it drew at its observed rate since that observation (plus 10 s).
    await s.step(3, 'advance-sequences', async () => {
      const snap = await o.store.sequenceSnapshot(from);
      const known = new Map([...snap].map(([k, v]) => [k, v.lastValue]));
      const margins = sequenceMargins(snap, Date.now());
      return {
        advanced: await advanceSequences(cand, known, SEQUENCE_MARGIN, margins),
        margin: SEQUENCE_MARGIN,
        rateMargins: Object.fromEntries(margins),
      };
    });
    // 4. Detach the other secondaries from the old primary, noting how much each applied.
    const others = desired.channels.filter((c) => c.to !== to);
    const positions = await s.step(4, 'detach-others', async () => {
      const out: Record<string, string | null> = {};
      await Promise.all(
        others.map(async (ch) => {
          out[ch.to] = reachableRegion(observed, ch.to)
            ? (await detachKeepingSlot(await clients.client(ch.to), ch.subscription.name)).cutLsn
            : 'unreachable';
        }),
      );
      return out;
    });
    // 5. Publications the new primary needs, including the one the old primary will
    //    follow when it rejoins.
    const rejoinChannel = desiredState(promotedSpec(o.spec, to)).channels.find((c) => c.to === from);
    await s.step(5, 'create-publications', async () => {
      const ctx = { spec: next, specDir: o.specDir, client: clients.client, log: o.log };
      for (const ch of [...nextDesired.channels, ...(rejoinChannel ? [rejoinChannel] : [])]) {
        await executeAction(ctx, {
          kind: 'create-publication',
          region: to,
          risk: 'create',
          reason: 'failover',
          publication: ch.publication,
        });
      }
      return { publications: nextDesired.channels.map((c) => c.publication.name) };
    });
    const cutLsn = (cut as { cutLsn: string | null }).cutLsn;
    const same = (region: string) => {
      const p = (positions as Record<string, string | null>)[region];
      return (
        p !== null && p !== undefined && p !== 'unreachable' && cutLsn !== null && compareLsn(p, cutLsn) === 0
      );
    };
    // 6. Secondaries exactly as advanced as the candidate follow it from a slot made now,
    //    before the new primary accepts a write: nothing to copy, nothing missed.
    //    Only the slots are on the critical path (one round trip to the candidate); the
    //    subscriptions that use them are created after DNS moved (step 10).
    await s.step(6, 'follow-exact', async () => {
      // The rejoin slot: the new primary's changes from this instant on stay decodable.
      const rejoinSlot = rejoinSlotName(o.spec.database, to, from);
      const exact = nextDesired.channels.filter((ch) => same(ch.to));
      const followers = exact.map((ch) => ch.subscription.slotName);
      const slots = [rejoinSlot, ...followers];
      // Followers' slots are made fresh (an idle one of that name is stale evidence or a
      // resumed attempt's, from before any write here); one still in use is an error,
      // since following from an older position would replay what the follower has.
      await dropIdleSlots(cand, followers);
      await cand.query(
        `SELECT pg_create_logical_replication_slot(s, 'pgoutput')
           FROM unnest($1::text[]) s
          WHERE s <> $2 OR NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = s)`,
        [slots, rejoinSlot],
      );
      return { followed: exact.map((ch) => ch.to), slots, rejoinSlot };
    });
    // 7. The new primary accepts application writes — with an authority, only once the
    //    promotion gate says the old primary cannot (confirmed fence, or its lease gone
    //    plus the margin: its agent has fenced it), and the topology epoch has moved.
    let gated: { basis: string; epoch: number; waitedMs: number } | null = null;
    await s.step(7, 'lift-guard', async () => {
      if (o.gate) {
        gated = await o.gate(to, Boolean((fence as { confirmed?: boolean }).confirmed));
        await o.store.updateFailoverEvent(eventId, { evidence: { promotion: gated } });
      }
      const tables = appTables(reachableRegion(observed, to), nextDesired);
      await runStatements(
        cand,
        guardSql({ region: to, mode: 'read-write', roles: next.applicationRoles }, tables, next.database),
      );
      return { tables: tables.length };
    });
    const writableAt = performance.now();
    // 8. The control store's topology is the source of truth until write-back merges.
    await s.step(8, 'topology', () => commitPromotion(o.store, to, epoch, eventId, desired.channels));
    // 9. DNS moves only after a confirmed fence, or when the operator forced it.
    const dns = await s.step(9, 'dns', async () => {
      // The gate's lease basis is as good as a confirmed fence: the old primary's agent fenced it.
      const confirmed = Boolean((fence as { confirmed?: boolean }).confirmed) || gated !== null;
      if (!confirmed && !o.force) {
        return {
          moved: false,
          reason: 'fence not confirmed; run `regionctl failover --force` to move DNS anyway',
        };
      }
      return { moved: true, ...(await moveDns(next, o.specDir, to)) };
    });
    const dnsAt = performance.now();
    // 10. Secondaries at another position are re-copied, consistently with their new slot.
    await s.step(10, 'follow-resync', async () => {
      const followed: string[] = [];
      const done: string[] = [];
      await Promise.all(
        nextDesired.channels.map(async (ch) => {
          if (same(ch.to)) {
            await follow(next, o.specDir, ch, clients.client, false);
            followed.push(ch.to);
          } else if (reachableRegion(observed, ch.to)) {
            await follow(next, o.specDir, ch, clients.client, true);
            done.push(ch.to);
          }
        }),
      );
      return { followed, resynced: done };
    });
    await o.store.updateFailoverEvent(eventId, {
      status: 'completed',
      completed: true,
      evidence: {
        timings: { writableMs: Math.round(writableAt - t0), dnsMs: Math.round(dnsAt - t0) },
      },
    });
    await o.store.audit({
      actor: 'regionctl',
      action: 'failover',
      specCommit: null,
      detail: { eventId, from, to, forced: o.force },
    });
    return {
      eventId,
      from,
      to,
      choice,
      fenceConfirmed: Boolean((fence as { confirmed?: boolean }).confirmed),
      dnsMoved: Boolean((dns as { moved?: boolean }).moved),
      executionMs: Math.round(performance.now() - t0),
    };
  } finally {
    await clients.close();
  }
}
