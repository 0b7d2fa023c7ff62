/**
 * After a failover or switchover, propose the new topology as a commit on a branch (never
 * the default branch) so regions.yaml catches up by pull request. A failure here is
 * reported, never undoes the transition: the control store's topology already rules.
 */
import { execFile } from 'node:child_process';
import { dirname } from 'node:path';
import type { Store } from '../store/store.js';

export interface WriteBackConfig {
  remote: string;
  baseBranch: string;
  branchPrefix?: string;
}

function gitTop(dir: string): Promise<string | null> {
  return new Promise((resolve) => {
    execFile('git', ['rev-parse', '--show-toplevel'], { cwd: dir }, (err, out) =>
      resolve(err ? null : out.trim()),
    );
  });
}

export async function writeBackAfter(
  cfg: WriteBackConfig | undefined,
  store: Store,
  e: {
    specFile: string;
    eventId: number;
    kind: 'failover' | 'switchover';
    newPrimary: string;
    reason: string;
  },
  log: (line: string) => void,
): Promise<void> {
  if (!cfg) return;
  try {
    const repoDir = await gitTop(dirname(e.specFile));
    if (!repoDir) throw new Error(`${e.specFile} is not in a git repository`);
    const { recordWriteBack, writeBack } = await import('../providers/git/write-back.js');
    const r = await writeBack({
      repoDir,
      specPath: e.specFile,
      newPrimary: e.newPrimary,
      eventId: e.eventId,
      kind: e.kind,
      remote: cfg.remote,
      baseBranch: cfg.baseBranch,
      reason: e.reason,
      ...(cfg.branchPrefix ? { branchPrefix: cfg.branchPrefix } : {}),
    });
    await recordWriteBack(store, e.eventId, r);
    log(
      JSON.stringify({
        level: 'info',
        msg: 'write-back pushed',
        branch: r.branch,
        commit: r.commit,
        changes: r.changes,
      }),
    );
  } catch (err) {
    const message = `write-back of event ${e.eventId} failed: ${(err as Error).message}`;
    log(JSON.stringify({ level: 'error', msg: message }));
    await store.raiseAlert(`write-back:${e.eventId}`, {
      severity: 'warning',
      message: `${message}; edit regions.yaml by hand (primary ${e.newPrimary}) and open the pull request`,
    });
  }
}
