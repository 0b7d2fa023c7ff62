/**
 * Proves the lab's server configuration is right for everything built on it: a
 * publication on one region, a subscription on another whose connection comes from the
 * spec's referenced credentials, and a row that flows — row filter included.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conninfo, regionTarget } from '../../src/sql/connect.js';
import { ident, literal } from '../../src/sql/quote.js';
import { type TestTopology, testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

describe('lab: logical replication between two lab servers', () => {
  let topo: TestTopology;
  let us: pg.Client;
  let eu: pg.Client;

  beforeAll(async () => {
    topo = await testTopology('lab_repl_smoke');
    us = await topo.client('us-east-1');
    eu = await topo.client('eu-west-1');
  });
  afterAll(async () => {
    // Drop the subscription here so the next run's fixture does not have to.
    await eu?.query('DROP SUBSCRIPTION IF EXISTS smoke_sub').catch(() => {});
    await topo?.close();
  });

  it('streams the initial copy and new rows, honouring a row filter', async () => {
    await us.query("INSERT INTO public.customers (name, email, residency) VALUES ('Ada', 'ada@x', 'us')");
    await us.query("INSERT INTO public.customers (name, email, residency) VALUES ('Bea', 'bea@x', 'eu')");
    await us.query(`CREATE PUBLICATION smoke_pub FOR TABLE public.customers WHERE (residency <> 'eu')`);
    const conn = conninfo(regionTarget(topo.spec, 'us-east-1', topo.specDir));
    await eu.query(
      `CREATE SUBSCRIPTION smoke_sub CONNECTION ${literal(conn)} PUBLICATION ${ident('smoke_pub')}
       WITH (slot_name = ${literal(`smoke_${topo.spec.database}`)})`,
    );
    await waitFor(
      async () => (await eu.query("SELECT 1 FROM public.customers WHERE name = 'Ada'")).rowCount === 1,
      { what: 'initial copy of customer Ada on eu-west-1', timeoutMs: 20_000 },
    );
    await us.query("INSERT INTO public.customers (name, email) VALUES ('Cy', 'cy@x')");
    await waitFor(
      async () => (await eu.query("SELECT 1 FROM public.customers WHERE name = 'Cy'")).rowCount === 1,
      { what: 'streamed customer Cy on eu-west-1' },
    );
    const filtered = await eu.query("SELECT count(*)::int AS n FROM public.customers WHERE residency = 'eu'");
    expect(filtered.rows[0].n).toBe(0);
  });
});
