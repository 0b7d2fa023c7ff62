/**
 * Write-back: after an automated failover or a switchover the control store knows the new
 * primary, regions.yaml does not. regionctl never edits the reviewed spec silently: it
 * commits the change (new primary, channels re-formed) to a branch of its own, pushes it,
 * and the team merges it by pull request. Until then the topology guard keeps `regionctl
 * apply` and `pulumi up` from acting on the outdated spec.
 *
 * The edit is made on the YAML document's nodes in place (the `yaml` package keeps a
 * scalar's node, and so its comments, when only its value changes), so the diff a
 * reviewer sees is the changed values and nothing else. The commit is made in a temporary
 * worktree from the remote's base branch: the checkout regionctl runs from is not touched.
 *
 * The caller records the result in the failover event's evidence as `writeBack`
 * (`recordWriteBack`), which is where the topology guard finds the branch to name.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { simpleGit } from 'simple-git';
import { isMap, isScalar, isSeq, parseDocument, Scalar, type YAMLMap } from 'yaml';
import {
  DEFAULT_WRITE_BACK_PREFIX,
  type WriteBackRecord,
  writeBackBranch,
} from '../../apply/topology-guard.js';
import { RegionctlError } from '../../errors.js';
import { loadSpecFromString } from '../../spec/load.js';

export interface WriteBackOptions {
  /** A clone of the repository holding regions.yaml (its checkout is left as it is). */
  repoDir: string;
  /** regions.yaml, relative to repoDir (or absolute, inside it). */
  specPath: string;
  newPrimary: string;
  eventId: number;
  kind?: 'failover' | 'switchover';
  remote: string;
  /** Branch names are `<prefix><kind>-<eventId>-<newPrimary>` (default prefix `regionctl/`). */
  branchPrefix?: string;
  /** An explicit branch instead of the prefix scheme; the default branch is refused. */
  branch?: string;
  /** The branch the pull request targets (normally the default branch). */
  baseBranch: string;
  /** What happened, for the commit message (e.g. "primary us-east-1 unreachable for 3 probes"). */
  reason?: string;
  author?: { name: string; email: string };
}

export interface WriteBackResult extends WriteBackRecord {
  /** false when the branch was already pushed with this very change (a re-run). */
  pushed: boolean;
  oldPrimary: string;
  /** What changed, one line each (also in the commit message). */
  changes: string[];
}

export interface SpecRewrite {
  text: string;
  oldPrimary: string;
  changes: string[];
}

function mapItems(node: unknown, what: string): YAMLMap[] {
  if (!isSeq(node))
    throw new RegionctlError('E_WRITEBACK_SPEC', `${what} is not a list`, 'validate the spec');
  return node.items.map((item) => {
    if (!isMap(item))
      throw new RegionctlError(
        'E_WRITEBACK_SPEC',
        `an entry of ${what} is not a mapping`,
        'validate the spec',
      );
    return item as YAMLMap;
  });
}

/** One scalar whose value changes, and where its text is in the source. */
interface Edit {
  node: Scalar;
  value: string;
}

function scalarAt(map: YAMLMap, key: string): Scalar {
  const node = map.get(key, true);
  if (!isScalar(node) || !node.range)
    throw new RegionctlError('E_WRITEBACK_SPEC', `'${key}' is not a plain value`, 'validate the spec');
  return node;
}

/** The new value written the way the old one was (plain, single or double quoted). */
function render(node: Scalar, value: string): string {
  if (node.type === Scalar.QUOTE_DOUBLE) return JSON.stringify(value);
  if (node.type === Scalar.QUOTE_SINGLE) return `'${value.replaceAll("'", "''")}'`;
  return value; // region names are plain-safe (lowercase letters, digits, dashes)
}

/**
 * Pure: regions.yaml text with `newPrimary` as the primary, the old primary a secondary,
 * and every channel from the new primary; the channel that fed the new primary now feeds
 * the old one, keeping its rpo (and filters, which a candidate's channel cannot have
 * anyway). The nodes are changed in place in the Document; the text is then patched at
 * exactly those nodes' source ranges, because re-printing the whole document would also
 * restyle lines nobody changed (flow list padding, for one). The two are checked to agree.
 */
