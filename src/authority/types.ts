/**
 * The authority: who may act (the reconcilers' leader), what the topology is (epoch and
 * primary, changed only by compare-and-set), which region agents are alive, who holds
 * the primary lease, which transition is in flight, and whether automation is paused.
 * DESIGN.md, "Safety architecture". One implementation, on etcd (./etcd.ts); the
 * interface is what the agent and the transition engine program against.
 *
 * Every method has a deadline. When the store cannot answer (no quorum, unreachable)
 * calls fail with RegionctlError E_AUTHORITY_UNAVAILABLE instead of waiting. For a write
 * that is an unknown outcome, not a refusal: etcd may still apply it once it has a
 * majority again, with its guards (leader term, epoch) evaluated at that moment. So after
 * E_AUTHORITY_UNAVAILABLE re-read (topology, inFlight) before deciding anything. Retrying
 * the same call is safe: a CAS recognises its own term's earlier success, a journal
 * write simply writes the step again, lease takes recognise their own lease.
 *
 * Refusals are definite: E_STALE_LEADER (not the leader, or no longer), E_EPOCH_CHANGED
 * (the topology is not what the caller expected), E_TRANSITION_IN_FLIGHT /
 * E_TRANSITION_CHANGED, E_REGION_LEASE_HELD / E_PRIMARY_LEASE_HELD, E_REGION_LEASE_LOST;
 * nothing was written.
 */

/** The topology as the authority records it. Epoch 1 is the first primary; each change adds one. */
export interface Topology {
  epoch: number;
  primary: string;
}

export type TransitionKind = 'failover' | 'switchover' | 'rejoin';
export type StepStatus = 'running' | 'done' | 'failed';

/** The in-flight transition's current step, journaled before (and after) the step runs. */
export interface TransitionRecord {
  id: string;
  kind: TransitionKind;
  /** Identity of the leader that wrote this step. */
  owner: string;
  /** Topology epoch the step ran under. */
  epoch: number;
  step: string;
  status: StepStatus;
  /** ISO time of the write (writer's clock). */
  at: string;
}

export type TransitionUpdate = Pick<TransitionRecord, 'id' | 'kind' | 'step' | 'status'>;

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** What a region's agent reports about its probes; small (≤ 8 KiB as JSON). */
export type RegionStatus = { [key: string]: JsonValue };

export type Unsubscribe = () => void;

/** Why a lease-backed handle stopped holding. */
export interface LossReason {
  /** `expired`: no renewal acknowledged within the TTL (partition, no quorum); `revoked`: etcd says the lease is gone; `displaced`: the key is no longer ours. */
  cause: 'expired' | 'revoked' | 'displaced';
  message: string;
}

interface LeaseBacked {
  /** etcd lease id (decimal string). */
  readonly leaseId: string;
  /** TTL etcd granted (it raises TTLs below its minimum). */
  readonly ttlSeconds: number;
  /**
   * Local time (Date.now() scale) until which the lease is certainly alive in etcd:
   * when the last acknowledged renewal was *sent*, plus the TTL. Whoever acts on the
   * lease (the primary's agent) must have stopped by then.
   */
  validUntilMs(): number;
  /** Fires once, when the lease is lost involuntarily (not on release/resign). Immediately if already lost. */
  onLost(cb: (reason: LossReason) => void): Unsubscribe;
}

export type LeaderState = 'candidate' | 'leader' | 'lost' | 'resigned';

export interface LeaderHandle extends LeaseBacked {
  readonly identity: string;
  state(): LeaderState;
  /** Leader now: elected, and the lease certainly alive (validUntilMs not passed). */
  isLeader(): boolean;
  /** Fires once when this contender becomes leader. Immediately if it is. */
  onElected(cb: () => void): Unsubscribe;
  /** Resolves true when leader, false when the timeout passes or the handle is lost/resigned first. */
  waitForLeadership(timeoutMs: number): Promise<boolean>;
  /** Stop leading (or contending): delete the leader key if ours, revoke the lease. Idempotent. */
  resign(): Promise<void>;
}

export interface RegionLeaseHandle extends LeaseBacked {
  readonly region: string;
  isHeld(): boolean;
  /** Write a new status; E_REGION_LEASE_LOST if the lease is no longer ours. */
  update(status: RegionStatus): Promise<void>;
  /** Delete the alive key and revoke the lease (the status stays, as the last one). Idempotent. */
  release(): Promise<void>;
}

