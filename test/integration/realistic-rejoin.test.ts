/**
 * Rejoin on a realistic schema (src/lab/realistic-schema.ts): foreign keys with CASCADE,
 * RESTRICT and a deferrable one, an audit trigger, a generated column, identity columns,
 * a partitioned table, a keyless table, TOASTed values. The old primary loses an UPDATE
 * of a parent row whose key change cascades to its children, and other writes; the
 * rejoin must report them, repair exactly them — no cascade into unchanged children, no
 * invented audit row, no failure on the generated column — and `verify` must pass.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runFailover } from '../../src/failover/failover.js';
import { installRealisticSchema, REALISTIC_TABLES, seedRealistic } from '../../src/lab/realistic-schema.js';
import { runRejoin } from '../../src/rejoin/rejoin.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore } from '../../src/store/store.js';
import { verifyTopology } from '../../src/verify/verify.js';
import { applySpec, fastFailover } from '../support/failover.js';
import { type PrivateLab, privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const REGIONS = ['us-east-1', 'eu-west-1', 'ap-southeast-1'];

async function counts(lab: PrivateLab, region: string): Promise<string> {
  const c = await lab.client(region);
  const parts: string[] = [];
  for (const t of REALISTIC_TABLES)
    parts.push(`${t}=${(await c.query(`SELECT count(*)::int n FROM ${t}`)).rows[0].n}`);
  return parts.join(' ');
}

describe('rejoin on a realistic schema', () => {
  it('repairs a lost parent UPDATE with cascading children exactly; verify passes; the report lists it', async () => {
    const lab = await privateLab('rs_rejoin', (spec) => {
      fastFailover(spec);
      spec.replication.tables.push(...REALISTIC_TABLES);
    });
    const store = await openStore(controlTarget(lab.spec, lab.specDir));
    try {
      for (const r of REGIONS) await installRealisticSchema(await lab.client(r), lab.spec.applicationRoles);
      await applySpec(lab, store);
      const us = await lab.client('us-east-1');
      const eu = await lab.client('eu-west-1');
      await seedRealistic(us, 20);
      await waitFor(async () => (await counts(lab, 'eu-west-1')) === (await counts(lab, 'us-east-1')), {
        what: 'the realistic schema replicated to eu-west-1',
        timeoutMs: 30_000,
      });
      const linesBefore = (await eu.query('SELECT count(*)::int n FROM rs.invoice_lines')).rows[0]
        .n as number;
      expect(linesBefore).toBe(60);

      // eu-west-1 stops applying: what us-east-1 writes now is lost at the failover.
      const sub = 'rc_sub_us_east_1__eu_west_1';
      await eu.query(`ALTER SUBSCRIPTION ${sub} DISABLE`);
      await waitFor(
        async () =>
          (
            await eu.query(
              'SELECT count(*)::int n FROM pg_stat_subscription WHERE subname = $1 AND pid IS NOT NULL',
              [sub],
            )
          ).rows[0].n === 0,
        { what: 'the apply worker to stop', timeoutMs: 10_000 },
      );
      await us.query('UPDATE rs.invoices SET total = total + 100 WHERE id = 1'); // trigger: audit row; generated tax
      await us.query('UPDATE rs.invoices SET id = 5000 WHERE id = 3'); // ON UPDATE CASCADE: its 3 lines follow
      await us.query("INSERT INTO rs.tags (account_id, tag, labels) VALUES (1, 'lost', '{x}')"); // keyless
      await us.query("UPDATE rs.documents SET body = repeat('z', 9000) WHERE account_id = 2"); // TOASTed
      await lab.kill('us-east-1');
      await runFailover({
        spec: lab.spec,
        specDir: lab.specDir,
        store,
        log: () => {},
        force: true,
        trigger: 'test',
        to: 'eu-west-1',
      });
      await eu.query('UPDATE rs.accounts SET credit = 1 WHERE id = 5');
      await lab.start('us-east-1');

      const reportDir = join(lab.stateDir, 'reports');
      const out = await runRejoin({
        spec: lab.spec,
        specDir: lab.specDir,
        store,
        region: 'us-east-1',
        full: false,
        log: () => {},
        reportDir,
      });
      expect(out.mode).toBe('keys');
      expect(out.lostTransactions).toBe(4);
      const failover = (await store.listFailoverEvents()).find((e) => e.kind === 'failover');
      const doc = JSON.parse(readFileSync(join(reportDir, `failover-${failover?.id}.json`), 'utf8')) as {
        transactions: { changes: { op: string; table: string }[] }[];
      };
      const changed = doc.transactions.flatMap((t) => t.changes.map((c) => `${c.op} ${c.table}`));
      expect(changed).toContain('update rs.invoices');
      expect(changed).toContain('insert rs.audit_log');
      expect(changed).toContain('insert rs.tags');

      const usAgain = await lab.client('us-east-1');
      // Invoice 3 is back with its three lines (the repair's delete did not cascade away
      // unchanged children, nor did the CASCADE of the lost UPDATE survive).
      expect(
        (await usAgain.query('SELECT count(*)::int n FROM rs.invoice_lines WHERE invoice_id = 3')).rows[0].n,
      ).toBe(3);
      expect((await usAgain.query('SELECT count(*)::int n FROM rs.invoices WHERE id = 5000')).rows[0].n).toBe(
        0,
      );
      await waitFor(async () => (await counts(lab, 'us-east-1')) === (await counts(lab, 'eu-west-1')), {
        what: 'us-east-1 holding what eu-west-1 holds',
        timeoutMs: 20_000,
      });
      const v = await verifyTopology(lab.spec, lab.specDir, { store });
      const bad = v.channels.flatMap((c) => JSON.stringify(c)).join('\n');
      expect(v.ok, bad).toBe(true);
    } finally {
      await store.close();
      await lab.close();
    }
  }, 180_000);
});
