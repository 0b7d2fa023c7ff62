/**
 * Detection corroboration and candidate choice (pure). A primary is dead only when the
 * reconciler cannot reach it AND most reachable secondaries say their stream from it went
 * silent; a candidate is the reachable eligible secondary that applied the most of the
 * old primary's WAL (origin LSNs are in the old primary's LSN space, so they compare),
 * then the spec's priority. The expected loss is stated before anything runs.
 */
import type { DesiredState } from '../model/desired.js';
import { compareLsn, lsnDistance } from '../model/lsn.js';
import type { Observed, ReachableRegion } from '../model/observed.js';
import type { RegionsSpec } from '../spec/schema.js';

export interface SecondaryVerdict {
  region: string;
  reachable: boolean;
  /** The secondary's stream from the primary is silent (no apply worker, or no message lately). */
  silent: boolean | null;
  detail: string;
}

export interface Corroboration {
  corroborated: boolean;
  verdicts: SecondaryVerdict[];
  summary: string;
}

/** Seconds without a message from the publisher after which a stream counts as silent. */
export function silenceSeconds(spec: RegionsSpec): number {
  return Math.max(3, 3 * spec.failover.probe.intervalSeconds);
}

export function corroborate(desired: DesiredState, observed: Observed, spec: RegionsSpec): Corroboration {
  const verdicts: SecondaryVerdict[] = desired.channels.map((c) => {
    const o = observed.regions.find((r) => r.region === c.to);
    if (!o?.reachable) return { region: c.to, reachable: false, silent: null, detail: 'unreachable' };
    const sub = o.subscriptions.find((s) => s.name === c.subscription.name);
    if (!sub) return { region: c.to, reachable: true, silent: null, detail: 'no subscription' };
    if (sub.workerPid === null) {
      return {
        region: c.to,
        reachable: true,
        silent: true,
        detail: 'apply worker not running (cannot connect)',
      };
    }
    const last = sub.lastMsgReceiptTime ? Date.parse(sub.lastMsgReceiptTime) : 0;
    const age = (Date.parse(o.serverTime) - last) / 1000;
    const silent = age > silenceSeconds(spec);
    return { region: c.to, reachable: true, silent, detail: `last message ${age.toFixed(1)} s ago` };
  });
  const voters = verdicts.filter((v) => v.silent !== null);
  const silent = voters.filter((v) => v.silent).length;
  const corroborated = voters.length > 0 && silent * 2 > voters.length;
  return {
    corroborated,
    verdicts,
    summary:
      voters.length === 0
        ? 'no reachable secondary can corroborate'
        : `${silent} of ${voters.length} reachable secondaries report the stream silent`,
  };
}

export interface CandidateEvidence {
  region: string;
  eligible: boolean;
  why: string;
  /** Upstream LSN applied, in the old primary's LSN space. */
  appliedLsn: string | null;
  priority: number;
  /** Heartbeat of the old primary most recently applied here (its clock). */
  lastHeartbeatAt: string | null;
  failoverMaxLagSeconds: number;
  /**
   * Tables its subscription is still copying (state not `ready`): promoted, they would
   * stay partial. A candidate with any is ineligible; a forced failover records them as
   * loss in the event.
   */
  incompleteTables?: string[];
}

export interface ExpectedLoss {
  /** Bytes of the old primary's WAL the candidate never applied (lower bound). */
  bytes: number | null;
  /** Tables the candidate was still copying: a forced failover loses what they lacked. */
  incompleteTables?: string[];
  /** From the candidate's last applied heartbeat to the last time the primary was seen. */
  windowSeconds: number | null;
  windowFrom: string | null;
  windowTo: string | null;
  note: string;
}

export interface CandidateChoice {
  candidate: string | null;
  ranking: CandidateEvidence[];
  loss: ExpectedLoss;
  /** Set when the choice must not run without --force. */
  refusal: string | null;
}

export interface ChooseOptions {
  /** Operator's choice (`--to`). */
  to?: string;
  /** The old primary's last known LSN and when it was seen (control store). */
  lastPrimaryLsn: string | null;
  lastPrimarySeenAt: string | null;
  /**
   * Applied positions known from a journal rather than a subscription: the target of a
   * switchover superseded after its catch-up (it applied everything up to the fence, and
   * its subscription was then detached).
   */
  knownApplied?: Record<string, { lsn: string; why: string }>;
}

