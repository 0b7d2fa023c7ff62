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
