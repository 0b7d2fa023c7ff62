/**
 * The boot fence: a fence that holds while the database is down, so that a former
 * primary restarted after a failover starts with its application roles shut out.
 *
 * The SQL fence (NOLOGIN, revoked privileges, terminated sessions) needs a running
 * server. Between a restarted postmaster accepting connections and its agent's first
 * contact, a former primary's pooled clients reconnect and commit: 12 split-brain
 * acknowledgements in fault scenario 6 with a 100 ms agent poll. So when the agent of a
 * region that is or was primary sees its postmaster gone, it puts `reject` lines for the
 * application roles at the top of pg_hba.conf (read top-down, and read afresh at start).
 * At first contact it either lifts them (still the primary at the current epoch and the
 * primary lease taken again) or applies the SQL fence first and then lifts them (a
 * former primary): either way the file goes back to what the operator wrote, and the
 * SQL state is the one the rest of regionctl knows.
 *
 * Fail closed: without the authority's answer the lines stay; an agent that is not
 * running does not lift them (the region then takes no application logins until the
 * agent is back, or an operator removes the marked block and reloads).
 */
import {
  accessSync,
  chownSync,
  constants,
  existsSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ident } from '../sql/quote.js';

export const BOOT_FENCE_BEGIN = '# regionctl-agent-boot-fence begin';
export const BOOT_FENCE_END = '# regionctl-agent-boot-fence end';

/** pg_hba.conf lines that reject the given roles on every connection type. */
export function hbaRejectLines(roles: readonly string[]): string {
  const list = roles.map(ident).join(',');
  return `host all ${list} all reject\nlocal all ${list} reject\n`;
}

/** `text` without any block between `begin` and `end` (markers included). */
export function stripHbaBlock(text: string, begin: string, end: string): string {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return text.replace(new RegExp(`${esc(begin)}[^\\n]*\\n[\\s\\S]*?${esc(end)}\\n?`, 'g'), '');
}

export function hasHbaBlock(text: string, begin: string): boolean {
  return text.includes(begin);
}

/** `text` with one block rejecting `roles` first (any earlier copy removed). */
export function withHbaBlock(
  text: string,
  begin: string,
  end: string,
  roles: readonly string[],
  why: string,
) {
  return `${begin} (${why})\n${hbaRejectLines(roles)}${end}\n${stripHbaBlock(text, begin, end)}`;
}

/** Where the agent's database keeps its files, when the agent can reach them. */
export interface LocalFiles {
  hbaFile: string;
  dataDir: string;
}

/**
 * Writes through a temporary file and a rename, so a server starting never reads half a
 * file; the new file keeps the old one's owner and mode (the server's user must read it).
 */
function replaceFile(file: string, text: string): void {
  const st = statSync(file);
  const tmp = `${file}.regionctl-tmp`;
  writeFileSync(tmp, text, { mode: st.mode & 0o777 });
  if (typeof process.getuid === 'function' && process.getuid() === 0) chownSync(tmp, st.uid, st.gid);
  renameSync(tmp, file);
}

export class BootFence {
  constructor(
    private readonly files: LocalFiles,
    private readonly roles: readonly string[],
  ) {}

  /** The files exist and can be written by this process (the agent runs beside the server). */
  static usable(files: LocalFiles): string | null {
    try {
      accessSync(files.hbaFile, constants.R_OK | constants.W_OK);
      accessSync(files.dataDir, constants.R_OK);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  get hbaFile(): string {
    return this.files.hbaFile;
  }

  /**
   * Is the postmaster gone? postmaster.pid is absent, or names a process that does not
   * exist. (A process of another user answers EPERM: it exists.)
   */
  postmasterDown(): boolean {
    const pidFile = join(this.files.dataDir, 'postmaster.pid');
    if (!existsSync(pidFile)) return true;
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return true;
    try {
      process.kill(pid, 0);
      return false;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ESRCH';
    }
  }

  isSet(): boolean {
    return hasHbaBlock(readFileSync(this.files.hbaFile, 'utf8'), BOOT_FENCE_BEGIN);
  }

  set(why: string): void {
    const text = readFileSync(this.files.hbaFile, 'utf8');
    replaceFile(this.files.hbaFile, withHbaBlock(text, BOOT_FENCE_BEGIN, BOOT_FENCE_END, this.roles, why));
  }

  /** Removes the block; the caller reloads the server's configuration. */
  clear(): boolean {
    const text = readFileSync(this.files.hbaFile, 'utf8');
    if (!hasHbaBlock(text, BOOT_FENCE_BEGIN)) return false;
    replaceFile(this.files.hbaFile, stripHbaBlock(text, BOOT_FENCE_BEGIN, BOOT_FENCE_END));
    return true;
  }
}
