/**
 * Figures on the WAN lab (issue #11 §4): regions in network namespaces behind the delay
 * relay (us-east-1↔eu-west-1 70 ms RTT, ↔ap-southeast-1 220 ms, eu-west-1↔ap-southeast-1
 * 160 ms, in-region 1 ms; the control plane in us-east-1), an etcd authority and one
 * region agent per region, built and driven by the fault suite's harness (test/chaos):
 *
 *   rto         kill -9 of the primary under load → first acknowledgement by the new primary
 *               through DNS, as the suite's independent writers saw it (checker `rtoMs`);
 *               scenario 1 end to end, a fresh lab per run (~100 s each).
 *   switchover  `regionctl switchover` back and forth under dns writers in us-east-1 and
 *               eu-west-1: the longest time without any acknowledgement (checker `maxAckGapMs`).
 *   ryw         from eu-west-1's client namespace: a routed read (regionctl/client) against
 *               the same query on a plain pool to the nearby replica, and the wait a
 *               read-your-writes token adds, idle and under the dns writers.
 *   observe     one observation pass over the 3 regions from the control plane, cold (new
 *               connections) and warm (kept connections, as `reconcile --watch` does).
 *
 *   node --import tsx bench/wan.ts [rto] [switchover] [ryw] [observe] [--json FILE]
 *
 * (all parts by default). Needs root (network namespaces, iptables) and the build
 * (`npm run build`: the harness runs dist/src/cli/main.js). Runs only through tsx: the
 * harness is loaded from test/ at run time (by a computed path, so that `tsc -p
 * tsconfig.build.json` does not pull test/ into dist/); run from dist/bench/wan.js (as
 * `bench/run-all.ts` does) it re-executes itself through tsx. Skips, exit 0, where the WAN
 * lab cannot run. Environment: BENCH_WAN_RTO_RUNS (5), BENCH_WAN_SWITCHOVERS (4),
 * BENCH_WAN_PASSES (20), BENCH_WAN_READS (1000), BENCH_WAN_PAIRS (200).
 *
 * Internally, `--client FILE` is the read-your-writes probe that runs inside a namespace.
 */
