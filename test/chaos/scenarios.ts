/**
 * The fault suite's scenarios (issue #11 §3). Each starts from a converged WAN lab
 * under load from the independent workload, injects one fault with the lab's own
 * commands, heals, lets the reconciler settle, rejoins a replaced primary (so that its
 * lost-write report exists), and hands everything to the checker. The verdict comes
 * from the writers' logs and the regions' rows, never from regionctl's reports alone.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type CheckResult, check, loadLogs } from './checker.js';
import { ChaosLab, type LabOptions } from './harness.js';

export interface ScenarioResult {
  id: string;
  name: string;
  ok: boolean;
  violations: string[];
  originalPrimary: string;
  finalPrimary: string;
  expectedFinalPrimary: string;
  splitBrainAcks: number;
  splitBrainWindowMs: number;
  acked: number;
  trueLost: number;
  reportedLost: number;
  silentlyLost: number;
  falselyReported: number;
  rtoMs: number | null;
  maxAckGapMs: number | null;
  verify: 'pass' | 'fail' | 'skipped';
  durationMs: number;
  check: CheckResult;
}

interface Ctx {
  lab: ChaosLab;
  /** With twoReconcilers: the leader's OS user. */
  leaderUid?: number;
  primary: string;
  /** A secondary that is a failover candidate. */
  candidate: string;
  log: (m: string) => void;
  /** Starts the workloads (idle scenarios start them late). */
  startLoad: () => void;
}

export interface Scenario {
  id: string;
  name: string;
  /** What the scenario proves, for the README table. */
  proves: string;
  /** Should the primary have moved by the end? */
  expectFailover: boolean;
  /** No writes during the fault (the workload starts after it). */
  idle?: boolean;
  /**
   * Two reconcilers: the first, which leads, runs as a separate OS user so that it alone
   * can be cut off (an iptables owner match); the second stands by.
   */
  twoReconcilers?: boolean;
  lab?: LabOptions['mutate'];
  fault(c: Ctx): Promise<void>;
  /** Extra invariants of this scenario (violations, one line each). */
  extra?(c: Ctx): Promise<string[]>;
}

const waitUntil = async (what: () => boolean | Promise<boolean>, ms: number) => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await what()) return true;
    await sleep(250);
  }
  return false;
};

export const SCENARIOS: Scenario[] = [
  {
    id: '1',
    name: 'primary crash under load',
    proves:
      'automatic failover after a crash; every acknowledged write is on the new primary or in the report',
    expectFailover: true,
    async fault({ lab, primary }) {
      await lab.kill(primary);
      await waitUntil(() => lab.dnsPrimary() !== primary, 60_000);
      await sleep(3000);
      await lab.start(primary);
    },
  },
  {
    id: '2',
    name: 'primary region fully isolated (clients too)',
    proves: 'failover when a region drops off the network; nothing acknowledged is silently lost',
    expectFailover: true,
    async fault({ lab, primary }) {
      await lab.isolate(primary);
      await waitUntil(() => lab.dnsPrimary() !== primary, 60_000);
      await sleep(5000);
      await lab.heal();
    },
  },
  {
    id: '3',
    name: 'primary cut from control plane and regions, its clients still connected',
    proves: 'the split-brain case: the old primary stops acknowledging before the new one starts',
    expectFailover: true,
    async fault({ lab, primary }) {
      await lab.isolate(primary, true);
      await waitUntil(() => lab.dnsPrimary() !== primary, 60_000);
      // The old primary's clients keep writing to it for a while: that is the test.
      await sleep(8000);
      await lab.heal();
    },
  },
  {
    id: '4a',
    name: 'control plane cut from a busy primary (30 s)',
    proves: 'no failover when only the control plane loses a primary the other regions still reach',
    expectFailover: false,
    async fault({ lab, primary }) {
      await lab.cutControl(primary);
      await sleep(30_000);
      await lab.heal();
    },
  },
  {
    id: '4b',
    name: 'control plane cut from an idle primary (60 s, default timeouts)',
    proves: 'no failover of an idle, healthy primary: detection must not rest on stream silence',
    expectFailover: false,
    idle: true,
    async fault({ lab, primary }) {
      await lab.cutControl(primary);
      await sleep(60_000);
      await lab.heal();
    },
  },
  {
    id: '5',
    name: 'control store unreachable from the reconciler (60 s)',
    proves: 'losing the history store does not cause or block a decision about a healthy primary',
    expectFailover: false,
    async fault({ lab }) {
      await lab.cutStore(true);
      await sleep(60_000);
      await lab.cutStore(false);
    },
  },
  {
    id: '6',
    name: 'two reconcilers, the leader cut from the control store mid-failover (30 s)',
    proves:
      'a failover interrupted by losing the history store finishes once, by one runner, without split brain',
    expectFailover: true,
    twoReconcilers: true,
    async fault({ lab, primary, leaderUid }) {
      await lab.kill(primary);
      // Mid-failover: as soon as the leader journals its first step.
      await waitUntil(() => logHas(join(lab.dir, 'reconciler-a.log'), 'step 1 fence'), 30_000);
      await lab.cutStoreFor(leaderUid!);
      await sleep(30_000);
      await lab.cutStoreFor(leaderUid!, false);
      await waitUntil(() => lab.dnsPrimary() !== primary, 60_000);
      await sleep(3000);
      await lab.start(primary);
    },
    async extra({ lab }) {
      const done = ['reconciler-a.log', 'reconciler-b.log'].map((f) =>
        countIn(join(lab.dir, f), 'automatic failover completed'),
      );
      const total = done.reduce((a, b) => a + b, 0);
      return total === 1
        ? []
        : [
            `exactly one runner: ${total} reconcilers reported the failover completed (a ${done[0]}, b ${done[1]})`,
          ];
    },
  },
  {
    id: '7',
    name: 'slow link: the only candidate beyond failoverMaxLagSeconds, then the primary crashes',
    proves: 'the RPO guard refuses a lagging candidate and says so',
    expectFailover: false,
    lab: (doc) => {
      doc.setIn(['channels', 0, 'rpo'], doc.createNode({ alertSeconds: 2, failoverMaxLagSeconds: 4 }));
    },
    async fault({ lab, primary, candidate }) {
      // Nothing the primary sends reaches the candidate: its lag grows past the threshold.
      await lab.partition(primary, candidate, true);
      await sleep(10_000);
      await lab.kill(primary);
      await sleep(15_000);
      await lab.heal();
      await lab.start(primary);
    },
    async extra({ lab }) {
      const r = await lab.cli(['events', '--format', 'json']);
      const refused = /refused/i.test(r.stdout);
      return refused ? [] : ['RPO guard: no refused failover event was recorded'];
    },
  },
  {
    id: '8',
    name: 'flapping: primary partitioned and healed every 2 s for 30 s',
    proves: 'a flapping link does not cause a failover',
    expectFailover: false,
    async fault({ lab, primary }) {
      const end = Date.now() + 30_000;
      while (Date.now() < end) {
        await lab.isolate(primary, true);
        await sleep(2000);
        await lab.heal();
        await sleep(2000);
      }
    },
  },
  {
    id: '9',
    name: 'a secondary isolated for 60 s, then healed',
    proves: 'no failover; the secondary catches up and converges',
    expectFailover: false,
    async fault({ lab, candidate }) {
      await lab.isolate(candidate);
      await sleep(60_000);
      await lab.heal();
    },
  },
];

