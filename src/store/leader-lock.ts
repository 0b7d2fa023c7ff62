/**
 * The leader lock: a session-level advisory lock held on a dedicated connection to the
 * control store. If the holder dies, its connection dies and the lock is released by
 * the server — no lease to expire, no stale lock file.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { RegionctlError } from '../errors.js';
import { connect, type Target } from '../sql/connect.js';

export interface LeaderLock {
  name: string;
  release(): Promise<void>;
  /** Resolves if the lock's connection is lost (the lock is then gone). */
  lost: Promise<void>;
}

export interface LockHolder {
  pid: number;
  applicationName: string;
  clientAddr: string | null;
  since: string;
}

export function lockKey(name: string): bigint {
  return createHash('sha256').update(`regionctl:${name}`).digest().readBigInt64BE(0);
}

async function holder(c: pg.Client, key: bigint): Promise<LockHolder | null> {
  // A bigint advisory lock is keyed by classid (high 32 bits) and objid (low 32 bits).
  const hi = Number(BigInt.asUintN(64, key) >> 32n);
  const lo = Number(BigInt.asUintN(64, key) & 0xffffffffn);
  const r = await c.query(
    `SELECT a.pid, a.application_name, a.client_addr::text AS client_addr, a.backend_start
       FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1`,
    [hi, lo],
  );
  const row = r.rows[0];
  if (!row) return null;
  return {
    pid: row.pid,
    applicationName: row.application_name,
    clientAddr: row.client_addr,
    since: row.backend_start instanceof Date ? row.backend_start.toISOString() : String(row.backend_start),
  };
}

export async function acquireLeaderLock(
  target: Target,
  name: string,
  opts: { wait: boolean; timeoutMs?: number; applicationName?: string },
): Promise<LeaderLock> {
  const c = await connect(target, {
    applicationName: opts.applicationName ?? `regionctl-${name}`,
    statementTimeoutMs: 0,
  });
  const key = lockKey(name);
  const deadline = Date.now() + (opts.timeoutMs ?? 0);
  for (;;) {
    const got = (await c.query('SELECT pg_try_advisory_lock($1::bigint) AS ok', [key.toString()])).rows[0].ok;
    if (got) break;
    if (!opts.wait || Date.now() >= deadline) {
      const h = await holder(c, key);
      await c.end().catch(() => {});
      throw new RegionctlError(
        'E_LOCK_HELD',
        h
          ? `another regionctl ${name} holds the leader lock (pid ${h.pid} on the control store, ${h.applicationName}${h.clientAddr ? ` from ${h.clientAddr}` : ''}, connected since ${h.since})`
          : `another regionctl ${name} holds the leader lock`,
        'wait for it to finish, or stop it; the lock is released automatically when its process dies',
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  let released = false;
  const lost = new Promise<void>((resolve) => {
    c.on('end', () => {
      if (!released) resolve();
    });
    c.on('error', () => resolve());
  });
  return {
    name,
    lost,
    async release() {
      if (released) return;
      released = true;
      await c.query('SELECT pg_advisory_unlock($1::bigint)', [key.toString()]).catch(() => {});
      await c.end().catch(() => {});
    },
  };
}