import { type ChildProcess, execFile, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import { type ReadEvent, RegionctlClient } from '../src/client/index.js';
import { appRolePasswordFile } from '../src/lab/demo-schema.js';
import { labDown } from '../src/lab/lab.js';
import { clientsNode, findNode, regionRtt, rttMatrix } from '../src/lab/wan/plan.js';
import { readWanState } from '../src/lab/wan/state.js';
import { ObserverConnections } from '../src/observe/connections.js';
import { observe } from '../src/observe/observe.js';
import { readRoutingDocument, routingDocumentPath } from '../src/routing/document.js';
import type { RegionsSpec } from '../src/spec/schema.js';
import { repoRoot } from './bench-lab.js';
import { percentile } from './stats.js';

const ROOT = repoRoot();
const SELF_TS = join(ROOT, 'bench/wan.ts');

// ---- the parts of test/chaos this bench uses (structural: see the header) ----------

type WriterMode = 'dns' | 'sticky' | { dns: number; sticky: number };
interface ChaosLab {
  readonly dir: string;
  readonly stateDir: string;
  spec: RegionsSpec;
  wanSpec: string;
  primary: string;
  startReconciler(tag?: string): ChildProcess;
  startWorkload(region: string, mode: WriterMode, tag: string): { child: ChildProcess; logFile: string };
  stop(child: ChildProcess, signal?: NodeJS.Signals): Promise<void>;
  servers(): Record<string, string>;
  dnsPrimary(): string;
  cli(args: string[], timeoutMs?: number): Promise<{ code: number; stdout: string; stderr: string }>;
  close(keep?: boolean): Promise<void>;
}
interface HarnessModule {
  ChaosLab: { create(name: string, opts: { log?: (m: string) => void }): Promise<ChaosLab> };
  chaosUnsupported(): string | undefined;
}
interface LogLine {
  t: string;
  at: number;
  mode?: string;
}
interface CheckerModule {
  loadLogs(paths: string[]): { lines: LogLine[]; malformed: number };
  check(input: {
    lines: LogLine[];
    servers: Record<string, string>;
    originalPrimary: string;
    finalPrimary: string;
    finalIds: ReadonlySet<string>;
    reportedLost: ReadonlySet<string>;
    faultAt?: number;
  }): {
    splitBrain: { acks: number; windowMs: number };
    figures: {
      acks: number;
      acksByRegion: Record<string, number>;
      maxAckGapMs: number | null;
      maxAckGap: { from: number; to: number } | null;
      rtoMs: number | null;
    };
  };
}
interface ScenarioResult {
  ok: boolean;
  violations: string[];
  originalPrimary: string;
  finalPrimary: string;
  splitBrainAcks: number;
  splitBrainWindowMs: number;
  acked: number;
  trueLost: number;
  reportedLost: number;
  silentlyLost: number;
  falselyReported: number;
  rtoMs: number | null;
  durationMs: number;
}
interface ScenariosModule {
  scenario(id: string): unknown;
  runScenario(s: unknown, log?: (m: string) => void): Promise<ScenarioResult>;
}

/** A module of test/chaos by a computed path: tsc does not follow it (test/ stays out of dist/). */
async function chaos<T>(name: 'harness' | 'checker' | 'scenarios'): Promise<T> {
  return (await import(pathToFileURL(join(ROOT, 'test/chaos', `${name}.ts`)).href)) as T;
}

// ---- helpers --------------------------------------------------------------------------

const env = (k: string, d: number) => {
  const v = Number(process.env[k]);
  return Number.isFinite(v) && v > 0 ? v : d;
};
const say = (m: string) => process.stderr.write(`wan: ${m}\n`);
const ms = (x: number | null | undefined, digits = 0) =>
  x === null || x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(digits)} ms`;
const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}
function summarize(xs: number[]): Summary {
  const ok = xs.filter((x) => Number.isFinite(x));
  return {
    n: ok.length,
    p50: percentile(ok, 50),
    p95: percentile(ok, 95),
    p99: percentile(ok, 99),
    max: ok.length ? Math.max(...ok) : Number.NaN,
  };
}
const fmt = (s: Summary, digits = 1, p = 'p99') =>
  `p50 ${ms(s.p50, digits)}, ${p} ${ms(p === 'p95' ? s.p95 : s.p99, digits)}, max ${ms(s.max, digits)} (n=${s.n})`;

/** One line per figure for the closing table. */
interface Figure {
  part: string;
  figure: string;
  value: string;
  target: string;
  verdict: 'PASS' | 'MISS' | '-';
}

// ---- read-your-writes probe (runs inside eu-west-1's client namespace) ---------------

interface ClientConfig {
  routing: string;
  region: string;
  user: string;
  passwordFile: string;
  direct: { host: string; port: number; database: string };
  reads: number;
  pairs: number;
}
interface ClientResult {
  directMs: number[];
  routedMs: number[];
  routedKinds: Record<string, number>;
  writeMs: number[];
  tokenReadMs: number[];
  waitedMs: number[];
  onReplica: number;
  noWait: number;
  readBack: number;
  reasons: Record<string, number>;
}

async function clientProbe(cfg: ClientConfig): Promise<ClientResult> {
  const password = readFileSync(cfg.passwordFile, 'utf8').trim();
  const events: ReadEvent[] = [];
  const client = new RegionctlClient({
    routing: cfg.routing,
    region: cfg.region,
    connection: { user: cfg.user, password },
    pool: { max: 4 },
    maxWaitMs: 2000,
    onRead: (e) => events.push(e),
  });
  const direct = new pg.Pool({ ...cfg.direct, user: cfg.user, password, max: 4 });
  direct.on('error', () => {});
  const out: ClientResult = {
    directMs: [],
    routedMs: [],
    routedKinds: {},
    writeMs: [],
    tokenReadMs: [],
    waitedMs: [],
    onReplica: 0,
    noWait: 0,
    readBack: 0,
    reasons: {},
  };
  try {
    if (cfg.reads > 0) {
      await client.write((c) =>
        c.query(
          "INSERT INTO public.products (sku, name, price_cents) VALUES ('wan-bench', 'wan-bench', 1) ON CONFLICT DO NOTHING",
        ),
      );
      const sql = "SELECT id, price_cents FROM public.products WHERE sku = 'wan-bench'";
      // Warm both paths (connections, plans) before timing.
      for (let i = 0; i < 100; i++) {
        await direct.query(sql);
        await client.read(sql);
      }
      events.length = 0;
      for (let i = 0; i < cfg.reads; i++) {
        let t = performance.now();
        await direct.query(sql);
        out.directMs.push(performance.now() - t);
        t = performance.now();
        await client.read(sql);
        out.routedMs.push(performance.now() - t);
      }
      for (const e of events) out.routedKinds[e.kind] = (out.routedKinds[e.kind] ?? 0) + 1;
    }
    events.length = 0;
    for (let i = 0; i < cfg.pairs; i++) {
      const sku = `wan-${randomUUID()}`;
      let t = performance.now();
      const { token } = await client.write((c) =>
        c.query("INSERT INTO public.products (sku, name, price_cents) VALUES ($1, 'p', 1)", [sku]),
      );
      out.writeMs.push(performance.now() - t);
      t = performance.now();
      const r = await client.read('SELECT id FROM public.products WHERE sku = $1', { params: [sku], token });
      out.tokenReadMs.push(performance.now() - t);
      if (r.rowCount === 1) out.readBack++;
      const e = events.at(-1);
      out.waitedMs.push(e?.waitedMs ?? 0);
      if (e?.kind === 'replica') out.onReplica++;
      if ((e?.waitedMs ?? 0) === 0) out.noWait++;
      if (e) out.reasons[e.reason] = (out.reasons[e.reason] ?? 0) + 1;
    }
  } finally {
    await client.end();
    await direct.end();
  }
  return out;
}

/** Runs the probe in `region`'s client namespace; its JSON comes back on stdout. */
function runClientProbe(lab: ChaosLab, region: string, reads: number, pairs: number): Promise<ClientResult> {
  const state = readWanState(lab.stateDir);
  const ns = state && findNode(state.layout, clientsNode(region))?.netns;
  if (!ns) throw new Error(`no client namespace for ${region} in ${lab.stateDir}`);
  const ep = lab.spec.regions.find((r) => r.name === region)?.endpoint;
  if (!ep) throw new Error(`no region ${region}`);
  const role = lab.spec.applicationRoles[0] ?? 'app';
  const cfg: ClientConfig = {
    routing: routingDocumentPath(lab.spec, lab.dir),
    region,
    user: role,
    passwordFile: appRolePasswordFile(lab.stateDir, role),
    direct: { host: ep.host, port: ep.port, database: lab.spec.database },
    reads,
    pairs,
  };
  const file = join(lab.dir, `wan-bench-client-${region}.json`);
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  return new Promise((ok, fail) => {
    execFile(
      'ip',
      ['netns', 'exec', ns, process.execPath, '--import', 'tsx', SELF_TS, '--client', file],
      { cwd: ROOT, maxBuffer: 64 * 1024 * 1024, timeout: 900_000 },
      (err, stdout, stderr) => {
        if (err) return fail(new Error(`client probe in ${ns} failed: ${err.message}\n${stderr}`));
        try {
          ok(JSON.parse(stdout) as ClientResult);
        } catch (e) {
          fail(new Error(`client probe output: ${(e as Error).message}: ${stdout.slice(0, 500)}`));
        }
      },
    );
  });
}

// ---- parts ---------------------------------------------------------------------------

async function partRto(runs: number, figures: Figure[], record: Record<string, unknown>): Promise<void> {
  const { runScenario, scenario } = await chaos<ScenariosModule>('scenarios');
  console.log(`\n## 1. failover RTO as the writers saw it (scenario 1: kill -9 of the primary under load)`);
  const rows: (ScenarioResult | { error: string })[] = [];
  for (let i = 0; i < runs; i++) {
    say(`RTO run ${i + 1}/${runs} (a WAN lab of its own, ~100 s)`);
    current.scenarioStateDir = `/tmp/regionctl-chaos-s1-${process.pid}/.regionctl/lab`;
    try {
      const r = await runScenario(scenario('1'), (m) => say(`  ${m}`));
      rows.push(r);
      console.log(
        `  run ${i + 1}: RTO ${ms(r.rtoMs)}; ${r.originalPrimary} → ${r.finalPrimary}; split-brain acks ${r.splitBrainAcks} ` +
          `(window ${r.splitBrainWindowMs} ms); lost true/reported ${r.trueLost}/${r.reportedLost} ` +
          `(silent ${r.silentlyLost}, falsely reported ${r.falselyReported}) of ${r.acked} acked; ` +
          `${r.ok ? 'checker OK' : `checker: ${r.violations.join('; ')}`} (${Math.round(r.durationMs / 1000)} s)`,
      );
    } catch (e) {
      rows.push({ error: (e as Error).message });
      console.log(`  run ${i + 1}: could not run: ${(e as Error).message}`);
    } finally {
      current.scenarioStateDir = undefined;
    }
  }
  const rto = rows.map((r) => ('rtoMs' in r && r.rtoMs !== null ? r.rtoMs : Number.NaN));
  const s = summarize(rto);
  const complete = s.n === runs;
  const ok = complete && s.max <= 5000;
  console.log(
    `  RTO kill → first ack by the new primary via DNS: p50 ${ms(s.p50)}, max ${ms(s.max)} (n=${s.n} of ${runs})` +
      `  target ≤ 5000 ms with 1 s × 3 probes (every run): ${verdict(ok)}${complete ? '' : ' (runs without an RTO)'}`,
  );
  figures.push({
    part: 'rto',
    figure: 'kill -9 primary → first ack by the new primary via DNS',
    value: `p50 ${ms(s.p50)}, max ${ms(s.max)} (n=${s.n}/${runs})`,
    target: '≤ 5000 ms every run',
    verdict: verdict(ok),
  });
  record.rto = { runs: rows, summary: s, target: { maxMs: 5000 }, pass: ok };
}

