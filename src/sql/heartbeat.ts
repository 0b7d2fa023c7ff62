/**
 * The heartbeat: the primary writes one row per interval; it rides every channel, and
 * the secondary's copy says how old the newest change it applied is — by the primary's
 * clock only, so clock skew between hosts does not enter the lag.
 */
import { HEARTBEAT_TABLE } from '../model/names.js';
import { literal, tableRef } from './quote.js';
import { type Statement, tx } from './statement.js';

export function heartbeatDdl(): Statement[] {
  return [
    tx('CREATE SCHEMA IF NOT EXISTS regionctl'),
    tx(
      `CREATE TABLE IF NOT EXISTS ${tableRef(HEARTBEAT_TABLE)} (
         region text PRIMARY KEY,
         epoch bigint NOT NULL DEFAULT 0,
         seq bigint NOT NULL,
         written_at timestamptz NOT NULL)`,
    ),
  ];
}

export function heartbeatWriteSql(region: string, epoch: number): string {
  return `INSERT INTO ${tableRef(HEARTBEAT_TABLE)} AS h (region, epoch, seq, written_at)
          VALUES (${literal(region)}, ${Math.trunc(epoch)}, 1, clock_timestamp())
          ON CONFLICT (region) DO UPDATE SET epoch = EXCLUDED.epoch, seq = h.seq + 1, written_at = EXCLUDED.written_at`;
}
