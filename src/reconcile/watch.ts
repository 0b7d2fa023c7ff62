/**
 * `reconcile --watch`: a loop of reconcile passes. Only the holder of the leader lock
 * writes (control store, alerts, the primary's heartbeat); the others observe and say
 * they are standing by, and take over when the leader's lock connection dies.
 */
import { hostname } from 'node:os';
import type pg from 'pg';
import type { AlertSink } from '../alerts/sink.js';
import type { Authority, LeaderHandle } from '../authority/types.js';
import { authorityView } from '../authority/view.js';
import { corroborate } from '../failover/choose.js';
import { fenceRegion, runFailover, type TransitionOptions } from '../failover/failover.js';
import { type WriteBackConfig, writeBackAfter } from '../failover/write-back-hook.js';
import { HANDOFF_LOCK, RECONCILE_LOCK } from '../leadership/acting-right.js';
import { desiredState, primaryOf } from '../model/desired.js';
import { ObserverConnections } from '../observe/connections.js';
import type { PreviousSample } from '../observe/health.js';
import { observe } from '../observe/observe.js';
import { type Detection, detectPrimaryDown } from '../safety/detection.js';
import { promotionGate } from '../safety/gate.js';
import { sleep } from '../sleep.js';
import type { RegionsSpec } from '../spec/schema.js';
import { connect, controlTarget, endWithin, regionTarget, withDeadline } from '../sql/connect.js';
import { heartbeatWriteSql } from '../sql/heartbeat.js';
import { runStatements } from '../sql/statement.js';
import { describeHolder, type LeaderLock, tryAcquireLeaderLock } from '../store/leader-lock.js';
import type { Store } from '../store/store.js';
import { currentSpec, type ReconcileResult, reconcileOnce } from './reconcile.js';

export { RECONCILE_LOCK } from '../leadership/acting-right.js';

/** Writes the primary's heartbeat row every interval, reconnecting after failures. */
export class HeartbeatWriter {
  private client: pg.Client | null = null;
  private clientRegion: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  lastError: string | null = null;
  written = 0;