async function waitFor(what: () => boolean | Promise<boolean>, timeoutMs: number, stepMs = 250) {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await what()) return true;
    await sleep(stepMs);
  }
  return false;
}

async function partSwitchover(
  lab: ChaosLab,
  logs: string[],
  n: number,
  figures: Figure[],
  record: Record<string, unknown>,
): Promise<void> {
  const { loadLogs, check } = await chaos<CheckerModule>('checker');
  console.log(
    `\n## 2. switchover write-unavailable window (dns writers in ${lab.spec.regions
      .filter((r) => r.name !== 'ap-southeast-1')
      .map((r) => r.name)
      .join(' and ')}, 2 each)`,
  );
  const servers = lab.servers();
  const wan = readWanState(lab.stateDir);
  const rtt = wan ? regionRtt(wan.rtt, 'us-east-1', 'eu-west-1') : 70;
  const targetMs = 1000 + 3 * rtt;
  const runs: Record<string, unknown>[] = [];
  const gaps: number[] = [];
  const dnsAcks = () => loadLogs(logs).lines.filter((l) => l.t === 'ack' && l.mode === 'dns');
  for (let i = 0; i < n; i++) {
    const from = lab.dnsPrimary();
    const to = from === 'us-east-1' ? 'eu-west-1' : 'us-east-1';
    // The writers must be acknowledging before the command, or the gap would start unseen.
    const healthy = await waitFor(() => dnsAcks().some((l) => l.at > Date.now() - 1000), 30_000, 1000);
    if (!healthy) {
      const last = dnsAcks().at(-1)?.at;
      console.log(
        `  ${i + 1}: the dns writers acknowledged nothing for 30 s before the switchover ` +
          `(last ack ${last ? `${Date.now() - last} ms ago` : 'never'}); measuring anyway`,
      );
    }
    say(`switchover ${i + 1}/${n}: ${from} → ${to}`);
    const t0 = Date.now();
    const r = await lab.cli(['switchover', '--to', to, '--format', 'json']);
    const t1 = Date.now();
    if (r.code !== 0) {
      const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
      console.log(`  ${i + 1}: ${from} → ${to} FAILED (exit ${r.code}): ${why}`);
      runs.push({ from, to, error: why });
      break;
    }
    let server: { writeUnavailableMs?: number; dnsMs?: number; eventId?: number } = {};
    try {
      server = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as typeof server;
    } catch {
      // Figures from the writers below still stand.
    }
    const judge = (lines: LogLine[]) =>
      check({
        lines,
        servers,
        originalPrimary: from,
        finalPrimary: to,
        finalIds: new Set(),
        reportedLost: new Set(),
      });
    // The writers have moved when the target acknowledged one of their writes.
    const moved = await waitFor(
      () => (judge(loadLogs(logs).lines.filter((l) => l.at >= t0)).figures.acksByRegion[to] ?? 0) > 0,
      30_000,
      1000,
    );
    await sleep(3000);
    const tEnd = Date.now();
    // From the last ack before the command: a silence that began before it counts too.
    const all = loadLogs(logs).lines;
    const from0 = all.filter((l) => l.t === 'ack' && l.mode === 'dns' && l.at <= t0).at(-1)?.at ?? t0;
    const c = judge(all.filter((l) => l.at >= from0 && l.at <= tEnd));
    const gap = c.figures.maxAckGapMs;
    if (gap !== null && moved) gaps.push(gap);
    const atCmd = (x: number | undefined) => (x === undefined ? '-' : `${x >= t0 ? '+' : ''}${x - t0} ms`);
    const steps = await eventSteps(lab, server.eventId);
    console.log(
      `  ${i + 1}: ${from} → ${to}: largest gap between acks ${ms(gap)} ` +
        `(${atCmd(c.figures.maxAckGap?.from)} → ${atCmd(c.figures.maxAckGap?.to)} from the command's start; ` +
        `command ${t1 - t0} ms); regionctl: writes failed for ${ms(server.writeUnavailableMs)}, ` +
        `DNS after ${ms(server.dnsMs)}; split-brain acks ${c.splitBrain.acks}` +
        `${moved ? '' : `; the writers did NOT reach ${to} within 30 s`}`,
    );
    if (steps.length) console.log(`     steps: ${steps.map((x) => `${x.name} ${x.ms} ms`).join(', ')}`);
    runs.push({
      from,
      to,
      maxAckGapMs: gap,
      maxAckGap: c.figures.maxAckGap,
      commandStartedAt: t0,
      commandMs: t1 - t0,
      writeUnavailableMs: server.writeUnavailableMs ?? null,
      dnsMs: server.dnsMs ?? null,
      splitBrainAcks: c.splitBrain.acks,
      writersMoved: moved,
      writersAckingBefore: healthy,
      steps,
    });
    if (!moved) break;
    // Let the reconciler see the new topology before the next one.
    await sleep(5000);
  }
  const s = summarize(gaps);
  const ok = s.n === n && s.max < targetMs;
  console.log(
    `  largest ack gap across dns writers: p50 ${ms(s.p50)}, max ${ms(s.max)} (n=${s.n} of ${n})` +
      `  target < 1 s + 3 × RTT(us-east-1, eu-west-1) = ${targetMs} ms (every switchover): ${verdict(ok)}`,
  );
  figures.push({
    part: 'switchover',
    figure: 'largest gap between acks of dns writers around a switchover',
    value: `p50 ${ms(s.p50)}, max ${ms(s.max)} (n=${s.n}/${n})`,
    target: `< ${targetMs} ms every switchover`,
    verdict: verdict(ok),
  });
  record.switchover = { runs, summary: s, target: { maxMs: targetMs }, pass: ok };
}