export function rewriteSpec(text: string, newPrimary: string): SpecRewrite {
  const doc = parseDocument(text);
  if (doc.errors.length > 0)
    throw new RegionctlError(
      'E_WRITEBACK_SPEC',
      `regions.yaml does not parse: ${doc.errors[0]?.message}`,
      'fix the spec on the base branch',
    );
  const regions = mapItems(doc.get('regions', true), 'regions');
  const primaryNode = regions.find((r) => r.get('role') === 'primary');
  const oldPrimary = primaryNode?.get('name');
  if (!primaryNode || typeof oldPrimary !== 'string')
    throw new RegionctlError('E_WRITEBACK_SPEC', 'regions.yaml has no primary region', 'validate the spec');
  const target = regions.find((r) => r.get('name') === newPrimary);
  if (!target) {
    throw new RegionctlError(
      'E_WRITEBACK_UNKNOWN_REGION',
      `region ${newPrimary} is not in regions.yaml`,
      'the failover promoted a region the spec does not declare: fix the spec by hand',
    );
  }
  if (oldPrimary === newPrimary) return { text, oldPrimary, changes: [] };
  const edits: Edit[] = [];
  const changes: string[] = [];
  edits.push({ node: scalarAt(target, 'role'), value: 'primary' });
  changes.push(`${newPrimary}: role secondary → primary`);
  edits.push({ node: scalarAt(primaryNode, 'role'), value: 'secondary' });
  changes.push(`${oldPrimary}: role primary → secondary`);
  for (const ch of mapItems(doc.get('channels', true), 'channels')) {
    const from = ch.get('from');
    const to = ch.get('to');
    if (to === newPrimary) {
      edits.push({ node: scalarAt(ch, 'from'), value: newPrimary });
      edits.push({ node: scalarAt(ch, 'to'), value: oldPrimary });
      changes.push(`channel ${from} → ${to} becomes ${newPrimary} → ${oldPrimary}`);
    } else if (from !== newPrimary) {
      edits.push({ node: scalarAt(ch, 'from'), value: newPrimary });
      changes.push(`channel ${from} → ${to} becomes ${newPrimary} → ${to}`);
    }
  }
  let out = text;
  for (const e of [...edits].sort((a, b) => (b.node.range?.[0] ?? 0) - (a.node.range?.[0] ?? 0))) {
    const [start, end] = e.node.range ?? [0, 0];
    out = out.slice(0, start) + render(e.node, e.value) + out.slice(end);
    e.node.value = e.value;
  }
  if (JSON.stringify(parseDocument(out).toJS()) !== JSON.stringify(doc.toJS())) {
    throw new Error('write-back: the patched text does not read back as the edited document');
  }
  return { text: out, oldPrimary, changes };
}

export function commitMessage(o: WriteBackOptions, r: SpecRewrite, specRel: string): string {
  const kind = o.kind ?? 'failover';
  return [
    `regionctl: ${o.newPrimary} is the primary after ${kind} event #${o.eventId}`,
    '',
    `${kind === 'failover' ? 'Failover' : 'Switchover'} event #${o.eventId} (${r.oldPrimary} → ${o.newPrimary}) made ${o.newPrimary} the primary${o.reason ? `: ${o.reason}` : ''}.`,
    `This commit brings ${specRel} in line with the control store:`,
    '',
    ...r.changes.map((c) => `- ${c}`),
    '',
    'Until it is merged, `regionctl apply` and `pulumi up` refuse to run (E_TOPOLOGY_MISMATCH).',
    '',
    `Regionctl-Event: ${o.eventId}`,
  ].join('\n');
}

async function remoteDefaultBranch(
  git: ReturnType<typeof simpleGit>,
  remote: string,
): Promise<string | null> {
  try {
    const out = await git.raw(['ls-remote', '--symref', remote, 'HEAD']);
    return /^ref: refs\/heads\/(\S+)\s+HEAD/m.exec(out)?.[1] ?? null;
  } catch {
    return null;
  }
}

