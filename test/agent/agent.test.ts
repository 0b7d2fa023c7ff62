/**
 * The region agent (src/agent/agent.ts) against real servers: a private 3-region
 * PostgreSQL lab and a real 3-member etcd cluster. The primary's agent talks to etcd
 * through a freezable TCP relay (test/authority/proxy.ts), so it can be cut off from the
 * authority while its database and the database's clients carry on; the test observes
 * etcd through its own, direct connection.
 *
 * First, under its own prefix and with a 10 s lease: an authority blip (one failed
 * topology read) does not make the primary fence while its lease is provably alive.
 * Then, in order (these tests share the agents and build on each other):
 *  1. the primary's agent records the topology and takes the primary lease at epoch 1; a
 *     witness in another region publishes its direct probe of the primary;
 *  2. cut off from etcd, the primary's agent fences its own database — no new sessions of
 *     the application role, no writes, sessions opened before the partition terminated —
 *     and it has done so while etcd still held its primary lease key (the safety
 *     property: nobody can have been promoted yet);
 *  3. reconnected, it takes the primary lease again at the same epoch and lifts the fence;
 *  4. if the topology moved on while it was cut off, it does not: the fence stays;
 *  5. when the primary's database dies, the witness counts failed probes up to the
 *     failure threshold, and the primary's agent gives its primary lease up.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { RegionAgent } from '../../src/agent/agent.js';
import { BOOT_FENCE_BEGIN, BOOT_FENCE_END, stripHbaBlock } from '../../src/agent/boot-fence.js';
import { type Authority, openAuthority } from '../../src/authority/index.js';
import { appRolePasswordFile } from '../../src/lab/demo-schema.js';
import type { EtcdLabOptions } from '../../src/lab/etcd.js';
import { desiredState } from '../../src/model/desired.js';
import { regionTarget } from '../../src/sql/connect.js';
import { unfenceSql } from '../../src/sql/guard.js';
import { ident } from '../../src/sql/quote.js';
import { runStatements } from '../../src/sql/statement.js';
import { etcdPath, startCluster, stopCluster, uniquePrefix } from '../authority/cluster.js';
import { type FreezableProxy, startProxy } from '../authority/proxy.js';
import { type PrivateLab, privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const US = 'us-east-1';
const EU = 'eu-west-1';
const LEASE_SECONDS = 2;

/** Ports 61200-61299 are this file's (above the ephemeral range, see test/authority/cluster.ts): 6 per concurrent test run. */
function clusterOptions(): EtcdLabOptions {
  const slot = Math.round((inject('regionctlLab').privatePorts[0] - 55440) / 100);
  const base = 61200 + (slot % 8) * 6;
  return {
    stateDir: `/tmp/regionctl-test-etcd-${slot}-agent`,
    members: [0, 1, 2].map((i) => ({ clientPort: base + i, peerPort: base + 3 + i })),
  };
}

interface LogEntry {
  t: number;
  msg?: unknown;
  [key: string]: unknown;
}

interface RunningAgent {
  region: string;
  agent: RegionAgent;
  authority: Authority;
  logs: LogEntry[];
  stop(): Promise<void>;
}

/** The result of a write attempt: 'ok', or the error's SQLSTATE (or message). */
type WriteResult = 'ok' | string;

function failure(e: unknown): string {
  const err = e as { code?: string; message?: string };
  return err.code ?? err.message ?? String(e);
}