/** The steps of a failover event and how long each took (`regionctl events`). */
async function eventSteps(lab: ChaosLab, id: number | undefined): Promise<{ name: string; ms: number }[]> {
  if (id === undefined) return [];
  const r = await lab.cli(['events', '--format', 'json', '--limit', '5'], 60_000);
  try {
    const events = JSON.parse(r.stdout) as {
      id: number;
      steps?: { name: string; startedAt: string | null; finishedAt: string | null }[];
    }[];
    return (events.find((e) => e.id === id)?.steps ?? []).map((x) => ({
      name: x.name,
      ms: x.startedAt && x.finishedAt ? Date.parse(x.finishedAt) - Date.parse(x.startedAt) : Number.NaN,
    }));
  } catch {
    return [];
  }
}

function printRyw(label: string, r: ClientResult, pairs: number): Record<string, unknown> {
  const write = summarize(r.writeMs);
  const read = summarize(r.tokenReadMs);
  const waited = summarize(r.waitedMs);
  console.log(`  read-your-writes ${label}:`);
  console.log(`    write + token (on the primary, us-east-1, 70 ms away): ${fmt(write)}`);
  console.log(`    token read, whole:                                     ${fmt(read)}`);
  console.log(`    of which waiting for the replica:                      ${fmt(waited, 2)}`);
  console.log(
    `    served by the replica ${r.onReplica}/${pairs}; no wait ${r.noWait}/${pairs}; read back the write ` +
      `${r.readBack}/${pairs}; reasons ${JSON.stringify(r.reasons)}`,
  );
  return { write, tokenRead: read, waited, onReplica: r.onReplica, noWait: r.noWait, readBack: r.readBack };
}

