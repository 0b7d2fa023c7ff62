/**
 * Rejoin cost against divergence, not size: two regions holding ~`BENCH_REJOIN_MB` MB
 * (default 1024) of orders, a failover that leaves ~100 divergent rows on the old primary
 * (and ~100 new writes on the new one), then `rejoin` (repair by key) timed against
 * `rejoin --full` (copy everything) on the same data. Target: at least 10× faster.
 */
import { join } from 'node:path';
import { runFailover } from '../src/failover/failover.js';
import { killRegion, startRegion } from '../src/lab/lab.js';
import { runRejoin } from '../src/rejoin/rejoin.js';
import type { RegionsSpec } from '../src/spec/schema.js';
import { connect, controlTarget, regionTarget } from '../src/sql/connect.js';
import { openStore, type Store } from '../src/store/store.js';
import { benchLab, shiftedSpec } from './bench-lab.js';

const STATE = '/tmp/regionctl-bench-rejoin';

function twoRegions(): RegionsSpec {
  const spec = shiftedSpec(6500, STATE);
  spec.regions = spec.regions.filter((r) => r.name !== 'ap-southeast-1');
  spec.channels = spec.channels.filter((c) => c.to !== 'ap-southeast-1');
  if (spec.replication.residency) spec.replication.residency = [];
  spec.failover.fencing = [{ method: 'sql' }];
  return spec;
}

async function diverge(
  spec: RegionsSpec,
  specDir: string,
  store: Store,
  from: string,
  to: string,
): Promise<void> {
  const a = await connect(regionTarget(spec, from, specDir));
  const b = await connect(regionTarget(spec, to, specDir));
  try {
    const sub = `rc_sub_${from.replaceAll('-', '_')}__${to.replaceAll('-', '_')}`;
    await b.query(`ALTER SUBSCRIPTION ${sub} DISABLE`);
    await new Promise((r) => setTimeout(r, 1000));
    await a.query(
      "INSERT INTO public.orders (customer_id, total_cents, status) SELECT 1, g, 'diverged' FROM generate_series(1, 100) g",
    );
  } finally {
    await a.end();
    await b.end();
  }
  await killRegion(spec, from, { specDir, stateDir: STATE });
  await runFailover({ spec, specDir, store, log: () => {}, force: true, trigger: 'bench', to });
  const c = await connect(regionTarget(spec, to, specDir));
  await c.query(
    "INSERT INTO public.orders (customer_id, total_cents, status) SELECT 2, g, 'after' FROM generate_series(1, 100) g",
  );
  await c.end();
  await startRegion(spec, from, { specDir, stateDir: STATE });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const mb = Number(process.env.BENCH_REJOIN_MB ?? 1024);
  const spec = twoRegions();
  const lab = await benchLab(spec, STATE);
  const store = await openStore(controlTarget(spec, lab.specDir));
  try {
    // Data before the channel exists would need a second copy; load it on both sides
    // through replication instead: insert on the primary, wait until applied.
    const p = await connect(regionTarget(spec, 'us-east-1', lab.specDir), { statementTimeoutMs: 0 });
    const rowBytes = 1000;
    const rows = Math.round((mb * 1024 * 1024) / rowBytes);
    const t0 = performance.now();
    for (let done = 0; done < rows; done += 200_000) {
      await p.query(
        `INSERT INTO public.orders (customer_id, total_cents, status)
         SELECT g % 1000, g % 100000, repeat(md5(g::text), ${Math.floor(rowBytes / 32)}) FROM generate_series(1, $1) g`,
        [Math.min(200_000, rows - done)],
      );
    }
    const size = (await p.query("SELECT pg_total_relation_size('public.orders') AS b")).rows[0].b;
    const eu = await connect(regionTarget(spec, 'eu-west-1', lab.specDir), { statementTimeoutMs: 0 });
    for (;;) {
      const n = (await eu.query('SELECT count(*)::int n FROM public.orders')).rows[0].n;
      if (n >= rows) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    console.log(
      `loaded ${rows} rows (${(Number(size) / 1024 ** 2).toFixed(0)} MiB) and replicated in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );
    await p.end();
    await eu.end();

    await diverge(spec, lab.specDir, store, 'us-east-1', 'eu-west-1');
    const keys = await runRejoin({
      spec,
      specDir: lab.specDir,
      store,
      region: 'us-east-1',
      full: false,
      log: () => {},
      reportDir: join(STATE, 'reports'),
    });
    console.log(
      `rejoin (repair by key): ${keys.durationMs} ms, ${keys.repairedRows} rows repaired, ${keys.lostTransactions} lost transaction(s) reported`,
    );

    await diverge(spec, lab.specDir, store, 'eu-west-1', 'us-east-1');
    const full = await runRejoin({
      spec,
      specDir: lab.specDir,
      store,
      region: 'eu-west-1',
      full: true,
      log: () => {},
      reportDir: join(STATE, 'reports'),
    });
    console.log(`rejoin --full (copy everything): ${full.durationMs} ms, ${full.repairedRows} rows copied`);
    console.log(`speed-up: ${(full.durationMs / keys.durationMs).toFixed(1)}× (target ≥ 10×)`);
  } finally {
    await store.close();
    await lab.stop();
  }
}
