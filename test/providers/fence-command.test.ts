/** The command fence hook with real programs: exit status, timeout, substitution, bounds. */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RegionctlError } from '../../src/errors.js';
import { type CommandFencing, runFenceCommand } from '../../src/providers/fence/command.js';

const dir = mkdtempSync(join(tmpdir(), 'regionctl-fence-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cmd = (command: string[], timeoutSeconds?: number): CommandFencing => ({
  method: 'command',
  command,
  ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
});

function script(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

describe('command fence hook', () => {
  it('/bin/true confirms the fence', async () => {
    const r = await runFenceCommand(cmd(['/bin/true']), 'us-east-1');
    expect(r).toMatchObject({
      method: 'command',
      confirmed: true,
      exitCode: 0,
      timedOut: false,
      region: 'us-east-1',
    });
    expect(r.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('/bin/false is an outcome (not confirmed), not an exception', async () => {
    const r = await runFenceCommand(cmd(['/bin/false']), 'us-east-1');
    expect(r).toMatchObject({ confirmed: false, exitCode: 1, timedOut: false });
  });

  it('a command that hangs is killed at its timeout, with its children', async () => {
    const marker = join(dir, 'child-survived');
    // The script's own child would write the marker after 1 s if the group kill missed it.
    const s = script('hang.sh', `(sleep 1; echo alive > ${marker}) &\necho started\nsleep 10`);
    const started = Date.now();
    const r = await runFenceCommand(cmd([s], 0.3), 'eu-west-1');
    const elapsed = Date.now() - started;
    expect(r).toMatchObject({ confirmed: false, exitCode: null, timedOut: true, signal: 'SIGKILL' });
    expect(r.output).toContain('started');
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(5000);
    await new Promise((res) => setTimeout(res, 1300));
    expect(() => readFileSync(marker)).toThrow();
  });

  it('sleep 10 with a 0.3 s timeout', async () => {
    const r = await runFenceCommand(cmd(['sleep', '10'], 0.3), 'eu-west-1');
    expect(r.timedOut).toBe(true);
    expect(r.confirmed).toBe(false);
    expect(r.durationMs).toBeLessThan(5000);
  });

  it('replaces {region} in arguments without a shell; the region reaches the script verbatim', async () => {
    const out = join(dir, 'fenced');
    const s = script(
      'fence.sh',
      'printf "%s|%s|%s" "$1" "$2" "$REGIONCTL_FENCE_REGION" > "$3"; echo "fenced $1" >&2',
    );
    const r = await runFenceCommand(cmd([s, '{region}', 'sg-{region}-db', out]), 'ap-southeast-1');
    expect(r.confirmed).toBe(true);
    expect(r.argv).toEqual([s, 'ap-southeast-1', 'sg-ap-southeast-1-db', out]);
    expect(readFileSync(out, 'utf8')).toBe('ap-southeast-1|sg-ap-southeast-1-db|ap-southeast-1');
    expect(r.output).toContain('fenced ap-southeast-1');

    // Shell syntax in an argument stays data.
    const r2 = await runFenceCommand(cmd([s, '$(touch pwned); {region}', 'x', out]), 'eu-west-1');
    expect(r2.confirmed).toBe(true);
    expect(readFileSync(out, 'utf8')).toBe('$(touch pwned); eu-west-1|x|eu-west-1');
  });

  it('a program that does not exist is an outcome with the reason', async () => {
    const r = await runFenceCommand(cmd([join(dir, 'no-such-fence')]), 'us-east-1');
    expect(r).toMatchObject({ confirmed: false, exitCode: null, spawnError: 'ENOENT' });
    expect(r.output).toContain('no-such-fence');
  });

  it('keeps output bounded: head and tail, middle elided', async () => {
    const s = script(
      'noisy.sh',
      'echo FIRST; i=0; while [ $i -lt 2000 ]; do echo "line $i ........................................"; i=$((i+1)); done; echo LAST; exit 3',
    );
    const r = await runFenceCommand(cmd([s]), 'us-east-1', { maxOutputBytes: 4096 });
    expect(r).toMatchObject({ confirmed: false, exitCode: 3 });
    expect(r.output.length).toBeLessThan(4096 + 100);
    expect(r.output.startsWith('FIRST')).toBe(true);
    expect(r.output.trimEnd().endsWith('LAST')).toBe(true);
    expect(r.output).toMatch(/\[\.\.\. \d+ bytes omitted \.\.\.\]/);
  });

  it('programmer errors throw', async () => {
    await expect(runFenceCommand(cmd([]), 'us-east-1')).rejects.toBeInstanceOf(RegionctlError);
    await expect(runFenceCommand(cmd(['/bin/true']), '')).rejects.toBeInstanceOf(RegionctlError);
    await expect(
      runFenceCommand({ method: 'sql' } as unknown as CommandFencing, 'us-east-1'),
    ).rejects.toBeInstanceOf(RegionctlError);
  });
});