async function partRyw(
  lab: ChaosLab,
  phase: 'idle' | 'load',
  reads: number,
  pairs: number,
  figures: Figure[],
  record: Record<string, unknown>,
): Promise<void> {
  const region = 'eu-west-1';
  if (phase === 'idle') {
    console.log(
      `\n## 3. read routing and read-your-writes from ${region}'s client namespace (1 ms to its replica)`,
    );
  }
  say(`read-your-writes probe in ${region}'s client namespace (${phase})`);
  const r = await runClientProbe(lab, region, phase === 'idle' ? reads : 0, pairs);
  const out: Record<string, unknown> = {};
  if (phase === 'idle') {
    const d = summarize(r.directMs);
    const x = summarize(r.routedMs);
    console.log(`  direct query on the ${region} replica:   ${fmt(d, 2)}`);
    console.log(`  routed read (client, no token):          ${fmt(x, 2)}; ${JSON.stringify(r.routedKinds)}`);
    console.log(
      `  routing overhead: p50 +${(x.p50 - d.p50).toFixed(3)} ms, p99 +${(x.p99 - d.p99).toFixed(3)} ms  (no target)`,
    );
    figures.push({
      part: 'ryw',
      figure: `routed read overhead in ${region} (vs direct)`,
      value: `p50 +${(x.p50 - d.p50).toFixed(2)} ms, p99 +${(x.p99 - d.p99).toFixed(2)} ms`,
      target: '—',
      verdict: '-',
    });
    out.direct = d;
    out.routed = x;
    out.routedKinds = r.routedKinds;
  }
  const label =
    phase === 'idle' ? 'idle (no other writes)' : 'under the dns writers (4 writers, us-east-1 + eu-west-1)';
  Object.assign(out, printRyw(label, r, pairs));
  const w = summarize(r.waitedMs);
  figures.push({
    part: 'ryw',
    figure: `token wait on the ${region} replica, ${phase}`,
    value: `p50 ${ms(w.p50, 2)}, p99 ${ms(w.p99, 2)}; replica ${r.onReplica}/${pairs}`,
    target: '—',
    verdict: '-',
  });
  record[`ryw_${phase}`] = out;
}

