/**
 * Sequences are not replicated. After a failover the new primary must hand out no value
 * the old one already handed out — including a free-standing sequence (owned by no
 * column) that feeds a column through its DEFAULT, drawn 200 000 times just before the
 * kill, with no reconciler running to observe it.
 */
import { describe, expect, it } from 'vitest';
import { runFailover } from '../../src/failover/failover.js';
import { FREE_SEQUENCE, installRealisticSchema, REALISTIC_TABLES } from '../../src/lab/realistic-schema.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore } from '../../src/store/store.js';
import { applySpec, fastFailover } from '../support/failover.js';
import { privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

describe('sequences after a failover', () => {
  it('a free-standing sequence drawn 200 000 times before the kill does not collide on the new primary', async () => {
    const lab = await privateLab('seq_free', (spec) => {
      fastFailover(spec);
      spec.replication.tables.push(...REALISTIC_TABLES);
    });
    const store = await openStore(controlTarget(lab.spec, lab.specDir));
    try {
      for (const r of ['us-east-1', 'eu-west-1', 'ap-southeast-1'])
        await installRealisticSchema(await lab.client(r), lab.spec.applicationRoles);
      await applySpec(lab, store);
      const us = await lab.client('us-east-1');
      const eu = await lab.client('eu-west-1');
      await us.query(`SELECT count(nextval('${FREE_SEQUENCE}')) FROM generate_series(1, 200000)`);
      const a = await us.query("INSERT INTO rs.accounts (name) VALUES ('seq') RETURNING id");
      const inv = await us.query(
        'INSERT INTO rs.invoices (account_id, total) VALUES ($1, 1) RETURNING ticket',
        [a.rows[0].id],
      );
      const lastTicket = BigInt(inv.rows[0].ticket);
      expect(lastTicket).toBeGreaterThan(200000n);
      await waitFor(
        async () =>
          (await eu.query('SELECT count(*)::int n FROM rs.invoices WHERE ticket = $1', [String(lastTicket)]))
            .rows[0].n === 1,
        { what: 'the invoice on eu-west-1', timeoutMs: 20_000 },
      );
      await lab.kill('us-east-1');
      const out = await runFailover({
        spec: lab.spec,
        specDir: lab.specDir,
        store,
        log: () => {},
        force: true,
        trigger: 'test',
        to: 'eu-west-1',
      });
      const next = BigInt((await eu.query(`SELECT nextval('${FREE_SEQUENCE}') AS v`)).rows[0].v);
      expect(next).toBeGreaterThan(lastTicket);
      const steps = await store.failoverSteps(out.eventId);
      const adv = steps.find((s) => s.name === 'advance-sequences')?.detail as {
        advanced?: Record<string, string>;
      };
      expect(BigInt(adv.advanced?.[FREE_SEQUENCE] ?? '0')).toBeGreaterThan(lastTicket);
    } finally {
      await store.close();
      await lab.close();
    }
  }, 120_000);
});
