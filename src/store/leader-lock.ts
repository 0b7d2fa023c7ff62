/**
 * The leader lock: a session-level advisory lock held on a dedicated connection to the
 * control store. If the holder dies, its connection dies and the server releases the
 * lock — no lease to expire, no stale lock file.
 *
 * The holder learns that it lost the lock (its connection was terminated or broke)
 * through `lost` / `onLost`; an idle connection only notices that when it next talks
 * to the server, so the lock pings every `checkIntervalMs`. A holder cut off by a
 * network partition may keep the lock on the server side until TCP gives up on its
 * session: that delays a takeover, it never lets two processes hold the lock at once.
 * Between the server dropping the session and the holder's next ping, the holder may
 * still believe it leads: transitions therefore also compare-and-set the topology
 * epoch in the store (Store.setTopology).
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type pg from 'pg';
import { RegionctlError } from '../errors.js';
import { connect, type Target } from '../sql/connect.js';

export interface LeaderLock {
  name: string;
  /** Releases the lock and closes its connection. Idempotent. */
  release(): Promise<void>;
  /** Resolves when the lock is lost without release() (its connection died). */
  lost: Promise<void>;
  /** Calls `cb` once when the lock is lost (immediately if it already was). */
  onLost(cb: () => void): void;
  /** Who this process is, as other processes are told when they are refused. */
  holderInfo: LockHolder;
}

export interface LockHolder {
  /** Backend pid on the control store (pg_terminate_backend it to break the lock). */
  pid: number;
  /** application_name of the holder: `regionctl-<name> <host> pid <os pid>`. */
  applicationName: string;
  /** Host and OS pid parsed from applicationName, when the holder is a regionctl. */
  host: string | null;
  processPid: number | null;
  clientAddr: string | null;
  /** When the holder connected (it takes the lock right after): ISO timestamp. */
  since: string;
}

export type LockAttempt =
  | { acquired: true; lock: LeaderLock }
  | { acquired: false; holder: LockHolder | null };

export interface LockOptions {
  /** Keep trying until timeoutMs (default: forever) instead of giving up at once. */
  wait: boolean;
  timeoutMs?: number;
  /** Overrides the application_name that identifies the holder. */
  applicationName?: string;
  /** How often the held lock checks its connection (ms, default 2000). */
  checkIntervalMs?: number;
  /** Pause between attempts in wait mode (ms, default 200). */
  retryIntervalMs?: number;
}

/** Advisory lock keys are per database: the same name in two control stores never collides. */
export function lockKey(name: string): bigint {
  return createHash('sha256').update(`regionctl:${name}`).digest().readBigInt64BE(0);
}

function defaultApplicationName(name: string): string {
  // application_name is cut at 63 bytes by the server; the pid matters more than the host.
  const host = hostname().slice(0, 30);
  return `regionctl-${name} ${host} pid ${process.pid}`;
}

const APP_NAME = /^regionctl-\S+ (\S+) pid (\d+)$/;

/** Who holds the lock `key` in the current database, or null (released meanwhile). */
export async function lockHolder(c: pg.ClientBase, key: bigint): Promise<LockHolder | null> {
  // A bigint advisory lock is keyed by classid (high 32 bits) and objid (low 32 bits), objsubid 1.
  const u = BigInt.asUintN(64, key);
  const r = await c.query(
    `SELECT a.pid, a.application_name, a.client_addr::text AS client_addr, a.backend_start
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid::bigint = $1 AND l.objid::bigint = $2`,
    [Number(u >> 32n), Number(u & 0xffffffffn)],
  );
  const row = r.rows[0];
  if (!row) return null;
  const m = APP_NAME.exec(row.application_name ?? '');
  return {
    pid: row.pid,
    applicationName: row.application_name,
    host: m?.[1] ?? null,
    processPid: m?.[2] ? Number(m[2]) : null,
    clientAddr: row.client_addr,
    since: row.backend_start instanceof Date ? row.backend_start.toISOString() : String(row.backend_start),
  };
}

/** "apply already running since 12:03:01 (pid 4242 on host ci-7; backend 917 on the control store)" */
export function describeHolder(name: string, h: LockHolder | null): string {
  if (!h) return `another regionctl ${name} holds the leader lock (it was released just now: try again)`;
  const since = h.since.length >= 19 ? h.since.slice(11, 19) : h.since;
  const who =
    h.host && h.processPid !== null
      ? `pid ${h.processPid} on host ${h.host}; backend pid ${h.pid} on the control store`
      : `backend pid ${h.pid} on the control store, ${h.applicationName}${h.clientAddr ? ` from ${h.clientAddr}` : ''}`;
  return `${name} already running since ${since} UTC (${who})`;
}