async function observePasses(
  spec: RegionsSpec,
  specDir: string,
  runs: number,
  mode: 'cold' | 'warm',
): Promise<Summary & { unreachable: number; cpuMsPerPass: number }> {
  const connections = mode === 'warm' ? new ObserverConnections() : undefined;
  const opts = connections ? { connections } : {};
  try {
    for (let i = 0; i < 3; i++) await observe(spec, specDir, opts);
    const times: number[] = [];
    let unreachable = 0;
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const o = await observe(spec, specDir, opts);
      times.push(performance.now() - t0);
      unreachable += o.regions.filter((r) => !r.reachable).length;
    }
    const cpu = process.cpuUsage(cpu0);
    return { ...summarize(times), unreachable, cpuMsPerPass: (cpu.user + cpu.system) / 1000 / runs };
  } finally {
    await connections?.close();
  }
}

async function partObserve(
  lab: ChaosLab,
  runs: number,
  figures: Figure[],
  record: Record<string, unknown>,
): Promise<void> {
  console.log(
    `\n## 4. one observation pass over ${lab.spec.regions.length} regions from the control plane (in us-east-1)`,
  );
  const wan = readWanState(lab.stateDir);
  const fromControl = wan ? rttMatrix(wan.layout, wan.rtt, wan.primary).control : undefined;
  const maxRtt = fromControl ? Math.max(...Object.values(fromControl)) : 220;
  const targetMs = maxRtt + 30;
  const out: Record<string, unknown> = {};
  for (const mode of ['cold', 'warm'] as const) {
    say(`observe, ${mode}, ${runs} passes`);
    const r = await observePasses(lab.spec, lab.dir, runs, mode);
    const ok = r.p50 < targetMs && r.unreachable === 0;
    console.log(
      `  ${mode}: ${fmt(r, 1, 'p95')} (client CPU ${r.cpuMsPerPass.toFixed(1)} ms/pass, load average ` +
        `${loadavg()[0]?.toFixed(1)})${r.unreachable ? `; ${r.unreachable} region observations unreachable` : ''}` +
        `${mode === 'warm' ? `  target p50 < max RTT + 30 ms = ${targetMs} ms: ${verdict(ok)}` : ''}`,
    );
    figures.push({
      part: 'observe',
      figure: `observation pass, 3 regions, ${mode}`,
      value: `p50 ${ms(r.p50, 1)}, p95 ${ms(r.p95, 1)} (n=${r.n})`,
      target: mode === 'warm' ? `p50 < ${targetMs} ms` : '—',
      verdict: mode === 'warm' ? verdict(ok) : '-',
    });
    out[mode] = { ...r, ...(mode === 'warm' ? { target: { p50Ms: targetMs }, pass: ok } : {}) };
  }
  record.observe = out;
}

