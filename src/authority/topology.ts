/**
 * The topology (epoch + primary) and the in-flight transition. Every write here is one
 * etcd transaction whose comparisons include the caller's leader term (the leader key's
 * create revision) and the epoch it believes in: a stale leader, or one that missed a
 * topology change, is refused by etcd itself at commit time, not by a check that could
 * be outdated a moment later.
 *
 * EndpointPool may send a write a second time to another member after the first timed
 * out, and the first may have been applied: each write recognises its own earlier
 * success from the exact value it wrote.
 */
import { RegionctlError } from '../errors.js';
import type { EndpointPool } from './call.js';
import type { Keys } from './keys.js';
import type { EtcdLeader } from './leader.js';
import type { Topology, TransitionKind, TransitionRecord, TransitionUpdate } from './types.js';
import { checkEpoch, checkRegion, invalid, json, rangeKv, text } from './values.js';

const KINDS: readonly TransitionKind[] = ['failover', 'switchover', 'rejoin'];
const STATUSES: readonly TransitionRecord['status'][] = ['running', 'done', 'failed'];

/** The leader's term, or E_STALE_LEADER when the handle does not lead (locally known). */
export function requireTerm(leader: EtcdLeader, op: string): string {
  const term = leader.leaderRevision;
  if (term === undefined || !leader.isLeader()) {
    throw staleLeader(
      leader,
      op,
      `its handle is ${leader.state()}${leader.state() === 'leader' ? ' but its lease validity ran out' : ''}`,
    );
  }
  return term;
}

export function staleLeader(leader: EtcdLeader, op: string, why: string): RegionctlError {
  return new RegionctlError(
    'E_STALE_LEADER',
    `${op} refused: '${leader.identity}' is not the leader (${why})`,
    'nothing was written; another reconciler may lead now: campaign again and re-read the topology before acting',
  );
}

export async function readTopology(pool: EndpointPool, k: Keys): Promise<Topology | null> {
  const res = await pool.call('topology read', (c, o) =>
    c.getAll().prefix(k.topologyPrefix).options(o).exec(),
  );
  const epoch = res.kvs.find((kv) => kv.key.toString() === k.epoch);
  const primary = res.kvs.find((kv) => kv.key.toString() === k.primary);
  if (!epoch || !primary) return null;
  return { epoch: Number(text(epoch)), primary: text(primary)! };
}

export async function ensureTopology(pool: EndpointPool, k: Keys, initialPrimary: string): Promise<Topology> {
  checkRegion(initialPrimary);
  const changed = JSON.stringify({
    by: 'bootstrap',
    at: new Date().toISOString(),
    to: { epoch: 1, primary: initialPrimary },
  });
  const res = await pool.call('topology bootstrap', (c, o) =>
    c
      .if(k.epoch, 'Create', '==', 0)
      .then(
        c.put(k.epoch).value('1'),
        c.put(k.primary).value(initialPrimary),
        c.put(k.changed).value(changed),
      )
      .else(c.get(k.epoch), c.get(k.primary))
      .options(o)
      .commit(),
  );
  if (res.succeeded) return { epoch: 1, primary: initialPrimary };
  return { epoch: Number(text(rangeKv(res, 0))), primary: text(rangeKv(res, 1)) ?? '' };
}

