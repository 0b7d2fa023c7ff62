/**
 * Validate benchmarks (figures only, no assertions):
 *  1. in-process: loadSpecFromString on a generated 200-region spec (target p95 < 100 ms);
 *  2. cold start: `node dist/src/cli/main.js validate --spec regions.yaml` (target p95 < 300 ms).
 * Run: npm run build && node dist/bench/validate.js
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadSpecFromString } from '../src/spec/load.js';

const root = fileURLToPath(
  new URL(existsSync(new URL('../../package.json', import.meta.url)) ? '../..' : '..', import.meta.url),
);

/** A valid spec: one primary, n - 1 secondaries with a channel each, residency and filters. */
export function generateSpec(n: number): string {
  const out: string[] = [
    'version: 1',
    'name: bench',
    'database: shop',
    'applicationRoles: [app, reporting]',
    'regions:',
  ];
  const name = (i: number) => `region-${i}`;
  for (let i = 0; i < n; i++) {
    out.push(
      `  - name: ${name(i)}`,
      `    role: ${i === 0 ? 'primary' : 'secondary'}`,
      `    location: { lat: ${((i * 7) % 180) - 90}, lon: ${((i * 13) % 360) - 180} }`,
      '    endpoint:',
      `      host: db-${i}.internal`,
      '      port: 5432',
      '      user: regionctl',
      '      password: { env: PGPASSWORD }',
      `    failover: { candidate: ${i % 4 !== 3}, priority: ${i + 1} }`,
    );
  }
  out.push(
    'controlStore: { host: control.internal, port: 5432, database: regionctl, user: regionctl, password: { env: PGPASSWORD } }',
    'channels:',
  );
  for (let i = 1; i < n; i++) {
    out.push(
      '  - from: region-0',
      `    to: ${name(i)}`,
      `    rpo: { alertSeconds: ${10 + (i % 20)}, failoverMaxLagSeconds: ${120 + i} }`,
    );
    if (i % 4 === 3)
      out.push(
        '    filters:',
        '      rows: [{ table: public.orders, where: "status <> \'draft\' AND total > 0" }]',
        '      columns: [{ table: public.customers, columns: [id, name, region] }]',
      );
  }
  const allowed = [
    name(0),
    ...Array.from({ length: n - 1 }, (_, k) => name(k + 1)).filter((_, k) => (k + 1) % 4 !== 3),
  ];
  out.push(
    'replication:',
    '  tables: [public.customers, public.orders, public.order_items, public.products]',
    '  exclude: [{ table: public.sessions, reason: sign in again }]',
    '  pinned: [{ table: public.payment_tokens, region: region-0, reason: PCI scope }]',
    '  residency:',
    '    - name: restricted',
    '      table: public.customers',
    `      rows: "region = 'restricted'"`,
    `      allowedRegions: [${allowed.join(', ')}]`,
    'failover:',
    '  mode: automatic',
    '  probe: { intervalSeconds: 1, failureThreshold: 3, timeoutMs: 1000 }',
    '  fencing: [{ method: sql }]',
    'heartbeat: { intervalSeconds: 1 }',
    'dns:',
    '  provider: route53',
    '  zone: db.example.com',
    '  ttl: 5',
    '  primaryRecord: primary.db.example.com',
    '  route53: { hostedZoneId: Z123 }',
    '  readRecords:',
    ...Array.from({ length: n }, (_, i) => `    ${name(i)}: read.${name(i)}.db.example.com`),
  );
  return `${out.join('\n')}\n`;
}

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function report(label: string, samples: number[], target: number): void {
  const min = Math.min(...samples);
  const p50 = percentile(samples, 50);
  const p95 = percentile(samples, 95);
  const verdict = p95 < target ? 'OK' : 'OVER TARGET';
  console.log(
    `${label.padEnd(44)} n=${String(samples.length).padStart(3)}  min ${min.toFixed(1).padStart(6)} ms  p50 ${p50.toFixed(1).padStart(6)} ms  p95 ${p95.toFixed(1).padStart(6)} ms  (target < ${target} ms: ${verdict})`,
  );
}

function benchInProcess(): void {
  const text = generateSpec(200);
  const first = loadSpecFromString(text, 'bench.yaml');
  if (!first.ok) {
    console.error(first.diagnostics.slice(0, 5));
    throw new Error('the generated 200-region spec should be valid');
  }
  for (let i = 0; i < 5; i++) loadSpecFromString(text, 'bench.yaml');
  const samples: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    loadSpecFromString(text, 'bench.yaml');
    const c = process.cpuUsage(c0);
    samples.push(performance.now() - t0);
    cpu.push((c.user + c.system) / 1000);
  }
  console.log(`200-region spec: ${text.length} bytes, ${text.split('\n').length} lines`);
  report('validate 200 regions, in-process (wall)', samples, 100);
  // CPU time is what the validator costs; wall time also counts waiting for a busy machine.
  report('validate 200 regions, in-process (cpu)', cpu, 100);
}

function benchColdStart(): void {
  const cli = `${root}/dist/src/cli/main.js`;
  if (!existsSync(cli)) {
    console.log(`cold start: skipped (${cli} missing; run npm run build)`);
    return;
  }
  const samples: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [cli, 'validate', '--spec', 'regions.yaml'], {
      cwd: root,
      encoding: 'utf8',
    });
    samples.push(performance.now() - t0);
    if (r.status !== 0) throw new Error(`regionctl validate failed: ${r.stdout}${r.stderr}`);
  }
  const t0 = performance.now();
  spawnSync(process.execPath, ['-e', '0']);
  const bare = performance.now() - t0;
  report('cold start: regionctl validate regions.yaml', samples, 300);
  console.log(`(bare \`node -e 0\` on this machine: ${bare.toFixed(1)} ms)`);
}

benchInProcess();
benchColdStart();
