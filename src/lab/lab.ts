/**
 * The lab: one real PostgreSQL server per region of the spec plus the control store,
 * on the spec's loopback host/ports, with data under a state directory (default
 * `.regionctl/lab` next to regions.yaml). Every operation is idempotent and reports
 * progress through a callback so the CLI can say what is happening.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { RegionctlError } from '../errors.js';
import { resolveSecret } from '../secrets/resolve.js';
import type { RegionsSpec, SecretRefSpec } from '../spec/schema.js';
import {
  generatePassword,
  initCluster,
  isInitialised,
  runningProcess,
  startServer,
  stopServer,
} from './cluster.js';
import { checkTraversable, serverUser } from './os.js';
import { findServer, type LabServer, labServers, resolveStateDir } from './servers.js';

export interface LabEvent {
  /** Region name, `control`, or `lab` for whole-lab events. */
  server: string;
  phase: 'check' | 'init' | 'start' | 'ready' | 'skip' | 'stop' | 'database' | 'schema' | 'done';
  message: string;
  ms?: number;
}

export interface LabOptions {
  /** Directory of regions.yaml (relative paths in the spec are relative to it). */
  specDir: string;
  /** State directory; relative to specDir; default `.regionctl/lab`. */
  stateDir?: string;
  onProgress?: (e: LabEvent) => void;
}

export interface LabUpOptions extends LabOptions {
  /** Install the demo schema in `spec.database` on every region (default true). */
  demoSchema?: boolean;
  /**
   * Where initdb templates are cached (default `<state>/_template`). Labs sharing it
   * (the test lab and per-test private labs) initdb once between them.
   */
  templateDir?: string;
}

export type ServerAction = 'initialised' | 'started' | 'restarted' | 'running';

export interface LabServerResult {
  name: string;
  label: string;
  host: string;
  port: number;
  pid: number;
  action: ServerAction;
  ms: number;
}

export interface LabUpResult {
  stateDir: string;
  servers: LabServerResult[];
  totalMs: number;
}

interface StateFile {
  version: 1;
  servers: Record<string, { dataDir: string; host: string; port: number; pid: number; startedAt: string }>;
}

const STATE_FILE = 'lab.json';

export async function labUp(spec: RegionsSpec, opts: LabUpOptions): Promise<LabUpResult> {
  const t0 = performance.now();
  const progress = opts.onProgress ?? (() => {});
  const stateDir = resolveStateDir(opts.specDir, opts.stateDir);
  const servers = labServers(spec, stateDir);
  serverUser();
  mkdirSync(stateDir, { recursive: true });
  checkTraversable(stateDir);
  // Sequential: several servers usually share one password file, generated once.
  const passwords = new Map<string, string | undefined>();
  for (const s of servers) passwords.set(s.name, ensureSuperuserPassword(s, opts.specDir));

  const results = await Promise.all(
    servers.map(async (s): Promise<LabServerResult> => {
      const t = performance.now();
      let action: ServerAction;
      let proc = runningProcess(s.dataDir);
      if (proc && proc.port !== s.endpoint.port) {
        progress({
          server: s.name,
          phase: 'stop',
          message: `${s.label}: port changed to ${s.endpoint.port}, restarting`,
        });
        await stopServer(s, 'fast');
        proc = undefined;
        action = 'restarted';
      } else if (proc) {
        action = 'running';
      } else if (isInitialised(s)) {
        action = 'started';
      } else {
        progress({ server: s.name, phase: 'init', message: `${s.label}: initdb ${s.dataDir}` });
        await initCluster(s, passwords.get(s.name), opts.templateDir ?? join(stateDir, '_template'));
        action = 'initialised';
      }
      if (proc) {
        progress({ server: s.name, phase: 'skip', message: `${s.label}: already running (pid ${proc.pid})` });
      } else {
        progress({
          server: s.name,
          phase: 'start',
          message: `${s.label}: starting on ${s.endpoint.host}:${s.endpoint.port}`,
        });
        proc = await startServer(s);
      }
      await ensureDatabases(s, opts.specDir);
      const ms = Math.round(performance.now() - t);
      progress({
        server: s.name,
        phase: 'ready',
        message: `${s.label}: ready on ${s.endpoint.host}:${s.endpoint.port} (${action}, ${ms} ms)`,
        ms,
      });
      return {
        name: s.name,
        label: s.label,
        host: s.endpoint.host,
        port: s.endpoint.port,
        pid: proc.pid,
        action,
        ms,
      };
    }),
  );
  writeState(stateDir, servers, results);

  if (opts.demoSchema ?? true) {
    const { installDemoSchema } = await import('./demo-schema.js');
    await Promise.all(
      spec.regions.map(async (r) => {
        const t = performance.now();
        await installDemoSchema(spec, opts.specDir, r.name, { stateDir });
        const ms = Math.round(performance.now() - t);
        progress({
          server: r.name,
          phase: 'schema',
          message: `region ${r.name}: demo schema in ${spec.database} (${ms} ms)`,
          ms,
        });
      }),
    );
  }
  const totalMs = Math.round(performance.now() - t0);
  progress({
    server: 'lab',
    phase: 'done',
    message: `lab up: ${servers.length} servers in ${totalMs} ms`,
    ms: totalMs,
  });
  return { stateDir, servers: results, totalMs };
}

