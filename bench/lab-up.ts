/**
 * `lab up` time for the regions of regions.yaml plus the control store (target < 5 s):
 * cold (empty state dir: initdb, copies, start, databases, demo schema), warm (servers
 * stopped, data directories kept: start only) and no-op (everything already running).
 * Runs on its own ports (+3000) and state dir, so a running lab is not disturbed.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { labDown, labUp } from '../src/lab/lab.js';
import type { RegionsSpec } from '../src/spec/schema.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface LabUpBench {
  servers: number;
  coldMs: number;
  warmMs: number[];
  noopMs: number;
}

export async function benchLabUp(warmRuns = 3): Promise<LabUpBench> {
  const specFile = join(findRoot(), 'regions.yaml');
  const spec = parse(readFileSync(specFile, 'utf8')) as RegionsSpec;
  const stateDir = '/tmp/regionctl-bench-lab';
  const password = { file: join(stateDir, 'secrets', 'postgres.password') };
  for (const r of spec.regions) {
    r.endpoint.port += 3000;
    r.endpoint.password = password;
  }
  spec.controlStore.port += 3000;
  spec.controlStore.password = password;
  const opts = { specDir: dirname(specFile), stateDir };

  await labDown({ stateDir, purge: true });
  try {
    const cold = await labUp(spec, opts);
    const warmMs: number[] = [];
    for (let i = 0; i < warmRuns; i++) {
      await labDown({ stateDir });
      warmMs.push((await labUp(spec, opts)).totalMs);
    }
    const noop = await labUp(spec, opts);
    return { servers: cold.servers.length, coldMs: cold.totalMs, warmMs, noopMs: noop.totalMs };
  } finally {
    await labDown({ stateDir, purge: true });
  }
}

/** dist/bench/lab-up.js and bench/lab-up.ts (tsx) sit at different depths. */
function findRoot(): string {
  for (const d of [ROOT, resolve(ROOT, '..'), resolve(dirname(fileURLToPath(import.meta.url)), '..')]) {
    try {
      readFileSync(join(d, 'regions.yaml'));
      return d;
    } catch {
      // try the next candidate
    }
  }
  return process.cwd();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchLabUp();
  const median = [...r.warmMs].sort((a, b) => a - b)[Math.floor(r.warmMs.length / 2)] ?? 0;
  console.log(
    `lab up, ${r.servers} servers (3 regions + control store): cold ${(r.coldMs / 1000).toFixed(2)} s, ` +
      `warm ${(median / 1000).toFixed(2)} s (median of ${r.warmMs.join(', ')} ms), ` +
      `already running ${(r.noopMs / 1000).toFixed(2)} s; target < 5 s`,
  );
}
