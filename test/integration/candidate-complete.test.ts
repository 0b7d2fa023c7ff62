/**
 * A candidate whose subscription is still copying a table is not complete: promoted, the
 * table would stay partial and nothing would say so. Refused; with --force the event
 * names the table as loss. The copy is held back deterministically: a session on the
 * candidate holds a lock on the table its table-sync worker must write.
 */
import { describe, expect, it } from 'vitest';
import { runFailover } from '../../src/failover/failover.js';
import { runSwitchover } from '../../src/failover/switchover.js';
import { controlTarget } from '../../src/sql/connect.js';
import { ident } from '../../src/sql/quote.js';
import { openStore } from '../../src/store/store.js';
import { applySpec, fastFailover, labFenceHook } from '../support/failover.js';
import { privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

/** A lab whose eu-west-1 is still copying public.products (its copy held back by a lock). */
async function copyingLab(name: string) {
  const lab = await privateLab(name, fastFailover);
  const store = await openStore(controlTarget(lab.spec, lab.specDir));
  labFenceHook(lab);
  await applySpec(lab, store);
  const us = await lab.client('us-east-1');
  const eu = await lab.client('eu-west-1');
  await us.query(
    "INSERT INTO public.products (sku, name, price_cents) SELECT 'p' || g, 'p', g FROM generate_series(1, 100) g",
  );
  // Every table of the channel done copying first: only the one held back below may not be.
  await waitFor(
    async () =>
      (await eu.query("SELECT count(*)::int n FROM pg_subscription_rel WHERE srsubstate <> 'r'")).rows[0]
        .n === 0,
    { what: 'the initial copy on eu-west-1', timeoutMs: 20_000 },
  );
  const pub = (
    await us.query(
      "SELECT pubname FROM pg_publication WHERE pubname LIKE '%eu_west_1%' AND pubname LIKE 'rc_pub%'",
    )
  ).rows[0]?.pubname as string;
  const sub = (
    await eu.query(
      "SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND subname LIKE 'rc_sub_%'",
    )
  ).rows[0]?.subname as string;
  expect(pub).toBeTruthy();
  expect(sub).toBeTruthy();
  // Take products out of the channel, then put it back while its copy cannot finish.
  await us.query(`ALTER PUBLICATION ${ident(pub)} DROP TABLE public.products`);
  await eu.query(`ALTER SUBSCRIPTION ${ident(sub)} REFRESH PUBLICATION`);
  // Its rows go too, so that the copy can succeed once it may run.
  await eu.query('TRUNCATE public.products');
  const holder = await lab.client('eu-west-1');
  await holder.query('BEGIN');
  // SHARE conflicts with the copy's ROW EXCLUSIVE, not with REFRESH's own ACCESS SHARE.
  await holder.query('LOCK TABLE public.products IN SHARE MODE');
  await us.query(`ALTER PUBLICATION ${ident(pub)} ADD TABLE public.products`);
  await eu.query(`ALTER SUBSCRIPTION ${ident(sub)} REFRESH PUBLICATION WITH (copy_data = true)`);
  await waitFor(
    async () =>
      (
        await eu.query(
          "SELECT count(*)::int n FROM pg_subscription_rel WHERE srrelid = 'public.products'::regclass AND srsubstate <> 'r'",
        )
      ).rows[0].n === 1,
    { what: 'products in initial copy on eu-west-1', timeoutMs: 10_000 },
  );

  return { lab, store, us, eu, holder };
}

describe('failover candidates must be complete', () => {
  it('refuses a candidate still copying a table; --force names the table in the event', async () => {
    const { lab, store, holder } = await copyingLab('cand_copying');
    try {
      // The source dies mid-copy; the lock can go now (the copy cannot finish without it).
      await lab.kill('us-east-1');
      await holder.query('ROLLBACK');
      const base = {
        spec: lab.spec,
        specDir: lab.specDir,
        store,
        log: () => {},
        trigger: 'test',
        to: 'eu-west-1',
      };
      await expect(runFailover({ ...base, force: false })).rejects.toThrow(
        /initial copy not finished for 1 table\(s\): public\.products/,
      );
      const out = await runFailover({ ...base, force: true });
      const ev = await store.getFailoverEvent(out.eventId);
      expect(ev?.forced).toBe(true);
      expect(
        (ev?.evidence as { choice?: { loss?: { incompleteTables?: string[] } } } | undefined)?.choice?.loss,
      ).toMatchObject({
        incompleteTables: ['public.products'],
      });
    } finally {
      await store.close();
      await lab.close();
    }
  }, 120_000);

  it('switchover waits for every table to be ready, and refuses without changing anything when it is not', async () => {
    const { lab, store, us, holder } = await copyingLab('so_copying');
    try {
      const base = {
        spec: lab.spec,
        specDir: lab.specDir,
        store,
        log: () => {},
        force: false,
        trigger: 'test',
      };
      await expect(runSwitchover({ ...base, to: 'eu-west-1', catchUpTimeoutMs: 1500 })).rejects.toMatchObject(
        {
          code: 'E_SWITCHOVER_NOT_READY',
        },
      );
      expect(await store.listFailoverEvents()).toEqual([]);
      await us.query("INSERT INTO public.products (sku, name, price_cents) VALUES ('still-primary', 'p', 1)");
      // The copy finishes once the lock goes (new WAL on the primary moves the table-sync
      // worker to its end): the same switchover then runs.
      await holder.query('ROLLBACK');
      const eu = await lab.client('eu-west-1');
      await waitFor(
        async () => {
          await us.query(
            "INSERT INTO public.products (sku, name, price_cents) VALUES (gen_random_uuid()::text, 'w', 1)",
          );
          return (
            (await eu.query("SELECT count(*)::int n FROM pg_subscription_rel WHERE srsubstate <> 'r'"))
              .rows[0].n === 0
          );
        },
        { what: 'the copy of products finished', timeoutMs: 60_000, intervalMs: 500 },
      );
      const out = await runSwitchover({ ...base, to: 'eu-west-1' });
      expect((await store.getFailoverEvent(out.eventId))?.status).toBe('completed');
    } finally {
      await store.close();
      await lab.close();
    }
  }, 120_000);
});