// ---- the shared lab (parts 2–4) and cleanup ----------------------------------------

const current: { lab?: ChaosLab; scenarioStateDir?: string | undefined } = {};

async function sharedLab(
  parts: Set<string>,
  opts: { switchovers: number; passes: number; reads: number; pairs: number },
  figures: Figure[],
  record: Record<string, unknown>,
): Promise<void> {
  const { ChaosLab } = await chaos<HarnessModule>('harness');
  say('building a converged WAN lab (3 regions, etcd, agents)');
  const t0 = Date.now();
  const lab = await ChaosLab.create('wanbench', { log: (m) => say(`  ${m}`) });
  current.lab = lab;
  try {
    say(`lab up in ${((Date.now() - t0) / 1000).toFixed(1)} s (${lab.dir})`);
    lab.startReconciler();
    // The reconciler leads and publishes a routing document sending eu-west-1's reads to its replica.
    const doc = routingDocumentPath(lab.spec, lab.dir);
    const ready = await waitFor(() => {
      try {
        return readRoutingDocument(doc)?.routes['eu-west-1']?.default?.kind === 'replica';
      } catch {
        return false;
      }
    }, 90_000);
    if (!ready) say(`the routing document ${doc} does not route eu-west-1 to its replica after 90 s`);

    if (parts.has('observe')) await partObserve(lab, opts.passes, figures, record);
    if (parts.has('ryw') && ready) await partRyw(lab, 'idle', opts.reads, opts.pairs, figures, record);

    if (parts.has('switchover') || parts.has('ryw')) {
      const { loadLogs } = await chaos<CheckerModule>('checker');
      const logs = ['us-east-1', 'eu-west-1'].map(
        (r) => lab.startWorkload(r, 'dns', `wanbench-${r}`).logFile,
      );
      const flowing = await waitFor(
        () =>
          logs.every((f) => {
            try {
              return loadLogs([f]).lines.some((l) => l.t === 'ack');
            } catch {
              return false;
            }
          }),
        60_000,
      );
      if (!flowing) say('the dns writers acknowledged nothing within 60 s');
      await sleep(2000);
      if (parts.has('ryw') && ready) await partRyw(lab, 'load', opts.reads, opts.pairs, figures, record);
      if (parts.has('switchover')) await partSwitchover(lab, logs, opts.switchovers, figures, record);
    }
  } finally {
    say('closing the lab');
    await lab.close();
    current.lab = undefined;
  }
}