/**
 * One attempt (or, with wait, attempts until timeoutMs) at the lock. Never throws for
 * a held lock: a standby reconciler reports the holder and tries again later.
 */
export async function tryAcquireLeaderLock(
  target: Target,
  name: string,
  opts: LockOptions,
): Promise<LockAttempt> {
  const applicationName = opts.applicationName ?? defaultApplicationName(name);
  const c = await connect(target, { applicationName, statementTimeoutMs: 0 });
  const key = lockKey(name);
  const deadline = opts.wait ? Date.now() + (opts.timeoutMs ?? Number.POSITIVE_INFINITY) : 0;
  try {
    for (;;) {
      const got = (await c.query('SELECT pg_try_advisory_lock($1::bigint) AS ok', [key.toString()])).rows[0]
        ?.ok;
      if (got) break;
      if (!opts.wait || Date.now() >= deadline) {
        const holder = await lockHolder(c, key);
        await c.end().catch(() => {});
        return { acquired: false, holder };
      }
      await new Promise((r) => setTimeout(r, Math.min(opts.retryIntervalMs ?? 200, deadline - Date.now())));
    }
  } catch (e) {
    await c.end().catch(() => {});
    throw e;
  }
  const self = (
    await c.query(
      'SELECT pg_backend_pid() AS pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()',
    )
  ).rows[0];
  const m = APP_NAME.exec(applicationName);
  const holderInfo: LockHolder = {
    pid: self?.pid ?? 0,
    applicationName,
    host: m?.[1] ?? null,
    processPid: m?.[2] ? Number(m[2]) : null,
    clientAddr: null,
    since: self?.backend_start instanceof Date ? self.backend_start.toISOString() : new Date().toISOString(),
  };
  return { acquired: true, lock: holdLock(c, name, key, holderInfo, opts.checkIntervalMs ?? 2000) };
}

function holdLock(
  c: pg.Client,
  name: string,
  key: bigint,
  holderInfo: LockHolder,
  checkMs: number,
): LeaderLock {
  let released = false;
  let isLost = false;
  let resolveLost: () => void = () => {};
  const lost = new Promise<void>((r) => {
    resolveLost = r;
  });
  const callbacks: (() => void)[] = [];
  const markLost = () => {
    if (released || isLost) return;
    isLost = true;
    clearInterval(timer);
    resolveLost();
    for (const cb of callbacks.splice(0)) cb();
    c.end().catch(() => {});
  };
  c.on('end', markLost);
  c.on('error', markLost);
  let pinging = false;
  const timer = setInterval(() => {
    if (pinging) return;
    pinging = true;
    // A partition leaves a query hanging; give up on the connection after a while.
    const hung = setTimeout(markLost, Math.max(checkMs * 2, 5000));
    c.query('SELECT 1')
      .catch(markLost)
      .finally(() => {
        clearTimeout(hung);
        pinging = false;
      });
  }, checkMs);
  // The lock must not keep a finished CLI process alive.
  timer.unref();
  return {
    name,
    lost,
    holderInfo,
    onLost(cb) {
      if (isLost) cb();
      else callbacks.push(cb);
    },
    async release() {
      if (released) return;
      released = true;
      clearInterval(timer);
      if (!isLost) await c.query('SELECT pg_advisory_unlock($1::bigint)', [key.toString()]).catch(() => {});
      await c.end().catch(() => {});
    },
  };
}

/** The lock, or E_LOCK_HELD saying who holds it. */
export async function acquireLeaderLock(
  target: Target,
  name: string,
  opts: LockOptions,
): Promise<LeaderLock> {
  const a = await tryAcquireLeaderLock(target, name, opts);
  if (a.acquired) return a.lock;
  throw new RegionctlError(
    'E_LOCK_HELD',
    describeHolder(name, a.holder),
    opts.wait
      ? `it did not finish within ${opts.timeoutMs ?? 0} ms; wait for it, or stop it (the lock is released when its process dies)`
      : 'wait for it to finish, or stop it; the lock is released automatically when its process dies',
  );
}
