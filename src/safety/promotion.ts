/**
 * May a candidate be made writable? A pure rule: only when the old primary cannot take
 * writes any more —
 *   - it is confirmed fenced (SQL fence verified by a failing write, or a fence hook that
 *     confirmed), or
 *   - its primary lease has been gone for at least the safety margin. Its agent fences
 *     the database when it cannot renew for leaseSeconds − FENCE_LEAD (src/agent), which
 *     is before etcd lets the lease expire; the margin covers the fence's own duration
 *     and clock rate differences. So by the time this rule allows promotion, the old
 *     primary's agent has fenced it — or is dead together with its database, or
 *     (the case no software rule covers; see README "Safety model") dead alone while its
 *     database lives on in a partition.
 * A manual failover may override with --accept-split-brain-risk; the event records it.
 */

export interface PromotionInput {
  fenceConfirmed: boolean;
  /** The primary lease key exists. */
  primaryLeaseHeld: boolean;
  /** When the lease was first seen gone (ms); null when never seen (held, or unknown). */
  leaseGoneSinceMs: number | null;
  nowMs: number;
  marginMs: number;
  /** A person's failover with --accept-split-brain-risk. */
  acceptSplitBrainRisk?: boolean;
}

export type PromotionDecision =
  | { allowed: true; basis: 'fence-confirmed' | 'lease-expired' | 'accepted-risk'; summary: string }
  | { allowed: false; waitMs: number | null; summary: string };

export function mayPromote(i: PromotionInput): PromotionDecision {
  if (i.fenceConfirmed) {
    return { allowed: true, basis: 'fence-confirmed', summary: 'the old primary is confirmed fenced' };
  }
  if (!i.primaryLeaseHeld && i.leaseGoneSinceMs !== null) {
    const gone = i.nowMs - i.leaseGoneSinceMs;
    if (gone >= i.marginMs) {
      return {
        allowed: true,
        basis: 'lease-expired',
        summary: `the old primary's lease has been gone for ${gone} ms (margin ${i.marginMs} ms): its agent has fenced it`,
      };
    }
    if (!i.acceptSplitBrainRisk) {
      return {
        allowed: false,
        waitMs: i.marginMs - gone,
        summary: `the old primary's lease is gone for ${gone} ms only; waiting out the ${i.marginMs} ms margin`,
      };
    }
  }
  if (i.acceptSplitBrainRisk) {
    return {
      allowed: true,
      basis: 'accepted-risk',
      summary:
        'promoting without a confirmed fence or an expired lease: split-brain risk accepted by the operator',
    };
  }
  return {
    allowed: false,
    waitMs: null,
    summary: i.primaryLeaseHeld
      ? "the old primary's agent still renews its lease and no fence is confirmed: it may be taking writes"
      : "the old primary's lease state is unknown and no fence is confirmed",
  };
}
