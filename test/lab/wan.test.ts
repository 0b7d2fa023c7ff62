/**
 * `regionctl lab up --wan` and `lab net …` on real namespaces, through the CLI: the
 * relay adds the configured round trip, cut-control cuts only the control plane (the
 * other regions still reach the primary), heal restores it, and `lab down` leaves no
 * namespace, link, rule or subnet claim behind. Skips (with the reason) where the WAN
 * lab cannot run; fails instead under REGIONCTL_REQUIRE_PEERS=1 (CI).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { wanSupportProblems } from '../../src/lab/wan/netns.js';
import { readWanState } from '../../src/lab/wan/state.js';
import { loadSpecOrThrow } from '../../src/spec/load.js';
import { connect, regionTarget } from '../../src/sql/connect.js';
import { requireWanLab } from '../support/peers.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const skip = requireWanLab(wanSupportProblems());

async function cli(dir: string, ...args: string[]) {
  try {
    const r = await run(process.execPath, [CLI, ...args], { cwd: dir, timeout: 120_000 });
    return { code: 0, ...r };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: x.code ?? 1, stdout: x.stdout ?? '', stderr: x.stderr ?? '' };
  }
}

async function tcpFrom(netns: string, host: string, port: number): Promise<boolean> {
  try {
    await run('ip', [
      'netns',
      'exec',
      netns,
      'timeout',
      '2',
      'bash',
      '-c',
      `exec 3<>/dev/tcp/${host}/${port}`,
    ]);
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(skip !== undefined)('WAN lab', () => {
  const dir = `/tmp/regionctl-wan-test-${process.pid}`;
  let wanSpec = '';
  beforeAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const doc = parseDocument(readFileSync(join(ROOT, 'regions.yaml'), 'utf8'));
    // Loopback only for the control store: a port no other lab of this run uses (above the
    // ephemeral range, which the fault suite's labs and every outgoing connection draw from).
    doc.setIn(['controlStore', 'port'], 61590);
    writeFileSync(join(dir, 'regions.yaml'), doc.toString());
    const up = await cli(dir, 'lab', 'up', '--wan', '--no-demo-schema', '--format', 'json');
    expect(up.code, up.stderr).toBe(0);
    wanSpec = JSON.parse(up.stdout).wan.specFile;
  }, 180_000);
  afterAll(async () => {
    await cli(dir, 'lab', 'down', '--purge');
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);

  it('advertises relay addresses from 198.18.0.0/15 and serves each region through the relay with its round trip', async () => {
    const { spec } = await loadSpecOrThrow(wanSpec);
    for (const r of spec.regions) expect(r.endpoint.host).toMatch(/^198\.1[89]\./);
    const time = async (region: string) => {
      const c = await connect(regionTarget(spec, region, dir), { connectTimeoutMs: 5000 });
      try {
        await c.query('SELECT 1');
        const t = performance.now();
        await c.query('SELECT 1');
        return performance.now() - t;
      } finally {
        await c.end();
      }
    };
    // The control plane sits in us-east-1: ap-southeast-1 is 220 ms away (a lower bound only).
    expect(await time('ap-southeast-1')).toBeGreaterThanOrEqual(215);
    const show = JSON.parse((await cli(dir, 'lab', 'net', 'show', '--format', 'json')).stdout);
    expect(show.rttMs.control['ap-southeast-1']).toBe(220);
    expect(show.rttMs['eu-west-1']['us-east-1']).toBe(70);
  });

  it('cut-control cuts only the control plane; heal restores it; commands are idempotent', async () => {
    const { spec } = await loadSpecOrThrow(wanSpec);
    const state = readWanState(join(dir, '.regionctl/lab'))!;
    const us = spec.regions.find((r) => r.name === 'us-east-1')!.endpoint;
    const euNs = state.layout.nodes.find((n) => n.name === 'eu-west-1')!.netns!;
    const usClients = state.layout.nodes.find((n) => n.name === 'us-east-1:clients')!.netns!;
    for (let i = 0; i < 2; i++)
      expect((await cli(dir, 'lab', 'net', 'cut-control', 'us-east-1', '-q')).code).toBe(0);
    await expect(
      connect(regionTarget(spec, 'us-east-1', dir), { connectTimeoutMs: 1500 }).then((c) => c.end()),
    ).rejects.toThrow();
    expect(await tcpFrom(euNs, us.host, us.port)).toBe(true);
    expect(await tcpFrom(usClients, us.host, us.port)).toBe(true);
    const show = JSON.parse((await cli(dir, 'lab', 'net', 'show', '--format', 'json')).stdout);
    expect(show.cuts).toEqual([{ from: 'control', to: 'us-east-1', oneWay: false }]);

    expect((await cli(dir, 'lab', 'net', 'isolate', 'us-east-1', '--except-clients', '-q')).code).toBe(0);
    expect(await tcpFrom(euNs, us.host, us.port)).toBe(false);
    expect(await tcpFrom(usClients, us.host, us.port)).toBe(true);

    expect((await cli(dir, 'lab', 'net', 'heal', '-q')).code).toBe(0);
    const c = await connect(regionTarget(spec, 'us-east-1', dir), { connectTimeoutMs: 5000 });
    await c.end();
    expect(await tcpFrom(euNs, us.host, us.port)).toBe(true);
  });

  it('names a mistyped node and what exists', async () => {
    const r = await cli(dir, 'lab', 'net', 'cut-control', 'us-east-9');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/E_USAGE_UNKNOWN_NODE/);
    expect(r.stderr).toMatch(/us-east-1/);
  });

  it('lab down removes every namespace, link, rule and the subnet claim', async () => {
    const state = readWanState(join(dir, '.regionctl/lab'))!;
    const r = await cli(dir, 'lab', 'down');
    expect(r.code, r.stderr).toBe(0);
    const ns = (await run('ip', ['netns', 'list'])).stdout;
    for (const n of state.layout.nodes) if (n.netns) expect(ns).not.toContain(n.netns);
    expect(ns).not.toContain(state.layout.wanNetns);
    expect((await run('ip', ['-o', 'link', 'show'])).stdout).not.toContain(state.layout.hostVeth);
    expect((await run('iptables', ['-w', '-S'])).stdout).not.toContain(state.layout.hostChain);
    expect((await run('ip', ['-4', 'route'])).stdout).not.toContain(`198.18.${state.layout.subnet}.`);
  });
});
