/**
 * Read routing on a private lab (3 regions, channels applied, a reconciler publishing the
 * routing document every second), the client in eu-west-1 reading from its replica:
 *
 * - overhead of a routed read (regionctl/client, no token) against the same query on a
 *   plain node-postgres pool to the same replica, p50/p99 over sequential reads;
 * - read-your-writes: write then read with the token, idle and under steady load
 *   (runLoad), the wait the token adds on the replica and the whole read's latency.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { logSink } from '../src/alerts/sink.js';
import { type ReadEvent, RegionctlClient } from '../src/client/index.js';
import { appRolePasswordFile } from '../src/lab/demo-schema.js';
import { runLoad } from '../src/lab/load.js';
import { watch } from '../src/reconcile/watch.js';
import { readRoutingDocument } from '../src/routing/document.js';
import { RoutingPublisher } from '../src/routing/publish.js';
import { controlTarget } from '../src/sql/connect.js';
import { openStore } from '../src/store/store.js';
import { benchLab, shiftedSpec } from './bench-lab.js';
import { percentile } from './stats.js';

const STATE = '/tmp/regionctl-bench-routing';
const READS = 3000;
const PAIRS = 1000;

function fmt(samples: number[]): string {
  return `p50 ${percentile(samples, 50).toFixed(2)} ms, p99 ${percentile(samples, 99).toFixed(2)} ms (n=${samples.length})`;
}

async function main() {
  const spec = shiftedSpec(7100, STATE);
  spec.heartbeat = { intervalSeconds: 1 };
  spec.readRouting = { stalenessBudgetSeconds: 10, document: join(STATE, 'routing.json') };
  const lab = await benchLab(spec, STATE);
  const store = await openStore(controlTarget(spec, lab.specDir));
  const publisher = new RoutingPublisher({ spec, specDir: lab.specDir, store });
  const ac = new AbortController();
  const w = watch({
    spec,
    specDir: lab.specDir,
    store,
    sink: logSink(() => {}),
    intervalMs: 1000,
    signal: ac.signal,
    log: () => {},
    onLeaderPass: async (r) => {
      await publisher.publish(r);
    },
  });
  const role = spec.applicationRoles[0] ?? 'app';
  const password = readFileSync(appRolePasswordFile(STATE, role), 'utf8').trim();
  const events: ReadEvent[] = [];
  const client = new RegionctlClient({
    routing: publisher.path,
    region: 'eu-west-1',
    connection: { user: role, password },
    pool: { max: 4 },
    maxWaitMs: 2000,
    onRead: (e) => events.push(e),
  });
  const eu = spec.regions.find((r) => r.name === 'eu-west-1');
  const direct = new pg.Pool({
    host: eu?.endpoint.host,
    port: eu?.endpoint.port,
    user: role,
    password,
    database: spec.database,
    max: 4,
  });
  try {
    for (let i = 0; ; i++) {
      if (readRoutingDocument(publisher.path)?.routes['eu-west-1']?.default?.kind === 'replica') break;
      if (i > 300) throw new Error('eu-west-1 never served reads');
      await new Promise((r) => setTimeout(r, 100));
    }
    await client.write((c) =>
      c.query("INSERT INTO public.products (sku, name, price_cents) VALUES ('bench', 'bench', 1)"),
    );
    const sql = "SELECT id, price_cents FROM public.products WHERE sku = 'bench'";
    // Warm both paths (connections, plans) before timing.
    for (let i = 0; i < 200; i++) {
      await direct.query(sql);
      await client.read(sql);
    }
    const directMs: number[] = [];
    const routedMs: number[] = [];
    for (let i = 0; i < READS; i++) {
      let t = performance.now();
      await direct.query(sql);
      directMs.push(performance.now() - t);
      t = performance.now();
      await client.read(sql);
      routedMs.push(performance.now() - t);
    }
    console.log(`direct query on the eu-west-1 replica:   ${fmt(directMs)}`);
    console.log(`routed read (client, no token):          ${fmt(routedMs)}`);
    console.log(
      `routing overhead: p50 +${(percentile(routedMs, 50) - percentile(directMs, 50)).toFixed(3)} ms, ` +
        `p99 +${(percentile(routedMs, 99) - percentile(directMs, 99)).toFixed(3)} ms`,
    );

    const pairs = async (label: string) => {
      const waited: number[] = [];
      const readMs: number[] = [];
      const writeMs: number[] = [];
      events.length = 0;
      for (let i = 0; i < PAIRS; i++) {
        let t = performance.now();
        const { token } = await client.write((c) =>
          c.query(
            "INSERT INTO public.products (sku, name, price_cents) VALUES (gen_random_uuid()::text, 'p', 1)",
          ),
        );
        writeMs.push(performance.now() - t);
        t = performance.now();
        await client.read(sql, { token });
        readMs.push(performance.now() - t);
        waited.push(events.at(-1)?.waitedMs ?? 0);
      }
      const onReplica = events.filter((e) => e.kind === 'replica').length;
      const noWait = waited.filter((x) => x === 0).length;
      console.log(`read-your-writes ${label}:`);
      console.log(`  write + token (commit; pg_current_wal_lsn): ${fmt(writeMs)}`);
      console.log(`  token read, whole:                          ${fmt(readMs)}`);
      console.log(`  of which waiting for the replica:           ${fmt(waited)}`);
      console.log(
        `  served by the replica ${onReplica}/${PAIRS}; no wait (position already known applied) ${noWait}/${PAIRS}; ` +
          `fallbacks ${JSON.stringify(
            Object.fromEntries(
              ['token-timeout', 'replica-error'].map((k) => [k, events.filter((e) => e.reason === k).length]),
            ),
          )}`,
      );
    };
    await pairs('idle (no other writes)');
    const loadAc = new AbortController();
    const load = runLoad({
      spec,
      specDir: lab.specDir,
      stateDir: STATE,
      rate: 200,
      durationSec: 600,
      signal: loadAc.signal,
    });
    await new Promise((r) => setTimeout(r, 2000));
    await pairs('under steady load (runLoad, 200 tx/s on the primary)');
    loadAc.abort();
    const stats = await load;
    console.log(`  load: ${stats.committed} transactions committed, ${stats.achievedRate} tx/s`);
  } finally {
    await client.end();
    await direct.end();
    ac.abort();
    await w;
    await store.close();
    await lab.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
