/**
 * The topology guard on a real control store (fresh install records the spec's primary;
 * after a failover whose write-back is not merged, `regionctl apply` and the Pulumi
 * program refuse, naming the event and the branch), and stale-plan refusal of
 * `regionctl apply --plan FILE` through the CLI on the lab.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineInfrastructure } from '../../infra/program.js';
import { guardTopology } from '../../src/apply/topology-guard.js';
import { recordWriteBack } from '../../src/providers/git/write-back.js';
import { controlTarget } from '../../src/sql/connect.js';
import { heartbeatDdl } from '../../src/sql/heartbeat.js';
import { runStatements } from '../../src/sql/statement.js';
import { openStore, type Store } from '../../src/store/store.js';
import { type TestTopology, testTopology } from '../support/topology.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/src/cli/main.js');

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((ok) => {
    execFile('node', [CLI, ...args], { cwd: ROOT }, (err, stdout, stderr) => {
      ok({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function count(topo: TestTopology, region: string, sql: string): Promise<number> {
  return Number((await (await topo.client(region)).query(sql)).rows[0].n);
}

describe('topology guard', () => {
  let topo: TestTopology;
  let store: Store;
  beforeAll(async () => {
    topo = await testTopology('infra_guard');
    store = await openStore(controlTarget(topo.spec, topo.specDir));
  });
  afterAll(async () => {
    await store?.close();
    await topo?.close();
  });

  it('a dry run on a fresh store writes nothing; a real run records the spec primary at epoch 0', async () => {
    expect(await guardTopology(store, 'us-east-1', { who: 'pulumi preview', record: false })).toBeNull();
    expect(await store.getTopology()).toBeNull();
    const first = await guardTopology(store, 'us-east-1');
    expect(first).toMatchObject({ initialized: true, topology: { primaryRegion: 'us-east-1', epoch: 0 } });
    expect(await guardTopology(store, 'us-east-1')).toMatchObject({ initialized: false });
  });

  it('after a failover whose write-back is not merged, apply and pulumi refuse and say what to merge', async () => {
    const eventId = await store.createFailoverEvent({
      kind: 'failover',
      fromRegion: 'us-east-1',
      toRegion: 'eu-west-1',
      triggerReason: 'us-east-1 unreachable',
      epoch: 1,
      evidence: {},
      forced: false,
      estimatedLossBytes: 0,
      status: 'completed',
    });
    expect(await store.setTopology({ primaryRegion: 'eu-west-1', epoch: 1, lastEventId: eventId }, 0)).toBe(
      true,
    );

    // Before write-back recorded its branch, the guard names the branch write-back would use.
    await expect(guardTopology(store, 'us-east-1')).rejects.toMatchObject({
      code: 'E_TOPOLOGY_MISMATCH',
      message: expect.stringContaining(`failover event #${eventId}`),
      hint: expect.stringContaining(`regionctl/failover-${eventId}-eu-west-1`),
    });

    const branch = `regionctl/failover-${eventId}-eu-west-1`;
    await recordWriteBack(store, eventId, { remote: 'origin', branch, commit: 'c0ffee' });

    const apply = await cli(['apply', '--spec', topo.specPath, '--auto-approve']);
    expect(apply.code).toBe(1);
    expect(apply.stderr).toContain('error E_TOPOLOGY_MISMATCH');
    expect(apply.stderr).toContain(`failover event #${eventId}`);
    expect(apply.stderr).toContain(`merge the write-back branch ${branch} on origin`);
    expect(apply.stderr).toContain('the primary is eu-west-1');
    // Nothing was touched: no publication, no heartbeat.
    expect(await count(topo, 'us-east-1', 'SELECT count(*) n FROM pg_publication')).toBe(0);
    expect(
      await count(topo, 'us-east-1', "SELECT count(*) n FROM pg_namespace WHERE nspname = 'regionctl'"),
    ).toBe(0);

    // The Pulumi program runs the same guard against the same store.
    await expect(
      defineInfrastructure({ specPath: topo.specPath, dryRun: false, resolvePassword: () => 'unused' }),
    ).rejects.toMatchObject({ code: 'E_TOPOLOGY_MISMATCH', hint: expect.stringContaining(branch) });

    // Once the spec says what the store says, the guard passes.
    expect(await guardTopology(store, 'eu-west-1')).toMatchObject({ initialized: false });
  });
});

describe('apply --plan FILE', () => {
  let topo: TestTopology;
  beforeAll(async () => {
    topo = await testTopology('infra_stale');
  });
  afterAll(async () => {
    await topo?.close();
  });

  it('refuses a plan that no longer matches, and applies one that does', async () => {
    const planFile = join(topo.specDir, 'infra_stale.plan.json');
    const made = await cli(['plan', '--spec', topo.specPath, '--out', planFile]);
    expect(made.code).toBe(0);
    const saved = JSON.parse(readFileSync(planFile, 'utf8')) as { hash: string };

    // The world moves on after review: someone installs the heartbeat on eu-west-1 by hand.
    await runStatements(await topo.client('eu-west-1'), heartbeatDdl());
    const stale = await cli(['apply', '--spec', topo.specPath, '--plan', planFile]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain('error E_PLAN_STALE');
    expect(stale.stderr).toContain(saved.hash.slice(0, 16));
    expect(await count(topo, 'us-east-1', 'SELECT count(*) n FROM pg_publication')).toBe(0);

    // A fresh plan, applied as reviewed (the file is the approval: no prompt, no --auto-approve).
    expect((await cli(['plan', '--spec', topo.specPath, '--out', planFile])).code).toBe(0);
    const applied = await cli(['apply', '--spec', topo.specPath, '--plan', planFile]);
    expect(applied.stderr).not.toContain('error');
    expect(applied.code).toBe(0);
    expect(await count(topo, 'us-east-1', 'SELECT count(*) n FROM pg_publication')).toBe(2);
  });

  it('refuses a file that is not a plan', async () => {
    const r = await cli(['apply', '--spec', topo.specPath, '--plan', topo.specPath]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('error E_PLAN_FILE');
  });

  it('the markdown plan of a real lab never carries the region password', async () => {
    const password = readFileSync(join(topo.stateDir, 'secrets', 'postgres.password'), 'utf8').trim();
    expect(password.length).toBeGreaterThan(5);
    const md = await cli(['plan', '--spec', topo.specPath, '--format', 'markdown']);
    expect(md.stdout).toContain('### regionctl plan');
    expect(md.stdout).not.toContain(password);
  });
});
