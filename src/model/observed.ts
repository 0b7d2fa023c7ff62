/**
 * What the observer found in each region. Unreachable is a value, not an exception:
 * the planner must be able to say "eu-west-1 could not be reached" in a plan.
 * LSNs are kept as PostgreSQL text (`16/B374D848`); use src/model/lsn.ts to compare.
 */

export interface ObservedPublishedTable {
  /** schema.table */
  table: string;
  /** Row filter as the server deparses it (pg_publication_tables.rowfilter), or null. */
  rowFilter: string | null;
  /** Column list when the publication narrows columns, else null (all columns). */
  columns: string[] | null;
}

export interface ObservedPublication {
  name: string;
  tables: ObservedPublishedTable[];
  /** COMMENT ON PUBLICATION: regionctl's marker JSON for the objects it manages. */
  comment: string | null;
}

export interface ObservedSubscription {
  name: string;
  enabled: boolean;
  publications: string[];
  slotName: string | null;
  /** Parsed from subconninfo (the password is never read into this structure). */
  host: string | null;
  port: number | null;
  dbname: string | null;
  comment: string | null;
  /** Apply worker pid (pg_stat_subscription), null when no worker runs. */
  workerPid: number | null;
  /** Upstream LSN applied (pg_replication_origin_status.remote_lsn), in the publisher's LSN space. */
  appliedLsn: string | null;
  /** Last upstream position the apply worker reported to the publisher (pg_stat_subscription). */
  latestEndLsn: string | null;
  /** Last message from the publisher (pg_stat_subscription.last_msg_receipt_time), ISO. */
  lastMsgReceiptTime: string | null;
  /** Apply / sync errors counted by pg_stat_subscription_stats. */
  applyErrorCount: number;
  syncErrorCount: number;
  /** Conflict counters (confl_*) where the server has them (PostgreSQL 18). */
  conflicts: Record<string, number>;
  /** Tables of the subscription not yet in state 'r' (ready). */
  tablesNotReady: string[];
}

export interface ObservedSlot {
  name: string;
  database: string | null;
  plugin: string | null;
  slotType: 'logical' | 'physical';
  active: boolean;
  confirmedFlushLsn: string | null;
  restartLsn: string | null;
  /** reserved | extended | unreserved | lost */
  walStatus: string | null;
  /** Bytes of WAL the slot keeps (current LSN − restart LSN). */
  retainedBytes: number | null;
  /** Why the server invalidated the slot (wal_removed, ...), when it did. */
  invalidationReason: string | null;
}

export interface ObservedTable {
  table: string;
  /** d = default (primary key), f = full, n = nothing, i = index */
  replicaIdentity: 'd' | 'f' | 'n' | 'i';
  hasPrimaryKey: boolean;
  /** Stable text signature of the columns (name:type:notnull, ordered by name). */
  columnsSignature: string;
}

export interface ObservedHeartbeat {
  region: string;
  epoch: number;
  seq: number;
  /** Written by the primary's clock (ISO). */
  writtenAt: string;
}

export interface ObservedRoleGuard {
  role: string;
  exists: boolean;
  /** Application tables on which the role holds INSERT, UPDATE, DELETE or TRUNCATE. */
  writableTables: string[];
  /** ALTER ROLE .. IN DATABASE .. SET default_transaction_read_only = on is in place. */
  defaultReadOnly: boolean;
  /** NOLOGIN is part of a fence. */
  canLogin: boolean;
  /** Sessions of the role on the server right now. */
  sessions: number;
}

export interface ObservedSequence {
  /** schema.sequence */
  name: string;
  lastValue: string | null;
  incrementBy: string;
  /** schema.table.column owning it, if any. */
  ownedBy: string | null;
}

export interface ObservedSettings {
  walLevel: string;
  maxReplicationSlots: number;
  maxWalSenders: number;
  maxLogicalReplicationWorkers: number;
  maxWorkerProcesses: number;
  /** PostgreSQL 18's idle_replication_slot_timeout as the server shows it ('0' off; null before 18). */
  idleReplicationSlotTimeout?: string | null;
}

export interface ReachableRegion {
  region: string;
  reachable: true;
  observedAt: string;
  serverVersionNum: number;
  settings: ObservedSettings;
  /** pg_is_in_recovery(): a physical standby cannot publish. */
  inRecovery: boolean;
  /** pg_current_wal_lsn(). */
  currentLsn: string;
  /** The server's clock when observed (ISO): heartbeat ages are measured with the primary's clock. */
  serverTime: string;
  /** Whether spec.database exists there; when false the lists below are empty. */
  databaseExists: boolean;
  publications: ObservedPublication[];
  subscriptions: ObservedSubscription[];
  /** All slots of the cluster (slots are cluster-wide). */
  slots: ObservedSlot[];
  tables: ObservedTable[];
  heartbeatInstalled: boolean;
  heartbeats: ObservedHeartbeat[];
  guards: ObservedRoleGuard[];
  sequences: ObservedSequence[];
}

export interface UnreachableRegion {
  region: string;
  reachable: false;
  observedAt: string;
  /** Why: connection refused, timeout, authentication failed... (never a secret). */
  reason: string;
}

export type RegionObservation = ReachableRegion | UnreachableRegion;

export interface Observed {
  /** One entry per region of the spec, sorted by region name. */
  regions: RegionObservation[];
}

/** The observation of `region` if it could be reached, else null. */
export function reachableRegion(observed: Observed, region: string): ReachableRegion | null {
  const o = observed.regions.find((r) => r.region === region);
  return o?.reachable ? o : null;
}
