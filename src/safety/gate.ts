/**
 * The promotion gate: the last thing a failover does before the candidate accepts
 * writes. It applies the promotion rule (./promotion.ts) to what the authority says —
 * waiting out the margin after the old primary's lease is gone, never longer than the
 * caller allows — and then moves the topology epoch by compare-and-set, so that the
 * old primary's agent can never take the primary lease back (etcd grants it only at the
 * epoch and primary it was granted for) and a stale leader cannot promote anything.
 */
import type { Authority, LeaderHandle, Topology } from '../authority/types.js';
import { RegionctlError } from '../errors.js';
import { PROMOTION_MARGIN_SECONDS } from '../spec/authority-defaults.js';
import { mayPromote, type PromotionDecision } from './promotion.js';

export interface GateInput {
  authority: Authority;
  leader: LeaderHandle;
  from: string;
  to: string;
  fenceConfirmed: boolean;
  acceptSplitBrainRisk?: boolean;
  /** When the caller (detection) first saw the old primary's lease gone, on this clock. */
  leaseGoneSinceMs?: number | null;
  /** Give up after this long (default: lease + margin + 2 s). */
  maxWaitMs?: number;
  log?: (msg: string) => void;
  now?: () => number;
}

export interface GateResult {
  decision: Extract<PromotionDecision, { allowed: true }>;
  topology: Topology;
  waitedMs: number;
}

export async function promotionGate(i: GateInput): Promise<GateResult> {
  const now = i.now ?? Date.now;
  const a = i.authority;
  const marginMs = PROMOTION_MARGIN_SECONDS * 1000;
  const t0 = now();
  const maxWait = i.maxWaitMs ?? (a.leaseSeconds + PROMOTION_MARGIN_SECONDS + 2) * 1000;
  const topo = (await a.topology()) ?? (await a.ensureTopology(i.from));
  if (topo.primary === i.to) {
    // A resumed failover whose CAS already happened.
    return {
      decision: {
        allowed: true,
        basis: i.fenceConfirmed ? 'fence-confirmed' : 'lease-expired',
        summary: 'topology already moved',
      },
      topology: topo,
      waitedMs: 0,
    };
  }
  if (topo.primary !== i.from) {
    throw new RegionctlError(
      'E_EPOCH_CHANGED',
      `the authority's topology is epoch ${topo.epoch} with primary ${topo.primary}, not ${i.from}: another transition happened`,
      'run `regionctl status` and start again from the current topology',
    );
  }
  let goneSince: number | null = i.leaseGoneSinceMs ?? null;
  for (;;) {
    const lease = await a.primaryLease();
    const held = lease !== null && lease.region === i.from && lease.epoch === topo.epoch;
    if (!held && goneSince === null) goneSince = now();
    if (held) goneSince = null;
    const d = mayPromote({
      fenceConfirmed: i.fenceConfirmed,
      primaryLeaseHeld: held,
      leaseGoneSinceMs: goneSince,
      nowMs: now(),
      marginMs,
      acceptSplitBrainRisk: i.acceptSplitBrainRisk ?? false,
    });
    if (d.allowed) {
      const next = await a.casTopology(topo, { epoch: topo.epoch + 1, primary: i.to }, i.leader);
      i.log?.(`promotion allowed (${d.basis}): ${d.summary}; authority epoch ${next.epoch}`);
      return { decision: d, topology: next, waitedMs: now() - t0 };
    }
    if (now() - t0 >= maxWait) {
      throw new RegionctlError(
        'E_PROMOTION_REFUSED',
        `${i.to} was not made writable: ${d.summary}`,
        held
          ? `${i.from}'s agent is alive and renews its lease: it is not down. If it truly is, fence it (e.g. \`regionctl lab fence\` or your fence hook) and resume the failover`
          : 'run the failover again; a person may override with `regionctl failover --accept-split-brain-risk` (recorded in the event)',
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(d.waitMs ?? 250, 250)));
  }
}
