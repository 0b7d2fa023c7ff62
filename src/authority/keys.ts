/** Where each piece of authority lives under the prefix (one place, so nobody spells a key twice). */
export interface Keys {
  /** Leased; JSON LeaderInfo. Its create revision identifies one term of one leader. */
  leader: string;
  /** Prefix of epoch, primary and changed: one range reads the topology consistently. */
  topologyPrefix: string;
  /** Decimal epoch: compared as a value in the same txn as a guarded write. */
  epoch: string;
  primary: string;
  /** JSON: who made the last topology change (lets a retried CAS recognise its own write). */
  changed: string;
  /** JSON TransitionRecord of the in-flight transition. */
  transition: string;
  /** Leased; JSON { region, epoch, holder, since }. */
  primaryLease: string;
  /** JSON PauseInfo. */
  paused: string;
  /** Leased; JSON HandoffInfo: a person's command asks the reconcilers to step aside. */
  handoff: string;
  regionsPrefix: string;
  /** Leased; JSON { holder, since }. Present while the region's agent renews its lease. */
  regionAlive(region: string): string;
  /** JSON { status, at, holder }: the agent's last status, kept after the lease is gone. */
  regionStatus(region: string): string;
}

export function keys(prefix: string): Keys {
  const p = prefix.replace(/\/+$/, '');
  return {
    leader: `${p}/leader`,
    topologyPrefix: `${p}/topology/`,
    epoch: `${p}/topology/epoch`,
    primary: `${p}/topology/primary`,
    changed: `${p}/topology/changed`,
    transition: `${p}/transition`,
    primaryLease: `${p}/primary-lease`,
    paused: `${p}/paused`,
    handoff: `${p}/handoff`,
    regionsPrefix: `${p}/regions/`,
    regionAlive: (region) => `${p}/regions/${region}/alive`,
    regionStatus: (region) => `${p}/regions/${region}/status`,
  };
}
