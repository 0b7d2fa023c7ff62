/**
 * Failover and switchover timings on a private lab, as an application sees them: a
 * writer inserts every 20 ms through the DNS name (the lab's zone file), reconnecting
 * when a write fails. Failover: kill the primary; detection = kill → failover event
 * started, execution = event started → new primary writable, total = kill → first write
 * acknowledged by the new primary through the DNS name (1 s probes × 3, as the issue
 * asks). Switchover: the window in which the writer's inserts fail.
 */
import { join } from 'node:path';
import pg from 'pg';
import { runAgent } from '../src/agent/agent.js';
import { logSink } from '../src/alerts/sink.js';
import { openAuthority } from '../src/authority/index.js';
import type { Authority } from '../src/authority/types.js';
import { runSwitchover } from '../src/failover/switchover.js';
import { appRolePasswordFile } from '../src/lab/demo-schema.js';
import { etcdDown, etcdUp } from '../src/lab/etcd.js';
import { killRegion } from '../src/lab/lab.js';
import { resolvePrimary } from '../src/lab/zone.js';
import { watch } from '../src/reconcile/watch.js';
import type { RegionsSpec } from '../src/spec/schema.js';
import { controlTarget } from '../src/sql/connect.js';
import { openStore } from '../src/store/store.js';
import { benchLab, repoRoot, shiftedSpec } from './bench-lab.js';
import { percentile } from './stats.js';

const STATE = '/tmp/regionctl-bench-failover';

function specFor(stateDir: string): RegionsSpec {
  const spec = shiftedSpec(5000, stateDir);
  spec.heartbeat = { intervalSeconds: 1 };
  spec.failover.probe = { intervalSeconds: 1, failureThreshold: 3, timeoutMs: 500 };
  spec.dns = {
    provider: 'file',
    zone: 'db.shop.internal',
    ttl: 1,
    primaryRecord: 'primary.db.shop.internal',
    file: { path: join(stateDir, 'zone.json') },
  };
  spec.failover.fencing = [
    { method: 'sql' },
    {
      method: 'command',
      command: [
        process.execPath,
        join(repoRoot(), 'dist/src/cli/main.js'),
        'lab',
        'fence',
        '{region}',
        '--state-dir',
        stateDir,
      ],
      timeoutSeconds: 10,
    },
  ];
  return spec;
}

/** An application writing through the DNS name; records when writes succeed and on which region. */
function writer(spec: RegionsSpec, specDir: string, stateDir: string) {
  let stop = false;
  const acks: { at: number; region: string }[] = [];
  const failures: number[] = [];
  const role = spec.applicationRoles[0] ?? 'app';
  const password = appRolePasswordFile(stateDir, role);
  const done = (async () => {
    let client: pg.Client | null = null;
    let region = '';
    while (!stop) {
      try {
        if (!client) {
          const p = resolvePrimary(spec, specDir);
          const { readFileSync } = await import('node:fs');
          client = new pg.Client({
            host: p.host,
            port: p.port,
            user: role,
            password: readFileSync(password, 'utf8').trim(),
            database: spec.database,
            connectionTimeoutMillis: 300,
          });
          client.on('error', () => {});
          await client.connect();
          region = p.region;
        }
        await client.query(
          "INSERT INTO public.products (sku, name, price_cents) VALUES (gen_random_uuid()::text, 'w', 1)",
        );
        acks.push({ at: Date.now(), region });
      } catch {
        failures.push(Date.now());
        await client?.end().catch(() => {});
        client = null;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await client?.end().catch(() => {});
  })();
  return {
    acks,
    failures,
    stop: async () => {
      stop = true;
      await done;
    },
  };
}

/** A 3-member etcd on loopback and one in-process agent per region (the safety model in force). */
async function safetyServices(spec: RegionsSpec, specDir: string, stateDir: string) {
  const etcdDir = join(stateDir, 'etcd');
  const members = [0, 1, 2].map((m) => ({ clientPort: 61400 + m, peerPort: 61403 + m }));
  await etcdDown({ stateDir: etcdDir, purge: true });
  await etcdUp({ stateDir: etcdDir, members });
  const endpoints = members.map((m) => `http://127.0.0.1:${m.clientPort}`);
  spec.authority = { provider: 'etcd', endpoints, leaseSeconds: 2 };
  const prefix = `/regionctl-bench/${process.pid}-${Date.now()}`;
  const authorityAt = () => openAuthority({ endpoints, prefix, leaseSeconds: 2, callTimeoutMs: 2000 });
  const ac = new AbortController();
  const opened: Authority[] = [];
  const agents = spec.regions.map((r) => {
    const a = authorityAt();
    opened.push(a);
    return runAgent({ spec, specDir, region: r.name, authority: a, signal: ac.signal, log: () => {} });
  });
  const reconciler = authorityAt();
  opened.push(reconciler);
  // The agents take their leases before the clock starts.
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && (await reconciler.primaryLease()) === null)
    await new Promise((r) => setTimeout(r, 100));
  return {
    reconciler,
    stop: async () => {
      ac.abort();
      await Promise.all(agents);
      for (const a of opened) await a.close();
      await etcdDown({ stateDir: etcdDir, purge: true });
    },
  };
}

async function failoverRun(i: number, withAuthority: boolean) {
  const stateDir = `${STATE}-${i}`;
  const lab = await benchLab(specFor(stateDir), stateDir);
  const spec = lab.spec;
  const safety = withAuthority ? await safetyServices(spec, lab.specDir, stateDir) : null;
  const store = await openStore(controlTarget(spec, lab.specDir));
  const ac = new AbortController();
  const w = watch({
    spec,
    specDir: lab.specDir,
    store,
    sink: logSink(() => {}),
    intervalMs: 1000,
    signal: ac.signal,
    log: () => {},
    ...(safety ? { authority: safety.reconciler } : {}),
  });
  const app = writer(spec, lab.specDir, stateDir);
  try {
    await new Promise((r) => setTimeout(r, 4000));
    const kill = Date.now();
    await killRegion(spec, 'us-east-1', { specDir: lab.specDir, stateDir });
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && !app.acks.some((a) => a.at > kill && a.region !== 'us-east-1')) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const first = app.acks.find((a) => a.at > kill && a.region !== 'us-east-1');
    const ev = (await store.listFailoverEvents())[0];
    const timings = (ev?.evidence as { timings?: { writableMs: number; dnsMs: number } } | undefined)
      ?.timings;
    return {
      detectionMs: ev ? ev.startedAt.getTime() - kill : Number.NaN,
      executionMs: timings?.dnsMs ?? Number.NaN,
      writableMs: timings?.writableMs ?? Number.NaN,
      totalMs: first ? first.at - kill : Number.NaN,
    };
  } finally {
    await app.stop();
    ac.abort();
    await w;
    await store.close();
    await safety?.stop();
    await lab.stop();
  }
}

