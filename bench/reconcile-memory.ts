/**
 * Memory of a `reconcile --watch` reconciler: `reconcileOnce` in a loop (leader, writing
 * the control store, with one `previous` Map reused across passes as watch() does)
 * against a private 3-region lab with its channels applied. heapUsed and RSS are read
 * after a forced GC at fixed pass counts; the claim to check is "no growth".
 * Needs --expose-gc: re-executes itself with it when global.gc is missing.
 */
import { spawnSync } from 'node:child_process';
import { logSink } from '../src/alerts/sink.js';
import type { PreviousSample } from '../src/observe/health.js';
import { reconcileOnce } from '../src/reconcile/reconcile.js';
import { controlTarget } from '../src/sql/connect.js';
import { openStore } from '../src/store/store.js';
import { benchLab, shiftedSpec } from './bench-lab.js';

const gc = (globalThis as { gc?: () => void }).gc;
const main = import.meta.url === `file://${process.argv[1]}`;

if (main && !gc) {
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

export interface MemorySample {
  pass: number;
  heapUsedMiB: number;
  rssMiB: number;
  msPerPass: number;
}

const MiB = 1024 * 1024;

export async function benchReconcileMemory(total = 10_000): Promise<MemorySample[]> {
  const checkpoints = [100, 1000, 5000, 10_000].filter((n) => n <= total);
  if (!checkpoints.includes(total)) checkpoints.push(total);
  const stateDir = '/tmp/regionctl-bench-reconcile';
  const lab = await benchLab(shiftedSpec(4200, stateDir), stateDir);
  const store = await openStore(controlTarget(lab.spec, lab.specDir));
  const sink = logSink(() => {});
  const previous = new Map<string, PreviousSample>();
  const out: MemorySample[] = [];
  try {
    let last = performance.now();
    let lastPass = 0;
    for (let pass = 1; pass <= total; pass++) {
      await reconcileOnce({ spec: lab.spec, specDir: lab.specDir, store, sink, leader: true, previous });
      if (checkpoints.includes(pass)) {
        const ms = (performance.now() - last) / (pass - lastPass);
        gc?.();
        gc?.();
        const m = process.memoryUsage();
        const s = { pass, heapUsedMiB: m.heapUsed / MiB, rssMiB: m.rss / MiB, msPerPass: ms };
        out.push(s);
        console.log(
          `pass ${String(pass).padStart(5)}: heapUsed ${s.heapUsedMiB.toFixed(1)} MiB, RSS ${s.rssMiB.toFixed(1)} MiB ` +
            `(${ms.toFixed(1)} ms/pass since the previous checkpoint)`,
        );
        last = performance.now();
        lastPass = pass;
      }
    }
  } finally {
    await store.close();
    await lab.stop();
  }
  return out;
}

if (main && gc) {
  const s = await benchReconcileMemory(Number(process.argv[2] ?? 10_000));
  const first = s.find((x) => x.pass >= 1000) ?? s[0];
  const end = s.at(-1);
  if (first && end) {
    console.log(
      `reconcile --watch memory, ${end.pass} passes: heapUsed ${first.heapUsedMiB.toFixed(1)} → ${end.heapUsedMiB.toFixed(1)} MiB, ` +
        `RSS ${first.rssMiB.toFixed(1)} → ${end.rssMiB.toFixed(1)} MiB from pass ${first.pass} (claim: no growth)`,
    );
  }
}
