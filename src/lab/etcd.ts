/**
 * The lab's authority: a real etcd cluster (Debian `etcd-server`, 3.4) of a few members on
 * loopback, each with its data, log and pid file under a state directory. Members are
 * spawned detached so they outlive the regionctl call that started them (like the lab's
 * PostgreSQL servers); every later call finds them again through the pid files, and only
 * ever signals a pid it recorded itself that still runs etcd on that member's data dir.
 *
 * Quorum tests stop single members (`etcdKillMember`) and bring them back
 * (`etcdStartMember`); a restarted member rejoins with its own data.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { RegionctlError } from '../errors.js';

export interface EtcdMemberPorts {
  /** Port clients (regionctl) connect to. */
  clientPort: number;
  /** Port the members talk raft on. */
  peerPort: number;
  /** This member's own address (the WAN lab: its region's), instead of the cluster's host. */
  host?: string;
  /** Network namespace the member runs in (the WAN lab: its region's). */
  netns?: string;
}

export interface EtcdLabOptions {
  /** Directory for the members' data, logs, pid files and the state file. */
  stateDir: string;
  /** One entry per member; a lab cluster has 3 (quorum 2, so one member may be down). */
  members: EtcdMemberPorts[];
  /** Loopback address the members listen on (default 127.0.0.1). */
  host?: string;
  /** How long to wait for health (default 30 s). */
  timeoutMs?: number;
  onProgress?: (message: string) => void;
}

export interface EtcdLabMember {
  index: number;
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  logFile: string;
  /** Running pid, or undefined when the member is down. */
  pid: number | undefined;
}

export interface EtcdLabCluster {
  stateDir: string;
  /** Client URLs of every member, for `authority.endpoints`. */
  endpoints: string[];
  members: EtcdLabMember[];
  ms: number;
}

interface StateFile {
  version: 1;
  host: string;
  token: string;
  members: EtcdMemberPorts[];
}

const STATE_FILE = 'etcd.json';

// etcd's defaults (heartbeat 100 ms, election 1000 ms) on purpose: they make the smallest
// lease TTL etcd grants ceil(1.5 × election timeout) = 2 s, the lab's authority.leaseSeconds,
// and shorter timeouts cause spurious elections on a loaded 2-core machine.
//
// No --unsafe-no-fsync: it appeared in etcd 3.5; Debian's 3.4 rejects the flag. Each
// write therefore costs an fsync (a few ms here), which the lab can afford: authority
// writes are a handful per transition, not per application write.

/** The etcd binary, or E_LAB_NO_ETCD. */
export function etcdBinary(): string {
  for (const dir of [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/bin', '/usr/sbin']) {
    const p = join(dir, 'etcd');
    if (existsSync(p)) return p;
  }
  throw new RegionctlError(
    'E_LAB_NO_ETCD',
    'the lab needs etcd for its authority (leader lease, topology epoch), and no `etcd` binary is on PATH',
    'install etcd-server (apt-get install etcd-server)',
  );
}

function memberName(i: number): string {
  return `etcd-${i}`;
}

function memberDir(stateDir: string, i: number): string {
  return join(stateDir, memberName(i));
}

function memberInfo(opts: EtcdLabOptions, state: StateFile, i: number): EtcdLabMember {
  const ports = state.members[i]!;
  const dir = memberDir(opts.stateDir, i);
  const dataDir = join(dir, 'data');
  return {
    index: i,
    name: memberName(i),
    clientUrl: `http://${ports.host ?? state.host}:${ports.clientPort}`,
    peerUrl: `http://${ports.host ?? state.host}:${ports.peerPort}`,
    dataDir,
    logFile: join(dir, 'etcd.log'),
    pid: runningPid(dir, dataDir),
  };
}

function readState(stateDir: string): StateFile | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir, STATE_FILE), 'utf8')) as StateFile;
  } catch {
    return undefined;
  }
}

