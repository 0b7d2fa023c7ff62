/**
 * One observation pass (`observe`: every region in parallel, every catalog query the
 * planner and the health rules need) over the 3 regions of regions.yaml and over 20 lab
 * regions on loopback, each measured two ways:
 *   cold — a new connection per region per pass (one-shot commands: status, plan);
 *   warm — connections kept across passes (`reconcile --watch`); target p50 < 30 ms for 3 regions.
 * Then the 3 regions behind a delay relay (100 ms round trip), where the round trips a
 * pass needs, not the server's work, decide its time. Channels are applied first, so
 * there are publications, subscriptions and slots to read. Private labs on their own ports.
 */
import { loadavg } from 'node:os';
import { startRelay } from '../src/lab/wan/relay.js';
import { ObserverConnections } from '../src/observe/connections.js';
import { observe } from '../src/observe/observe.js';
import type { RegionsSpec } from '../src/spec/schema.js';
import { benchLab, shiftedSpec, wideSpec } from './bench-lab.js';
import { percentile } from './stats.js';

export interface ObserveBench {
  regions: number;
  mode: 'cold' | 'warm';
  /** Round-trip time added by the relay, 0 on plain loopback. */
  rttMs: number;
  passes: number;
  p50: number;
  p95: number;
  max: number;
  cpuMsPerPass: number;
  unreachable: number;
}

const WAN_RTT_MS = 100;

async function passes(
  spec: RegionsSpec,
  specDir: string,
  runs: number,
  mode: 'cold' | 'warm',
  rttMs = 0,
): Promise<ObserveBench> {
  const connections = mode === 'warm' ? new ObserverConnections() : undefined;
  const opts = connections ? { connections } : {};
  try {
    // Warm-up: first connections pay for authentication caches and catalog loading (and,
    // warm, open the connections that the measured passes reuse).
    for (let i = 0; i < 3; i++) await observe(spec, specDir, opts);
    const times: number[] = [];
    let unreachable = 0;
    const cpu0 = process.cpuUsage();
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      const o = await observe(spec, specDir, opts);
      times.push(performance.now() - t0);
      unreachable += o.regions.filter((r) => !r.reachable).length;
    }
    const cpu = process.cpuUsage(cpu0);
    return {
      regions: spec.regions.length,
      mode,
      rttMs,
      passes: runs,
      p50: percentile(times, 50),
      p95: percentile(times, 95),
      max: Math.max(...times),
      cpuMsPerPass: (cpu.user + cpu.system) / 1000 / runs,
      unreachable,
    };
  } finally {
    await connections?.close();
  }
}

function print(r: ObserveBench, target?: string): void {
  const link = r.rttMs > 0 ? ` over a ${r.rttMs} ms RTT relay` : '';
  console.log(
    `observe ${r.regions} regions${link}, ${r.mode}: p50 ${r.p50.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms, ` +
      `max ${r.max.toFixed(1)} ms over ${r.passes} passes (client CPU ${r.cpuMsPerPass.toFixed(1)} ms/pass, ` +
      `load average ${loadavg()[0]?.toFixed(1)})` +
      `${r.unreachable ? `; ${r.unreachable} region observations unreachable` : ''}${target ? `; ${target}` : ''}`,
  );
}

/** The same spec with every region reached through a relay adding `rttMs` per round trip. */
async function behindRelay(spec: RegionsSpec, rttMs: number) {
  const relay = await startRelay({
    listeners: spec.regions.map((r) => ({
      target: r.name,
      listen: { host: '127.0.0.1', port: 0 },
      upstream: { host: r.endpoint.host, port: r.endpoint.port },
    })),
    sources: [],
    rttMs: {},
    defaultRttMs: rttMs,
  });
  const relayed = structuredClone(spec);
  for (const a of relay.addresses()) {
    const r = relayed.regions.find((x) => x.name === a.target);
    if (r) r.endpoint = { ...r.endpoint, host: a.host, port: a.port };
  }
  return { spec: relayed, close: () => relay.close() };
}

export async function benchObserve(runs = 50): Promise<ObserveBench[]> {
  const out: ObserveBench[] = [];
  const record = (r: ObserveBench, target?: string) => {
    print(r, target);
    out.push(r);
  };
  const stateDir3 = '/tmp/regionctl-bench-observe3';
  const lab3 = await benchLab(shiftedSpec(4000, stateDir3), stateDir3);
  try {
    record(await passes(lab3.spec, lab3.specDir, runs, 'cold'));
    record(await passes(lab3.spec, lab3.specDir, runs, 'warm'), 'target p50 < 30 ms');
    const wan = await behindRelay(lab3.spec, WAN_RTT_MS);
    try {
      const wanRuns = Math.min(runs, 10);
      record(await passes(wan.spec, lab3.specDir, wanRuns, 'cold', WAN_RTT_MS));
      record(await passes(wan.spec, lab3.specDir, wanRuns, 'warm', WAN_RTT_MS));
    } finally {
      await wan.close();
    }
  } finally {
    await lab3.stop();
  }
  const stateDir20 = '/tmp/regionctl-bench-observe20';
  const lab20 = await benchLab(wideSpec(20, 58500, stateDir20), stateDir20);
  console.log(
    `(20-region lab: up ${(lab20.upMs / 1000).toFixed(1)} s, 19 channels applied in ${(lab20.applyMs / 1000).toFixed(1)} s)`,
  );
  try {
    record(await passes(lab20.spec, lab20.specDir, runs, 'cold'));
    record(await passes(lab20.spec, lab20.specDir, runs, 'warm'));
  } finally {
    await lab20.stop();
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchObserve(Number(process.argv[2] ?? 50));
}
