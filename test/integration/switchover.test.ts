/**
 * Planned switchover under load: zero acknowledged writes lost, every region identical
 * to the new primary (the old primary included, now a secondary), then a switch back.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSwitchover } from '../../src/failover/switchover.js';
import { writeBackAfter } from '../../src/failover/write-back-hook.js';
import { readLedger } from '../../src/lab/ledger.js';
import { runLoad } from '../../src/lab/load.js';
import { readZoneFile, zoneFilePath } from '../../src/lab/zone.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore, type Store } from '../../src/store/store.js';
import { applySpec, checksum, fastFailover, ROOT } from '../support/failover.js';
import { type PrivateLab, privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const TABLES = ['public.orders', 'public.order_items', 'public.products'];

async function identical(lab: PrivateLab, primary: string, others: string[]): Promise<boolean> {
  const p = await lab.client(primary);
  for (const r of others) {
    const c = await lab.client(r);
    for (const t of TABLES) if ((await checksum(p, t)) !== (await checksum(c, t))) return false;
    const where = r === 'ap-southeast-1' ? "residency <> 'eu'" : 'true';
    if ((await checksum(p, 'public.customers', where)) !== (await checksum(c, 'public.customers')))
      return false;
  }
  return true;
}

describe('switchover', () => {
  let lab: PrivateLab;
  let store: Store;
  beforeAll(async () => {
    lab = await privateLab('so_load', fastFailover);
    store = await openStore(controlTarget(lab.spec, lab.specDir));
    await applySpec(lab, store);
  });
  afterAll(async () => {
    await store?.close();
    await lab?.close();
  });

  it('switches over under load with zero acknowledged writes lost, then back', async () => {
    const base = {
      spec: lab.spec,
      specDir: lab.specDir,
      store,
      log: () => {},
      force: false,
      trigger: 'test',
    };
    const load = runLoad({
      spec: lab.spec,
      specDir: lab.specDir,
      stateDir: lab.stateDir,
      rate: 40,
      durationSec: 10,
    });
    await new Promise((r) => setTimeout(r, 2000));
    const there = await runSwitchover({ ...base, to: 'eu-west-1' });
    console.info(
      `switchover us→eu: writes failed for ${there.writeUnavailableMs} ms, DNS after ${there.dnsMs} ms`,
    );
    expect((await store.getTopology())?.primaryRegion).toBe('eu-west-1');
    const zone = readZoneFile(zoneFilePath(lab.spec, lab.specDir) ?? '');
    expect(zone?.records[lab.spec.dns?.primaryRecord ?? '']?.region).toBe('eu-west-1');
    // The switchover is proposed to regions.yaml as a branch on the remote (never main).
    const repo = mkdtempSync(join(tmpdir(), 'rc-wb-'));
    const remote = mkdtempSync(join(tmpdir(), 'rc-wb-remote-'));
    const git = (cwd: string, ...args: string[]) =>
      execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
    git(remote, 'init', '-q', '--bare', '-b', 'main');
    git(repo, 'init', '-q', '-b', 'main');
    copyFileSync(join(ROOT, 'regions.yaml'), join(repo, 'regions.yaml'));
    git(repo, '-c', 'user.name=t', '-c', 'user.email=t@t', 'add', '.');
    git(repo, '-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'spec');
    git(repo, 'remote', 'add', 'origin', remote);
    git(repo, 'push', '-q', 'origin', 'main');
    await writeBackAfter(
      { remote: 'origin', baseBranch: 'main' },
      store,
      {
        specFile: join(repo, 'regions.yaml'),
        eventId: there.eventId,
        kind: 'switchover',
        newPrimary: 'eu-west-1',
        reason: 'test',
      },
      () => {},
    );
    const branch = `regionctl/switchover-${there.eventId}-eu-west-1`;
    expect(git(remote, 'branch', '--list', branch)).toContain(branch);
    expect(git(remote, 'show', `${branch}:regions.yaml`)).toMatch(/name: eu-west-1\n\s+role: primary/);
    expect(git(remote, 'rev-parse', 'main')).toBe(git(repo, 'rev-parse', 'main'));
    const ev = await store.getFailoverEvent(there.eventId);
    expect((ev?.evidence as { writeBack?: { branch: string } } | undefined)?.writeBack?.branch).toBe(branch);
    await new Promise((r) => setTimeout(r, 2000));
    const back = await runSwitchover({ ...base, to: 'us-east-1' });
    console.info(
      `switchover eu→us: writes failed for ${back.writeUnavailableMs} ms, DNS after ${back.dnsMs} ms`,
    );
    const stats = await load;
    expect(await store.getTopology()).toMatchObject({ primaryRegion: 'us-east-1', epoch: 2 });
    // Every acknowledged insert, on either primary, is on the final primary.
    const us = await lab.client('us-east-1');
    const ledger = readLedger(lab.stateDir, { database: lab.spec.database }).filter(
      (e) => e.op === 'insert' && [...TABLES, 'public.customers'].includes(e.table),
    );
    const regions = new Set(ledger.map((e) => e.region));
    expect(regions).toEqual(new Set(['us-east-1', 'eu-west-1']));
    let missing = 0;
    for (const e of ledger) {
      const [table, pk] = e.id.split(':');
      const r = await us.query(`SELECT 1 FROM ${table} WHERE id = $1`, [pk]);
      if (r.rowCount !== 1) missing++;
    }
    console.info(
      `switchover under load: ${ledger.length} acknowledged inserts, ${missing} missing, ${stats.failed} failed attempts`,
    );
    expect(missing).toBe(0);
    await waitFor(async () => identical(lab, 'us-east-1', ['eu-west-1', 'ap-southeast-1']), {
      what: 'every region identical to us-east-1',
      timeoutMs: 30_000,
    });
    const events = await store.listFailoverEvents();
    expect(events.map((e) => `${e.kind}:${e.status}:${e.dataLossBytes}`)).toEqual([
      'switchover:completed:0',
      'switchover:completed:0',
    ]);
  });
});
