import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DEMO_TABLES, installDemoSchema } from '../../src/lab/demo-schema.js';
import type { RegionsSpec } from '../../src/spec/schema.js';
import { connect } from '../../src/sql/connect.js';
import { type TestTopology, testTopology } from '../support/topology.js';

describe('demo schema', () => {
  let topo: TestTopology;
  beforeAll(async () => {
    topo = await testTopology('lab_demo_schema');
  });
  afterAll(() => topo?.close());

  it('is present on every region', async () => {
    for (const r of topo.spec.regions) {
      const c = await topo.client(r.name);
      const res = await c.query<{ t: string }>(
        `SELECT schemaname || '.' || tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`,
      );
      expect(res.rows.map((x) => x.t)).toEqual(Object.keys(DEMO_TABLES).sort());
    }
  });

  it('is idempotent', async () => {
    await installDemoSchema(topo.spec, topo.specDir, 'us-east-1', { stateDir: topo.stateDir });
    const c = await topo.client('us-east-1');
    const res = await c.query('SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = $1', ['public']);
    expect(res.rows[0].n).toBe(Object.keys(DEMO_TABLES).length);
  });

  it('lets the application role write with its generated password', async () => {
    const role = topo.spec.applicationRoles[0]!;
    const r = topo.spec.regions[0]!;
    const app = await connect({
      endpoint: {
        ...r.endpoint,
        user: role,
        password: { file: join(topo.stateDir, 'secrets', `${role}.password`) },
      },
      database: topo.spec.database,
      specDir: topo.specDir,
      label: 'app',
    });
    try {
      const ins = await app.query(
        'INSERT INTO public.orders (customer_id, total_cents) VALUES (1, 100) RETURNING id',
      );
      expect(Number(ins.rows[0].id)).toBeGreaterThan(0);
      await app.query("INSERT INTO public.sessions (customer_id, token, expires_at) VALUES (1, 't', now())");
    } finally {
      await app.end();
    }
  });

  it('matches the replication section of regions.yaml', () => {
    const spec = parse(readFileSync(join(import.meta.dirname, '../../regions.yaml'), 'utf8')) as RegionsSpec;
    const inSpec = [
      ...spec.replication.tables,
      ...(spec.replication.exclude ?? []).map((e) => e.table),
      ...(spec.replication.pinned ?? []).map((p) => p.table),
    ].sort();
    expect(inSpec).toEqual(Object.keys(DEMO_TABLES).sort());
  });
});