export interface PrimaryLeaseHandle extends LeaseBacked {
  readonly region: string;
  readonly epoch: number;
  isHeld(): boolean;
  /** Give the primary lease up (switchover, after a verified fence). Idempotent. */
  release(): Promise<void>;
}

export interface RegionLeaseInfo {
  region: string;
  /** The region's agent holds its lease right now. */
  alive: boolean;
  /** The last status it wrote (kept after the lease is gone). */
  status: RegionStatus | null;
  /** ISO time of that status (agent's clock). */
  lastUpdate: string | null;
  holder: string | null;
}

export interface PrimaryLeaseInfo {
  region: string;
  epoch: number;
  holder: string;
  /**
   * Local time by which etcd expects the lease to expire unless renewed, from etcd's
   * remaining TTL (whole seconds, rounded up by etcd). Informational: the promotion
   * gate is "key gone" plus PROMOTION_MARGIN_SECONDS, measured by the observer.
   */
  expiresAtMs?: number;
}

export interface PauseInfo {
  reason: string;
  at: string;
  by?: string;
}

/** A command's request that the reconcilers step aside while it acts. */
export interface HandoffInfo {
  who: string;
  since: string;
}

export interface HandoffHandle {
  isHeld(): boolean;
  /** Withdraw the request (the reconcilers lead again). Idempotent. */
  release(): Promise<void>;
}

export interface LeaderInfo {
  identity: string;
  since: string;
}

export interface EndpointHealth {
  endpoint: string;
  /** The member answered a status request. */
  reachable: boolean;
  /** This member is the raft leader. */
  leader: boolean;
  /** This member knows a leader (it does not during an election or without quorum). */
  hasLeader: boolean;
  /** A linearizable read through this member succeeded: it is part of a working majority. */
  quorum: boolean;
  version?: string;
  raftTerm?: string;
  error?: string;
}

export interface AuthorityHealth {
  endpoints: EndpointHealth[];
  /** Some member served a linearizable read: writes and CAS can succeed. */
  quorum: boolean;
  /** One line for alerts and status. */
  summary: string;
}

export interface HoldOptions {
  /** Who holds it, for status and messages (default hostname:pid). */
  holder?: string;
}

export interface Authority {
  /** Key prefix this authority works under. */
  readonly prefix: string;
  readonly leaseSeconds: number;

  campaign(identity: string, ttlSeconds?: number): Promise<LeaderHandle>;
  leader(): Promise<LeaderInfo | null>;

  /** The topology, or null before `ensureTopology` ran. */
  topology(): Promise<Topology | null>;
  /** Record epoch 1 with this primary unless a topology exists; returns the topology in force. */
  ensureTopology(initialPrimary: string): Promise<Topology>;
  /** Move the topology from `expected` to `next` (next.epoch > expected.epoch) in one txn that also checks the leader key. */
  casTopology(expected: Topology, next: Topology, leader: LeaderHandle): Promise<Topology>;

  /** Journal a transition step, in one txn that checks the leader key and the epoch. */
  guardedStep(leader: LeaderHandle, epoch: number, update: TransitionUpdate): Promise<TransitionRecord>;
  inFlight(): Promise<TransitionRecord | null>;
  /** Remove the finished transition `id`; false if none was in flight. */
  clearTransition(leader: LeaderHandle, id: string): Promise<boolean>;

  holdRegionLease(
    region: string,
    ttlSeconds: number | undefined,
    status: RegionStatus,
    opts?: HoldOptions,
  ): Promise<RegionLeaseHandle>;
  regionLeases(): Promise<RegionLeaseInfo[]>;
  holdPrimaryLease(
    region: string,
    epoch: number,
    ttlSeconds?: number,
    opts?: HoldOptions,
  ): Promise<PrimaryLeaseHandle>;
  primaryLease(): Promise<PrimaryLeaseInfo | null>;

  /** Ask the reconcilers to step aside (see ./handoff.ts); kept until released or the process dies. */
  requestHandoff(who: string): Promise<HandoffHandle>;
  handoff(): Promise<HandoffInfo | null>;

  setPaused(reason: string | null, by?: string): Promise<void>;
  paused(): Promise<PauseInfo | null>;

  health(): Promise<AuthorityHealth>;
  /** Stop every renewal and background loop and close connections. Handles become lost silently. */
  close(): Promise<void>;
}