export async function casTopology(
  pool: EndpointPool,
  k: Keys,
  expected: Topology,
  next: Topology,
  leader: EtcdLeader,
): Promise<Topology> {
  checkEpoch(expected.epoch, 'expected epoch');
  checkEpoch(next.epoch, 'next epoch');
  checkRegion(expected.primary);
  checkRegion(next.primary);
  if (next.epoch <= expected.epoch)
    throw invalid(`the next epoch (${next.epoch}) must be greater than the expected one (${expected.epoch})`);
  const op = `topology change ${expected.epoch}/${expected.primary} → ${next.epoch}/${next.primary}`;
  const term = requireTerm(leader, op);
  // Unique to this call (identity, term, time): a retry recognises its own write by it.
  const changed = JSON.stringify({
    by: leader.identity,
    term,
    at: new Date().toISOString(),
    from: expected,
    to: next,
  });
  const res = await pool.call(op, (c, o) =>
    c
      .if(k.leader, 'Create', '==', term)
      .and(k.epoch, 'Value', '==', String(expected.epoch))
      .and(k.primary, 'Value', '==', expected.primary)
      .then(
        c.put(k.epoch).value(String(next.epoch)),
        c.put(k.primary).value(next.primary),
        c.put(k.changed).value(changed),
      )
      .else(c.get(k.leader), c.get(k.epoch), c.get(k.primary), c.get(k.changed))
      .options(o)
      .commit(),
  );
  if (res.succeeded) return { ...next };
  // Our own earlier write (this call's first attempt, or an earlier call that timed out
  // and was applied late): only this term could have written under it.
  const last = json<{ term?: string; to?: Topology }>(rangeKv(res, 3), k.changed);
  if (
    text(rangeKv(res, 3)) === changed ||
    (last?.term === term &&
      text(rangeKv(res, 1)) === String(next.epoch) &&
      text(rangeKv(res, 2)) === next.primary)
  )
    return { ...next };
  const leaderKv = rangeKv(res, 0);
  if (!leaderKv || leaderKv.create_revision !== term) {
    leader.displaced(leaderKv ? 'another term holds the leader key' : 'the leader key is gone');
    throw staleLeader(
      leader,
      op,
      leaderKv ? 'another reconciler holds the leader key' : 'its leader key is gone',
    );
  }
  const epoch = text(rangeKv(res, 1));
  const primary = text(rangeKv(res, 2));
  throw new RegionctlError(
    'E_EPOCH_CHANGED',
    epoch === undefined
      ? `${op} refused: no topology is recorded in etcd yet`
      : `${op} refused: the topology is epoch ${epoch}, primary ${primary}, not epoch ${expected.epoch}, primary ${expected.primary}`,
    epoch === undefined
      ? 'record the initial topology first (ensureTopology)'
      : 'nothing was written; re-read the topology and plan again from it',
  );
}

export async function inFlight(pool: EndpointPool, k: Keys): Promise<TransitionRecord | null> {
  const res = await pool.call('transition read', (c, o) => c.get(k.transition).options(o).exec());
  return json<TransitionRecord>(res.kvs[0], k.transition) ?? null;
}

function checkUpdate(u: TransitionUpdate): void {
  if (typeof u.id !== 'string' || u.id.length === 0) throw invalid('a transition needs a non-empty id');
  if (!KINDS.includes(u.kind)) throw invalid(`transition kind '${u.kind}' is not one of ${KINDS.join(', ')}`);
  if (typeof u.step !== 'string' || u.step.length === 0) throw invalid('a transition step needs a name');
  if (!STATUSES.includes(u.status))
    throw invalid(`step status '${u.status}' is not one of ${STATUSES.join(', ')}`);
}

function inFlightConflict(op: string, other: TransitionRecord): RegionctlError {
  return new RegionctlError(
    'E_TRANSITION_IN_FLIGHT',
    `${op} refused: transition ${other.id} (${other.kind}) is in flight at step '${other.step}' (${other.status}, epoch ${other.epoch}, owner ${other.owner})`,
    'resume that transition (same id) or finish it and clear it before starting another',
  );
}

