/**
 * The heartbeat: the primary upserts its row every interval; the row rides every channel
 * (it is in every publication), so a secondary's copy says how old its view of the
 * primary is, measured with the primary's clock only (no clock skew between hosts).
 */
import { HEARTBEAT_TABLE } from '../model/names.js';
import { literal, tableRef } from './quote.js';
import { type Statement, tx } from './statement.js';

const T = tableRef(HEARTBEAT_TABLE);

/** Idempotent: the same DDL on every region (DDL is not replicated). */
export function heartbeatDdl(): Statement[] {
  return [
    tx('CREATE SCHEMA IF NOT EXISTS "regionctl"'),
    tx(`CREATE TABLE IF NOT EXISTS ${T} (
  region text PRIMARY KEY,
  epoch bigint NOT NULL DEFAULT 0,
  seq bigint NOT NULL,
  written_at timestamptz NOT NULL
)`),
    // Applications may read it to bound the staleness of a replica they read from.
    tx('GRANT USAGE ON SCHEMA "regionctl" TO PUBLIC'),
    tx(`GRANT SELECT ON ${T} TO PUBLIC`),
    ...appliedLsnDdl(),
  ];
}

/**
 * `regionctl.applied_lsn(subscription)`: how far this region has applied its primary's
 * WAL (the subscription's `pg_replication_origin_status.remote_lsn`, in the primary's LSN
 * space), for read-your-writes in the client library. Application roles cannot read
 * replication origins or other roles' activity; this SECURITY DEFINER function, owned by
 * the role regionctl connects as, lets them ask this one question and nothing more.
 *
 * A commit advances its origin a moment before the transaction becomes visible (it
 * leaves the proc array after its commit record). So the function also waits until the
 * transaction the subscription's workers hold open at that moment has ended: a snapshot
 * taken after the call then sees everything up to the returned LSN. It returns NULL
 * (the caller tries again or reads elsewhere) when that takes longer than 250 ms.
 */
export function appliedLsnDdl(): Statement[] {
  return [
    tx(`CREATE OR REPLACE FUNCTION "regionctl"."applied_lsn"(subscription text)
RETURNS pg_lsn
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  sub oid;
  applied pg_lsn;
  pids integer[];
  xids xid[];
  deadline timestamptz := clock_timestamp() + interval '250 milliseconds';
BEGIN
  SELECT s.oid INTO sub FROM pg_subscription s
   WHERE s.subname = subscription
     AND s.subdbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database());
  IF sub IS NULL THEN RETURN NULL; END IF;
  SELECT o.remote_lsn INTO applied FROM pg_replication_origin_status o WHERE o.external_id = 'pg_' || sub;
  IF applied IS NULL THEN RETURN NULL; END IF;
  -- Read after the LSN: a transaction that moved it and is not yet visible still holds its xid.
  PERFORM pg_stat_clear_snapshot();
  SELECT array_agg(a.pid), array_agg(a.backend_xid) INTO pids, xids
    FROM pg_stat_subscription w JOIN pg_stat_activity a ON a.pid = w.pid
   WHERE w.subid = sub AND a.backend_xid IS NOT NULL;
  WHILE pids IS NOT NULL LOOP
    IF clock_timestamp() > deadline THEN RETURN NULL; END IF;
    PERFORM pg_sleep(0.0005);
    PERFORM pg_stat_clear_snapshot();
    SELECT array_agg(a.pid), array_agg(a.backend_xid) INTO pids, xids
      FROM unnest(pids, xids) AS b(pid, xid) JOIN pg_stat_activity a ON a.pid = b.pid
     WHERE a.backend_xid = b.xid;
  END LOOP;
  RETURN applied;
END
$fn$`),
    tx('GRANT EXECUTE ON FUNCTION "regionctl"."applied_lsn"(text) TO PUBLIC'),
  ];
}

function integer(name: string, v: number | bigint): string {
  if (typeof v === 'bigint' ? v < 0n : !Number.isSafeInteger(v) || v < 0) {
    throw new Error(`${name} must be a non-negative integer, got ${v}`);
  }
  return String(v);
}

/**
 * One beat. clock_timestamp(), not now(): now() is the transaction start, which would
 * understate lag by however long the writing transaction waited.
 */
export function heartbeatWriteSql(region: string, epoch: number | bigint): Statement[] {
  return [
    tx(`INSERT INTO ${T} AS h (region, epoch, seq, written_at)
VALUES (${literal(region)}, ${integer('epoch', epoch)}, 1, clock_timestamp())
ON CONFLICT (region) DO UPDATE SET epoch = EXCLUDED.epoch, seq = h.seq + 1, written_at = EXCLUDED.written_at`),
  ];
}