async function switchoverRuns(n: number) {
  const stateDir = `${STATE}-so`;
  const lab = await benchLab(specFor(stateDir), stateDir);
  const store = await openStore(controlTarget(lab.spec, lab.specDir));
  const app = writer(lab.spec, lab.specDir, stateDir);
  const out: { serverMs: number; clientMs: number }[] = [];
  try {
    await new Promise((r) => setTimeout(r, 1500));
    for (let i = 0; i < n; i++) {
      const to = i % 2 === 0 ? 'eu-west-1' : 'us-east-1';
      const before = Date.now();
      const r = await runSwitchover({
        spec: lab.spec,
        specDir: lab.specDir,
        store,
        log: () => {},
        force: false,
        trigger: 'bench',
        to,
      });
      await new Promise((res) => setTimeout(res, 1500));
      const lastOld = [...app.acks].reverse().find((a) => a.region !== to && a.at >= before - 1000);
      const firstNew = app.acks.find((a) => a.region === to && a.at >= before);
      out.push({
        serverMs: r.writeUnavailableMs,
        clientMs: lastOld && firstNew ? firstNew.at - lastOld.at : Number.NaN,
      });
    }
  } finally {
    await app.stop();
    await store.close();
    await lab.stop();
  }
  return out;
}

function summary(label: string, xs: number[]): string {
  const ok = xs.filter((x) => Number.isFinite(x));
  return `${label}: p50 ${percentile(ok, 50).toFixed(0)} ms, max ${Math.max(...ok).toFixed(0)} ms (n=${ok.length})`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const runs = Number(process.env.BENCH_FAILOVER_RUNS ?? 3);
  // BENCH_FAILOVER_AUTHORITY=1: with etcd, the agents and the promotion gate (lease 2 s,
  // margin 1 s); detection then comes from the primary's own agent (3 failed local probes).
  const withAuthority = process.env.BENCH_FAILOVER_AUTHORITY === '1';
  const fo = [];
  for (let i = 0; i < runs; i++) fo.push(await failoverRun(i, withAuthority));
  console.log(
    `failover (kill primary; probes 1 s × 3; writer through the DNS zone file${withAuthority ? '; authority: etcd ×3, agents, lease 2 s + margin 1 s' : ''}):`,
  );
  console.log(
    `  ${summary(
      'detection (kill → event)',
      fo.map((r) => r.detectionMs),
    )}`,
  );
  console.log(
    `  ${summary(
      'execution (event → DNS moved)',
      fo.map((r) => r.executionMs),
    )}  target < 1000 ms`,
  );
  console.log(
    `  ${summary(
      '  of which until writable',
      fo.map((r) => r.writableMs),
    )}`,
  );
  console.log(
    `  ${summary(
      'total (kill → first write on the new primary via DNS)',
      fo.map((r) => r.totalMs),
    )}  target < 5000 ms`,
  );
  const so = await switchoverRuns(Number(process.env.BENCH_SWITCHOVER_RUNS ?? 4));
  console.log('switchover (alternating us-east-1 ↔ eu-west-1 under a 50/s writer):');
  console.log(
    `  ${summary(
      'write-unavailable window (fence → writable)',
      so.map((r) => r.serverMs),
    )}  target < 1000 ms`,
  );
  console.log(
    `  ${summary(
      'as the writer saw it (last old ack → first new ack)',
      so.map((r) => r.clientMs),
    )}`,
  );
}
