/**
 * The right to act on the regions: one per deployment at a time, whoever asks —
 * `reconcile --watch`, `apply`, `failover`, `switchover`, `rejoin`, the Pulumi
 * providers. A person's command never waits for the daemon to die: it asks the
 * reconcilers to step aside (a handoff request), takes the right, acts, and gives it
 * back; the leading reconciler resigns at its next safe point — never inside a
 * transition — and leads again afterwards.
 *
 * With an `authority` (etcd) the right is the reconcilers' leader key, so every guarded
 * write of the command (topology CAS, promotion gate) checks the same term as the
 * daemon's would. Without one it is the control store's advisory lock
 * (src/store/leader-lock.ts), and the handoff request is a second advisory lock that
 * the reconcilers look for.
 */
import { hostname } from 'node:os';
import type { Authority, HandoffHandle, LeaderHandle } from '../authority/types.js';
import { RegionctlError } from '../errors.js';
import type { RegionsSpec } from '../spec/schema.js';
import { controlTarget } from '../sql/connect.js';
import {
  acquireLeaderLock,
  describeHolder,
  type LeaderLock,
  tryAcquireLeaderLock,
} from '../store/leader-lock.js';

/** The advisory lock reconcilers (and `reconcile` passes) lead under. */
export const RECONCILE_LOCK = 'reconcile';
/** Held by a command waiting for, or holding, the right: the reconcilers step aside. */
export const HANDOFF_LOCK = 'handoff';

export interface ActingRight {
  /** Who acts, as others are told. */
  identity: string;
  /** With an authority: the leader handle the command's guarded writes use. */
  leader: LeaderHandle | null;
  authority: Authority | null;
  release(): Promise<void>;
}

export interface AcquireOptions {
  spec: RegionsSpec;
  specDir: string;
  /** The command, e.g. 'failover'. */
  who: string;
  /** The spec's authority, if any (the caller owns and closes it). */
  authority?: Authority | undefined;
  /** How long to wait for the reconcilers to step aside (default 30 s). */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export function actorIdentity(who: string): string {
  return `regionctl ${who} on ${hostname()} pid ${process.pid}`;
}

export async function acquireActingRight(o: AcquireOptions): Promise<ActingRight> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  const identity = actorIdentity(o.who);
  if (o.authority) return viaAuthority(o.authority, identity, timeoutMs, o.log);
  return viaLock(o, identity, timeoutMs);
}

async function viaAuthority(
  a: Authority,
  identity: string,
  timeoutMs: number,
  log?: (line: string) => void,
): Promise<ActingRight> {
  let handoff: HandoffHandle | null = null;
  let leader: LeaderHandle | null = null;
  try {
    handoff = await a.requestHandoff(identity);
    leader = await a.campaign(identity);
    if (!(await leader.waitForLeadership(200))) {
      const current = await a.leader().catch(() => null);
      log?.(
        `waiting for ${current ? `the leader (${current.identity})` : 'the reconcilers'} to step aside (up to ${Math.round(timeoutMs / 1000)} s)…`,
      );
      if (!(await leader.waitForLeadership(timeoutMs))) {
        const still = await a.leader().catch(() => null);
        throw new RegionctlError(
          'E_LOCK_HELD',
          `${still ? `'${still.identity}' (leader since ${still.since})` : 'another party'} did not step aside within ${Math.round(timeoutMs / 1000)} s`,
          'a reconciler steps aside between passes, never inside a transition: wait for the running transition (`regionctl events`) and try again',
        );
      }
    }
  } catch (e) {
    await leader?.resign().catch(() => {});
    await handoff?.release().catch(() => {});
    throw e;
  }
  const l = leader;
  const h = handoff;
  return {
    identity,
    leader: l,
    authority: a,
    async release() {
      await l.resign().catch(() => {});
      await h.release().catch(() => {});
    },
  };
}

async function viaLock(o: AcquireOptions, identity: string, timeoutMs: number): Promise<ActingRight> {
  const target = controlTarget(o.spec, o.specDir);
  // First the request (other commands queue on it), then the right itself.
  const request = await acquireLeaderLock(target, HANDOFF_LOCK, { wait: true, timeoutMs });
  let lock: LeaderLock;
  try {
    const first = await tryAcquireLeaderLock(target, RECONCILE_LOCK, { wait: false });
    if (first.acquired) lock = first.lock;
    else {
      o.log?.(
        `waiting for ${describeHolder(RECONCILE_LOCK, first.holder)} to step aside (up to ${Math.round(timeoutMs / 1000)} s)…`,
      );
      lock = await acquireLeaderLock(target, RECONCILE_LOCK, { wait: true, timeoutMs });
    }
  } catch (e) {
    await request.release();
    throw e;
  }
  return {
    identity,
    leader: null,
    authority: null,
    async release() {
      await lock.release();
      await request.release();
    },
  };
}

/** Run `fn` with the right, always giving it back (and never leaving a process hanging). */
export async function withActingRight<T>(o: AcquireOptions, fn: (r: ActingRight) => Promise<T>): Promise<T> {
  const r = await acquireActingRight(o);
  try {
    return await fn(r);
  } finally {
    await r.release();
  }
}