export async function writeBack(o: WriteBackOptions): Promise<WriteBackResult> {
  const kind = o.kind ?? 'failover';
  const repoDir = resolve(o.repoDir);
  const specRel = relative(repoDir, isAbsolute(o.specPath) ? o.specPath : resolve(repoDir, o.specPath));
  if (specRel.startsWith(`..${sep}`) || specRel === '..' || isAbsolute(specRel)) {
    throw new RegionctlError(
      'E_WRITEBACK_SPEC',
      `${o.specPath} is not inside the repository ${repoDir}`,
      'give the path of regions.yaml inside the clone',
    );
  }
  const author = o.author ?? { name: 'regionctl', email: 'regionctl@localhost' };
  const git = simpleGit({
    baseDir: repoDir,
    config: [`user.name=${author.name}`, `user.email=${author.email}`],
  });
  const branch =
    o.branch ?? writeBackBranch(o.branchPrefix ?? DEFAULT_WRITE_BACK_PREFIX, kind, o.eventId, o.newPrimary);
  const protectedBranches = new Set([o.baseBranch]);
  const dflt = await remoteDefaultBranch(git, o.remote);
  if (dflt) protectedBranches.add(dflt);
  if (protectedBranches.has(branch)) {
    throw new RegionctlError(
      'E_WRITEBACK_DEFAULT_BRANCH',
      `write-back refuses to push to ${branch}: it is the ${branch === dflt ? 'default' : 'base'} branch of ${o.remote}`,
      'a spec change after a failover is reviewed by pull request: use a branch prefix such as regionctl/',
    );
  }

  await git.fetch(o.remote, o.baseBranch);
  const base = `refs/remotes/${o.remote}/${o.baseBranch}`;
  const original = await git.show([`${base}:${specRel.split(sep).join('/')}`]);
  const rewrite = rewriteSpec(original, o.newPrimary);
  const record = (commit: string, pushed: boolean): WriteBackResult => ({
    remote: o.remote,
    branch,
    commit,
    pushed,
    oldPrimary: rewrite.oldPrimary,
    changes: rewrite.changes,
  });
  if (rewrite.changes.length === 0) {
    throw new RegionctlError(
      'E_WRITEBACK_NOTHING',
      `${specRel} on ${o.remote}/${o.baseBranch} already names ${o.newPrimary} as the primary`,
      'nothing to write back: the change is merged',
    );
  }
  const check = loadSpecFromString(rewrite.text, specRel);
  if (!check.ok) {
    const errors = check.diagnostics.filter((d) => d.severity === 'error');
    throw new RegionctlError(
      'E_WRITEBACK_INVALID',
      `the rewritten ${specRel} would be invalid: ${errors.map((d) => `${d.line}:${d.col} ${d.code} ${d.message}`).join('; ')}`,
      'fix the spec by hand for this failover; regionctl does not push a spec that does not validate',
    );
  }

  // A re-run after a crash between push and recording it: the same change is already there.
  const existing = (await git.raw(['ls-remote', '--heads', o.remote, `refs/heads/${branch}`])).trim();
  if (existing) {
    await git.fetch(o.remote, `refs/heads/${branch}:refs/remotes/${o.remote}/${branch}`);
    const theirs = await git.show([`refs/remotes/${o.remote}/${branch}:${specRel.split(sep).join('/')}`]);
    const commit = existing.split(/\s+/)[0] ?? '';
    if (theirs === rewrite.text) return record(commit, false);
    throw new RegionctlError(
      'E_WRITEBACK_BRANCH_EXISTS',
      `branch ${branch} already exists on ${o.remote} with a different ${specRel}`,
      `look at it (git fetch ${o.remote} ${branch}); delete it if it is stale, then run the write-back again`,
    );
  }

  const work = await mkdtemp(join(tmpdir(), 'regionctl-writeback-'));
  try {
    await git.raw(['worktree', 'add', '--detach', work, base]);
    const wt = simpleGit({
      baseDir: work,
      config: [`user.name=${author.name}`, `user.email=${author.email}`],
    });
    await wt.checkoutLocalBranch(branch);
    const file = join(work, specRel);
    // The worktree's copy is the base branch's; rewrite exactly that text.
    if ((await readFile(file, 'utf8')) !== original)
      throw new Error(`${specRel} differs from ${base} in the worktree`);
    await writeFile(file, rewrite.text);
    await wt.add([specRel]);
    const c = await wt.commit(commitMessage(o, rewrite, specRel));
    const commit = (await wt.revparse(['HEAD'])).trim() || c.commit;
    await wt.push(o.remote, `refs/heads/${branch}:refs/heads/${branch}`);
    return record(commit, true);
  } finally {
    await git.raw(['worktree', 'remove', '--force', work]).catch(() => {});
    await rm(work, { recursive: true, force: true });
    // The local branch only existed to be pushed.
    await git.raw(['branch', '-D', branch]).catch(() => {});
  }
}

/** Where the topology guard finds the branch: the failover event's evidence. */
export async function recordWriteBack(
  store: { updateFailoverEvent(id: number, patch: { evidence: Record<string, unknown> }): Promise<unknown> },
  eventId: number,
  r: WriteBackRecord,
): Promise<void> {
  const writeBack: WriteBackRecord = { remote: r.remote, branch: r.branch, commit: r.commit };
  if (r.pullRequest) writeBack.pullRequest = r.pullRequest;
  await store.updateFailoverEvent(eventId, { evidence: { writeBack } });
}
