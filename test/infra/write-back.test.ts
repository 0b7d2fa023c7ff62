/**
 * Write-back against a real local bare repository as the remote: the branch, the commit
 * (message cites the event), a YAML diff limited to the changed values with every
 * comment intact, the operator's checkout untouched, an idempotent re-run, and refusal
 * to push to the default branch.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { beforeEach, describe, expect, it } from 'vitest';
import { rewriteSpec, writeBack } from '../../src/providers/git/write-back.js';
import { loadSpecFromString } from '../../src/spec/load.js';

const exec = promisify(execFile);
const EXAMPLE = resolve(import.meta.dirname, '../../regions.yaml');
const ID = ['-c', 'user.name=test', '-c', 'user.email=test@localhost'];

async function git(cwd: string, ...args: string[]): Promise<string> {
  return (await exec('git', [...ID, ...args], { cwd })).stdout;
}

let remote: string;
let clone: string;

beforeEach(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'regionctl-git-'));
  remote = join(dir, 'remote.git');
  clone = join(dir, 'clone');
  await exec('git', ['init', '--bare', '-q', '-b', 'main', remote]);
  await exec('git', ['clone', '-q', remote, clone]);
  await git(clone, 'checkout', '-q', '-b', 'main');
  copyFileSync(EXAMPLE, join(clone, 'regions.yaml'));
  await git(clone, 'add', 'regions.yaml');
  await git(clone, 'commit', '-q', '-m', 'topology');
  await git(clone, 'push', '-q', 'origin', 'main');
});

const opts = () => ({
  repoDir: clone,
  specPath: 'regions.yaml',
  newPrimary: 'eu-west-1',
  eventId: 12,
  remote: 'origin',
  branchPrefix: 'regionctl/',
  baseBranch: 'main',
  reason: 'us-east-1 failed 3 consecutive probes',
});

describe('write-back', () => {
  it('pushes a branch with one commit citing the event; the diff is the changed values only', async () => {
    const mainBefore = (await git(remote, 'rev-parse', 'main')).trim();
    const r = await writeBack(opts());
    expect(r).toMatchObject({ remote: 'origin', branch: 'regionctl/failover-12-eu-west-1', pushed: true });
    expect(r.oldPrimary).toBe('us-east-1');

    // On the remote: the branch, whose parent is main; main itself unchanged.
    expect((await git(remote, 'rev-parse', r.branch)).trim()).toBe(r.commit);
    expect((await git(remote, 'rev-parse', 'main')).trim()).toBe(mainBefore);
    expect((await git(remote, 'rev-parse', `${r.commit}^`)).trim()).toBe(mainBefore);
    const message = await git(remote, 'log', '-1', '--format=%B', r.commit);
    expect(message).toContain('failover event #12');
    expect(message).toContain('us-east-1 failed 3 consecutive probes');
    expect(message).toContain('Regionctl-Event: 12');

    // The diff: exactly the two roles and the re-formed channel ends.
    const diff = await git(remote, 'diff', '--unified=0', 'main', r.branch, '--', 'regions.yaml');
    const changed = diff.split('\n').filter((l) => /^[-+] /.test(l));
    expect(changed).toEqual([
      '-    role: primary',
      '+    role: secondary',
      '-    role: secondary',
      '+    role: primary',
      '-  - from: us-east-1',
      '-    to: eu-west-1',
      '+  - from: eu-west-1',
      '+    to: us-east-1',
      '-  - from: us-east-1',
      '+  - from: eu-west-1',
    ]);
    const before = readFileSync(EXAMPLE, 'utf8');
    const after = await git(remote, 'show', `${r.branch}:regions.yaml`);
    const comments = (t: string) => t.split('\n').filter((l) => l.includes('#'));
    expect(comments(after)).toEqual(comments(before));
    expect(after.split('\n').length).toBe(before.split('\n').length);

    // The result is a valid spec with the new primary and every channel from it.
    const loaded = loadSpecFromString(after, 'regions.yaml');
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.diagnostics));
    expect(loaded.spec.regions.find((x) => x.role === 'primary')?.name).toBe('eu-west-1');
    expect(loaded.spec.channels.map((c) => `${c.from}>${c.to}:${c.rpo.alertSeconds}`)).toEqual([
      'eu-west-1>us-east-1:10',
      'eu-west-1>ap-southeast-1:30',
    ]);

    // The operator's checkout is as it was: on main, clean, no leftover branch or worktree.
    expect((await git(clone, 'rev-parse', '--abbrev-ref', 'HEAD')).trim()).toBe('main');
    expect((await git(clone, 'status', '--porcelain')).trim()).toBe('');
    expect((await git(clone, 'branch', '--list', r.branch)).trim()).toBe('');
    expect((await git(clone, 'worktree', 'list')).trim().split('\n')).toHaveLength(1);
  });

  it('a re-run finds the same change already pushed and pushes nothing', async () => {
    const first = await writeBack(opts());
    const again = await writeBack(opts());
    expect(again).toMatchObject({ branch: first.branch, commit: first.commit, pushed: false });
    expect((await git(remote, 'rev-list', '--count', first.branch)).trim()).toBe('2');
  });

  it('refuses to push to the default branch, and pushes nothing', async () => {
    const mainBefore = (await git(remote, 'rev-parse', 'main')).trim();
    await expect(writeBack({ ...opts(), branch: 'main' })).rejects.toMatchObject({
      code: 'E_WRITEBACK_DEFAULT_BRANCH',
    });
    // The base branch is protected too, even when the remote's default is another one.
    await expect(writeBack({ ...opts(), baseBranch: 'release', branch: 'release' })).rejects.toMatchObject({
      code: 'E_WRITEBACK_DEFAULT_BRANCH',
    });
    expect((await git(remote, 'rev-parse', 'main')).trim()).toBe(mainBefore);
    expect((await git(remote, 'branch', '--list')).trim()).toBe('* main');
  });

  it('refuses a region the spec does not declare, and a change that is already merged', async () => {
    await expect(writeBack({ ...opts(), newPrimary: 'sa-east-1' })).rejects.toMatchObject({
      code: 'E_WRITEBACK_UNKNOWN_REGION',
    });
    await expect(writeBack({ ...opts(), newPrimary: 'us-east-1' })).rejects.toMatchObject({
      code: 'E_WRITEBACK_NOTHING',
    });
  });

  it('keeps the quoting style of a value it changes', () => {
    const text = readFileSync(EXAMPLE, 'utf8').replace(
      '  - from: us-east-1\n    to: eu-west-1',
      '  - from: "us-east-1"\n    to: \'eu-west-1\'',
    );
    const r = rewriteSpec(text, 'eu-west-1');
    expect(r.text).toContain('  - from: "eu-west-1"\n    to: \'us-east-1\'');
  });
});
