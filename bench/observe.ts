/**
 * One observation pass (`observe`: every region in parallel, every catalog query the
 * planner and the health rules need) over the 3 regions of regions.yaml (target p50 <
 * 100 ms) and over 20 lab regions on loopback. Channels are applied first, so there are
 * publications, subscriptions and slots to read. Private labs on their own ports.
 */
import { loadavg } from 'node:os';
import { observe } from '../src/observe/observe.js';
import { benchLab, shiftedSpec, wideSpec } from './bench-lab.js';
import { percentile } from './stats.js';

export interface ObserveBench {
  regions: number;
  passes: number;
  p50: number;
  p95: number;
  max: number;
  cpuMsPerPass: number;
  unreachable: number;
}

async function passes(lab: Awaited<ReturnType<typeof benchLab>>, runs: number): Promise<ObserveBench> {
  // Warm-up: first connections pay for authentication caches and catalog loading.
  for (let i = 0; i < 3; i++) await observe(lab.spec, lab.specDir);
  const times: number[] = [];
  let unreachable = 0;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const o = await observe(lab.spec, lab.specDir);
    times.push(performance.now() - t0);
    unreachable += o.regions.filter((r) => !r.reachable).length;
  }
  const cpu = process.cpuUsage(cpu0);
  return {
    regions: lab.spec.regions.length,
    passes: runs,
    p50: percentile(times, 50),
    p95: percentile(times, 95),
    max: Math.max(...times),
    cpuMsPerPass: (cpu.user + cpu.system) / 1000 / runs,
    unreachable,
  };
}

function print(r: ObserveBench, target?: string): void {
  console.log(
    `observe ${r.regions} regions: p50 ${r.p50.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms, max ${r.max.toFixed(1)} ms ` +
      `over ${r.passes} passes (client CPU ${r.cpuMsPerPass.toFixed(1)} ms/pass, load average ${loadavg()[0]?.toFixed(1)})` +
      `${r.unreachable ? `; ${r.unreachable} region observations unreachable` : ''}${target ? `; ${target}` : ''}`,
  );
}

export async function benchObserve(runs = 50): Promise<ObserveBench[]> {
  const out: ObserveBench[] = [];
  const stateDir3 = '/tmp/regionctl-bench-observe3';
  const lab3 = await benchLab(shiftedSpec(4000, stateDir3), stateDir3);
  try {
    const r = await passes(lab3, runs);
    print(r, 'target p50 < 100 ms');
    out.push(r);
  } finally {
    await lab3.stop();
  }
  const stateDir20 = '/tmp/regionctl-bench-observe20';
  const lab20 = await benchLab(wideSpec(20, 58500, stateDir20), stateDir20);
  console.log(
    `(20-region lab: up ${(lab20.upMs / 1000).toFixed(1)} s, 19 channels applied in ${(lab20.applyMs / 1000).toFixed(1)} s)`,
  );
  try {
    const r = await passes(lab20, runs);
    print(r);
    out.push(r);
  } finally {
    await lab20.stop();
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchObserve(Number(process.argv[2] ?? 50));
}