export async function guardedStep(
  pool: EndpointPool,
  k: Keys,
  leader: EtcdLeader,
  epoch: number,
  update: TransitionUpdate,
): Promise<TransitionRecord> {
  checkEpoch(epoch, 'epoch');
  checkUpdate(update);
  const op = `journal of ${update.kind} ${update.id} step '${update.step}' (${update.status})`;
  const term = requireTerm(leader, op);
  const record: TransitionRecord = {
    id: update.id,
    kind: update.kind,
    owner: leader.identity,
    epoch,
    step: update.step,
    status: update.status,
    at: new Date().toISOString(),
  };
  const value = JSON.stringify(record);
  const outcome = await pool.call(op, async (c, o) => {
    const current = (await c.get(k.transition).options(o).exec()).kvs[0];
    if (text(current) === value) return { ok: true as const };
    const existing = json<TransitionRecord>(current, k.transition);
    if (existing && existing.id !== update.id) return { ok: false as const, conflict: existing };
    const res = await c
      .if(k.leader, 'Create', '==', term)
      .and(k.epoch, 'Value', '==', String(epoch))
      .and(k.transition, 'Mod', '==', current ? current.mod_revision : 0)
      .then(c.put(k.transition).value(value))
      .else(c.get(k.leader), c.get(k.epoch), c.get(k.transition))
      .options(o)
      .commit();
    return { ok: res.succeeded, res };
  });
  if (outcome.ok) return record;
  if ('conflict' in outcome && outcome.conflict) throw inFlightConflict(op, outcome.conflict);
  const res = outcome.res!;
  const leaderKv = rangeKv(res, 0);
  if (!leaderKv || leaderKv.create_revision !== term) {
    leader.displaced(leaderKv ? 'another term holds the leader key' : 'the leader key is gone');
    throw staleLeader(
      leader,
      op,
      leaderKv ? 'another reconciler holds the leader key' : 'its leader key is gone',
    );
  }
  const current = text(rangeKv(res, 1));
  if (current !== String(epoch)) {
    throw new RegionctlError(
      'E_EPOCH_CHANGED',
      `${op} refused: the topology is at epoch ${current ?? '(none)'}, the step was for epoch ${epoch}`,
      'nothing was written; re-read the topology and decide again whether this step still applies',
    );
  }
  if (text(rangeKv(res, 2)) === value) return record;
  throw new RegionctlError(
    'E_TRANSITION_CHANGED',
    `${op} refused: the transition record changed while it was being journaled`,
    're-read it (inFlight) and resume from what it says',
  );
}

export async function clearTransition(
  pool: EndpointPool,
  k: Keys,
  leader: EtcdLeader,
  id: string,
): Promise<boolean> {
  const op = `clearing transition ${id}`;
  const term = requireTerm(leader, op);
  const outcome = await pool.call(op, async (c, o) => {
    const current = (await c.get(k.transition).options(o).exec()).kvs[0];
    const existing = json<TransitionRecord>(current, k.transition);
    if (!current || !existing) return { cleared: false as const };
    if (existing.id !== id) return { cleared: false as const, conflict: existing };
    const res = await c
      .if(k.leader, 'Create', '==', term)
      .and(k.transition, 'Mod', '==', current.mod_revision)
      .then(c.delete().key(k.transition))
      .else(c.get(k.leader), c.get(k.transition))
      .options(o)
      .commit();
    return { cleared: res.succeeded, res };
  });
  if (outcome.cleared) return true;
  if ('conflict' in outcome && outcome.conflict) throw inFlightConflict(op, outcome.conflict);
  if (!('res' in outcome) || !outcome.res) return false;
  const leaderKv = rangeKv(outcome.res, 0);
  if (!leaderKv || leaderKv.create_revision !== term) {
    leader.displaced(leaderKv ? 'another term holds the leader key' : 'the leader key is gone');
    throw staleLeader(
      leader,
      op,
      leaderKv ? 'another reconciler holds the leader key' : 'its leader key is gone',
    );
  }
  // Gone meanwhile: our own first attempt deleted it.
  if (!rangeKv(outcome.res, 1)) return true;
  throw new RegionctlError(
    'E_TRANSITION_CHANGED',
    `${op} refused: the transition record changed meanwhile`,
    're-read it (inFlight) and decide again',
  );
}