describe.skipIf(!etcdPath)('region agent', () => {
  const opts = clusterOptions();
  const endpoints = opts.members.map((m) => `http://127.0.0.1:${m.clientPort}`);
  let clusterUp = false;
  let lab: PrivateLab;
  let role: string;
  /** The test's own view of etcd: direct, never partitioned. */
  let observer: Authority;
  const authorities: Authority[] = [];
  const proxies: FreezableProxy[] = [];
  const agents: RunningAgent[] = [];
  const appClients: pg.Client[] = [];

  const openOn = (eps: string[], prefix: string): Authority => {
    const a = openAuthority({ endpoints: eps, prefix, leaseSeconds: LEASE_SECONDS, callTimeoutMs: 2000 });
    authorities.push(a);
    return a;
  };

  const startAgent = (region: string, authority: Authority): RunningAgent => {
    const ac = new AbortController();
    const logs: LogEntry[] = [];
    const agent = new RegionAgent({
      spec: lab.spec,
      specDir: lab.specDir,
      region,
      authority,
      signal: ac.signal,
      log: (e) => logs.push({ t: Date.now(), ...e }),
    });
    const done = agent.run();
    let stopped = false;
    const a: RunningAgent = {
      region,
      agent,
      authority,
      logs,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        ac.abort();
        await done;
        await authority.close();
      },
    };
    agents.push(a);
    return a;
  };

  /** A new session as the application role; throws when the role may not log in. */
  const appClient = async (region: string): Promise<pg.Client> => {
    const { endpoint } = regionTarget(lab.spec, region, lab.specDir);
    const c = new pg.Client({
      host: endpoint.host,
      port: endpoint.port,
      database: lab.spec.database,
      user: role,
      password: readFileSync(appRolePasswordFile(lab.stateDir, role), 'utf8').trim(),
      application_name: 'test app',
      connectionTimeoutMillis: 5000,
    });
    c.on('error', () => {});
    appClients.push(c);
    await c.connect();
    return c;
  };

  let writes = 0;
  const writeOn = async (c: pg.Client): Promise<WriteResult> => {
    writes++;
    try {
      await c.query('INSERT INTO public.products (sku, name, price_cents) VALUES ($1, $1, 1)', [
        `agent-${process.pid}-${writes}`,
      ]);
      return 'ok';
    } catch (e) {
      return failure(e);
    }
  };

  /** A write in a new application session: 'ok', 28000 (login refused), 42501 (no privilege), ... */
  const appWrite = async (region: string): Promise<WriteResult> => {
    let c: pg.Client;
    try {
      c = await appClient(region);
    } catch (e) {
      return failure(e);
    }
    try {
      return await writeOn(c);
    } finally {
      await c.end().catch(() => {});
    }
  };

  /** The same write as the application role inside a superuser session (no login needed). */
  const roleWrite = async (region: string): Promise<WriteResult> => {
    const c = await lab.client(region);
    await c.query('BEGIN');
    try {
      await c.query(`SET LOCAL ROLE ${ident(role)}`);
      return await writeOn(c);
    } finally {
      await c.query('ROLLBACK').catch(() => {});
    }
  };

  const statusOf = async (region: string) =>
    (await observer.regionLeases()).find((r) => r.region === region)?.status ?? null;

  const fencedLogs = (a: RunningAgent) => a.logs.filter((l) => l.msg === 'self-fenced');

  const dumpLogs = () => {
    for (const a of agents) {
      console.error(`--- agent ${a.region} ---`);
      for (const l of a.logs) console.error(new Date(l.t).toISOString(), JSON.stringify(l));
    }
  };

  beforeAll(async () => {
    await startCluster(opts);
    clusterUp = true;
    lab = await privateLab('agent', (s) => {
      s.authority = { provider: 'etcd', endpoints, leaseSeconds: LEASE_SECONDS };
    });
    role = lab.spec.applicationRoles[0] ?? '';
    expect(role).not.toBe('');
  }, 120_000);

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop().catch(() => {})));
    await Promise.all(appClients.map((c) => c.end().catch(() => {})));
    await Promise.all(authorities.map((a) => a.close().catch(() => {})));
    await Promise.all(proxies.map((p) => p.close()));
    await lab?.close();
    if (clusterUp) await stopCluster(opts);
  }, 60_000);

  beforeEach(({ onTestFailed }) => {
    onTestFailed(dumpLogs);
  });

  describe('authority blip', () => {
    it('a failed topology read alone does not fence while the primary lease is provably alive', async () => {
      // A 10 s lease: a partition shorter than that is survived by the lease, but long
      // enough for one topology read to fail (2 s call deadline).
      const prefix = uniquePrefix('agent-blip');
      const first = endpoints[0];
      if (!first) throw new Error('no etcd endpoint');
      const blip = await startProxy(first);
      proxies.push(blip);
      const auth = openAuthority({ endpoints: [blip.url], prefix, leaseSeconds: 10, callTimeoutMs: 2000 });
      authorities.push(auth);
      const watch = openOn(endpoints, prefix);
      const us = startAgent(US, auth);
      try {
        await waitFor(async () => (await watch.primaryLease())?.region === US, {
          what: 'the primary lease held by us-east-1',
          timeoutMs: 15_000,
        });
        await waitFor(() => us.agent.status().primaryLease, {
          what: 'agent holding the lease',
          timeoutMs: 10_000,
        });
        const frozenAt = Date.now();
        blip.freeze();
        const unreachable = await waitFor(
          () => us.logs.find((l) => l.t >= frozenAt && l.msg === 'authority unreachable'),
          { what: "the agent's 'authority unreachable'", timeoutMs: 7000, intervalMs: 20 },
        );
        blip.thaw();
        // The lease (valid ≥ 9.3 s after the freeze) outlived the partition: the agent
        // never had a reason to fence, only a topology it could not read for a moment.
        const seen: string[] = [];
        await waitFor(
          async () => {
            const info = (await watch.regionLeases()).find((r) => r.region === US);
            if (
              info?.lastUpdate &&
              Date.parse(info.lastUpdate) > unreachable.t &&
              !seen.includes(info.lastUpdate)
            )
              seen.push(info.lastUpdate);
            return seen.length >= 3;
          },
          { what: "three reports of us-east-1's agent after the blip", timeoutMs: 20_000, intervalMs: 200 },
        );
        expect(fencedLogs(us)).toEqual([]);
        expect(us.logs.filter((l) => l.msg === 'holding the primary lease')).toHaveLength(1);
        expect(us.agent.status()).toMatchObject({ primaryLease: true, selfFenced: false, epoch: 1 });
        expect(await watch.primaryLease()).toMatchObject({ region: US, epoch: 1 });
        expect(await appWrite(US)).toBe('ok');
      } finally {
        await us.stop();
      }
    }, 60_000);
  });

  describe('primary lease and self-fence', () => {
    let proxy: FreezableProxy;
    let us: RunningAgent;
    let eu: RunningAgent;

    beforeAll(async () => {
      const prefix = uniquePrefix('agent');
      observer = openOn(endpoints, prefix);
      const first = endpoints[0];
      if (!first) throw new Error('no etcd endpoint');
      proxy = await startProxy(first);
      proxies.push(proxy);
      // Nobody initialised this prefix: the agents must record the spec's primary themselves.
      expect(await observer.topology()).toBeNull();
      us = startAgent(US, openOn([proxy.url], prefix));
      eu = startAgent(EU, openOn(endpoints, prefix));
    });

    it("the primary's agent takes the primary lease at epoch 1; the witness publishes its probe of the primary", async () => {
      const lease = await waitFor(() => observer.primaryLease(), {
        what: 'the primary lease in etcd',
        timeoutMs: 15_000,
      });
      expect(lease).toMatchObject({ region: US, epoch: 1 });
      expect(await observer.topology()).toEqual({ epoch: 1, primary: US });
      const witness = await waitFor(
        async () => {
          const s = await statusOf(EU);
          return typeof s?.primaryProbeFailures === 'number' ? s : undefined;
        },
        { what: "eu-west-1's probe of the primary in its region lease", timeoutMs: 15_000 },
      );
      expect(witness).toMatchObject({ region: EU, primaryProbeFailures: 0, primary: US, epoch: 1 });
      await waitFor(async () => (await statusOf(US))?.primaryLease === true, {
        what: "us-east-1's status: holding the primary lease",
        timeoutMs: 10_000,
      });
      expect(us.agent.status()).toMatchObject({
        primaryLease: true,
        selfFenced: false,
        epoch: 1,
        primary: US,
      });
      expect(await appWrite(US)).toBe('ok');
    });

    it('cut off from etcd, it fences its database before etcd drops its primary lease', async () => {
      // A session the application opened before the partition, and that can write.
      const open = await appClient(US);
      expect(await writeOn(open)).toBe('ok');
      const openPid = (await open.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      expect(await observer.primaryLease()).toMatchObject({ region: US, epoch: 1 });

      const frozenAt = Date.now();
      proxy.freeze();
      // Watch the key from outside: when was it last seen, when first gone.
      let lastSeen = frozenAt;
      let goneAt: number | undefined;
      while (goneAt === undefined) {
        if (Date.now() - frozenAt > (LEASE_SECONDS + 10) * 1000)
          throw new Error('the primary lease never expired');
        const asked = Date.now();
        const held = await observer.primaryLease();
        if (held) {
          expect(held.region).toBe(US);
          lastSeen = asked;
        } else goneAt = asked;
        await new Promise((r) => setTimeout(r, 50));
      }
      const fenced = await waitFor(() => fencedLogs(us)[0], {
        what: "the agent's 'self-fenced'",
        timeoutMs: (LEASE_SECONDS + 3) * 1000,
      });
      console.info(
        `self-fenced ${fenced.t - frozenAt} ms after the partition (fence took ${String(fenced.ms)} ms); ` +
          `primary lease last seen in etcd ${lastSeen - frozenAt} ms, gone ${goneAt - frozenAt} ms after it`,
      );
      // The safety property: the fence was complete while etcd still showed the lease, so
      // before anyone could see it gone and promote another region.
      expect(fenced.t).toBeGreaterThan(frozenAt);
      expect(fenced.t).toBeLessThanOrEqual(lastSeen);
      expect(fenced.t).toBeLessThan(goneAt);
      expect(fenced.verified).toBe(true);
      expect(String(fenced.reason)).toMatch(/primary lease (renewal overdue|lost)/);
      expect(us.agent.status()).toMatchObject({ selfFenced: true, primaryLease: false });

      // The database is fine, its clients too; only the application cannot write.
      expect(['28000', '42501']).toContain(await appWrite(US));
      expect(await roleWrite(US)).toBe('42501');
      expect(await writeOn(open)).not.toBe('ok');
      const admin = await lab.client(US);
      const alive = await admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [openPid]);
      expect(alive.rowCount).toBe(0);
      const login = await admin.query<{ rolcanlogin: boolean }>(
        'SELECT rolcanlogin FROM pg_roles WHERE rolname = $1',
        [role],
      );
      expect(login.rows[0]?.rolcanlogin).toBe(false);
      // The witness still reaches the primary: the partition is from the authority only.
      expect((await statusOf(EU))?.primaryProbeFailures).toBe(0);
    }, 60_000);

    it('reconnected, it takes the primary lease again at the same epoch and lifts its fence', async () => {
      const fences = fencedLogs(us).length;
      proxy.thaw();
      await waitFor(
        () => us.logs.find((l) => l.msg === 'fence lifted: primary lease held again at the same epoch'),
        {
          what: "the agent's 'fence lifted'",
          timeoutMs: 20_000,
        },
      );
      expect(us.agent.status()).toMatchObject({ primaryLease: true, selfFenced: false, epoch: 1 });
      expect(await observer.primaryLease()).toMatchObject({ region: US, epoch: 1 });
      expect(await observer.topology()).toEqual({ epoch: 1, primary: US });
      expect(await appWrite(US)).toBe('ok');
      expect(await roleWrite(US)).toBe('ok');
      await waitFor(async () => (await statusOf(US))?.selfFenced === false, {
        what: "us-east-1's status: not fenced",
        timeoutMs: 10_000,
      });
      // Lifted for good: no fence since.
      expect(fencedLogs(us)).toHaveLength(fences);
    }, 60_000);

    it('when the topology moved on while it was cut off, it stays fenced and does not take the primary lease', async () => {
      const before = fencedLogs(us).length;
      const liftedBefore = us.logs.filter((l) => String(l.msg).startsWith('fence lifted')).length;
      proxy.freeze();
      const fenced = await waitFor(() => fencedLogs(us)[before], {
        what: "the agent's second 'self-fenced'",
        timeoutMs: (LEASE_SECONDS + 5) * 1000,
      });
      expect(fenced.verified).toBe(true);
      expect(['28000', '42501']).toContain(await appWrite(US));

      // A failover while the old primary is cut off: epoch 2, eu-west-1 primary.
      const leader = await observer.campaign('test');
      try {
        expect(await leader.waitForLeadership(10_000)).toBe(true);
        expect(
          await observer.casTopology({ epoch: 1, primary: US }, { epoch: 2, primary: EU }, leader),
        ).toEqual({
          epoch: 2,
          primary: EU,
        });
      } finally {
        await leader.resign();
      }
      // The new primary's agent (not partitioned) takes the lease once the old one expired.
      const next = await waitFor(
        async () => {
          const l = await observer.primaryLease();
          return l?.region === EU ? l : undefined;
        },
        { what: 'the primary lease held by eu-west-1', timeoutMs: 15_000 },
      );
      expect(next.epoch).toBe(2);

      proxy.thaw();
      // The old primary's agent learns the new topology, and reports it a few times.
      await waitFor(() => us.agent.status().epoch === 2, {
        what: 'us-east-1 agent reading epoch 2',
        timeoutMs: 15_000,
      });
      const seen: string[] = [];
      await waitFor(
        async () => {
          const info = (await observer.regionLeases()).find((r) => r.region === US);
          if (info?.status?.epoch === 2 && info.lastUpdate && !seen.includes(info.lastUpdate))
            seen.push(info.lastUpdate);
          return seen.length >= 3;
        },
        { what: "three reports of us-east-1's agent at epoch 2", timeoutMs: 20_000, intervalMs: 200 },
      );
      expect(us.agent.status()).toMatchObject({
        epoch: 2,
        primary: EU,
        primaryLease: false,
        selfFenced: true,
      });
      expect(await statusOf(US)).toMatchObject({ primaryLease: false, selfFenced: true, primary: EU });
      expect(await observer.primaryLease()).toMatchObject({ region: EU, epoch: 2 });
      expect(us.logs.filter((l) => String(l.msg).startsWith('fence lifted'))).toHaveLength(liftedBefore);
      expect(['28000', '42501']).toContain(await appWrite(US));
      expect(await roleWrite(US)).toBe('42501');
    }, 90_000);

    afterAll(async () => {
      await us?.stop();
      await eu?.stop();
    });
  });

  describe('witness', () => {
    it("the primary's database dies: the witness counts failed probes, the primary's agent releases the lease", async () => {
      // A fresh topology (epoch 1, us-east-1 primary) under its own prefix.
      const prefix = uniquePrefix('agent-witness');
      const watch = openOn(endpoints, prefix);
      const us = startAgent(US, openOn(endpoints, prefix));
      const eu = startAgent(EU, openOn(endpoints, prefix));
      const threshold = lab.spec.failover.probe.failureThreshold;
      expect(threshold).toBe(3);
      const status = async (region: string) =>
        (await watch.regionLeases()).find((r) => r.region === region)?.status ?? null;

      await waitFor(async () => (await watch.primaryLease())?.region === US, {
        what: 'the primary lease held by us-east-1',
        timeoutMs: 15_000,
      });
      await waitFor(async () => (await status(EU))?.primaryProbeFailures === 0, {
        what: "eu-west-1's probe of the primary succeeding",
        timeoutMs: 15_000,
      });

      await lab.kill(US);
      const witness = await waitFor(
        async () => {
          const s = await status(EU);
          return typeof s?.primaryProbeFailures === 'number' && s.primaryProbeFailures >= threshold
            ? s
            : undefined;
        },
        { what: `eu-west-1 reporting ≥ ${threshold} failed probes of the primary`, timeoutMs: 30_000 },
      );
      expect(witness).toMatchObject({ primary: US, epoch: 1 });
      const own = await waitFor(
        async () => {
          const s = await status(US);
          return typeof s?.databaseFailures === 'number' && s.databaseFailures >= threshold ? s : undefined;
        },
        { what: `us-east-1 reporting ≥ ${threshold} failed probes of its own database`, timeoutMs: 30_000 },
      );
      expect(own).toMatchObject({ primaryProbeFailures: null });
      await waitFor(async () => (await watch.primaryLease()) === null, {
        what: 'the primary lease released',
        timeoutMs: 15_000,
      });
      expect(us.logs.some((l) => l.msg === 'own database down: releasing the primary lease')).toBe(true);
      expect(us.agent.status().primaryLease).toBe(false);
      // Released on purpose, not expired: the agent is still alive and reporting.
      expect((await watch.regionLeases()).find((r) => r.region === US)?.alive).toBe(true);
      await us.stop();
      await eu.stop();
    }, 90_000);
  });

  // Fault scenario 6 in miniature: the SQL fence needs a running server, so a former
  // primary restarted after a failover took its pooled clients' writes until its agent's
  // first contact. The boot fence (src/agent/boot-fence.ts) holds while the server is down.
  describe('boot fence', () => {
    const statusIn = async (a: Authority, region: string) =>
      (await a.regionLeases()).find((r) => r.region === region)?.status ?? null;

    it('a dead primary is restarted with application logins refused until its agent decides; a primary gets them back, a former primary stays fenced', async () => {
      // Start from a clean primary: the earlier tests left us-east-1 down, fenced in SQL
      // and (the witness test's agent saw it die) boot-fenced.
      await lab.start(US).catch(() => {});
      let file = '';
      {
        const c = await lab.client(US);
        file = (await c.query("SELECT current_setting('hba_file') AS f")).rows[0].f as string;
        expect(readFileSync(file, 'utf8')).toContain(BOOT_FENCE_BEGIN);
        const tables = desiredState(lab.spec).applicationTables;
        await runStatements(
          c,
          unfenceSql(lab.spec.applicationRoles, tables, lab.spec.database, 'read-write'),
        );
      }
      writeFileSync(file, stripHbaBlock(readFileSync(file, 'utf8'), BOOT_FENCE_BEGIN, BOOT_FENCE_END));
      await (await lab.client(US)).query('SELECT pg_reload_conf()');
      expect(await appWrite(US)).toBe('ok');

      const prefix = uniquePrefix('agent-boot');
      const watch = openOn(endpoints, prefix);
      let us = startAgent(US, openOn(endpoints, prefix));
      const eu = startAgent(EU, openOn(endpoints, prefix));
      await waitFor(async () => (await watch.primaryLease())?.region === US, {
        what: 'the primary lease held by us-east-1',
        timeoutMs: 15_000,
      });

      // 1. The primary's server dies: its agent shuts the application roles out on disk.
      await lab.kill(US);
      await waitFor(() => us.logs.some((l) => l.msg === 'boot fence set: server down'), {
        what: "us-east-1's agent setting its boot fence",
        timeoutMs: 15_000,
      });
      expect(readFileSync(file, 'utf8')).toContain(BOOT_FENCE_BEGIN);
      expect(await statusIn(watch, US)).toMatchObject({ bootFence: true });

      // 2. Restarted with no agent to decide: no application login at all.
      await us.stop();
      await lab.start(US);
      expect(await appWrite(US)).toBe('28000');

      // 3. Its agent returns; the topology still names it primary at epoch 1: lease, lift.
      us = startAgent(US, openOn(endpoints, prefix));
      await waitFor(() => us.logs.some((l) => l.msg === 'boot fence lifted: primary lease held again'), {
        what: 'the boot fence lifted by the primary lease',
        timeoutMs: 15_000,
      });
      expect(readFileSync(file, 'utf8')).not.toContain(BOOT_FENCE_BEGIN);
      expect(await appWrite(US)).toBe('ok');

      // 4. It dies again, and a failover moves the topology to eu-west-1 meanwhile.
      await lab.kill(US);
      await waitFor(() => us.logs.filter((l) => l.msg === 'boot fence set: server down').length === 1, {
        what: 'the boot fence set again',
        timeoutMs: 15_000,
      });
      const leader = await watch.campaign('test');
      try {
        expect(await leader.waitForLeadership(10_000)).toBe(true);
        await watch.casTopology({ epoch: 1, primary: US }, { epoch: 2, primary: EU }, leader);
      } finally {
        await leader.resign();
      }
      // Its clients hammer it from before it starts until its agent has decided.
      const results: WriteResult[] = [];
      let hammering = true;
      const hammer = (async () => {
        while (hammering) {
          results.push(await appWrite(US));
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      await lab.start(US);
      await waitFor(() => us.logs.some((l) => l.msg === 'boot fence lifted: the SQL fence holds'), {
        what: 'the former primary fenced in SQL, then its boot fence lifted',
        timeoutMs: 20_000,
      });
      await new Promise((r) => setTimeout(r, 300));
      hammering = false;
      await hammer;
      expect(results.length).toBeGreaterThan(5);
      expect(results.filter((r) => r === 'ok')).toEqual([]);
      expect(readFileSync(file, 'utf8')).not.toContain(BOOT_FENCE_BEGIN);
      expect(['28000', '42501']).toContain(await appWrite(US));
      expect(await roleWrite(US)).toBe('42501');
      expect(us.agent.status()).toMatchObject({ selfFenced: true, bootFence: false, primary: EU });
      await us.stop();
      await eu.stop();
    }, 120_000);
  });
});
