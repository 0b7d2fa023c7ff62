/** `regionctl lab` through the real entry point, against the shared test lab. */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestTopology, testTopology } from '../support/topology.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

function regionctl(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.REGIONCTL_SPEC;
  delete env.REGIONCTL_LAB_STATE_DIR;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      cwd: root,
      env,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('regionctl lab', () => {
  let topo: TestTopology;
  let at: string[];
  beforeAll(async () => {
    topo = await testTopology('lab_cli');
    at = ['--spec', topo.specPath, '--state-dir', topo.stateDir];
  });
  afterAll(() => topo?.close());

  it('status: every server running, exit 0', async () => {
    const r = await regionctl('lab', 'status', ...at, '--format', 'json');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const st = JSON.parse(r.stdout) as { servers: { name: string; running: boolean; reachable: boolean }[] };
    expect(st.servers.map((s) => s.name)).toEqual([...topo.spec.regions.map((x) => x.name), 'control']);
    expect(st.servers.every((s) => s.running && s.reachable)).toBe(true);
  });

  it('kill with an unknown region is a usage error with a suggestion, and kills nothing', async () => {
    const r = await regionctl('lab', 'kill', 'eu-west-2', ...at);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "E_USAGE_UNKNOWN_REGION: unknown region 'eu-west-2' — did you mean 'eu-west-1'?",
    );
  });

  it('env never prints a password', async () => {
    const secret = readFileSync(join(topo.stateDir, 'secrets', 'postgres.password'), 'utf8').trim();
    const role = topo.spec.applicationRoles[0]!;
    const appSecret = readFileSync(join(topo.stateDir, 'secrets', `${role}.password`), 'utf8').trim();
    for (const format of ['shell', 'json']) {
      const r = await regionctl('lab', 'env', ...at, '--format', format);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(format === 'shell' ? 'export PGPASSFILE=' : '"pgpassFile"');
      expect(r.stdout).not.toContain(secret);
      expect(r.stdout).not.toContain(appSecret);
    }
  });

  it('load runs and reports JSON figures', async () => {
    const r = await regionctl('lab', 'load', ...at, '--rate', '20', '--duration', '1', '--format', 'json');
    expect(r.code).toBe(0);
    const stats = JSON.parse(r.stdout) as { committed: number; failed: number };
    expect(stats.committed).toBeGreaterThan(5);
    expect(stats.failed).toBe(0);
  });

  it('load without --rate is a usage error', async () => {
    const r = await regionctl('lab', 'load', ...at, '--duration', '1');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--rate');
  });
});
