/** Shared by the failover, switchover and rejoin tests: apply, watch, checksums, ledger. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { logSink } from '../../src/alerts/sink.js';
import { applyPlan } from '../../src/apply/apply.js';
import type { Authority } from '../../src/authority/types.js';
import { desiredState } from '../../src/model/desired.js';
import { observe } from '../../src/observe/observe.js';
import { planSteadyState } from '../../src/plan/plan.js';
import type { ReconcileResult } from '../../src/reconcile/reconcile.js';
import { watch } from '../../src/reconcile/watch.js';
import type { RegionsSpec } from '../../src/spec/schema.js';
import { storeJournal } from '../../src/store/journal.js';
import type { Store } from '../../src/store/store.js';
import type { TestTopology } from './topology.js';
import { waitFor } from './wait.js';

export const ROOT = join(import.meta.dirname, '..', '..');

/** Fast probes and a lab fence hook that works while the old primary is down. */
export function fastFailover(spec: RegionsSpec): void {
  spec.heartbeat = { intervalSeconds: 0.5 };
  spec.failover.probe = { intervalSeconds: 0.5, failureThreshold: 3, timeoutMs: 500 };
  for (const c of spec.channels) c.rpo = { alertSeconds: 2, failoverMaxLagSeconds: 30 };
}

/** The CLI as a command line: the build when there is one (fast), else the sources through tsx. */
export function cliCommand(): string[] {
  const built = join(ROOT, 'dist/src/cli/main.js');
  return existsSync(built)
    ? [process.execPath, built]
    : [process.execPath, '--import', 'tsx', join(ROOT, 'src/cli/main.ts')];
}

export function labFenceHook(topo: { specPath: string; stateDir: string; spec: RegionsSpec }): void {
  topo.spec.failover.fencing = [
    { method: 'sql' },
    {
      method: 'command',
      command: [
        ...cliCommand(),
        'lab',
        'fence',
        '{region}',
        '--spec',
        topo.specPath,
        '--state-dir',
        topo.stateDir,
      ],
      timeoutSeconds: 30,
    },
  ];
}

export async function applySpec(
  topo: TestTopology,
  store: Store,
  spec: RegionsSpec = topo.spec,
): Promise<void> {
  const plan = planSteadyState(desiredState(spec), await observe(spec, topo.specDir));
  await applyPlan(plan, {
    spec,
    specDir: topo.specDir,
    journal: storeJournal(store),
    specCommit: null,
    actor: 'test',
    log: () => {},
  });
  // Applied means copied: a candidate still copying a table is not eligible for failover
  // (and a test racing the initial copy would measure that, not what it means to).
  const clients = new Map<string, pg.Client>();
  await waitFor(
    async () => {
      for (const ch of spec.channels) {
        let c = clients.get(ch.to);
        if (!c) {
          c = await topo.client(ch.to);
          clients.set(ch.to, c);
        }
        const n = (await c.query("SELECT count(*)::int n FROM pg_subscription_rel WHERE srsubstate <> 'r'"))
          .rows[0].n;
        if (n > 0) return false;
      }
      return true;
    },
    { what: 'the initial copy of every channel', timeoutMs: 60_000, intervalMs: 100 },
  );
}

/** A reconciler running in this process until stop() is called. */
export function startWatch(
  topo: TestTopology,
  store: Store,
  opts: {
    spec?: RegionsSpec;
    crashAfterStep?: string;
    onLeaderPass?: (r: ReconcileResult) => Promise<void>;
    autoRejoin?: { reportDir: string };
    authority?: Authority;
  } = {},
) {
  const ac = new AbortController();
  const logs: string[] = [];
  let latest: ReconcileResult | null = null;
  const done = watch({
    spec: opts.spec ?? topo.spec,
    specDir: topo.specDir,
    store,
    sink: logSink(() => {}),
    intervalMs: 1000,
    signal: ac.signal,
    log: (l) => logs.push(l),
    onResult: (r) => {
      latest = r;
    },
    ...(opts.crashAfterStep ? { crashAfterStep: opts.crashAfterStep } : {}),
    ...(opts.onLeaderPass ? { onLeaderPass: opts.onLeaderPass } : {}),
    ...(opts.autoRejoin ? { autoRejoin: opts.autoRejoin } : {}),
    ...(opts.authority ? { authority: opts.authority } : {}),
  });
  return {
    logs,
    latest: () => latest,
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

/** md5 of a table's rows in key order, optionally only rows matching `where`. */
export async function checksum(c: pg.ClientBase, table: string, where = 'true'): Promise<string> {
  const r = await c.query(
    `SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), '')) AS h, count(*) AS n FROM ${table} t WHERE ${where}`,
  );
  return `${r.rows[0].n}:${r.rows[0].h}`;
}
