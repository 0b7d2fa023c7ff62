/** The load generator against the shared lab: its ledger is exactly what the primary acknowledged. */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ledgerPath, readLedger } from '../../src/lab/ledger.js';
import { runLoad } from '../../src/lab/load.js';
import { writeZoneFile } from '../../src/lab/zone.js';
import { tableRef } from '../../src/sql/quote.js';
import { type TestTopology, testTopology } from '../support/topology.js';

describe('load generator', () => {
  let topo: TestTopology;
  beforeAll(async () => {
    topo = await testTopology('lab_load');
  });
  afterAll(() => topo?.close());

  it('ledgers every committed transaction, and every ledgered row exists on the primary', async () => {
    const stats = await runLoad({
      spec: topo.spec,
      specDir: topo.specDir,
      stateDir: topo.stateDir,
      rate: 60,
      durationSec: 2,
    });
    expect(stats.failed).toBe(0);
    expect(stats.committed).toBeGreaterThan(60);
    expect(stats.byRegion).toEqual({ 'us-east-1': stats.committed });
    expect(stats.ledgerFile).toBe(ledgerPath(topo.stateDir, topo.spec.database));

    const ledger = readLedger(topo.stateDir, { database: topo.spec.database });
    expect(ledger.length).toBe(stats.rows);
    expect(new Set(ledger.map((e) => e.txid)).size).toBe(stats.committed);
    expect(ledger.every((e) => e.commitLsnExact && e.commitLsn !== null)).toBe(true);
    expect(new Set(ledger.map((e) => e.table))).toContain('public.orders');

    const us = await topo.client('us-east-1');
    const byTable = new Map<string, string[]>();
    for (const e of ledger) {
      if (e.op !== 'insert') continue;
      byTable.set(e.table, [...(byTable.get(e.table) ?? []), e.id.slice(e.table.length + 1)]);
    }
    for (const [table, ids] of byTable) {
      const idType = table === 'public.sessions' ? 'uuid' : 'bigint';
      const r = await us.query(
        `SELECT count(*)::int AS n FROM ${tableRef(table)} WHERE id = ANY($1::${idType}[])`,
        [ids],
      );
      expect(r.rows[0].n, table).toBe(new Set(ids).size);
    }
    // Commit LSNs are real commit records of that primary, in commit order per txid.
    const lsns = ledger.map((e) => e.commitLsn!);
    const max = await us.query('SELECT pg_current_wal_lsn()::text AS l');
    const cmp = await us.query<{ ok: boolean }>(
      'SELECT bool_and(l <= $1::pg_lsn) AS ok FROM unnest($2::pg_lsn[]) l',
      [max.rows[0].l, lsns],
    );
    expect(cmp.rows[0]!.ok).toBe(true);
  });

  it('follows the DNS zone file to the current primary', async () => {
    const zone = topo.spec.dns!.file!.path;
    mkdirSync(dirname(zone), { recursive: true });
    writeZoneFile(zone, {
      version: 1,
      zone: topo.spec.dns!.zone,
      serial: 2,
      updatedAt: new Date().toISOString(),
      records: { [topo.spec.dns!.primaryRecord]: { region: 'eu-west-1' } },
    });
    const stats = await runLoad({
      spec: topo.spec,
      specDir: topo.specDir,
      stateDir: topo.stateDir,
      rate: 40,
      durationSec: 1,
    });
    expect(stats.committed).toBeGreaterThan(20);
    expect(Object.keys(stats.byRegion)).toEqual(['eu-west-1']);
    const eu = await topo.client('eu-west-1');
    const n = await eu.query('SELECT count(*)::int AS n FROM public.orders');
    expect(n.rows[0].n).toBeGreaterThan(0);
  });
});
