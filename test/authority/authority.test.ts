/**
 * The etcd authority against a real 3-member etcd cluster (Debian etcd-server): leader
 * election and loss, compare-and-set of the topology, guarded journaling of transition
 * steps, agent leases, the pause flag, health, and a clean close. Partitions are a
 * frozen TCP relay between one client and etcd (./proxy.ts). Each test works under its
 * own key prefix.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EtcdAuthority } from '../../src/authority/etcd.js';
import type { LossReason } from '../../src/authority/types.js';
import { RegionctlError } from '../../src/errors.js';
import type { EtcdLabCluster } from '../../src/lab/etcd.js';
import {
  authorityOn,
  clusterOptions,
  etcdPath,
  sleep,
  startCluster,
  stopCluster,
  uniquePrefix,
  until,
} from './cluster.js';
import { type FreezableProxy, startProxy } from './proxy.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const opts = clusterOptions('authority');

async function refusal(p: Promise<unknown>): Promise<RegionctlError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(RegionctlError);
  return e as RegionctlError;
}

describe.skipIf(!etcdPath)('etcd authority', () => {
  let cluster: EtcdLabCluster;
  let raw: Etcd3;
  const open: EtcdAuthority[] = [];
  const proxies: FreezableProxy[] = [];
  const authority = (prefix: string, endpoints = cluster.endpoints) => {
    const a = authorityOn(endpoints, prefix);
    open.push(a);
    return a;
  };
  const partitioned = async (prefix: string) => {
    const proxy = await startProxy(cluster.endpoints[0]!);
    proxies.push(proxy);
    return { proxy, authority: authority(prefix, [proxy.url]) };
  };

  beforeAll(async () => {
    cluster = await startCluster(opts);
    raw = new Etcd3({ hosts: cluster.endpoints });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(open.map((a) => a.close()));
    await Promise.all(proxies.map((p) => p.close()));
    raw?.close();
    await stopCluster(opts);
  }, 30_000);

  describe('leadership', () => {
    it('is exclusive between two contenders, and passes on when the leader resigns', async () => {
      const prefix = uniquePrefix('exclusive');
      const [x, y] = [authority(prefix), authority(prefix)];
      const a = await x.campaign('reconciler-a');
      const b = await y.campaign('reconciler-b');
      expect(a.isLeader()).toBe(true);
      expect(b.isLeader()).toBe(false);
      expect(b.state()).toBe('candidate');
      expect(await y.leader()).toMatchObject({ identity: 'reconciler-a' });
      // Still exclusive after several polls of the candidate.
      await sleep(1200);
      expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);

      const t = Date.now();
      await a.resign();
      expect(a.state()).toBe('resigned');
      expect(await b.waitForLeadership(3000)).toBe(true);
      expect(Date.now() - t).toBeLessThan(1500); // a poll, not a lease expiry
      expect(await x.leader()).toMatchObject({ identity: 'reconciler-b' });
      await b.resign();
    });

    it('is lost when the lease cannot be renewed (partition), before another contender takes over', async () => {
      const prefix = uniquePrefix('partition');
      const { proxy, authority: cut } = await partitioned(prefix);
      const other = authority(prefix);
      const a = await cut.campaign('reconciler-a');
      const b = await other.campaign('reconciler-b');
      expect(a.isLeader()).toBe(true);
      let lost: { at: number; reason: LossReason } | undefined;
      a.onLost((reason) => {
        lost = { at: Date.now(), reason };
      });
      let electedAt: number | undefined;
      b.onElected(() => {
        electedAt = Date.now();
      });

      const validUntil = a.validUntilMs();
      const frozenAt = Date.now();
      proxy.freeze();
      await until('b elected', async () => electedAt, 8000);
      // Lost locally at (or just after) the validity computed from the last acknowledged
      // renewal: never later than TTL after the partition, and before etcd let b in.
      expect(lost?.reason.cause).toBe('expired');
      expect(lost!.at).toBeGreaterThanOrEqual(validUntil);
      expect(lost!.at - frozenAt).toBeLessThanOrEqual(2000 + 300);
      expect(lost!.at).toBeLessThanOrEqual(electedAt!);
      expect(a.isLeader()).toBe(false);
      expect(a.state()).toBe('lost');
      // The lost leader can no longer journal anything (refused locally, no etcd needed).
      const e = await refusal(
        cut.guardedStep(a, 1, { id: 't1', kind: 'failover', step: 'fence', status: 'running' }),
      );
      expect(e.code).toBe('E_STALE_LEADER');
      proxy.thaw();
      await b.resign();
    }, 20_000);

    it('is lost when etcd revokes the lease', async () => {
      const prefix = uniquePrefix('revoke');
      const x = authority(prefix);
      const a = await x.campaign('reconciler-a');
      const reason = new Promise<LossReason>((resolve) => a.onLost(resolve));
      await raw.leaseClient.leaseRevoke({ ID: a.leaseId });
      const r = await Promise.race([reason, sleep(3000).then(() => undefined)]);
      // Either the next renewal hears "gone" or the leader's key check finds no key.
      expect(r?.cause).toMatch(/^(revoked|displaced)$/);
      expect(a.isLeader()).toBe(false);
    });
  });

  describe('topology', () => {
    it('compare-and-set succeeds once; a stale expectation fails with E_EPOCH_CHANGED', async () => {
      const prefix = uniquePrefix('cas');
      const x = authority(prefix);
      expect(await x.topology()).toBeNull();
      expect(await x.ensureTopology('us-east-1')).toEqual({ epoch: 1, primary: 'us-east-1' });
      // Bootstrap never overwrites.
      expect(await x.ensureTopology('eu-west-1')).toEqual({ epoch: 1, primary: 'us-east-1' });
      const a = await x.campaign('reconciler-a');

      const next = await x.casTopology(
        { epoch: 1, primary: 'us-east-1' },
        { epoch: 2, primary: 'eu-west-1' },
        a,
      );
      expect(next).toEqual({ epoch: 2, primary: 'eu-west-1' });
      expect(await x.topology()).toEqual({ epoch: 2, primary: 'eu-west-1' });

      const stale = await refusal(
        x.casTopology({ epoch: 1, primary: 'us-east-1' }, { epoch: 2, primary: 'ap-southeast-1' }, a),
      );
      expect(stale.code).toBe('E_EPOCH_CHANGED');
      expect(stale.message).toContain('epoch 2, primary eu-west-1');
      // Right epoch, wrong primary: refused as well.
      const wrongPrimary = await refusal(
        x.casTopology({ epoch: 2, primary: 'us-east-1' }, { epoch: 3, primary: 'us-east-1' }, a),
      );
      expect(wrongPrimary.code).toBe('E_EPOCH_CHANGED');
      expect(await x.topology()).toEqual({ epoch: 2, primary: 'eu-west-1' });

      // The same call again by the same term (a retry after a timeout) is its own success,
      // not a second change; by the next leader it is stale.
      expect(
        await x.casTopology({ epoch: 1, primary: 'us-east-1' }, { epoch: 2, primary: 'eu-west-1' }, a),
      ).toEqual({ epoch: 2, primary: 'eu-west-1' });
      await a.resign();
      const b = await x.campaign('reconciler-b');
      expect(b.isLeader()).toBe(true);
      const late = await refusal(
        x.casTopology({ epoch: 1, primary: 'us-east-1' }, { epoch: 2, primary: 'eu-west-1' }, b),
      );
      expect(late.code).toBe('E_EPOCH_CHANGED');
      expect(await x.topology()).toEqual({ epoch: 2, primary: 'eu-west-1' });
      await b.resign();
    });

    it('refuses a CAS by a leader whose key is gone, in the same transaction (E_STALE_LEADER)', async () => {
      const prefix = uniquePrefix('cas-stale');
      const x = authority(prefix);
      await x.ensureTopology('us-east-1');
      const a = await x.campaign('reconciler-a');
      // Someone removes the leader key behind a's back; a's lease is still alive, so a
      // may still believe it leads until its next key check.
      await raw.delete().key(`${prefix}/leader`);
      const e = await refusal(
        x.casTopology({ epoch: 1, primary: 'us-east-1' }, { epoch: 2, primary: 'eu-west-1' }, a),
      );
      expect(e.code).toBe('E_STALE_LEADER');
      expect(await x.topology()).toEqual({ epoch: 1, primary: 'us-east-1' });
      expect(a.isLeader()).toBe(false);
    });

    it('refuses a CAS by a contender that is not the leader', async () => {
      const prefix = uniquePrefix('cas-candidate');
      const [x, y] = [authority(prefix), authority(prefix)];
      await x.ensureTopology('us-east-1');
      const a = await x.campaign('reconciler-a');
      const b = await y.campaign('reconciler-b');
      const e = await refusal(
        y.casTopology({ epoch: 1, primary: 'us-east-1' }, { epoch: 2, primary: 'eu-west-1' }, b),
      );
      expect(e.code).toBe('E_STALE_LEADER');
      // A handle of another authority connection is not accepted either.
      expect(
        (
          await refusal(
            y.casTopology({ epoch: 1, primary: 'us-east-1' }, { epoch: 2, primary: 'eu-west-1' }, a),
          )
        ).code,
      ).toBe('E_STALE_LEADER');
      await Promise.all([a.resign(), b.resign()]);
    });
  });

  describe('transition journal', () => {
    it('journals steps only for the leader at the current epoch, one transition at a time', async () => {
      const prefix = uniquePrefix('journal');
      const [x, y] = [authority(prefix), authority(prefix)];
      await x.ensureTopology('us-east-1');
      const a = await x.campaign('reconciler-a');
      const b = await y.campaign('reconciler-b');
      expect(await x.inFlight()).toBeNull();

      const step = await x.guardedStep(a, 1, {
        id: 'fo-1',
        kind: 'failover',
        step: 'fence',
        status: 'running',
      });
      expect(step).toMatchObject({
        id: 'fo-1',
        kind: 'failover',
        owner: 'reconciler-a',
        epoch: 1,
        step: 'fence',
      });
      expect(await y.inFlight()).toEqual(step);

      const notLeader = await refusal(
        y.guardedStep(b, 1, { id: 'fo-1', kind: 'failover', step: 'promote', status: 'running' }),
      );
      expect(notLeader.code).toBe('E_STALE_LEADER');
      const wrongEpoch = await refusal(
        x.guardedStep(a, 7, { id: 'fo-1', kind: 'failover', step: 'promote', status: 'running' }),
      );
      expect(wrongEpoch.code).toBe('E_EPOCH_CHANGED');
      const other = await refusal(
        x.guardedStep(a, 1, { id: 'sw-9', kind: 'switchover', step: 'drain', status: 'running' }),
      );
      expect(other.code).toBe('E_TRANSITION_IN_FLIGHT');
      expect(await x.inFlight()).toEqual(step);

      // The step table moves on: same transition, next step, across the CAS.
      await x.guardedStep(a, 1, { id: 'fo-1', kind: 'failover', step: 'fence', status: 'done' });
      await x.casTopology({ epoch: 1, primary: 'us-east-1' }, { epoch: 2, primary: 'eu-west-1' }, a);
      const after = await x.guardedStep(a, 2, {
        id: 'fo-1',
        kind: 'failover',
        step: 'dns',
        status: 'running',
      });
      expect(await x.inFlight()).toEqual(after);

      expect((await refusal(y.clearTransition(b, 'fo-1'))).code).toBe('E_STALE_LEADER');
      expect(await x.clearTransition(a, 'fo-1')).toBe(true);
      expect(await x.inFlight()).toBeNull();
      expect(await x.clearTransition(a, 'fo-1')).toBe(false);

      // The next leader resumes (or starts) transitions under its own term.
      await a.resign();
      expect(await b.waitForLeadership(3000)).toBe(true);
      const resumed = await y.guardedStep(b, 2, {
        id: 'rj-2',
        kind: 'rejoin',
        step: 'resync',
        status: 'running',
      });
      expect(resumed.owner).toBe('reconciler-b');
      await b.resign();
    });
  });

  describe('agent leases', () => {
    it('a region lease carries the agent status, is exclusive, and vanishes ~TTL after renewals stop', async () => {
      const prefix = uniquePrefix('region');
      const { proxy, authority: cut } = await partitioned(prefix);
      const x = authority(prefix);
      const lease = await cut.holdRegionLease('eu-west-1', 2, {
        primaryReachable: true,
        probes: [12, 14, 11],
      });
      expect(lease.isHeld()).toBe(true);
      expect(await x.regionLeases()).toMatchObject([
        { region: 'eu-west-1', alive: true, status: { primaryReachable: true, probes: [12, 14, 11] } },
      ]);
      await lease.update({ primaryReachable: false, probes: [] });
      expect((await x.regionLeases())[0]?.status).toEqual({ primaryReachable: false, probes: [] });

      const second = await refusal(x.holdRegionLease('eu-west-1', 2, {}, { holder: 'agent-2' }));
      expect(second.code).toBe('E_REGION_LEASE_HELD');

      let lostAt: number | undefined;
      lease.onLost(() => {
        lostAt = Date.now();
      });
      const frozenAt = Date.now();
      proxy.freeze();
      const goneAt = await until(
        'region lease gone',
        async () => ((await x.regionLeases())[0]?.alive === false ? Date.now() : undefined),
        8000,
      );
      // Renewed at most TTL/3 before the freeze: etcd drops it between ~1.3 s and
      // TTL + its expiry check interval (~0.5 s) afterwards.
      expect(goneAt - frozenAt).toBeGreaterThan(1000);
      expect(goneAt - frozenAt).toBeLessThan(4000);
      expect(lostAt).toBeDefined();
      expect(lostAt!).toBeLessThanOrEqual(goneAt);
      // The last status stays readable, for reports about a dead region.
      expect((await x.regionLeases())[0]).toMatchObject({
        region: 'eu-west-1',
        alive: false,
        status: { primaryReachable: false, probes: [] },
      });
      expect((await refusal(lease.update({ late: true }))).code).toBe('E_REGION_LEASE_LOST');
      proxy.thaw();

      const again = await x.holdRegionLease('eu-west-1', 2, { back: true });
      await again.release();
      expect((await x.regionLeases())[0]?.alive).toBe(false);
    }, 20_000);

    it('the primary lease is held only by the primary of the current epoch, and ends with that epoch', async () => {
      const prefix = uniquePrefix('primary');
      const x = authority(prefix);
      await x.ensureTopology('us-east-1');
      expect(await x.primaryLease()).toBeNull();
      expect((await refusal(x.holdPrimaryLease('eu-west-1', 1))).code).toBe('E_EPOCH_CHANGED');
      expect((await refusal(x.holdPrimaryLease('us-east-1', 2))).code).toBe('E_EPOCH_CHANGED');

      const t = Date.now();
      const held = await x.holdPrimaryLease('us-east-1', 1, 2, { holder: 'agent-us' });
      const info = await x.primaryLease();
      expect(info).toMatchObject({ region: 'us-east-1', epoch: 1, holder: 'agent-us' });
      expect(info!.expiresAtMs!).toBeGreaterThan(t);
      expect(info!.expiresAtMs!).toBeLessThanOrEqual(Date.now() + 2000);
      expect((await refusal(x.holdPrimaryLease('us-east-1', 1))).code).toBe('E_PRIMARY_LEASE_HELD');

      // A renewed lease outlives its TTL.
      await sleep(2500);
      expect(held.isHeld()).toBe(true);
      expect(await x.primaryLease()).toMatchObject({ region: 'us-east-1' });

      // A switchover: the old primary releases after its fence, the new one takes it.
      await held.release();
      expect(await x.primaryLease()).toBeNull();
      const a = await x.campaign('reconciler-a');
      await x.casTopology({ epoch: 1, primary: 'us-east-1' }, { epoch: 2, primary: 'eu-west-1' }, a);
      const eu = await x.holdPrimaryLease('eu-west-1', 2);

      // The topology moves on while eu still holds: its agent must learn it and stop.
      const lost = new Promise<LossReason>((resolve) => eu.onLost(resolve));
      await x.casTopology({ epoch: 2, primary: 'eu-west-1' }, { epoch: 3, primary: 'us-east-1' }, a);
      const r = await Promise.race([lost, sleep(3000).then(() => undefined)]);
      expect(r).toMatchObject({ cause: 'displaced' });
      expect(r?.message).toContain('epoch 3');
      expect(eu.isHeld()).toBe(false);
      await a.resign();
    });
  });

  it('pause flag: set with a reason, cleared with null', async () => {
    const x = authority(uniquePrefix('pause'));
    expect(await x.paused()).toBeNull();
    await x.setPaused('maintenance window', 'ops@example');
    expect(await x.paused()).toMatchObject({ reason: 'maintenance window', by: 'ops@example' });
    await x.setPaused(null);
    expect(await x.paused()).toBeNull();
  });

  it('health: every member reachable, one raft leader, quorum', async () => {
    const h = await authority(uniquePrefix('health')).health();
    expect(h.quorum).toBe(true);
    expect(h.endpoints.map((e) => e.reachable)).toEqual([true, true, true]);
    expect(h.endpoints.filter((e) => e.leader)).toHaveLength(1);
    expect(h.summary).toMatch(/^etcd healthy: 3 of 3 members/);
  });

  it('close() ends renewals, polls and connections: a process holding leases exits by itself', async () => {
    const prefix = uniquePrefix('close');
    // A separate Node process: the test worker itself is kept alive by vitest.
    const script = `
      import { EtcdAuthority } from ${JSON.stringify(join(ROOT, 'src/authority/etcd.ts'))};
      const a = new EtcdAuthority({ endpoints: ${JSON.stringify(cluster.endpoints)}, prefix: ${JSON.stringify(prefix)}, leaseSeconds: 2, callTimeoutMs: 2000 });
      const leader = await a.campaign('short-lived');
      const candidate = await a.campaign('other');
      await a.holdRegionLease('us-east-1', 2, { ok: true });
      await a.ensureTopology('us-east-1');
      await a.holdPrimaryLease('us-east-1', 1);
      if (!leader.isLeader() || candidate.isLeader()) process.exit(3);
      await a.close();
      console.log('closed at', Date.now());
    `;
    const t = Date.now();
    const out = await new Promise<string>((resolve, reject) => {
      const child = execFile(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', script],
        { cwd: ROOT, timeout: 20_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
      );
      child.stdin?.end();
    });
    const closedAt = Number(/closed at (\d+)/.exec(out)?.[1]);
    // Exited on its own right after close(): nothing (timer, stream, channel) kept it.
    expect(Date.now() - closedAt).toBeLessThan(1500);
    expect(Date.now() - t).toBeLessThan(15_000);
  }, 30_000);
});