function evidenceOf(
  desired: DesiredState,
  spec: RegionsSpec,
  o: ReachableRegion | null,
  region: string,
  known?: { lsn: string; why: string },
): CandidateEvidence {
  const r = spec.regions.find((x) => x.name === region);
  const c = desired.channels.find((x) => x.to === region);
  const base = {
    region,
    priority: r?.failover?.priority ?? Number.MAX_SAFE_INTEGER,
    failoverMaxLagSeconds: c?.channel.rpo.failoverMaxLagSeconds ?? 0,
  };
  if (!r?.failover?.candidate) {
    return {
      ...base,
      eligible: false,
      why: 'not a failover candidate in the spec',
      appliedLsn: null,
      lastHeartbeatAt: null,
    };
  }
  if (!o) return { ...base, eligible: false, why: 'unreachable', appliedLsn: null, lastHeartbeatAt: null };
  const sub = c ? o.subscriptions.find((s) => s.name === c.subscription.name) : undefined;
  const hb = o.heartbeats.find((h) => h.region === desired.primary);
  if (!sub?.appliedLsn && known) {
    return {
      ...base,
      eligible: true,
      why: known.why,
      appliedLsn: known.lsn,
      lastHeartbeatAt: hb?.writtenAt ?? null,
    };
  }
  if (!sub?.appliedLsn) {
    return {
      ...base,
      eligible: false,
      why: 'no applied position from the primary',
      appliedLsn: null,
      lastHeartbeatAt: hb?.writtenAt ?? null,
    };
  }
  if (sub.tablesNotReady.length > 0) {
    const t = sub.tablesNotReady;
    return {
      ...base,
      eligible: false,
      why: `initial copy not finished for ${t.length} table(s): ${t.slice(0, 5).join(', ')}${t.length > 5 ? ', …' : ''} (promoted, they would stay partial)`,
      appliedLsn: sub.appliedLsn,
      lastHeartbeatAt: hb?.writtenAt ?? null,
      incompleteTables: [...t],
    };
  }
  return {
    ...base,
    eligible: true,
    why: 'eligible',
    appliedLsn: sub.appliedLsn,
    lastHeartbeatAt: hb?.writtenAt ?? null,
  };
}

export function chooseCandidate(
  desired: DesiredState,
  observed: Observed,
  spec: RegionsSpec,
  opts: ChooseOptions,
): CandidateChoice {
  const ranking = desired.channels
    .map((c) => {
      const o = observed.regions.find((r) => r.region === c.to);
      return evidenceOf(desired, spec, o?.reachable ? o : null, c.to, opts.knownApplied?.[c.to]);
    })
    .sort((a, b) => {
      if (a.eligible !== b.eligible) return a.eligible ? -1 : 1;
      if (a.appliedLsn && b.appliedLsn) {
        const d = compareLsn(b.appliedLsn, a.appliedLsn);
        if (d !== 0) return d;
      }
      return a.priority - b.priority || a.region.localeCompare(b.region);
    });
  const chosen = opts.to ? ranking.find((r) => r.region === opts.to) : ranking.find((r) => r.eligible);
  const noLoss: ExpectedLoss = {
    bytes: null,
    windowSeconds: null,
    windowFrom: null,
    windowTo: null,
    note: '',
  };
  if (!chosen) {
    return {
      candidate: null,
      ranking,
      loss: { ...noLoss, note: 'no eligible candidate' },
      refusal: 'no eligible candidate',
    };
  }
  if (!chosen.eligible) {
    return {
      candidate: chosen.region,
      ranking,
      loss: {
        ...noLoss,
        note: chosen.why,
        ...(chosen.incompleteTables ? { incompleteTables: chosen.incompleteTables } : {}),
      },
      refusal: `${chosen.region} is not eligible: ${chosen.why}`,
    };
  }
  const bytes =
    opts.lastPrimaryLsn && chosen.appliedLsn ? lsnDistance(opts.lastPrimaryLsn, chosen.appliedLsn) : null;
  const windowSeconds =
    chosen.lastHeartbeatAt && opts.lastPrimarySeenAt
      ? Math.max(0, (Date.parse(opts.lastPrimarySeenAt) - Date.parse(chosen.lastHeartbeatAt)) / 1000)
      : null;
  const loss: ExpectedLoss = {
    bytes,
    windowSeconds,
    windowFrom: chosen.lastHeartbeatAt,
    windowTo: opts.lastPrimarySeenAt,
    note: 'lower bound: WAL the primary wrote after it was last observed is not counted; the exact loss is measured when it rejoins',
  };
  const best = ranking.find((r) => r.eligible);
  let refusal: string | null = null;
  if (windowSeconds !== null && windowSeconds > chosen.failoverMaxLagSeconds) {
    refusal = `${chosen.region} lags ${windowSeconds.toFixed(1)} s, beyond its failover threshold of ${chosen.failoverMaxLagSeconds} s`;
  } else if (best && best.region !== chosen.region && best.appliedLsn && chosen.appliedLsn) {
    if (compareLsn(best.appliedLsn, chosen.appliedLsn) > 0) {
      refusal = `${chosen.region} applied less than ${best.region} (${chosen.appliedLsn} < ${best.appliedLsn})`;
    }
  }
  return { candidate: chosen.region, ranking, loss, refusal };
}