/** On SIGINT/SIGTERM: end this process's children by pid, take the labs down, exit. */
function onSignal(sig: NodeJS.Signals): void {
  say(`${sig}: cleaning up`);
  for (const pid of childPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
  const downs: Promise<unknown>[] = [];
  if (current.lab) downs.push(current.lab.close().catch(() => {}));
  if (current.scenarioStateDir)
    downs.push(labDown({ stateDir: current.scenarioStateDir, purge: true }).catch(() => {}));
  void Promise.all(downs).finally(() => process.exit(130));
}

function childPids(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(Number(d));
    } catch {
      // Exited meanwhile.
    }
  }
  return out;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const jsonAt = args.indexOf('--json');
  const jsonFile = jsonAt >= 0 ? args[jsonAt + 1] : undefined;
  const named = args.filter((a, i) => !a.startsWith('--') && (jsonAt < 0 || i !== jsonAt + 1));
  const all = ['rto', 'switchover', 'ryw', 'observe'];
  const unknown = named.filter((a) => !all.includes(a));
  if (unknown.length) {
    process.stderr.write(`wan: unknown part(s) ${unknown.join(', ')}; have ${all.join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  const parts = new Set(named.length ? named : all);
  const { chaosUnsupported } = await chaos<HarnessModule>('harness');
  const why = chaosUnsupported();
  if (why) {
    console.log(`skipped: ${why}`);
    return;
  }
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const opts = {
    rtoRuns: env('BENCH_WAN_RTO_RUNS', 5),
    switchovers: env('BENCH_WAN_SWITCHOVERS', 4),
    passes: env('BENCH_WAN_PASSES', 20),
    reads: env('BENCH_WAN_READS', 1000),
    pairs: env('BENCH_WAN_PAIRS', 200),
  };
  console.log(
    `WAN lab: us-east-1↔eu-west-1 70 ms RTT, ↔ap-southeast-1 220 ms, eu-west-1↔ap-southeast-1 160 ms, ` +
      `in-region 1 ms; control plane in us-east-1; load average ${loadavg()
        .map((x) => x.toFixed(1))
        .join(' ')}, ${new Date().toISOString()}`,
  );
  const figures: Figure[] = [];
  const record: Record<string, unknown> = { startedAt: new Date().toISOString(), options: opts };
  let failed = false;
  if (['switchover', 'ryw', 'observe'].some((p) => parts.has(p))) {
    try {
      await sharedLab(parts, opts, figures, record);
    } catch (e) {
      failed = true;
      console.log(`shared WAN lab: ${(e as Error).stack ?? String(e)}`);
    }
  }
  if (parts.has('rto')) {
    try {
      await partRto(opts.rtoRuns, figures, record);
    } catch (e) {
      failed = true;
      console.log(`RTO: ${(e as Error).stack ?? String(e)}`);
    }
  }
  const order = ['rto', 'switchover', 'ryw', 'observe'];
  figures.sort((a, b) => order.indexOf(a.part) - order.indexOf(b.part));
  console.log(`\n## summary (load average ${loadavg()[0]?.toFixed(1)} at the end)`);
  console.log('| figure | measured | target | |');
  console.log('|---|---|---|---|');
  for (const f of figures) console.log(`| ${f.figure} | ${f.value} | ${f.target} | ${f.verdict} |`);
  record.figures = figures;
  record.endedAt = new Date().toISOString();
  if (jsonFile) writeFileSync(jsonFile, `${JSON.stringify(record, null, 2)}\n`);
  if (failed) process.exitCode = 1;
}

const self = fileURLToPath(import.meta.url);
if (process.argv[1] === self || process.argv[1] === self.replace(/\.ts$/, '')) {
  const clientAt = process.argv.indexOf('--client');
  if (clientAt >= 0) {
    const file = process.argv[clientAt + 1] ?? '';
    clientProbe(JSON.parse(readFileSync(file, 'utf8')) as ClientConfig).then(
      (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
      (e: unknown) => {
        process.stderr.write(`${(e as Error).stack ?? String(e)}\n`);
        process.exitCode = 1;
      },
    );
  } else if (self.endsWith('.js')) {
    // Compiled (dist/bench/wan.js, e.g. from run-all): the harness is TypeScript under test/.
    const r = spawnSync(process.execPath, ['--import', 'tsx', SELF_TS, ...process.argv.slice(2)], {
      cwd: ROOT,
      stdio: 'inherit',
    });
    process.exitCode = r.status ?? 1;
  } else {
    await main();
  }
}