function writeState(stateDir: string, state: StateFile): void {
  const file = join(stateDir, STATE_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

function sameMembers(a: EtcdMemberPorts[], b: EtcdMemberPorts[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (m, i) =>
        m.clientPort === b[i]?.clientPort &&
        m.peerPort === b[i]?.peerPort &&
        m.host === b[i]?.host &&
        m.netns === b[i]?.netns,
    )
  );
}

/**
 * The recorded pid of a member if that process is alive and is etcd serving this data
 * dir: a pid file can outlive its process, and the pid can be reused by anything.
 */
function runningPid(dir: string, dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(join(dir, 'etcd.pid'), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    // A zombie (exited, not yet reaped by a parent that is still alive) has an empty cmdline.
    if (!cmdline[0]?.endsWith('etcd') || !cmdline.includes(`--data-dir=${dataDir}`)) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

/**
 * Start every member that is not running and wait until each answers /health (which in
 * 3.4 means: it has a leader and a quorum read succeeded). Idempotent. A cluster whose
 * recorded ports differ from `members` is wiped and created anew: its members' peer
 * URLs are part of the cluster's own membership data.
 */
export async function etcdUp(opts: EtcdLabOptions): Promise<EtcdLabCluster> {
  const t0 = performance.now();
  const bin = etcdBinary();
  const progress = opts.onProgress ?? (() => {});
  const host = opts.host ?? '127.0.0.1';
  mkdirSync(opts.stateDir, { recursive: true });
  let state = readState(opts.stateDir);
  if (state && (state.host !== host || !sameMembers(state.members, opts.members))) {
    progress(`etcd: members or ports changed; recreating the cluster in ${opts.stateDir}`);
    await etcdDown({ stateDir: opts.stateDir, purge: true });
    mkdirSync(opts.stateDir, { recursive: true });
    state = undefined;
  }
  if (!state) {
    // A fresh token per cluster: a member never joins a different lab's cluster that
    // happens to use the same ports.
    state = { version: 1, host, token: `regionctl-${randomBytes(6).toString('hex')}`, members: opts.members };
    writeState(opts.stateDir, state);
  }
  const s = state;
  const started: number[] = [];
  try {
    await Promise.all(
      s.members.map(async (_, i) => {
        if (memberInfo(opts, s, i).pid) return waitHealthy(opts, s, i);
        started.push(i);
        await startMember(bin, opts, s, i);
        progress(`etcd: ${memberName(i)} started (pid ${memberInfo(opts, s, i).pid})`);
      }),
    );
  } catch (e) {
    // Do not leave half a cluster of ours running behind an error.
    await Promise.all(started.map((i) => stopMember(opts.stateDir, i, 'SIGKILL')));
    throw e;
  }
  const members = s.members.map((_, i) => memberInfo(opts, s, i));
  const ms = Math.round(performance.now() - t0);
  progress(`etcd: ${members.length} members healthy in ${ms} ms`);
  return { stateDir: opts.stateDir, endpoints: members.map((m) => m.clientUrl), members, ms };
}

/**
 * Stop every member this state dir recorded (SIGTERM, then SIGKILL after 5 s) and
 * nothing else. Idempotent; `purge` also removes the directory.
 */
export async function etcdDown(opts: { stateDir: string; purge?: boolean }): Promise<{ stopped: string[] }> {
  const state = readState(opts.stateDir);
  const stopped: string[] = [];
  if (state) {
    await Promise.all(
      state.members.map(async (_, i) => {
        if (await stopMember(opts.stateDir, i, 'SIGTERM')) stopped.push(memberName(i));
      }),
    );
  }
  if (opts.purge) rmSync(opts.stateDir, { recursive: true, force: true });
  return { stopped: stopped.sort() };
}

/** An outage of one member: SIGKILL, no goodbye to its peers. */
export async function etcdKillMember(
  opts: Pick<EtcdLabOptions, 'stateDir'>,
  index: number,
): Promise<{ name: string; wasRunning: boolean }> {
  const state = requireState(opts.stateDir);
  if (!state.members[index]) throw new RangeError(`etcd lab has no member ${index}`);
  return { name: memberName(index), wasRunning: await stopMember(opts.stateDir, index, 'SIGKILL') };
}

/**
 * Bring one member back with its data. Waits until it is healthy, which needs a quorum:
 * starting a member of a cluster with fewer than a majority of the others up times out.
 */
export async function etcdStartMember(
  opts: Pick<EtcdLabOptions, 'stateDir' | 'timeoutMs' | 'onProgress'>,
  index: number,
): Promise<EtcdLabMember> {
  const state = requireState(opts.stateDir);
  if (!state.members[index]) throw new RangeError(`etcd lab has no member ${index}`);
  const full: EtcdLabOptions = { ...opts, members: state.members, host: state.host };
  if (memberInfo(full, state, index).pid) await waitHealthy(full, state, index);
  else {
    await startMember(etcdBinary(), full, state, index);
    opts.onProgress?.(`etcd: ${memberName(index)} started (pid ${memberInfo(full, state, index).pid})`);
  }
  return memberInfo(full, state, index);
}

/** Members as recorded, with their pids (undefined when down); empty without a cluster. */
export function etcdMembers(stateDir: string): EtcdLabMember[] {
  const state = readState(stateDir);
  if (!state) return [];
  const opts: EtcdLabOptions = { stateDir, members: state.members, host: state.host };
  return state.members.map((_, i) => memberInfo(opts, state, i));
}

function requireState(stateDir: string): StateFile {
  const state = readState(stateDir);
  if (!state) {
    throw new RegionctlError(
      'E_LAB_NOT_INITIALISED',
      `there is no lab etcd cluster in ${stateDir}`,
      'start it first (etcdUp)',
    );
  }
  return state;
}

/**
 * Spawn a member and wait until it is healthy.
 *
 * The lab's ports lie inside Linux's ephemeral range (32768-60999), so one of them can
 * be the local port of someone's outgoing connection, and stays taken for 60 s after
 * that connection closes (TIME_WAIT: SO_REUSEADDR does not override a connect()-bound
 * port). Seen here: the peer connections of an earlier lab cluster, whose reconnects to
 * a restarted member sweep through a range of source ports. So the ports are checked
 * first and waited for (up to PORT_WAIT_MS), and a start that still loses the race is
 * retried.
 */
async function startMember(bin: string, opts: EtcdLabOptions, state: StateFile, i: number): Promise<void> {
  const ports = state.members[i]!;
  for (let attempt = 1; ; attempt++) {
    // A member in a namespace of its own has its own ports: nothing on this host can take them.
    if (!ports.netns) {
      await waitPortsFree(state.host, [ports.clientPort, ports.peerPort], memberName(i), opts.onProgress);
    }
    const m = memberInfo(opts, state, i);
    mkdirSync(memberDir(opts.stateDir, i), { recursive: true, mode: 0o700 });
    const logStart = logSize(m.logFile);
    const child = spawnMember(bin, opts, state, i);
    try {
      await waitHealthy(opts, state, i, child, logStart);
      return;
    } catch (e) {
      const inUse = /address already in use/i.test(logSince(m.logFile, logStart));
      if (!inUse || attempt >= 5 || child.exitCode === null) throw e;
      await sleep(200 * attempt);
    }
  }
}

/** TIME_WAIT lasts 60 s on Linux. */
const PORT_WAIT_MS = 65_000;

async function waitPortsFree(
  host: string,
  ports: number[],
  name: string,
  progress: ((message: string) => void) | undefined,
): Promise<void> {
  const deadline = Date.now() + PORT_WAIT_MS;
  let said = false;
  for (;;) {
    const busy: number[] = [];
    for (const port of ports) if (!(await canListen(host, port))) busy.push(port);
    if (busy.length === 0) return;
    if (Date.now() > deadline) {
      throw new RegionctlError(
        'E_LAB_ETCD_START',
        `${name}: ${host}:${busy.join(', ')} stayed in use for ${PORT_WAIT_MS / 1000} s`,
        `another process listens there (\`ss -tanp | grep ${busy[0]}\` shows it): stop it or choose other ports`,
      );
    }
    if (!said) {
      progress?.(`etcd: ${name}: port ${busy.join(', ')} in use (a closing connection?); waiting up to 65 s`);
      said = true;
    }
    await sleep(500);
  }
}

function canListen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

function spawnMember(bin: string, opts: EtcdLabOptions, state: StateFile, i: number): ChildProcess {
  const m = memberInfo(opts, state, i);
  const dir = memberDir(opts.stateDir, i);
  const initialCluster = state.members
    .map((p, j) => `${memberName(j)}=http://${p.host ?? state.host}:${p.peerPort}`)
    .join(',');
  // With an existing data dir, etcd ignores the --initial-* flags and rejoins as itself.
  const args = [
    `--name=${m.name}`,
    `--data-dir=${m.dataDir}`,
    `--listen-client-urls=${m.clientUrl}`,
    `--advertise-client-urls=${m.clientUrl}`,
    `--listen-peer-urls=${m.peerUrl}`,
    `--initial-advertise-peer-urls=${m.peerUrl}`,
    `--initial-cluster=${initialCluster}`,
    `--initial-cluster-token=${state.token}`,
    '--initial-cluster-state=new',
    '--logger=zap',
    '--log-outputs=stderr',
    '--log-level=warn',
    // The lab's key space is tiny; keep the history (and the memory) small too.
    '--auto-compaction-mode=revision',
    '--auto-compaction-retention=1000',
    '--snapshot-count=10000',
  ];
  const log = openSync(m.logFile, 'a');
  try {
    writeFileSync(log, `\n--- ${new Date().toISOString()} regionctl lab: ${bin} ${args.join(' ')}\n`);
    const ns = state.members[i]!.netns;
    // `ip netns exec` enters the namespace and execs etcd: the pid is etcd's own.
    const child = ns
      ? spawn('ip', ['netns', 'exec', ns, bin, ...args], {
          detached: true,
          stdio: ['ignore', log, log],
          cwd: dir,
        })
      : spawn(bin, args, { detached: true, stdio: ['ignore', log, log], cwd: dir });
    if (child.pid === undefined) throw new Error(`could not spawn ${bin}`);
    writeFileSync(join(dir, 'etcd.pid'), `${child.pid}\n`);
    child.unref();
    return child;
  } finally {
    closeSync(log);
  }
}

async function stopMember(stateDir: string, i: number, signal: 'SIGTERM' | 'SIGKILL'): Promise<boolean> {
  const dir = memberDir(stateDir, i);
  const dataDir = join(dir, 'data');
  const pid = runningPid(dir, dataDir);
  if (!pid) return false;
  try {
    process.kill(pid, signal);
  } catch {
    return false;
  }
  const deadline = Date.now() + 5000;
  while (runningPid(dir, dataDir) === pid && isAlive(pid)) {
    if (Date.now() > deadline) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    await sleep(25);
  }
  rmSync(join(dir, 'etcd.pid'), { force: true });
  return true;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitHealthy(
  opts: EtcdLabOptions,
  state: StateFile,
  i: number,
  child?: ChildProcess,
  logStart = logSize(memberInfo(opts, state, i).logFile),
): Promise<void> {
  const m = memberInfo(opts, state, i);
  let exited = false;
  child?.once('exit', () => {
    exited = true;
  });
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await healthy(m.clientUrl)) return;
    if (exited || (child === undefined && m.pid !== undefined && !isAlive(m.pid))) {
      const log = lastLines(logSince(m.logFile, logStart), 3);
      throw new RegionctlError(
        'E_LAB_ETCD_START',
        `${m.name}: etcd exited during start: ${log}`,
        /address already in use/i.test(log)
          ? `a port of ${m.name} (${m.clientUrl}, ${m.peerUrl}) is taken by another process: stop it (\`ss -ltnp\` shows which) or choose other ports`
          : `see ${m.logFile}`,
      );
    }
    if (Date.now() > deadline) {
      throw new RegionctlError(
        'E_LAB_ETCD_START',
        `${m.name}: not healthy on ${m.clientUrl} after ${timeoutMs} ms (a member needs a majority of its cluster running): ${lastLines(logSince(m.logFile, logStart), 3)}`,
        `start the other members too, or see ${m.logFile}`,
      );
    }
    await sleep(100);
  }
}

function logSize(file: string): number {
  return existsSync(file) ? statSync(file).size : 0;
}

/** The part of a log written since `offset` (a member's output of this start). */
function logSince(file: string, offset: number): string {
  try {
    return readFileSync(file).subarray(offset).toString('utf8');
  } catch {
    return '';
  }
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join(' | ');
}

/** etcd's /health: true when the member has a leader and a quorum read went through. */
function healthy(clientUrl: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${clientUrl}/health`, { timeout: 1500 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 && (JSON.parse(body) as { health?: unknown }).health === 'true');
        } catch {
          resolve(false);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