function logHas(file: string, text: string): boolean {
  try {
    return readFileSync(file, 'utf8').includes(text);
  } catch {
    return false;
  }
}

function countIn(file: string, text: string): number {
  try {
    return readFileSync(file, 'utf8').split(text).length - 1;
  } catch {
    return 0;
  }
}

/** The OS user the cut-off reconciler runs as (created once; lab machines only). */
function chaosUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'rcchaos'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    execFileSync('useradd', ['-M', '-s', '/usr/sbin/nologin', 'rcchaos']);
    return { uid: id('-u'), gid: id('-g') };
  }
}

/** Has `region` acknowledged a write since `since` (ms), by the writers' logs? */
function ackedSince(logs: string[], servers: Record<string, string>, region: string, since: number): boolean {
  for (const f of logs) {
    let text = '';
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    // Newest lines last: scan backwards until older than `since`.
    const lines = text.trimEnd().split('\n');
    for (let i = lines.length - 1; i >= 0; i--) {
      const l = lines[i]!;
      if (!l.includes('"t":"ack"')) continue;
      const a = JSON.parse(l) as { at: number; server?: { addr?: string | null; port?: number | null } };
      if (a.at < since) break;
      if (servers[`${a.server?.addr}:${a.server?.port}`] === region) return true;
    }
  }
  return false;
}

export function scenario(id: string): Scenario {
  const s = SCENARIOS.find((x) => x.id === id);
  if (!s) throw new Error(`no scenario ${id}`);
  return s;
}

