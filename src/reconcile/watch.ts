/**
 * `reconcile --watch`: a loop of reconcile passes. Only the holder of the leader lock
 * writes (control store, alerts, the primary's heartbeat); the others observe and say
 * they are standing by, and take over when the leader's lock connection dies.
 */
import type pg from 'pg';
import type { AlertSink } from '../alerts/sink.js';
import { primaryOf } from '../model/desired.js';
import type { PreviousSample } from '../observe/health.js';
import type { RegionsSpec } from '../spec/schema.js';
import { connect, controlTarget, regionTarget } from '../sql/connect.js';
import { heartbeatWriteSql } from '../sql/heartbeat.js';
import { runStatements } from '../sql/statement.js';
import { describeHolder, type LeaderLock, tryAcquireLeaderLock } from '../store/leader-lock.js';
import type { Store } from '../store/store.js';
import { type ReconcileResult, reconcileOnce } from './reconcile.js';

export const RECONCILE_LOCK = 'reconcile';

/** Writes the primary's heartbeat row every interval, reconnecting after failures. */
export class HeartbeatWriter {
  private client: pg.Client | null = null;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  lastError: string | null = null;
  written = 0;

  constructor(
    private readonly spec: RegionsSpec,
    private readonly specDir: string,
    private readonly epoch: () => number,
  ) {}

  start(): void {
    if (this.timer) return;
    const ms = Math.max(50, (this.spec.heartbeat?.intervalSeconds ?? 1) * 1000);
    void this.beat();
    this.timer = setInterval(() => void this.beat(), ms);
  }

  private async beat(): Promise<void> {
    if (this.busy) return; // a slow primary must not pile up heartbeats
    this.busy = true;
    const primary = primaryOf(this.spec);
    try {
      if (!this.client) {
        this.client = await connect(regionTarget(this.spec, primary, this.specDir), {
          applicationName: 'regionctl-heartbeat',
          connectTimeoutMs: 1000,
          statementTimeoutMs: 2000,
        });
      }
      await runStatements(this.client, heartbeatWriteSql(primary, this.epoch()));
      this.written++;
      this.lastError = null;
    } catch (e) {
      this.lastError = (e as Error).message;
      await this.client?.end().catch(() => {});
      this.client = null;
    } finally {
      this.busy = false;
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.client?.end().catch(() => {});
    this.client = null;
  }
}

export interface WatchOptions {
  spec: RegionsSpec;
  specDir: string;
  store: Store;
  sink: AlertSink;
  intervalMs: number;
  signal: AbortSignal;
  log: (line: string) => void;
  onResult?: (r: ReconcileResult) => void | Promise<void>;
  /** Stop after this many passes (tests, benchmarks); default: until aborted. */
  maxPasses?: number;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

export async function watch(o: WatchOptions): Promise<void> {
  const target = controlTarget(o.spec, o.specDir);
  let lock: LeaderLock | null = null;
  let epoch = 0;
  const heartbeat = new HeartbeatWriter(o.spec, o.specDir, () => epoch);
  const previous = new Map<string, PreviousSample>();
  let standbyNoted = false;
  try {
    for (let pass = 0; !o.signal.aborted && (o.maxPasses === undefined || pass < o.maxPasses); pass++) {
      if (!lock) {
        const attempt = await tryAcquireLeaderLock(target, RECONCILE_LOCK, { wait: false }).catch(
          (e: Error) => {
            o.log(JSON.stringify({ level: 'error', msg: 'control store unreachable', error: e.message }));
            return null;
          },
        );
        if (attempt?.acquired) {
          lock = attempt.lock;
          standbyNoted = false;
          o.log(JSON.stringify({ level: 'info', msg: 'leader: this reconciler acts' }));
          lock.onLost(() => {
            o.log(JSON.stringify({ level: 'warn', msg: 'leader lock lost; standing by' }));
            lock = null;
            void heartbeat.stop();
          });
        } else if (attempt && !standbyNoted) {
          o.log(
            JSON.stringify({
              level: 'info',
              msg: `standing by: ${describeHolder(RECONCILE_LOCK, attempt.holder)}`,
            }),
          );
          standbyNoted = true;
        }
      }
      const leader = lock !== null;
      if (leader) {
        epoch = (await o.store.getTopology())?.epoch ?? 0;
        heartbeat.start();
      }
      try {
        const r = await reconcileOnce({
          spec: o.spec,
          specDir: o.specDir,
          store: o.store,
          sink: o.sink,
          leader,
          previous,
        });
        await o.onResult?.(r);
      } catch (e) {
        o.log(JSON.stringify({ level: 'error', msg: 'reconcile pass failed', error: (e as Error).message }));
      }
      await sleep(o.intervalMs, o.signal);
    }
  } finally {
    await heartbeat.stop();
    const held = lock as LeaderLock | null;
    await held?.release();
  }
}
