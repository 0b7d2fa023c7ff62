/**
 * verify throughput: the same table of ~`BENCH_VERIFY_MB` MB (default 300) on two regions
 * of a private lab, compared by diffTable (the engine of `regionctl verify`) — identical,
 * then with 100 rows changed on one side (found by bisection, fetched alone) — at two
 * chunk sizes. MB/s is the table's size on the primary over the wall time; each side
 * reads its own copy at the same time. Then `verifyTopology` end to end on the lab's
 * replicated demo tables.
 */
import type pg from 'pg';
import type { RegionsSpec } from '../src/spec/schema.js';
import { connect, regionTarget } from '../src/sql/connect.js';
import { diffTable } from '../src/verify/diff.js';
import { verifyTopology } from '../src/verify/verify.js';
import { benchLab, shiftedSpec } from './bench-lab.js';

const STATE = '/tmp/regionctl-bench-verify';

function twoRegions(): RegionsSpec {
  const spec = shiftedSpec(5500, STATE);
  spec.regions = spec.regions.filter((r) => r.name !== 'ap-southeast-1');
  spec.channels = spec.channels.filter((c) => c.to !== 'ap-southeast-1');
  if (spec.replication.residency) spec.replication.residency = [];
  return spec;
}

// Deterministic content, so both regions hold the same rows without replicating them.
const DDL = `CREATE TABLE IF NOT EXISTS public.bench_verify (
  id bigint PRIMARY KEY, customer_id bigint NOT NULL, total_cents integer NOT NULL,
  status text NOT NULL, note text NOT NULL, created_at timestamptz NOT NULL)`;
const FILL = `INSERT INTO public.bench_verify
  SELECT g, g % 10007, (g::bigint * 7919) % 100000, (ARRAY['new','paid','shipped'])[1 + g % 3],
         repeat(md5(g::text), 3), '2026-01-01'::timestamptz + g * interval '1 second'
    FROM generate_series(1, $1::bigint) g`;

const MB = 1024 * 1024;

if (import.meta.url === `file://${process.argv[1]}`) {
  const targetMb = Number(process.env.BENCH_VERIFY_MB ?? 300);
  // ~185 bytes per row on disk with this shape.
  const rows = Math.round((targetMb * MB) / 185);
  const spec = twoRegions();
  const lab = await benchLab(spec, STATE);
  const clients: pg.Client[] = [];
  try {
    const open = async (region: string) => {
      const c = await connect(regionTarget(spec, region, lab.specDir), { statementTimeoutMs: 0 });
      clients.push(c);
      return c;
    };
    const us = await open('us-east-1');
    const eu = await open('eu-west-1');
    const t0 = performance.now();
    await Promise.all(
      [us, eu].map(async (c) => {
        await c.query(DDL);
        await c.query(FILL, [rows]);
        await c.query('VACUUM ANALYZE public.bench_verify');
      }),
    );
    const size = Number((await us.query("SELECT pg_table_size('public.bench_verify') AS s")).rows[0].s);
    console.log(
      `table: ${rows} rows, ${(size / MB).toFixed(0)} MB per region (loaded in ${((performance.now() - t0) / 1000).toFixed(0)} s)`,
    );
    const runs: { label: string; chunk: number }[] = [
      { label: 'identical', chunk: 10_000 },
      { label: 'identical', chunk: 50_000 },
    ];
    for (const r of runs) {
      const d = await diffTable(us, eu, 'public.bench_verify', { chunkRows: r.chunk });
      if (!d.equal) throw new Error('identical tables reported different');
      console.log(
        `verify ${r.label}, chunk ${r.chunk}: ${(d.durationMs / 1000).toFixed(1)} s, ${(size / MB / (d.durationMs / 1000)).toFixed(1)} MB/s, ${d.chunks} chunks`,
      );
    }
    // 100 rows changed on the secondary, spread over the table.
    const step = Math.floor(rows / 100);
    await eu.query('UPDATE public.bench_verify SET status = $1 WHERE id % $2 = 0 AND id <= $3', [
      'changed',
      step,
      step * 100,
    ]);
    for (const chunk of [10_000, 50_000]) {
      const d = await diffTable(us, eu, 'public.bench_verify', { chunkRows: chunk, fetchRows: true });
      console.log(
        `verify 100 changed rows, chunk ${chunk}: ${(d.durationMs / 1000).toFixed(1)} s, ${(size / MB / (d.durationMs / 1000)).toFixed(1)} MB/s, found ${d.rows.length} rows in ${d.ranges.length} ranges`,
      );
      if (d.rows.length !== 100) throw new Error(`expected 100 differing rows, found ${d.rows.length}`);
    }
    // End to end on the replicated demo tables (small): the fixed cost of a verify run.
    await us.query(
      "INSERT INTO public.orders (customer_id, total_cents, status) SELECT g % 100, g, 'new' FROM generate_series(1, 100000) g",
    );
    await new Promise((r) => setTimeout(r, 5000));
    const v = await verifyTopology(spec, lab.specDir, { store: null, settleTimeoutMs: 10_000 });
    console.log(
      `verifyTopology (demo tables, ${(v.bytes / MB).toFixed(1)} MB on 1 channel): ${v.ok ? 'ok' : 'DIFFERS'} in ${(v.durationMs / 1000).toFixed(1)} s`,
    );
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
    await lab.stop();
  }
}
