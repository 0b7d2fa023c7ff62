/**
 * Private labs for benchmarks: their own ports and state directory, so neither a
 * developer's lab nor a test run is disturbed. `benchLab` starts the servers and applies
 * the spec's channels (so an observation has publications, subscriptions and slots to
 * read); `stop` shuts them down and removes the state.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { applyPlan } from '../src/apply/apply.js';
import { labDown, labUp } from '../src/lab/lab.js';
import { desiredState } from '../src/model/desired.js';
import { observe } from '../src/observe/observe.js';
import { planSteadyState } from '../src/plan/plan.js';
import type { RegionsSpec } from '../src/spec/schema.js';
import { controlTarget } from '../src/sql/connect.js';
import { storeJournal } from '../src/store/journal.js';
import { openStore } from '../src/store/store.js';

export interface BenchLab {
  spec: RegionsSpec;
  specDir: string;
  stateDir: string;
  upMs: number;
  applyMs: number;
  stop(): Promise<void>;
}

/** dist/bench/*.js and bench/*.ts (tsx) sit at different depths. */
export function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const d of [resolve(here, '..'), resolve(here, '..', '..')]) {
    try {
      readFileSync(join(d, 'regions.yaml'));
      return d;
    } catch {
      // try the next candidate
    }
  }
  return process.cwd();
}

export function baseSpec(): RegionsSpec {
  return parse(readFileSync(join(repoRoot(), 'regions.yaml'), 'utf8')) as RegionsSpec;
}

/** regions.yaml on other ports, with the lab's secrets under `stateDir`. */
export function shiftedSpec(shift: number, stateDir: string): RegionsSpec {
  const spec = baseSpec();
  const password = { file: join(stateDir, 'secrets', 'postgres.password') };
  for (const r of spec.regions) {
    r.endpoint.port += shift;
    r.endpoint.password = password;
  }
  spec.controlStore.port += shift;
  spec.controlStore.password = password;
  delete spec.dns;
  return spec;
}

/**
 * regions.yaml's replication settings over `n` regions on consecutive loopback ports
 * (`basePort` is the control store): one primary, n-1 channels from it.
 */
export function wideSpec(n: number, basePort: number, stateDir: string): RegionsSpec {
  const spec = baseSpec();
  const password = { file: join(stateDir, 'secrets', 'postgres.password') };
  const names = Array.from({ length: n }, (_, i) => `bench-${String(i).padStart(2, '0')}`);
  const primary = names[0] ?? 'bench-00';
  spec.regions = names.map((name, i) => ({
    name,
    role: i === 0 ? 'primary' : 'secondary',
    location: { lat: 0, lon: i },
    endpoint: { host: '127.0.0.1', port: basePort + 1 + i, user: 'postgres', password },
    failover: i === 1 ? { candidate: true, priority: 1 } : { candidate: false },
  }));
  spec.controlStore = { ...spec.controlStore, port: basePort, password };
  spec.channels = names.slice(1).map((to) => ({
    from: primary,
    to,
    rpo: { alertSeconds: 10, failoverMaxLagSeconds: 60 },
  }));
  for (const p of spec.replication.pinned ?? []) p.region = primary;
  for (const r of spec.replication.residency ?? []) r.allowedRegions = [primary, names[1] ?? primary];
  delete spec.dns;
  return spec;
}

export async function benchLab(spec: RegionsSpec, stateDir: string): Promise<BenchLab> {
  const specDir = repoRoot();
  await labDown({ stateDir, purge: true });
  const t0 = performance.now();
  const stop = () => labDown({ stateDir, purge: true }).then(() => {});
  try {
    await labUp(spec, { specDir, stateDir, templateDir: join(stateDir, '_template') });
    const upMs = performance.now() - t0;
    const t1 = performance.now();
    const store = await openStore(controlTarget(spec, specDir));
    try {
      const desired = desiredState(spec);
      const plan = planSteadyState(desired, await observe(spec, specDir));
      await applyPlan(plan, {
        spec,
        specDir,
        journal: storeJournal(store),
        specCommit: null,
        actor: 'bench',
        log: () => {},
      });
    } finally {
      await store.close();
    }
    return { spec, specDir, stateDir, upMs, applyMs: performance.now() - t1, stop };
  } catch (e) {
    await stop().catch(() => {});
    throw e;
  }
}
