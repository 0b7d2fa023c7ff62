/**
 * One lab PostgreSQL server: initdb, configure, start, stop, inspect. Servers are
 * started with `pg_ctl` in their own session so they outlive the regionctl process
 * that started them (the lab is long-lived; the CLI call is not).
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { RegionctlError } from '../errors.js';
import { chownToServer, pgBinaries, runAsServer } from './os.js';
import type { LabServer } from './servers.js';

const LAB_CONF = 'regionctl-lab.conf';

export interface ServerProcess {
  pid: number;
  port: number;
  /** postmaster.pid status line: ready, starting, stopping, standby. */
  status: string;
}

export function isInitialised(s: Pick<LabServer, 'dataDir'>): boolean {
  return existsSync(join(s.dataDir, 'PG_VERSION'));
}

/** What postmaster.pid says, if that process is still alive; undefined when stopped. */
export function runningProcess(dataDir: string): ServerProcess | undefined {
  let text: string;
  try {
    text = readFileSync(join(dataDir, 'postmaster.pid'), 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: alive but not ours to signal (possible when not root); ESRCH: stale file.
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  return { pid, port: Number(lines[3]), status: (lines[7] ?? '').trim() || 'starting' };
}

/**
 * Initialise a server's data directory. initdb is most of a cold `lab up` (seconds on a
 * small machine, several in parallel), so it runs once per superuser/password into a
 * template directory and every server is a copy of it. Copies share the cluster's
 * system identifier, which logical replication does not use.
 */
export async function initCluster(
  s: LabServer,
  password: string | undefined,
  templateRoot: string,
): Promise<void> {
  mkdirSync(s.dir, { recursive: true, mode: 0o700 });
  chownToServer(s.dir);
  // A half-initialised data dir (interrupted initdb or copy) would block a retry forever.
  rmSync(s.dataDir, { recursive: true, force: true });
  const template = await ensureTemplate(templateRoot, s, password);
  await copyDir(template, s.dataDir);
}

const templates = new Map<string, Promise<string>>();

async function ensureTemplate(root: string, s: LabServer, password: string | undefined): Promise<string> {
  // The binary's identity is in the key: a PostgreSQL upgrade must not reuse old templates.
  const bin = statSync((await pgBinaries()).initdb);
  const key = createHash('sha256')
    .update(`${s.endpoint.user}\0${password ?? ''}\0${bin.size}\0${bin.mtimeMs}`)
    .digest('hex')
    .slice(0, 16);
  const dir = join(root, `pg-${key}`);
  let p = templates.get(dir);
  if (!p) {
    p = (async () => {
      if (isInitialised({ dataDir: dir })) return dir;
      mkdirSync(root, { recursive: true, mode: 0o700 });
      chownToServer(root);
      // Built aside and renamed, so a concurrent lab (another test run) never sees half of it.
      const tmp = join(root, `tmp-${key}-${process.pid}-${randomBytes(3).toString('hex')}`);
      await initdb({ ...s, dir: root, dataDir: tmp }, password);
      try {
        renameSync(tmp, dir);
      } catch {
        rmSync(tmp, { recursive: true, force: true });
        if (!isInitialised({ dataDir: dir })) throw new Error(`could not create the lab template ${dir}`);
      }
      return dir;
    })();
    templates.set(dir, p);
    p.catch(() => templates.delete(dir));
  }
  return p;
}

async function copyDir(from: string, to: string): Promise<void> {
  // cp -a keeps ownership (the server user) and modes (0700 data directory).
  await new Promise<void>((resolve, reject) => {
    execFile('cp', ['-a', from, to], (err, _stdout, stderr) =>
      err ? reject(new Error(`cp -a ${from} ${to}: ${stderr || err.message}`)) : resolve(),
    );
  });
}

/** initdb with the superuser and its password; the password file exists only for the call. */
async function initdb(s: LabServer, password: string | undefined): Promise<void> {
  const { initdb } = await pgBinaries();
  const args = [
    `--pgdata=${s.dataDir}`,
    `--username=${s.endpoint.user}`,
    '--encoding=UTF8',
    '--locale=C',
    // The lab trades durability against power loss for speed (see fsync=off below).
    '--no-sync',
  ];
  const pwfile = join(s.dir, `.initdb-pw-${process.pid}-${randomBytes(3).toString('hex')}`);
  if (password !== undefined) {
    writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    chownToServer(pwfile);
    args.push(`--pwfile=${pwfile}`, '--auth=scram-sha-256');
  } else {
    args.push('--auth=trust');
  }
  try {
    const r = await runAsServer(initdb, args, { cwd: s.dir });
    if (r.code !== 0) {
      throw new RegionctlError(
        'E_LAB_INITDB',
        `${s.label}: initdb failed (exit ${r.code}): ${lastLines(r.stderr || r.stdout, 6)}`,
        `check that ${s.dir} is writable by the server user, or remove it and run \`regionctl lab up\` again`,
      );
    }
  } finally {
    rmSync(pwfile, { force: true });
  }
  const method = password !== undefined ? 'scram-sha-256' : 'trust';
  // Loopback only, but the whole 127/8 and ::1, so any loopback host in the spec works;
  // `all` also admits logical replication connections (they match on database name).
  writeFileSync(
    join(s.dataDir, 'pg_hba.conf'),
    [
      `local all all ${method}`,
      `local replication all ${method}`,
      `host all all 127.0.0.0/8 ${method}`,
      `host replication all 127.0.0.0/8 ${method}`,
      `host all all ::1/128 ${method}`,
      `host replication all ::1/128 ${method}`,
      '',
    ].join('\n'),
  );
  appendFileSync(
    join(s.dataDir, 'postgresql.conf'),
    `\n# regionctl lab settings\ninclude_if_exists = '${LAB_CONF}'\n`,
  );
}

/**
 * Settings are rewritten on every start, so a changed port or host in the spec takes
 * effect on the next `lab up` without re-initialising the data.
 */
function writeLabConf(s: LabServer): void {
  const socket = join(s.dir, `.s.PGSQL.${s.endpoint.port}`);
  // Unix socket paths are limited to ~107 bytes; deep state dirs just go TCP-only.
  const socketDir = Buffer.byteLength(socket) < 100 ? s.dir : '';
  const host = s.wan
    ? s.wan.address
    : s.endpoint.host === 'localhost'
      ? '127.0.0.1'
      : s.endpoint.host.replace(/^\[|\]$/g, '');
  const settings: [string, string | number][] = [
    ['listen_addresses', host],
    ['port', s.endpoint.port],
    ['unix_socket_directories', socketDir],
    ['wal_level', 'logical'],
    ['max_replication_slots', 200],
    ['max_wal_senders', 200],
    ['max_worker_processes', 200],
    ['max_logical_replication_workers', 100],
    // PostgreSQL 18 caps the replication origins a subscriber can have active at 10 by
    // default: every subscription (and each table being copied) holds one.
    ['max_active_replication_origins', 200],
    ['max_sync_workers_per_subscription', 4],
    ['max_connections', 300],
    // Lab speed: an fsync per commit costs more than everything else the lab does. It
    // only matters if the machine itself crashes; a killed server (`lab kill`, an
    // immediate shutdown) keeps every acknowledged commit, because the WAL is in the
    // OS page cache. synchronous_commit stays on for exactly that reason: the ledger
    // of acknowledged commits must stay true across a region kill.
    ['fsync', 'off'],
    ['full_page_writes', 'off'],
    // Failure detection in seconds, not minutes: tests kill regions on purpose. The WAN
    // lab (fault suite) keeps PostgreSQL's defaults instead, so it sees what production
    // sees: correctness must not depend on these.
    ...(s.wan?.settings === 'production'
      ? []
      : ([
          ['wal_sender_timeout', '5s'],
          ['wal_receiver_timeout', '5s'],
        ] as [string, string][])),
    // Commit timestamps back lag-in-seconds evidence and the load generator's ledger.
    ['track_commit_timestamp', 'on'],
    ['shared_buffers', '32MB'],
    ['log_line_prefix', '%m [%p] %q%u@%d '],
  ];
  const text = settings
    .map(([k, v]) => `${k} = ${typeof v === 'number' ? v : `'${v.replaceAll("'", "''")}'`}`)
    .join('\n');
  const file = join(s.dataDir, LAB_CONF);
  writeFileSync(file, `# Written by regionctl lab on every start; edits are overwritten.\n${text}\n`);
  chownToServer(file);
  if (s.wan) admitWan(s);
}

const WAN_HBA_MARK = '# regionctl WAN lab: peers arrive from the lab range';

/** The WAN lab's peers connect from 198.18.0.0/15 (relay proxy addresses), not loopback. */
function admitWan(s: LabServer): void {
  const file = join(s.dataDir, 'pg_hba.conf');
  const text = readFileSync(file, 'utf8');
  if (text.includes(WAN_HBA_MARK)) return;
  const method = /scram-sha-256/.test(text) ? 'scram-sha-256' : 'trust';
  appendFileSync(
    file,
    `${WAN_HBA_MARK}\nhost all all 198.18.0.0/15 ${method}\nhost replication all 198.18.0.0/15 ${method}\n`,
  );
}

export async function startServer(s: LabServer): Promise<ServerProcess> {
  const { pg_ctl } = await pgBinaries();
  writeLabConf(s);
  const r = await runAsServer(pg_ctl, ['start', '-D', s.dataDir, '-l', s.logFile, '-w', '-t', '60', '-s'], {
    cwd: s.dir,
    detached: true,
    ...(s.wan ? { netns: s.wan.netns } : {}),
  });
  const proc = runningProcess(s.dataDir);
  if (r.code !== 0 || !proc) {
    const log = tail(s.logFile, 8);
    const inUse = /Address already in use|could not bind/i.test(log);
    throw new RegionctlError(
      'E_LAB_START_FAILED',
      `${s.label}: PostgreSQL did not start on ${s.endpoint.host}:${s.endpoint.port}: ${lastLines(log || r.stderr, 4)}`,
      inUse
        ? `port ${s.endpoint.port} is taken by another process: stop it (\`ss -ltnp 'sport = :${s.endpoint.port}'\` shows which) or change the port in regions.yaml`
        : `see ${s.logFile}`,
    );
  }
  return proc;
}

export async function stopServer(
  s: Pick<LabServer, 'dataDir' | 'dir' | 'label'>,
  mode: 'fast' | 'immediate',
) {
  const { pg_ctl } = await pgBinaries();
  if (!runningProcess(s.dataDir)) return false;
  const r = await runAsServer(pg_ctl, ['stop', '-D', s.dataDir, '-m', mode, '-w', '-t', '60', '-s'], {
    cwd: s.dir,
  });
  if (r.code !== 0 && runningProcess(s.dataDir)) {
    throw new RegionctlError(
      'E_LAB_STOP_FAILED',
      `${s.label}: pg_ctl stop failed: ${lastLines(r.stderr, 4)}`,
      `retry, or stop it with \`kill -INT <pid>\` (pid in ${join(s.dataDir, 'postmaster.pid')})`,
    );
  }
  return true;
}

export function generatePassword(): string {
  return randomBytes(24).toString('base64url');
}

export function tail(file: string, n: number): string {
  try {
    return lastLines(readFileSync(file, 'utf8'), n);
  } catch {
    return '';
  }
}

function lastLines(text: string, n: number): string {
  return text.trimEnd().split('\n').slice(-n).join(' | ');
}