/**
 * The superuser password lives only in the file the spec references. Generated once;
 * a file that disappears after its cluster was initialised cannot be regenerated, since
 * the cluster would still expect the old one.
 */
function ensureSuperuserPassword(s: LabServer, specDir: string): string | undefined {
  const ref: SecretRefSpec | undefined = s.endpoint.password;
  if (!ref) return undefined;
  if ('env' in ref) return resolveSecret(ref, specDir, `${s.label} password`);
  const file = isAbsolute(ref.file) ? ref.file : resolve(specDir, ref.file);
  if (!existsSync(file)) {
    if (isInitialised(s)) {
      throw new RegionctlError(
        'E_LAB_SECRET_LOST',
        `${s.label}: its superuser password file ${file} is gone, but the server was initialised with it`,
        'restore the file, or wipe the lab with `regionctl lab down --purge` and run `regionctl lab up` again',
      );
    }
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // `wx`: if two lab commands race, the first password wins and the other reads it.
    try {
      writeFileSync(file, `${generatePassword()}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  return resolveSecret(ref, specDir, `${s.label} password`);
}

async function ensureDatabases(s: LabServer, specDir: string): Promise<void> {
  const { connect } = await import('../sql/connect.js');
  const { ident } = await import('../sql/quote.js');
  const c = await connect(
    { endpoint: s.endpoint, database: 'postgres', specDir, label: s.label },
    { applicationName: 'regionctl-lab' },
  );
  try {
    // The load generator resolves exact commit LSNs with it; WAL is cluster-wide, so it
    // lives here rather than in the application's database.
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect').catch(() => {});
    for (const db of s.databases) {
      const r = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
      if (r.rowCount) continue;
      try {
        // FILE_COPY: several times faster than WAL-logging the template, and cheap with fsync off.
        await c.query(`CREATE DATABASE ${ident(db)} STRATEGY = FILE_COPY`);
      } catch (e) {
        // Another lab command created it meanwhile.
        if ((e as { code?: string }).code !== '42P04') throw e;
      }
    }
  } finally {
    await c.end();
  }
}

function statePath(stateDir: string): string {
  return join(stateDir, STATE_FILE);
}

function readState(stateDir: string): StateFile {
  try {
    return JSON.parse(readFileSync(statePath(stateDir), 'utf8')) as StateFile;
  } catch {
    return { version: 1, servers: {} };
  }
}

function writeState(stateDir: string, servers: LabServer[], results: LabServerResult[]): void {
  const state = readState(stateDir);
  for (const r of results) {
    const s = servers.find((x) => x.name === r.name)!;
    state.servers[r.name] = {
      dataDir: s.dataDir,
      host: r.host,
      port: r.port,
      pid: r.pid,
      startedAt: new Date().toISOString(),
    };
  }
  const tmp = `${statePath(stateDir)}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, statePath(stateDir));
}

export interface LabDownOptions {
  stateDir: string;
  /** Also delete the state directory (data, logs, generated secrets, ledger). */
  purge?: boolean;
  onProgress?: (e: LabEvent) => void;
}

/**
 * Stops every server whose data directory is inside the state directory — found by
 * scanning it as well as from the state file, so servers of an interrupted `up` are
 * stopped too — and nothing else. Needs no spec, so it works on a broken regions.yaml.
 */
export async function labDown(opts: LabDownOptions): Promise<{ stopped: string[] }> {
  const progress = opts.onProgress ?? (() => {});
  const stateDir = opts.stateDir;
  const dataDirs = new Map<string, string>();
  for (const [name, s] of Object.entries(readState(stateDir).servers)) dataDirs.set(s.dataDir, name);
  if (existsSync(stateDir)) {
    for (const entry of readdirSync(stateDir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const d = join(stateDir, entry.name, 'data');
      if (!dataDirs.has(d) && existsSync(d))
        dataDirs.set(d, entry.name === '_control' ? 'control' : entry.name);
    }
  }
  const stopped: string[] = [];
  await Promise.all(
    [...dataDirs].map(async ([dataDir, name]) => {
      if (!dataDir.startsWith(stateDir)) return;
      const label = name === 'control' ? 'control store' : `region ${name}`;
      if (await stopServer({ dataDir, dir: dirname(dataDir), label }, 'fast')) {
        stopped.push(name);
        progress({ server: name, phase: 'stop', message: `${label}: stopped` });
      }
    }),
  );
  // The WAN lab's namespaces, links and rules go after the servers that lived in them.
  const { wanDown } = await import('./wan/wan.js');
  if (await wanDown(stateDir))
    progress({ server: 'lab', phase: 'stop', message: 'WAN namespaces, links and rules removed' });
  if (opts.purge) {
    rmSync(stateDir, { recursive: true, force: true });
    progress({ server: 'lab', phase: 'done', message: `removed ${stateDir}` });
  } else {
    rmSync(statePath(stateDir), { force: true });
  }
  return { stopped: stopped.sort() };
}

export interface LabServerStatus {
  name: string;
  label: string;
  host: string;
  port: number;
  initialised: boolean;
  running: boolean;
  pid?: number;
  /** Port the running server listens on, when it differs from the spec. */
  runningPort?: number;
  reachable?: boolean;
  dataDir: string;
  logFile: string;
}

export async function labStatus(
  spec: RegionsSpec,
  opts: LabOptions & { probe?: boolean },
): Promise<{ stateDir: string; servers: LabServerStatus[] }> {
  const stateDir = resolveStateDir(opts.specDir, opts.stateDir);
  const servers = labServers(spec, stateDir);
  const out = await Promise.all(
    servers.map(async (s): Promise<LabServerStatus> => {
      const proc = runningProcess(s.dataDir);
      const st: LabServerStatus = {
        name: s.name,
        label: s.label,
        host: s.endpoint.host,
        port: s.endpoint.port,
        initialised: isInitialised(s),
        running: proc !== undefined,
        dataDir: s.dataDir,
        logFile: s.logFile,
      };
      if (proc) st.pid = proc.pid;
      if (proc && proc.port !== s.endpoint.port) st.runningPort = proc.port;
      if (opts.probe ?? true) st.reachable = proc ? await probe(s, opts.specDir) : false;
      return st;
    }),
  );
  return { stateDir, servers: out };
}

async function probe(s: LabServer, specDir: string): Promise<boolean> {
  const { connect } = await import('../sql/connect.js');
  try {
    const c = await connect(
      { endpoint: s.endpoint, database: 'postgres', specDir, label: s.label },
      { connectTimeoutMs: 1000, statementTimeoutMs: 1000, applicationName: 'regionctl-lab' },
    );
    await c.end();
    return true;
  } catch {
    return false;
  }
}

/** An outage: immediate shutdown, no checkpoint, clients cut off mid-transaction. */
export async function killRegion(
  spec: RegionsSpec,
  region: string,
  opts: LabOptions,
): Promise<{ name: string; wasRunning: boolean }> {
  const stateDir = resolveStateDir(opts.specDir, opts.stateDir);
  const s = findServer(labServers(spec, stateDir), region);
  const wasRunning = await stopServer(s, 'immediate');
  opts.onProgress?.({
    server: s.name,
    phase: 'stop',
    message: wasRunning ? `${s.label}: killed (immediate shutdown)` : `${s.label}: was not running`,
  });
  return { name: s.name, wasRunning };
}

/** Bring one region back with its data (crash recovery runs if it was killed). */
export async function startRegion(
  spec: RegionsSpec,
  region: string,
  opts: LabOptions,
): Promise<LabServerResult> {
  const stateDir = resolveStateDir(opts.specDir, opts.stateDir);
  const servers = labServers(spec, stateDir);
  const s = findServer(servers, region);
  if (!isInitialised(s)) {
    throw new RegionctlError(
      'E_LAB_NOT_INITIALISED',
      `${s.label} has no data directory at ${s.dataDir}`,
      'run `regionctl lab up` first',
    );
  }
  checkTraversable(stateDir);
  const t = performance.now();
  let proc = runningProcess(s.dataDir);
  const action: ServerAction = proc ? 'running' : 'started';
  if (!proc) {
    opts.onProgress?.({
      server: s.name,
      phase: 'start',
      message: `${s.label}: starting on ${s.endpoint.host}:${s.endpoint.port}`,
    });
    proc = await startServer(s);
  }
  const ms = Math.round(performance.now() - t);
  const result = {
    name: s.name,
    label: s.label,
    host: s.endpoint.host,
    port: s.endpoint.port,
    pid: proc.pid,
    action,
    ms,
  };
  writeState(stateDir, servers, [result]);
  opts.onProgress?.({
    server: s.name,
    phase: 'ready',
    message: `${s.label}: ${action === 'running' ? 'already running' : 'started'} (${ms} ms)`,
    ms,
  });
  return result;
}
