/**
 * A new logical slot on the primary together with the snapshot it starts from: rows read
 * in that snapshot plus the changes streamed from that slot are exactly the primary's
 * content — nothing missed, nothing applied twice. The replication connection must stay
 * open (and idle) while the snapshot is in use.
 */
import pg from 'pg';
import { clientConfig, connect, type Target } from '../sql/connect.js';
import { ident, literal } from '../sql/quote.js';

export interface ExportedSnapshot {
  slot: string;
  snapshot: string;
  consistentPoint: string;
  /** A session reading the primary as of the slot's start (REPEATABLE READ). */
  reader: pg.Client;
  /** Ends the reader and the replication connection (the slot stays). */
  close(): Promise<void>;
}

export async function exportSnapshotSlot(target: Target, slot: string): Promise<ExportedSnapshot> {
  const repl = new pg.Client({
    ...clientConfig(target, { statementTimeoutMs: 0 }),
    replication: 'database',
  } as pg.ClientConfig);
  repl.on('error', () => {});
  await repl.connect();
  let reader: pg.Client | null = null;
  try {
    const r = await repl.query(`CREATE_REPLICATION_SLOT ${ident(slot)} LOGICAL pgoutput (SNAPSHOT 'export')`);
    const row = r.rows[0] as { snapshot_name: string; consistent_point: string };
    reader = await connect(target, { applicationName: 'regionctl-rejoin-reader', statementTimeoutMs: 0 });
    await reader.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await reader.query(`SET TRANSACTION SNAPSHOT ${literal(row.snapshot_name)}`);
    const rd = reader;
    return {
      slot,
      snapshot: row.snapshot_name,
      consistentPoint: row.consistent_point,
      reader: rd,
      async close() {
        await rd.query('COMMIT').catch(() => {});
        await rd.end().catch(() => {});
        await repl.end().catch(() => {});
      },
    };
  } catch (e) {
    await reader?.end().catch(() => {});
    await repl.end().catch(() => {});
    throw e;
  }
}
