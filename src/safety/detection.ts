/**
 * Is the primary down? A pure rule over what the region agents report through the
 * authority (etcd), so that a failover never rests on one observer's view — least of
 * all the control plane's, which is the one most often cut off — nor on replication
 * stream silence, which on an idle primary with PostgreSQL's default wal_sender_timeout
 * lasts 30 s without meaning anything.
 *
 * The primary is down when
 *   (a) its own agent is alive and reports its database dead (failureThreshold
 *       consecutive failed local probes), or
 *   (b) a majority of the witnesses (every other region's agent, counted whether or not
 *       it is alive) fail their own direct probes of it for failureThreshold intervals,
 *       AND its primary lease has lapsed (its agent no longer renews it: dead, or cut off
 *       from the authority and therefore — see the agent — fencing its own database).
 * A dead agent cannot vote, so losing agents makes detection more conservative, never
 * less. Stream silence is reported as evidence only.
 */

export interface WitnessReport {
  region: string;
  /** The agent's region lease is alive: it runs and reaches the authority. */
  alive: boolean;
  /** Consecutive failed direct probes of the primary; 0 = its last probe succeeded; null = none yet. */
  primaryProbeFailures: number | null;
}

export interface PrimaryAgentReport {
  alive: boolean;
  /** Consecutive failed probes of its own database; null = none yet. */
  databaseFailures: number | null;
}

export interface DetectionInput {
  primary: string;
  /** One per region other than the primary (configured regions, alive or not). */
  witnesses: WitnessReport[];
  primaryAgent: PrimaryAgentReport | null;
  /** The primary lease key exists (its agent renews it). */
  primaryLeaseHeld: boolean;
  failureThreshold: number;
  /** Evidence only: seconds since each secondary's stream last heard the primary. */
  streamSilence?: Record<string, number | null>;
}

export type Detection =
  | {
      down: true;
      rule: 'agent-reports-dead' | 'witness-majority';
      summary: string;
      votes: { down: number; needed: number; of: number };
    }
  | {
      down: false;
      reason: 'primary-lease-held' | 'no-witness-majority' | 'no-witnesses';
      summary: string;
      votes: { down: number; needed: number; of: number };
    };

export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

export function detectPrimaryDown(i: DetectionInput): Detection {
  const of = i.witnesses.length;
  const needed = majority(of);
  const downVoters = i.witnesses.filter(
    (w) => w.alive && w.primaryProbeFailures !== null && w.primaryProbeFailures >= i.failureThreshold,
  );
  const votes = { down: downVoters.length, needed, of };
  const silence = i.streamSilence
    ? `; stream silence (evidence only): ${Object.entries(i.streamSilence)
        .map(([r, s]) => `${r} ${s === null ? '?' : `${Math.round(s)} s`}`)
        .join(', ')}`
    : '';
  const a = i.primaryAgent;
  if (a?.alive && a.databaseFailures !== null && a.databaseFailures >= i.failureThreshold) {
    return {
      down: true,
      rule: 'agent-reports-dead',
      summary: `the agent of ${i.primary} reports its database down for ${a.databaseFailures} probes${silence}`,
      votes,
    };
  }
  if (of === 0) {
    return {
      down: false,
      reason: 'no-witnesses',
      summary: `no other region's agent can witness ${i.primary}${silence}`,
      votes,
    };
  }
  const voters = downVoters.map((w) => w.region).join(', ') || 'none';
  if (downVoters.length < needed) {
    const alive = i.witnesses.filter((w) => w.alive).length;
    return {
      down: false,
      reason: 'no-witness-majority',
      summary: `${downVoters.length} of ${of} witness agents (${alive} alive) fail to reach ${i.primary} (needed ${needed}: ${voters})${silence}`,
      votes,
    };
  }
  if (i.primaryLeaseHeld) {
    return {
      down: false,
      reason: 'primary-lease-held',
      summary: `${voters} cannot reach ${i.primary}, but its agent still renews the primary lease: it is alive and may be taking writes${silence}`,
      votes,
    };
  }
  return {
    down: true,
    rule: 'witness-majority',
    summary: `${downVoters.length} of ${of} witness agents fail to reach ${i.primary} (${voters}) and its primary lease has lapsed${silence}`,
    votes,
  };
}
