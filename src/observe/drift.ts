/**
 * The drift report: what differs between regions.yaml and reality, and who should act.
 * Pure: derived from the desired state, the observation and the steady-state plan.
 */
import type { DesiredState } from '../model/desired.js';
import type { Observed } from '../model/observed.js';
import { describeAction } from '../plan/actions.js';
import type { Plan } from '../plan/plan.js';

export type DriftOwner = 'regionctl apply' | 'operator' | 'spec author';

export interface DriftItem {
  kind: string;
  region: string;
  /** The object concerned: a publication, subscription, slot, table, setting. */
  object: string;
  message: string;
  /** Who should act. */
  owner: DriftOwner;
  advice: string;
}

export function driftReport(_desired: DesiredState, _observed: Observed, plan: Plan): DriftItem[] {
  const items: DriftItem[] = [];
  for (const a of plan.actions) {
    items.push({
      kind: `pending-${a.kind}`,
      region: a.region,
      object: a.kind,
      message: `${describeAction(a)}: ${a.reason}`,
      owner: 'regionctl apply',
      advice: 'run `regionctl plan` to review, then `regionctl apply`',
    });
  }
  for (const p of plan.problems) {
    items.push({
      kind: p.code,
      region: p.region ?? '',
      object: p.channel ?? p.region ?? '',
      message: p.message,
      owner: 'operator',
      advice: p.hint,
    });
  }
  return items;
}