  constructor(
    private readonly spec: RegionsSpec,
    private readonly specDir: string,
    private readonly epoch: () => number,
    private readonly primary: () => string = () => primaryOf(spec),
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
    const primary = this.primary();
    try {
      if (this.client && this.clientRegion !== primary) {
        await this.client.end().catch(() => {});
        this.client = null;
      }
      if (!this.client) {
        this.clientRegion = primary;
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
  /**
   * After each pass while leading, under the loop's mutex (never concurrently with a
   * failover, so it cannot publish a table computed before one): read routing publishes here.
   */
  onLeaderPass?: (r: ReconcileResult) => Promise<void>;
  /** Stop after this many passes (tests, benchmarks); default: until aborted. */
  maxPasses?: number;
  /** Tests: make an automatic failover stop (as if killed) right after the named step. */
  crashAfterStep?: string;
  /** Rejoin a fenced former primary as soon as it is reachable (reports go to reportDir). */
  autoRejoin?: { reportDir: string };
  /** Propose the new topology as a git branch after an automatic failover. */
  writeBack?: WriteBackConfig & { specFile: string };
  /**
   * The spec's authority (etcd). With it, leadership is an etcd lease, the primary is
   * declared down only by the region agents (src/safety/detection.ts), and a candidate
   * is made writable only through the promotion gate (src/safety/gate.ts).
   */
  authority?: Authority;
}

/** What the watch loop knows about the authority between probes. */
interface AuthorityState {
  authority: Authority;
  leader: LeaderHandle | null;
  /** When this reconciler first saw the current primary's lease gone (null: held). */
  leaseGoneSince: number | null;
  /** The last verdict, so that a partition is logged once per episode. */
  lastVerdict: string | null;
  /** The last vote count logged. */
  lastVotes?: string;
}

/** Serialises the loop's work: a failover never overlaps a reconcile pass or another failover. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => {});
    return next;
  }
}

export async function watch(o: WatchOptions): Promise<void> {
  const target = controlTarget(o.spec, o.specDir);
  let lock: LeaderLock | null = null;
  let epoch = 0;
  let primary = primaryOf(o.spec);
  const heartbeat = new HeartbeatWriter(
    o.spec,
    o.specDir,
    () => epoch,
    () => primary,
  );
  const previous = new Map<string, PreviousSample>();
  const mutex = new Mutex();
  const log = (level: string, msg: string, extra: Record<string, unknown> = {}) =>
    o.log(JSON.stringify({ level, msg, ...extra }));
  const auth: AuthorityState | null = o.authority
    ? { authority: o.authority, leader: null, leaseGoneSince: null, lastVerdict: null }
    : null;
  const prober = new PrimaryProber(
    o,
    () => primary,
    async (failures) => {
      if (!lock) return;
      if (auth) await mutex.run(() => decideByAgents(o, auth, failures, log));
      else if (failures >= o.spec.failover.probe.failureThreshold)
        await mutex.run(() => maybeFailover(o, failures, log));
    },
  );
  let standbyNoted = false;
  let handoffNoted: string | null = null;
  // One observer connection per region for the life of the loop: every observation made
  // inside `run` (passes, the failover check, fencing, rejoin) reuses it instead of
  // connecting and authenticating again each pass.
  const connections = new ObserverConnections();
  try {
    await connections.run(() => loop());
  } finally {
    prober.stop();
    await heartbeat.stop();
    const held = lock as LeaderLock | null;
    await held?.release();
    await connections.close();
  }

  /** A person's command asks for the right to act (src/leadership/acting-right.ts). */
  async function handoffRequest(): Promise<string | null> {
    try {
      if (auth) {
        const h = await auth.authority.handoff();
        return h ? `${h.who} (since ${h.since})` : null;
      }
      return await o.store.advisoryLockHolder(HANDOFF_LOCK);
    } catch {
      return null;
    }
  }

  /** Give the right up between passes (under the mutex: never inside a transition). */
  async function stepAside(): Promise<void> {
    const held = lock as LeaderLock | null;
    lock = null;
    prober.stop();
    await heartbeat.stop();
    if (auth) {
      const h = auth.leader;
      auth.leader = null;
      await h?.resign().catch(() => {});
    } else await held?.release();
  }

  async function loop(): Promise<void> {
    for (let pass = 0; !o.signal.aborted && (o.maxPasses === undefined || pass < o.maxPasses); pass++) {
      const request = await handoffRequest();
      if (request) {
        if (lock || auth?.leader) {
          await mutex.run(stepAside);
          log('warn', `stepped aside: ${request} acts; leading again after it`);
        } else if (handoffNoted !== request) log('info', `not leading while ${request} acts`);
        handoffNoted = request;
        standbyNoted = false;
      } else if (handoffNoted) {
        log('info', 'the command that asked to act is done: campaigning again');
        handoffNoted = null;
      }
      if (request) {
        // Observe only, as a standby would.
      } else if (!lock && auth) {
        lock = await campaign(auth, log);
        if (lock) {
          standbyNoted = false;
          log('info', 'leader (authority): this reconciler acts');
          lock.onLost(() => {
            log('warn', 'leader lease lost; standing by');
            lock = null;
            auth.leader = null;
            prober.stop();
            void heartbeat.stop();
          });
          await mutex.run(() => resumeUnfinished(o, log, auth));
        } else if (!standbyNoted) {
          log('info', 'standing by: another reconciler holds the leader lease in the authority');
          standbyNoted = true;
        }
      } else if (!lock) {
        const attempt = await tryAcquireLeaderLock(target, RECONCILE_LOCK, { wait: false }).catch(
          (e: Error) => {
            log('error', 'control store unreachable', { error: e.message });
            return null;
          },
        );
        if (attempt?.acquired) {
          lock = attempt.lock;
          standbyNoted = false;
          log('info', 'leader: this reconciler acts');
          lock.onLost(() => {
            log('warn', 'leader lock lost; standing by');
            lock = null;
            prober.stop();
            void heartbeat.stop();
          });
          // A transition the previous leader left unfinished is finished before anything else.
          await mutex.run(() => resumeUnfinished(o, log));
        } else if (attempt && !standbyNoted) {
          log('info', `standing by: ${describeHolder(RECONCILE_LOCK, attempt.holder)}`);
          standbyNoted = true;
        }
      }
      const leader = lock !== null;
      try {
        const r = await mutex.run(() =>
          reconcileOnce({
            spec: o.spec,
            specDir: o.specDir,
            store: o.store,
            sink: o.sink,
            leader,
            previous,
          }),
        );
        // The authority's view is for status and metrics only: asked outside the mutex,
        // so a slow etcd member never delays a failover decision waiting behind it.
        if (o.authority) {
          r.authority = await authorityView(
            o.authority,
            o.spec.regions.map((x) => x.name),
          );
        }
        primary = r.primary;
        epoch = r.epoch;
        if (leader) {
          heartbeat.start();
          prober.start();
          await mutex.run(() => fenceStrays(o, r, log));
          if (o.autoRejoin) await mutex.run(() => rejoinReturned(o, r, log));
          const hook = o.onLeaderPass;
          if (hook) {
            await mutex
              .run(() => hook(r))
              .catch((e: Error) => {
                log('error', 'leader pass hook failed', { error: e.message });
              });
          }
        }
        await o.onResult?.(r);
      } catch (e) {
        log('error', 'reconcile pass failed', { error: (e as Error).message });
      }
      await sleep(o.intervalMs, o.signal);
    }
  }
}

/**
 * Probes the primary every probe interval and reports its consecutive failures to the
 * decision: without an authority, `failureThreshold` of them ask for a failover (which
 * the secondaries must corroborate); with one, the region agents decide.
 */
class PrimaryProber {
  private timer: NodeJS.Timeout | null = null;
  private failures = 0;
  private busy = false;
  constructor(
    private readonly o: WatchOptions,
    private readonly primary: () => string,
    private readonly onDown: (failures: number) => Promise<void>,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.probe(), this.o.spec.failover.probe.intervalSeconds * 1000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async probe(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    const region = this.primary();
    const timeout = this.o.spec.failover.probe.timeoutMs;
    try {
      const c = await connect(regionTarget(this.o.spec, region, this.o.specDir), {
        applicationName: 'regionctl-probe',
        connectTimeoutMs: timeout,
        statementTimeoutMs: timeout,
      });
      try {
        // Client-side too: a probe in flight when the network is cut gets no answer ever,
        // and a prober stuck on it would never report again.
        await withDeadline(c.query('SELECT 1'), timeout, 'probe');
        this.failures = 0;
      } finally {
        await endWithin(c);
      }
    } catch {
      this.failures++;
    }
    try {
      // Every probe reports: with an authority the agents' verdict is checked each
      // interval, whatever this reconciler's own probe says (it may be the one cut off).
      await this.onDown(this.failures).catch(() => {});
    } finally {
      this.busy = false;
    }
  }
}

async function resumeUnfinished(
  o: WatchOptions,
  log: (l: string, m: string, e?: Record<string, unknown>) => void,
  auth?: AuthorityState | null,
) {
  const u = await o.store.unfinishedFailoverEvent();
  if (u?.event.kind === 'switchover') {
    // Its old primary is fenced: leaving it half done is an outage. Finish (or undo) it.
    log('warn', 'resuming an unfinished switchover', { eventId: u.event.id });
    const { runSwitchover } = await import('../failover/switchover.js');
    await runSwitchover({
      spec: o.spec,
      specDir: o.specDir,
      store: o.store,
      log: (l) => o.log(l),
      force: false,
      trigger: u.event.triggerReason,
      to: u.event.toRegion,
      ...(auth ? { gate: gateFor(auth, u.event.fromRegion, log) } : {}),
    }).catch((e: Error) => log('error', 'the unfinished switchover did not finish', { error: e.message }));
    return;
  }
  if (u?.event.kind !== 'failover') return;
  log('warn', 'resuming an unfinished failover', { eventId: u.event.id });
  await runFailover({
    spec: o.spec,
    specDir: o.specDir,
    store: o.store,
    log: (l) => o.log(l),
    force: u.event.forced,
    trigger: u.event.triggerReason,
    ...(auth ? { gate: gateFor(auth, u.event.fromRegion, log) } : {}),
  });
}

/** A reconciler's candidacy in the authority, as the loop's leader lock. */
async function campaign(
  auth: AuthorityState,
  log: (l: string, m: string, e?: Record<string, unknown>) => void,
): Promise<LeaderLock | null> {
  try {
    auth.leader ??= await auth.authority.campaign(`reconciler ${hostname()} pid ${process.pid}`);
    const h = auth.leader;
    if (h.state() === 'lost' || h.state() === 'resigned') {
      auth.leader = null;
      return null;
    }
    if (!(await h.waitForLeadership(200))) return null;
    let lostCb: (() => void) | null = null;
    let resolveLost: () => void = () => {};
    const lost = new Promise<void>((r) => {
      resolveLost = r;
    });
    h.onLost(() => {
      resolveLost();
      lostCb?.();
    });
    return {
      name: 'authority',
      release: () => h.resign(),
      lost,
      onLost: (cb) => {
        lostCb = cb;
        if (h.state() === 'lost') cb();
      },
      holderInfo: { pid: process.pid, applicationName: h.identity } as unknown as LeaderLock['holderInfo'],
    };
  } catch (e) {
    log('error', 'authority unreachable: no automatic transitions', { error: (e as Error).message });
    auth.leader = null;
    return null;
  }
}

function gateFor(
  auth: AuthorityState,
  from: string,
  log: (l: string, m: string, e?: Record<string, unknown>) => void,
) {
  return async (to: string, fenceConfirmed: boolean) => {
    if (!auth.leader?.isLeader()) {
      throw new (await import('../errors.js')).RegionctlError(
        'E_STALE_LEADER',
        'this reconciler no longer leads: the failover stops here',
        'the leading reconciler resumes it',
      );
    }
    const r = await promotionGate({
      authority: auth.authority,
      leader: auth.leader,
      from,
      to,
      fenceConfirmed,
      leaseGoneSinceMs: auth.leaseGoneSince,
      log: (m) => log('warn', m),
    });
    return { basis: r.decision.basis, epoch: r.topology.epoch, waitedMs: r.waitedMs };
  };
}

/**
 * The agents' verdict on the primary (src/safety/detection.ts), every probe interval,
 * and a failover when it says down. `ownFailures` (this reconciler's probes) only
 * decides whether a "partition, no failover" alert is worth raising.
 */
async function decideByAgents(
  o: WatchOptions,
  auth: AuthorityState,
  ownFailures: number,
  log: (l: string, m: string, e?: Record<string, unknown>) => void,
): Promise<void> {
  const a = auth.authority;
  const { spec } = await currentSpec(o.spec, o.store, { init: false });
  const primary = primaryOf(spec);
  let detection: Detection;
  try {
    const topo = (await a.topology()) ?? (await a.ensureTopology(primary));
    if (topo.primary !== primary) {
      // The authority moved on (a failover whose store record lags): nothing to decide here.
      return;
    }
    const [leases, pl] = await Promise.all([a.regionLeases(), a.primaryLease()]);
    const held = pl !== null && pl.region === primary && pl.epoch === topo.epoch;
    if (held) auth.leaseGoneSince = null;
    else auth.leaseGoneSince ??= Date.now();
    const lease = (r: string) => leases.find((l) => l.region === r);
    const num = (v: unknown) => (typeof v === 'number' ? v : null);
    detection = detectPrimaryDown({
      primary,
      witnesses: spec.regions
        .filter((r) => r.name !== primary)
        .map((r) => {
          const l = lease(r.name);
          const st = l?.status ?? null;
          return {
            region: r.name,
            alive: l?.alive ?? false,
            // A probe count about another primary (before a topology change) is no vote.
            primaryProbeFailures: st && st.primary === primary ? num(st.primaryProbeFailures) : null,
          };
        }),
      primaryAgent: lease(primary)
        ? { alive: lease(primary)!.alive, databaseFailures: num(lease(primary)!.status?.databaseFailures) }
        : null,
      primaryLeaseHeld: held,
      failureThreshold: o.spec.failover.probe.failureThreshold,
    });
  } catch (e) {
    if (auth.lastVerdict !== 'unavailable') {
      log('error', 'authority unavailable: automatic failover suspended', { error: (e as Error).message });
      await o.store
        .raiseAlert('authority-unavailable', {
          severity: 'critical',
          message: `the authority (etcd) does not answer: automatic transitions are stopped (${(e as Error).message})`,
        })
        .catch(() => {});
    }
    auth.lastVerdict = 'unavailable';
    return;
  }
  if (auth.lastVerdict === 'unavailable') await o.store.resolveAlert('authority-unavailable').catch(() => {});
  if (!detection.down) {
    // Each change of the vote count is worth a line: a failover that does not come is
    // otherwise silent after the first "no failover".
    const votes = `${detection.votes.down}/${detection.votes.needed}:${detection.reason}`;
    if (ownFailures > 0 && auth.lastVotes !== votes) log('info', 'detection', { primary, detection });
    auth.lastVotes = votes;
    if (ownFailures >= o.spec.failover.probe.failureThreshold && auth.lastVerdict !== 'partition') {
      log(
        'warn',
        'primary unreachable from the reconciler, but the region agents say it is up: no failover',
        {
          primary,
          detection,
        },
      );
      await o.store
        .raiseAlert(`partition:${primary}`, {
          severity: 'warning',
          message: `reconciler cannot reach ${primary}; ${detection.summary}`,
        })
        .catch(() => {});
      auth.lastVerdict = 'partition';
    } else if (ownFailures === 0) auth.lastVerdict = null;
    return;
  }
  const trigger = `primary ${primary} down: ${detection.summary}`;
  await failoverNow(o, spec, primary, trigger, log, { gate: gateFor(auth, primary, log) });
}

async function maybeFailover(
  o: WatchOptions,
  failures: number,
  log: (l: string, m: string, e?: Record<string, unknown>) => void,
): Promise<void> {
  const { spec } = await currentSpec(o.spec, o.store, { init: false });
  const desired = desiredState(spec);
  const observed = await observe(spec, o.specDir);
  const p = observed.regions.find((r) => r.region === desired.primary);
  if (p?.reachable) return; // it came back between the probes and this check
  const corroboration = corroborate(desired, observed, spec);
  if (!corroboration.corroborated) {
    log(
      'warn',
      'primary unreachable from the reconciler, but the secondaries still hear it: partition, no failover',
      {
        primary: desired.primary,
        corroboration,
      },
    );
    await o.store.raiseAlert(`partition:${desired.primary}`, {
      severity: 'warning',
      message: `reconciler cannot reach ${desired.primary}; ${corroboration.summary}`,
    });
    return;
  }
  const trigger = `primary ${desired.primary} unreachable for ${failures} probes; ${corroboration.summary}`;
  await failoverNow(o, spec, desired.primary, trigger, log, { corroboration });
}

/**
 * The primary is down by whichever rule applies: alert when failover is manual, else run
 * it (with the authority's promotion gate, or the corroboration that decided it) and
 * propose the new topology by write-back. Errors are logged, never thrown: the loop goes on.
 */
async function failoverNow(
  o: WatchOptions,
  spec: RegionsSpec,
  primary: string,
  trigger: string,
  log: (l: string, m: string, e?: Record<string, unknown>) => void,
  decided: Pick<TransitionOptions, 'gate' | 'corroboration'>,
): Promise<void> {
  if (spec.failover.mode !== 'automatic') {
    const r = await o.store.raiseAlert(`primary-down:${primary}`, {
      severity: 'critical',
      message: `${trigger}; failover mode is manual: run \`regionctl failover\``,
    });
    if (r.raised) log('error', 'primary down, manual failover required', { trigger });
    return;
  }
  try {
    const out = await runFailover({
      spec: o.spec,
      specDir: o.specDir,
      store: o.store,
      log: (l) => o.log(l),
      force: false,
      trigger,
      ...decided,
      ...(o.crashAfterStep ? { crashAfter: o.crashAfterStep } : {}),
    });
    log('warn', 'automatic failover completed', { ...out });
    if (o.writeBack) {
      await writeBackAfter(
        o.writeBack,
        o.store,
        {
          specFile: o.writeBack.specFile,
          eventId: out.eventId,
          kind: 'failover',
          newPrimary: out.to,
          reason: trigger,
        },
        o.log,
      );
    }
  } catch (e) {
    log('error', 'automatic failover did not run', { error: (e as Error).message });
  }
}

/**
 * First contact with a region that accepts application writes but is not the primary
 * (an old primary coming back): fence it before anything else.
 */
async function fenceStrays(
  o: WatchOptions,
  r: ReconcileResult,
  log: (l: string, m: string, e?: Record<string, unknown>) => void,
): Promise<void> {
  const writable = r.regions.filter((x) => x.role === 'primary' && x.region !== r.primary);
  if (writable.length === 0) return;
  // Only a region that was a primary (a failover or switchover moved away from it) is a
  // stray to fence. A region that is writable because it was never provisioned (no
  // channel yet: a new region, or a reconciler started before the first apply) is not:
  // fencing it would make the automatic rejoin treat it as a returning primary and race
  // the apply that is about to subscribe it.
  const former = new Set(await o.store.formerPrimaries());
  const strays = writable.filter((x) => former.has(x.region));
  if (strays.length === 0) return;
  const { spec } = await currentSpec(o.spec, o.store, { init: false });
  const desired = desiredState(spec);
  const observed = await observe(spec, o.specDir);
  for (const s of strays) {
    const f = await fenceRegion(spec, o.specDir, s.region, observed, desired);
    await o.store.setRegionState(s.region, 'fenced', null);
    log('warn', 'fenced a writable region that is not the primary', {
      region: s.region,
      confirmed: f.confirmed,
    });
  }
}

/** Automatic rejoin: a fenced region that answers again is brought back as a secondary. */
async function rejoinReturned(
  o: WatchOptions,
  r: ReconcileResult,
  log: (l: string, m: string, e?: Record<string, unknown>) => void,
): Promise<void> {
  if (!o.autoRejoin) return;
  const states = await o.store.regionStates();
  for (const st of states) {
    const here = r.regions.find((x) => x.region === st.region);
    if (!here?.reachable) continue;
    try {
      const { runRejoin } = await import('../rejoin/rejoin.js');
      const out = await runRejoin({
        spec: o.spec,
        specDir: o.specDir,
        store: o.store,
        region: st.region,
        full: false,
        log: (l) => o.log(l),
        reportDir: o.autoRejoin.reportDir,
      });
      log('warn', 'automatic rejoin completed', { ...out });
    } catch (e) {
      log('error', 'automatic rejoin failed', { region: st.region, error: (e as Error).message });
    }
  }
}
