/**
 * The fault suite's harness: a WAN lab of its own per scenario (regions in network
 * namespaces behind the delay relay, PostgreSQL's default replication timeouts), the
 * topology converged by `regionctl apply`, a `reconcile --watch` in the control plane,
 * and the independent workload (workload.ts) in the regions' client namespaces. It
 * drives faults with the lab's own commands and collects what the checker judges: the
 * writers' logs, the final primary's rows, and regionctl's lost-write reports.
 *
 * Unlike workload.ts and checker.ts, the harness uses regionctl's library: it is the
 * operator, not the judge.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { appRolePasswordFile } from '../../src/lab/demo-schema.js';
import { killRegion, labDown, labUp, startRegion } from '../../src/lab/lab.js';
import { wanSupportProblems } from '../../src/lab/wan/netns.js';
import { clientsNode, findNode } from '../../src/lab/wan/plan.js';
import { readWanState } from '../../src/lab/wan/state.js';
import {
  netCutControl,
  netCutLocalPort,
  netDelay,
  netHeal,
  netIsolate,
  netPartition,
  stopAgent,
  wanServicesUp,
  wanUp,
} from '../../src/lab/wan/wan.js';
import { readZoneFile, zoneFilePath } from '../../src/lab/zone.js';
import { loadSpecOrThrow } from '../../src/spec/load.js';
import type { RegionsSpec } from '../../src/spec/schema.js';
import { connect, regionTarget } from '../../src/sql/connect.js';
import type { ServerMap } from './checker.js';
import { chaosSchemaSql, type WorkloadConfig } from './workload.js';

export const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');
export const CHAOS_TABLE = 'public.chaos_acks';
const TEMPLATE_DIR = '/tmp/regionctl-chaos-template';

/** Why the WAN lab cannot run here, or undefined when it can. */
export function chaosUnsupported(): string | undefined {
  const p = wanSupportProblems();
  if (!existsSync(CLI)) p.push(`the build (${CLI}): run \`npm run build\``);
  return p.length ? `the fault suite needs ${p.join('; ')}` : undefined;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * A free port for a scenario's control store, from 61600-61999: above Linux's ephemeral
 * range (an OS-assigned port could be one another lab of the run binds a moment later)
 * and apart from the etcd (61100-61405) and WAN-lab test (61590) ports.
 */
async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = 61600 + Math.floor(Math.random() * 400);
    const free = await new Promise<boolean>((ok) => {
      const s = createServer();
      s.once('error', () => ok(false));
      s.listen(port, '127.0.0.1', () => s.close(() => ok(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port in 61600-61999');
}

export interface LabOptions {
  /** Edits of the spec before the lab is made (thresholds, probes). */
  mutate?: (doc: ReturnType<typeof parseDocument>) => void;
  log?: (m: string) => void;
}

export class ChaosLab {
  readonly children: ChildProcess[] = [];
  spec!: RegionsSpec;
  wanSpec!: string;
  primary!: string;

  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly stateDir: string,
    readonly log: (m: string) => void,
  ) {}

  static async create(name: string, opts: LabOptions = {}): Promise<ChaosLab> {
    const dir = `/tmp/regionctl-chaos-${name}-${process.pid}`;
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const lab = new ChaosLab(name, dir, join(dir, '.regionctl/lab'), opts.log ?? (() => {}));
    await lab.up(opts);
    return lab;
  }

  private async up(opts: LabOptions): Promise<void> {
    const doc = parseDocument(readFileSync(join(ROOT, 'regions.yaml'), 'utf8'));
    // The control store stays on the host's loopback: a port of its own per lab.
    doc.setIn(['controlStore', 'port'], await freePort());
    const tables = doc.getIn(['replication', 'tables']) as { add?: (v: unknown) => void } | undefined;
    tables?.add?.(CHAOS_TABLE);
    // The fence hook runs the lab's CLI: an absolute path, whatever the cwd.
    doc.setIn(['failover', 'fencing', 1, 'command', 1], CLI);
    opts.mutate?.(doc);
    const specPath = join(this.dir, 'regions.yaml');
    writeFileSync(specPath, doc.toString());
    const base = await loadSpecOrThrow(specPath);
    this.primary = base.spec.regions.find((r) => r.role === 'primary')!.name;
    const t0 = Date.now();
    const wan = await wanUp(base.spec, {
      specPath,
      specDir: this.dir,
      stateDir: this.stateDir,
      onProgress: (m) => this.log(m),
    });
    this.wanSpec = wan.specFile;
    this.spec = (await loadSpecOrThrow(this.wanSpec)).spec;
    await labUp(this.spec, { specDir: this.dir, stateDir: this.stateDir, templateDir: TEMPLATE_DIR });
    await wanServicesUp(this.stateDir, (m) => this.log(m));
    // DDL is not replicated: the workload's table exists everywhere before apply.
    for (const r of this.spec.regions) {
      await this.sql(r.name, [
        chaosSchemaSql(CHAOS_TABLE),
        ...this.spec.applicationRoles.map((role) => `GRANT SELECT, INSERT ON ${CHAOS_TABLE} TO "${role}"`),
      ]);
    }
    const applied = await this.cli(['apply', '--auto-approve']);
    if (applied.code !== 0) throw new Error(`apply failed: ${applied.stderr}${applied.stdout}`);
    await this.waitConverged();
    this.log(`${this.name}: WAN lab converged in ${Date.now() - t0} ms`);
  }

  /**
   * Every secondary's subscription exists and every table finished its initial copy: a
   * scenario starts from a converged topology (a copy in flight over a 220 ms link takes
   * seconds, and a fault in the middle of it is a different scenario).
   */
  async waitConverged(timeoutMs = 180_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    const secondaries = this.spec.regions.filter((r) => r.role !== 'primary').map((r) => r.name);
    for (;;) {
      const pending: string[] = [];
      for (const r of secondaries) {
        const [rows] = await this.sql(r, [
          `SELECT (SELECT count(*) FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()))::int AS subs,
                  (SELECT count(*) FROM pg_subscription_rel sr JOIN pg_subscription s ON s.oid = sr.srsubid
                    WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
                      AND sr.srsubstate <> 'r')::int AS copying`,
        ]);
        const row = (rows as { subs: number; copying: number }[])[0]!;
        if (row.subs === 0 || row.copying > 0)
          pending.push(`${r} (${row.subs} subscription(s), ${row.copying} table(s) copying)`);
      }
      if (pending.length === 0) return;
      if (Date.now() > end) throw new Error(`not converged after ${timeoutMs} ms: ${pending.join(', ')}`);
      await new Promise((ok) => setTimeout(ok, 500));
    }
  }

  async sql(region: string, statements: string[]): Promise<unknown[][]> {
    const c = await connect(regionTarget(this.spec, region, this.dir), {
      connectTimeoutMs: 5000,
      applicationName: 'chaos-harness',
    });
    try {
      const out: unknown[][] = [];
      for (const s of statements) out.push((await c.query(s)).rows);
      return out;
    } finally {
      await c.end().catch(() => {});
    }
  }

  cli(args: string[], timeoutMs = 180_000): Promise<CliResult> {
    return new Promise((ok) => {
      execFile(
        process.execPath,
        [CLI, ...args, '--spec', this.wanSpec],
        {
          cwd: this.dir,
          timeout: timeoutMs,
          env: { ...process.env, REGIONCTL_LAB_STATE_DIR: this.stateDir },
        },
        (err, stdout, stderr) =>
          ok({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
    });
  }

  /**
   * `reconcile --watch` in the control plane (the host's namespace). `asUser` runs it as
   * another OS user, so that iptables' owner match can cut this one process off (from
   * the control store: `cutStoreFor`) while another reconciler beside it keeps its paths.
   */
  startReconciler(tag = 'reconciler', asUser?: { uid: number; gid: number }): ChildProcess {
    const out = join(this.dir, `${tag}.log`);
    const fd = openSync(out, 'a');
    if (asUser) this.shareWith(asUser);
    const child = spawn(
      process.execPath,
      [CLI, 'reconcile', '--watch', '--interval', '1', '--spec', this.wanSpec],
      {
        cwd: this.dir,
        stdio: ['ignore', fd, fd],
        env: { ...process.env, REGIONCTL_LAB_STATE_DIR: this.stateDir },
        ...(asUser ? { uid: asUser.uid, gid: asUser.gid } : {}),
      },
    );
    this.children.push(child);
    return child;
  }

  /** What a reconciler running as another user must read and write in this lab (lab only). */
  private shareWith(u: { uid: number; gid: number }): void {
    const lab = this.stateDir;
    for (const d of [this.dir, join(this.dir, '.regionctl'), lab, join(lab, 'dns'), join(lab, 'secrets')]) {
      mkdirSync(d, { recursive: true });
      chmodSync(d, 0o777);
    }
    for (const f of readdirSync(join(lab, 'secrets'))) chmodSync(join(lab, 'secrets', f), 0o644);
    for (const f of readdirSync(join(lab, 'dns'))) chmodSync(join(lab, 'dns', f), 0o666);
    void u;
  }

  /** Only processes of this OS user lose the control store (an iptables owner match). */
  async cutStoreFor(uid: number, cut = true): Promise<void> {
    const rule = [
      'OUTPUT',
      '-o',
      'lo',
      '-p',
      'tcp',
      '--dport',
      String(this.spec.controlStore.port),
      '-m',
      'owner',
      '--uid-owner',
      String(uid),
      '-j',
      'DROP',
    ];
    const run = (args: string[]) =>
      new Promise<number>((ok) => execFile('iptables', ['-w', ...args], (e) => ok(e ? 1 : 0)));
    if (cut) {
      if ((await run(['-C', ...rule])) !== 0) await run(['-I', ...rule]);
      this.cleanups.push(() => run(['-D', ...rule]).then(() => {}));
    } else {
      while ((await run(['-D', ...rule])) === 0) {}
    }
  }

  private readonly cleanups: (() => Promise<void>)[] = [];

  /** The independent writers, inside a region's client namespace. */
  startWorkload(
    region: string,
    mode: WorkloadConfig['mode'],
    tag: string,
  ): { child: ChildProcess; logFile: string } {
    const state = readWanState(this.stateDir)!;
    const ns = findNode(state.layout, clientsNode(region))!.netns!;
    const primary = this.spec.regions.find((r) => r.role === 'primary')!;
    const logFile = join(this.dir, `workload-${tag}.jsonl`);
    const cfg: WorkloadConfig = {
      id: tag,
      writers: typeof mode === 'string' ? 2 : mode.dns + mode.sticky,
      mode,
      zoneFile: zoneFilePath(this.spec, this.dir)!,
      primaryRecord: this.spec.dns!.primaryRecord,
      fallback: { host: primary.endpoint.host, port: primary.endpoint.port, region: primary.name },
      regionEndpoints: Object.fromEntries(
        this.spec.regions.map((r) => [r.name, { host: r.endpoint.host, port: r.endpoint.port }]),
      ),
      database: this.spec.database,
      user: this.spec.applicationRoles[0]!,
      passwordFile: appRolePasswordFile(this.stateDir, this.spec.applicationRoles[0]!),
      table: CHAOS_TABLE,
      logFile,
      intervalMs: 20,
      connectTimeoutMs: 2000,
      queryTimeoutMs: 2000,
    };
    const cfgFile = join(this.dir, `workload-${tag}.json`);
    writeFileSync(cfgFile, JSON.stringify(cfg, null, 2));
    const err = openSync(join(this.dir, `workload-${tag}.stderr`), 'a');
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '--import',
        'tsx',
        join(ROOT, 'test/chaos/workload-main.ts'),
        '--config',
        cfgFile,
      ],
      { cwd: ROOT, stdio: ['ignore', err, err] },
    );
    this.children.push(child);
    return { child, logFile };
  }

  async stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  }

  /** Server address (as the server reports it, and as clients dial it) → region. */
  servers(): ServerMap {
    const state = readWanState(this.stateDir)!;
    const out: ServerMap = {};
    for (const n of state.layout.nodes) {
      if (n.kind !== 'region') continue;
      const port = state.ports[n.region!]!;
      out[`${n.address}:${port}`] = n.region!;
      out[`${n.relayAddress}:${port}`] = n.region!;
    }
    return out;
  }

  /** Where the DNS primary record points now (what applications follow). */
  dnsPrimary(): string {
    const path = zoneFilePath(this.spec, this.dir);
    const rec = path ? readZoneFile(path)?.records[this.spec.dns!.primaryRecord] : undefined;
    return rec?.region ?? this.primary;
  }

  async ids(region: string): Promise<Set<string>> {
    const [rows] = await this.sql(region, [`SELECT id FROM ${CHAOS_TABLE}`]);
    return new Set((rows as { id: string }[]).map((r) => r.id));
  }

  /** Ids of the chaos table in every lost-write report the rejoins wrote. */
  reportedLost(): Set<string> {
    const dir = join(this.dir, 'reports');
    const out = new Set<string>();
    if (!existsSync(dir)) return out;
    for (const f of readdirSync(dir)) {
      if (!f.endsWith('.json')) continue;
      const r = JSON.parse(readFileSync(join(dir, f), 'utf8')) as {
        transactions?: { changes: { table: string; op: string; key: Record<string, unknown> }[] }[];
      };
      for (const t of r.transactions ?? []) {
        for (const c of t.changes)
          if (c.table === CHAOS_TABLE && c.op === 'insert') out.add(String(c.key.id));
      }
    }
    return out;
  }

  kill(region: string) {
    return killRegion(this.spec, region, { specDir: this.dir, stateDir: this.stateDir });
  }
  start(region: string) {
    return startRegion(this.spec, region, { specDir: this.dir, stateDir: this.stateDir });
  }
  isolate(region: string, exceptClients = false) {
    return netIsolate(this.stateDir, region, exceptClients);
  }
  cutControl(region: string) {
    return netCutControl(this.stateDir, region);
  }
  partition(a: string, b: string, oneWay = false) {
    return netPartition(this.stateDir, a, b, oneWay);
  }
  delay(a: string, b: string, ms: number) {
    return netDelay(this.stateDir, a, b, ms);
  }
  cutStore(cut = true) {
    return netCutLocalPort(this.stateDir, this.spec.controlStore.port, cut);
  }
  heal() {
    return netHeal(this.stateDir, { all: true });
  }
  stopAgent(region: string) {
    return stopAgent(this.stateDir, region, 'SIGKILL');
  }

  async close(keep = process.env.REGIONCTL_CHAOS_KEEP === '1'): Promise<void> {
    await Promise.all(this.children.map((c) => this.stop(c, 'SIGKILL')));
    for (const c of this.cleanups.splice(0)) await c().catch(() => {});
    await labDown({ stateDir: this.stateDir, purge: !keep }).catch(() => {});
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}