export async function runScenario(s: Scenario, log: (m: string) => void = () => {}): Promise<ScenarioResult> {
  const t0 = Date.now();
  const lab = await ChaosLab.create(`s${s.id}`, { ...(s.lab ? { mutate: s.lab } : {}), log });
  try {
    const primary = lab.primary;
    const candidate = lab.spec.regions.find(
      (r) => r.role !== 'primary' && r.failover?.candidate !== false,
    )!.name;
    const logs: string[] = [];
    const leaderUser = s.twoReconcilers ? chaosUser() : undefined;
    const reconcilers = [lab.startReconciler(leaderUser ? 'reconciler-a' : 'reconciler', leaderUser)];
    if (leaderUser) {
      // The first one takes the lead; the second stands by behind it.
      await sleep(5000);
      reconcilers.push(lab.startReconciler('reconciler-b'));
    }
    const workloads: ReturnType<ChaosLab['startWorkload']>[] = [];
    const startLoad = () => {
      if (workloads.length) return;
      workloads.push(lab.startWorkload(primary, { dns: 2, sticky: 2 }, `${primary}-clients`));
      workloads.push(lab.startWorkload(candidate, 'dns', `${candidate}-clients`));
      logs.push(...workloads.map((w) => w.logFile));
    };
    // The reconciler takes the lead and the heartbeat flows before anything happens.
    await sleep(5000);
    if (!s.idle) startLoad();
    await sleep(4000);
    const ctx: Ctx = {
      lab,
      primary,
      candidate,
      log,
      startLoad,
      ...(leaderUser ? { leaderUid: leaderUser.uid } : {}),
    };
    const faultAt = Date.now();
    log(`scenario ${s.id}: fault`);
    await s.fault(ctx);
    log(`scenario ${s.id}: healed after ${Date.now() - faultAt} ms`);
    startLoad();
    // Settle: until the DNS primary acknowledges writes again (bounded: a region that never
    // does is the availability violation the checker reports), then a little longer.
    const healedAt = Date.now();
    await waitUntil(() => ackedSince(logs, lab.servers(), lab.dnsPrimary(), healedAt), 60_000);
    await sleep(3000);
    await Promise.all(workloads.map((w) => lab.stop(w.child)));
    await Promise.all(reconcilers.map((r) => lab.stop(r)));
    await lab.heal();

    const finalPrimary = lab.dnsPrimary();
    const violations: string[] = [];
    if (finalPrimary !== primary) {
      const r = await lab.cli(['rejoin', primary, '--report-dir', 'reports']);
      if (r.code !== 0)
        violations.push(`rejoin of ${primary} failed: ${(r.stderr || r.stdout).trim().split('\n').pop()}`);
    }
    const result = check({
      lines: loadLogs(logs).lines,
      servers: lab.servers(),
      originalPrimary: primary,
      finalPrimary,
      expectedFinalPrimary: s.expectFailover ? candidate : primary,
      finalIds: await lab.ids(finalPrimary),
      reportedLost: lab.reportedLost(),
      faultAt,
    });
    violations.push(...result.violations);
    // A failover after which nobody can write is no recovery: the new primary must
    // acknowledge the writers that follow DNS before the run ends.
    if (finalPrimary !== primary && !result.figures.acksByRegion[finalPrimary]) {
      violations.push(`availability: the new primary ${finalPrimary} acknowledged no write before the end`);
    }
    if (s.extra) violations.push(...(await s.extra(ctx)));
    // Convergence may take a while after a heal: with PostgreSQL's default
    // wal_receiver_timeout (60 s) a subscriber notices a stream that died in the partition
    // only then, and reconnects. Verify until it passes, within a bound.
    let v = await lab.cli(['verify']);
    for (const end = Date.now() + 150_000; v.code !== 0 && Date.now() < end; ) {
      await sleep(10_000);
      v = await lab.cli(['verify']);
    }
    const verify = v.code === 0 ? 'pass' : 'fail';
    if (verify === 'fail')
      violations.push(
        `convergence: regionctl verify failed: ${v.stdout.trim().split('\n').slice(-3).join(' | ')}`,
      );
    return {
      id: s.id,
      name: s.name,
      ok: violations.length === 0,
      violations,
      originalPrimary: primary,
      finalPrimary,
      expectedFinalPrimary: s.expectFailover ? candidate : primary,
      splitBrainAcks: result.splitBrain.acks,
      splitBrainWindowMs: result.splitBrain.windowMs,
      acked: result.loss.acked,
      trueLost: result.loss.trueLost,
      reportedLost: result.loss.reportedLost,
      silentlyLost: result.loss.silentlyLost,
      falselyReported: result.loss.falselyReported,
      rtoMs: result.figures.rtoMs,
      maxAckGapMs: result.figures.maxAckGapMs,
      verify,
      durationMs: Date.now() - t0,
      check: result,
    };
  } finally {
    await lab.close();
  }
}

export function renderTable(rows: ScenarioResult[]): string {
  const head = [
    '#',
    'scenario',
    'result',
    'primary',
    'split-brain acks (ms)',
    'lost true/reported/silent',
    'RTO ms',
    'verify',
  ];
  const lines = rows.map((r) => [
    r.id,
    r.name,
    r.ok ? 'PASS' : 'FAIL',
    r.originalPrimary === r.finalPrimary
      ? `${r.finalPrimary} (kept)`
      : `${r.originalPrimary} → ${r.finalPrimary}`,
    `${r.splitBrainAcks} (${r.splitBrainWindowMs})`,
    `${r.trueLost}/${r.reportedLost}/${r.silentlyLost}`,
    r.rtoMs === null ? '-' : String(r.rtoMs),
    r.verify,
  ]);
  const md = [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...lines.map((l) => `| ${l.join(' | ')} |`),
  ];
  const why = rows.filter((r) => !r.ok).flatMap((r) => r.violations.map((v) => `- ${r.id}: ${v}`));
  return `${md.join('\n')}\n${why.length ? `\n${why.join('\n')}\n` : ''}`;
}
