/**
 * The control store: a typed query API over one connection. Every method
 * is a single statement, so methods may be called concurrently on one client without
 * interleaving transactions, and each write is committed when the call returns — the
 * journal rows are written before the step they describe runs (graphile-worker style).
 * Writers (apply, the reconciler, failover) hold the leader lock (leader-lock.ts).
 */
import type pg from 'pg';
import { RegionctlError } from '../errors.js';
import { connect, type Target } from '../sql/connect.js';
import { redactPasswords } from '../sql/subscription.js';
import { describeHolder, lockHolder, lockKey } from './leader-lock.js';
import { migrate } from './migrate.js';

export type ApplyRunStatus = 'running' | 'succeeded' | 'failed' | 'interrupted';
export type StepStatus = 'started' | 'done' | 'failed';
export type ChannelStatus = 'active' | 'alert' | 'lagging' | 'failed' | 'rebuilding';
export type FailoverKind = 'failover' | 'switchover' | 'rejoin';
export type FailoverStatus = 'planned' | 'running' | 'completed' | 'failed' | 'refused';
export type FailoverStepStatus = 'started' | 'done' | 'failed' | 'skipped';

export interface ApplyStepRow {
  seq: number;
  actionKey: string;
  action: unknown;
  status: StepStatus;
  error: string | null;
  attempts: number;
}

export interface InterruptedRun {
  runId: number;
  planHash: string;
  /** The plan as stored by startApplyRun (its `actions` are the steps, by seq). */
  plan: unknown;
  specCommit: string | null;
  actor: string;
  startedAt: Date;
  steps: ApplyStepRow[];
}

export interface Topology {
  primaryRegion: string;
  /** Failover generation: +1 on every promotion; LSNs are tagged with it. */
  epoch: number;
  lastEventId: number | null;
  updatedAt: Date;
}

export interface ChannelRecord {
  primaryRegion: string;
  secondaryRegion: string;
  status: ChannelStatus;
  epoch: number;
  applyLsn: string | null;
  primaryLsn: string | null;
  lagBytes: number | null;
  lagSeconds: number | null;
  catchupEtaSeconds: number | null;
  /** When the channel was last observed with its primary reachable; defaults to now when primaryLsn is known. */
  lastSeenAt?: Date;
}

export interface ChannelRow extends Required<ChannelRecord> {
  id: number;
  updatedAt: Date;
}

export interface AlertInput {
  channel?: string | null;
  severity: 'info' | 'warning' | 'critical';
  message: string;
  detail?: unknown;
}

export interface AlertRow {
  id: number;
  key: string;
  channel: string | null;
  severity: string;
  message: string;
  detail: unknown;
  raisedAt: Date;
  lastSeenAt: Date;
  resolvedAt: Date | null;
}

export interface FailoverEventInput {
  kind: FailoverKind;
  fromRegion: string;
  toRegion: string;
  triggerReason: string;
  epoch: number | null;
  evidence: unknown;
  forced: boolean;
  estimatedLossBytes: number | null;
  status?: FailoverStatus;
}

export interface FailoverEventRow {
  id: number;
  kind: FailoverKind;
  fromRegion: string;
  toRegion: string;
  triggerReason: string;
  epoch: number | null;
  evidence: unknown;
  fencing: unknown;
  forced: boolean;
  estimatedLossBytes: number | null;
  dataLossBytes: number | null;
  lostTransactions: number | null;
  status: FailoverStatus;
  startedAt: Date;
  completedAt: Date | null;
}

export interface FailoverStepRow {
  eventId: number;
  seq: number;
  name: string;
  status: FailoverStepStatus;
  detail: unknown;
  error: string | null;
  attempts: number;
  startedAt: Date;
  finishedAt: Date | null;
}

export interface AuditEntry {
  actor: string;
  action: string;
  specCommit: string | null;
  detail: unknown;
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/**
 * JSON for the journal and the audit trail with secrets masked: a Statement's `sql` is
 * replaced by its `redacted` twin, and conninfo passwords in any string are masked.
 * Actions carry no secrets by construction; this is the second line.
 */
export function redactedJson(value: unknown): string {
  return JSON.stringify(value, function (this: unknown, key, v: unknown) {
    if (key === 'sql' && this && typeof this === 'object' && 'redacted' in this) {
      const r = (this as { redacted?: unknown }).redacted;
      if (typeof r === 'string') return r;
    }
    return typeof v === 'string' ? redactPasswords(v) : v;
  });
}

function eventRow(r: Record<string, unknown>): FailoverEventRow {
  return {
    id: Number(r.id),
    kind: r.kind as FailoverKind,
    fromRegion: r.from_region as string,
    toRegion: r.to_region as string,
    triggerReason: r.trigger_reason as string,
    epoch: num(r.epoch),
    evidence: r.evidence,
    fencing: r.fencing ?? null,
    forced: Boolean(r.forced),
    estimatedLossBytes: num(r.estimated_loss_bytes),
    dataLossBytes: num(r.data_loss_bytes),
    lostTransactions: num(r.lost_transactions),
    status: r.status as FailoverStatus,
    startedAt: r.started_at as Date,
    completedAt: (r.completed_at as Date | null) ?? null,
  };
}

function channelRow(r: Record<string, unknown>): ChannelRow {
  return {
    id: Number(r.id),
    primaryRegion: r.primary_region as string,
    secondaryRegion: r.secondary_region as string,
    status: r.status as ChannelStatus,
    epoch: Number(r.epoch),
    applyLsn: (r.apply_lsn as string | null) ?? null,
    primaryLsn: (r.primary_lsn as string | null) ?? null,
    lagBytes: num(r.lag_bytes),
    lagSeconds: num(r.lag_seconds),
    catchupEtaSeconds: num(r.catchup_eta_seconds),
    lastSeenAt: r.last_seen_at as Date,
    updatedAt: r.updated_at as Date,
  };
}

function alertRow(r: Record<string, unknown>): AlertRow {
  return {
    id: Number(r.id),
    key: r.key as string,
    channel: (r.channel as string | null) ?? null,
    severity: r.severity as string,
    message: r.message as string,
    detail: r.detail,
    raisedAt: r.raised_at as Date,
    lastSeenAt: r.last_seen_at as Date,
    resolvedAt: (r.resolved_at as Date | null) ?? null,
  };
}

export class Store {
  constructor(
    /**
     * A pg.Client or a pg.PoolClient checked out for the store's lifetime; exposed for
     * queries the API does not cover yet (tests, reports).
     */
    readonly client: pg.ClientBase,
    private readonly onClose: () => Promise<void> = async () => {},
  ) {}

  async close(): Promise<void> {
    await this.onClose();
  }

  // ---- apply journal -------------------------------------------------------------

  /** A new run in status 'running'. `plan` must hold the ordered actions (resume needs them). */
  async startApplyRun(run: {
    planHash: string;
    plan: unknown;
    specCommit: string | null;
    actor: string;
  }): Promise<number> {
    const r = await this.client.query<{ id: number }>(
      'INSERT INTO regionctl.apply_run (plan_hash, plan, spec_commit, actor) VALUES ($1, $2, $3, $4) RETURNING id',
      [run.planHash, redactedJson(run.plan), run.specCommit, run.actor],
    );
    return r.rows[0]!.id;
  }

  /**
   * Journals a step as started, before it runs. Re-recording a step (a resume re-runs a
   * step whose process died mid-way) counts an attempt instead of failing.
   */
  async recordStepStarted(runId: number, seq: number, actionKey: string, action: unknown): Promise<void> {
    await this.client.query(
      `INSERT INTO regionctl.apply_step (run_id, seq, action_key, action, status)
       VALUES ($1, $2, $3, $4, 'started')
       ON CONFLICT (run_id, seq) DO UPDATE
         SET status = 'started', attempts = regionctl.apply_step.attempts + 1, started_at = now(),
             finished_at = NULL, error = NULL`,
      [runId, seq, actionKey, redactedJson(action)],
    );
  }

  async recordStepDone(runId: number, seq: number): Promise<void> {
    await this.expectOne(
      "UPDATE regionctl.apply_step SET status = 'done', finished_at = now() WHERE run_id = $1 AND seq = $2",
      [runId, seq],
      `apply step ${runId}/${seq}`,
    );
  }

  async recordStepFailed(runId: number, seq: number, error: string): Promise<void> {
    await this.expectOne(
      "UPDATE regionctl.apply_step SET status = 'failed', error = $3, finished_at = now() WHERE run_id = $1 AND seq = $2",
      [runId, seq, redactPasswords(error)],
      `apply step ${runId}/${seq}`,
    );
  }

  async finishApplyRun(runId: number, status: Exclude<ApplyRunStatus, 'running'>): Promise<void> {
    await this.expectOne(
      'UPDATE regionctl.apply_run SET status = $2, finished_at = now() WHERE id = $1',
      [runId, status],
      `apply run ${runId}`,
    );
  }

  /** Puts an interrupted run back to 'running' when a new process resumes it. */
  async resumeApplyRun(runId: number): Promise<void> {
    await this.expectOne(
      "UPDATE regionctl.apply_run SET status = 'running', finished_at = NULL WHERE id = $1 AND status IN ('running', 'interrupted')",
      [runId],
      `interrupted apply run ${runId}`,
    );
  }

  /**
   * The run to resume, if any. Call it only with the apply leader lock held: then a run
   * still 'running' belongs to a process that died, and it is marked 'interrupted'.
   * Only the most recent run counts: an older interrupted run was superseded by a later
   * one (apply resumes before it starts anything new).
   */
  async lastInterruptedRun(): Promise<InterruptedRun | null> {
    const r = await this.client.query(
      `WITH latest AS (SELECT id FROM regionctl.apply_run ORDER BY id DESC LIMIT 1)
       UPDATE regionctl.apply_run r SET status = 'interrupted'
         FROM latest WHERE r.id = latest.id AND r.status IN ('running', 'interrupted')
       RETURNING r.id, r.plan_hash, r.plan, r.spec_commit, r.actor, r.started_at`,
    );
    const run = r.rows[0];
    if (!run) return null;
    const runId = Number(run.id);
    return {
      runId,
      planHash: run.plan_hash,
      plan: run.plan,
      specCommit: run.spec_commit,
      actor: run.actor,
      startedAt: run.started_at,
      steps: await this.applySteps(runId),
    };
  }

  async applySteps(runId: number): Promise<ApplyStepRow[]> {
    const r = await this.client.query(
      'SELECT seq, action_key, action, status, error, attempts FROM regionctl.apply_step WHERE run_id = $1 ORDER BY seq',
      [runId],
    );
    return r.rows.map((s) => ({
      seq: s.seq,
      actionKey: s.action_key,
      action: s.action,
      status: s.status,
      error: s.error,
      attempts: s.attempts,
    }));
  }

  /** Action keys of the run's steps that finished: a resume skips exactly these. */
  async completedStepKeys(runId: number): Promise<Set<string>> {
    const r = await this.client.query<{ action_key: string }>(
      "SELECT action_key FROM regionctl.apply_step WHERE run_id = $1 AND status = 'done'",
      [runId],
    );
    return new Set(r.rows.map((x) => x.action_key));
  }

  // ---- audit ---------------------------------------------------------------------

  async audit(e: AuditEntry): Promise<void> {
    await this.client.query(
      'INSERT INTO regionctl.audit_log (actor, action, spec_commit, detail) VALUES ($1, $2, $3, $4)',
      [e.actor, e.action, e.specCommit, redactedJson(e.detail ?? {})],
    );
  }

  // ---- topology ------------------------------------------------------------------

  /** Who the control store says is primary; null before the first apply. */
  async getTopology(): Promise<Topology | null> {
    const r = await this.client.query(
      'SELECT primary_region, epoch, last_event_id, updated_at FROM regionctl.topology',
    );
    const t = r.rows[0];
    if (!t) return null;
    return {
      primaryRegion: t.primary_region,
      epoch: Number(t.epoch),
      lastEventId: num(t.last_event_id),
      updatedAt: t.updated_at,
    };
  }

  /** Records the spec's primary the first time; returns whatever is recorded afterwards. */
  async initTopology(primaryRegion: string): Promise<Topology> {
    await this.client.query(
      'INSERT INTO regionctl.topology (primary_region, epoch) VALUES ($1, 0) ON CONFLICT (singleton) DO NOTHING',
      [primaryRegion],
    );
    return (await this.getTopology())!;
  }

  /**
   * Compare-and-set of the primary: succeeds only if the recorded epoch is still
   * `expectEpoch` (null: no row yet), so two processes that both decided to promote
   * cannot both record it. Returns whether this call changed it.
   */
  async setTopology(
    next: { primaryRegion: string; epoch: number; lastEventId: number | null },
    expectEpoch: number | null,
  ): Promise<boolean> {
    const r =
      expectEpoch === null
        ? await this.client.query(
            `INSERT INTO regionctl.topology (primary_region, epoch, last_event_id) VALUES ($1, $2, $3)
             ON CONFLICT (singleton) DO NOTHING`,
            [next.primaryRegion, next.epoch, next.lastEventId],
          )
        : await this.client.query(
            `UPDATE regionctl.topology SET primary_region = $1, epoch = $2, last_event_id = $3, updated_at = now()
             WHERE epoch = $4`,
            [next.primaryRegion, next.epoch, next.lastEventId, expectEpoch],
          );
    return r.rowCount === 1;
  }

  // ---- region state and sequence snapshots ---------------------------------------

  /** Regions kept out of the topology (fenced old primaries, rebuilding regions). */
  async regionStates(): Promise<
    { region: string; state: 'fenced' | 'rebuilding'; eventId: number | null; since: Date }[]
  > {
    const r = await this.client.query(
      'SELECT region, state, event_id, since FROM regionctl.region_state ORDER BY region',
    );
    return r.rows.map((x) => ({
      region: x.region,
      state: x.state,
      eventId: x.event_id ?? null,
      since: x.since instanceof Date ? x.since : new Date(x.since),
    }));
  }

  async setRegionState(
    region: string,
    state: 'fenced' | 'rebuilding' | null,
    eventId: number | null,
  ): Promise<void> {
    if (state === null) {
      await this.client.query('DELETE FROM regionctl.region_state WHERE region = $1', [region]);
      return;
    }
    await this.client.query(
      `INSERT INTO regionctl.region_state (region, state, event_id) VALUES ($1, $2, $3)
       ON CONFLICT (region) DO UPDATE SET state = EXCLUDED.state, event_id = EXCLUDED.event_id, since = now()`,
      [region, state, eventId],
    );
  }

  /** Records the primary's sequence values (one statement for all of them). */
  async saveSequenceSnapshot(
    region: string,
    seqs: { name: string; lastValue: string | null }[],
  ): Promise<void> {
    if (seqs.length === 0) return;
    await this.client.query(
      `INSERT INTO regionctl.sequence_snapshot (region, sequence, last_value)
       SELECT $1, s, v::numeric FROM unnest($2::text[], $3::text[]) AS t(s, v)
       ON CONFLICT (region, sequence) DO UPDATE SET
         prev_value = CASE WHEN EXCLUDED.last_value IS DISTINCT FROM sequence_snapshot.last_value
                           THEN sequence_snapshot.last_value ELSE sequence_snapshot.prev_value END,
         prev_observed_at = CASE WHEN EXCLUDED.last_value IS DISTINCT FROM sequence_snapshot.last_value
                                 THEN sequence_snapshot.observed_at ELSE sequence_snapshot.prev_observed_at END,
         last_value = EXCLUDED.last_value, observed_at = now()`,
      [region, seqs.map((x) => x.name), seqs.map((x) => x.lastValue)],
    );
  }

  /**
   * The last observed value of each of the region's sequences, and its draw rate per
   * second between the two latest observations that differed (null: not known).
   */
  async sequenceSnapshot(
    region: string,
  ): Promise<Map<string, { lastValue: string | null; observedAt: Date; perSecond: number | null }>> {
    const r = await this.client.query(
      `SELECT sequence, last_value::text AS v, observed_at,
              CASE WHEN prev_value IS NOT NULL AND last_value IS NOT NULL AND observed_at > prev_observed_at
                   THEN ((last_value - prev_value) / extract(epoch FROM observed_at - prev_observed_at))::float8 END AS rate
         FROM regionctl.sequence_snapshot WHERE region = $1`,
      [region],
    );
    return new Map(
      r.rows.map((x) => [
        x.sequence as string,
        {
          lastValue: x.v ?? null,
          observedAt: x.observed_at,
          perSecond: x.rate === null ? null : Number(x.rate),
        },
      ]),
    );
  }

  // ---- channels ------------------------------------------------------------------

  /** Records a channel's latest measurement; returns its previous status (null: new channel). */
  async upsertChannel(c: ChannelRecord): Promise<{ previousStatus: ChannelStatus | null; row: ChannelRow }> {
    const r = await this.client.query(
      `WITH prev AS (
         SELECT status FROM regionctl.replication_channel WHERE primary_region = $1 AND secondary_region = $2)
       INSERT INTO regionctl.replication_channel AS c
         (primary_region, secondary_region, status, epoch, apply_lsn, primary_lsn, lag_bytes, lag_seconds,
          catchup_eta_seconds, last_seen_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, coalesce($10, now()), now())
       ON CONFLICT (primary_region, secondary_region) DO UPDATE SET
         status = EXCLUDED.status, epoch = EXCLUDED.epoch,
         -- An unreachable side reports no LSN: keep the last known one (the failover's evidence).
         apply_lsn = coalesce(EXCLUDED.apply_lsn, c.apply_lsn),
         primary_lsn = coalesce(EXCLUDED.primary_lsn, c.primary_lsn),
         lag_bytes = EXCLUDED.lag_bytes, lag_seconds = EXCLUDED.lag_seconds,
         catchup_eta_seconds = EXCLUDED.catchup_eta_seconds,
         last_seen_at = CASE WHEN $10::timestamptz IS NOT NULL THEN EXCLUDED.last_seen_at
                             WHEN EXCLUDED.primary_lsn IS NOT NULL THEN now() ELSE c.last_seen_at END,
         updated_at = now()
       RETURNING c.*, (SELECT status FROM prev) AS previous_status`,
      [
        c.primaryRegion,
        c.secondaryRegion,
        c.status,
        c.epoch,
        c.applyLsn,
        c.primaryLsn,
        c.lagBytes === null ? null : Math.round(c.lagBytes),
        c.lagSeconds,
        c.catchupEtaSeconds,
        c.lastSeenAt ?? null,
      ],
    );
    const row = r.rows[0]!;
    return { previousStatus: row.previous_status ?? null, row: channelRow(row) };
  }

  async listChannels(): Promise<ChannelRow[]> {
    const r = await this.client.query(
      'SELECT * FROM regionctl.replication_channel ORDER BY primary_region, secondary_region',
    );
    return r.rows.map(channelRow);
  }

  /** A channel that no longer exists (re-formed after a failover); returns whether it was there. */
  async deleteChannel(primaryRegion: string, secondaryRegion: string): Promise<boolean> {
    const r = await this.client.query(
      'DELETE FROM regionctl.replication_channel WHERE primary_region = $1 AND secondary_region = $2',
      [primaryRegion, secondaryRegion],
    );
    return r.rowCount === 1;
  }

  // ---- alerts --------------------------------------------------------------------

  /**
   * Raises the alert `key` unless it is already open (one open row per key). Returns
   * raised: true only for a new episode — notify then, not on every loop. An open
   * alert gets its message, severity and last_seen_at refreshed.
   */
  async raiseAlert(key: string, a: AlertInput): Promise<{ raised: boolean; id: number | null }> {
    const r = await this.client.query<{ id: number; raised: boolean }>(
      `WITH ins AS (
         INSERT INTO regionctl.alert (key, channel, severity, message, detail)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (key) WHERE resolved_at IS NULL DO NOTHING
         RETURNING id),
       upd AS (
         UPDATE regionctl.alert SET severity = $3, message = $4, detail = $5, last_seen_at = now()
         WHERE key = $1 AND resolved_at IS NULL AND NOT EXISTS (SELECT 1 FROM ins)
         RETURNING id)
       SELECT id, true AS raised FROM ins UNION ALL SELECT id, false AS raised FROM upd`,
      [key, a.channel ?? null, a.severity, a.message, redactedJson(a.detail ?? {})],
    );
    const row = r.rows[0];
    return { raised: row?.raised ?? false, id: row ? Number(row.id) : null };
  }

  /** Resolves the open alert `key`; true only if one was open (notify the resolution once). */
  async resolveAlert(key: string): Promise<boolean> {
    const r = await this.client.query(
      'UPDATE regionctl.alert SET resolved_at = now() WHERE key = $1 AND resolved_at IS NULL',
      [key],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async openAlerts(): Promise<AlertRow[]> {
    const r = await this.client.query(
      'SELECT * FROM regionctl.alert WHERE resolved_at IS NULL ORDER BY raised_at, id',
    );
    return r.rows.map(alertRow);
  }

  // ---- reconcile runs ------------------------------------------------------------

  async startReconcileRun(leader: boolean): Promise<number> {
    const r = await this.client.query<{ id: number }>(
      'INSERT INTO regionctl.reconcile_run (leader) VALUES ($1) RETURNING id',
      [leader],
    );
    return r.rows[0]!.id;
  }

  async finishReconcileRun(id: number, result: { drift: unknown; summary: unknown }): Promise<void> {
    await this.expectOne(
      'UPDATE regionctl.reconcile_run SET finished_at = now(), drift = $2, summary = $3 WHERE id = $1',
      [id, redactedJson(result.drift), redactedJson(result.summary)],
      `reconcile run ${id}`,
    );
  }

  // ---- failover events -----------------------------------------------------------

  async createFailoverEvent(e: FailoverEventInput): Promise<number> {
    const r = await this.client.query<{ id: number }>(
      `INSERT INTO regionctl.failover_event
         (kind, from_region, to_region, trigger_reason, epoch, evidence, forced, estimated_loss_bytes, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id`,
      [
        e.kind,
        e.fromRegion,
        e.toRegion,
        e.triggerReason,
        e.epoch,
        redactedJson(e.evidence ?? {}),
        e.forced,
        e.estimatedLossBytes,
        e.status ?? 'running',
      ],
    );
    return r.rows[0]!.id;
  }

  /**
   * Updates an event. `evidence` is merged into what is there (top-level keys), so each
   * step can add what it learned; `completed` stamps completed_at.
   */
  async updateFailoverEvent(
    id: number,
    patch: {
      status?: FailoverStatus;
      evidence?: Record<string, unknown>;
      fencing?: unknown;
      dataLossBytes?: number | null;
      lostTransactions?: number | null;
      estimatedLossBytes?: number | null;
      epoch?: number | null;
      completed?: boolean;
    },
  ): Promise<FailoverEventRow> {
    const has = (k: keyof typeof patch) => Object.hasOwn(patch, k);
    const r = await this.client.query(
      `UPDATE regionctl.failover_event SET
         status = coalesce($2, status),
         evidence = evidence || coalesce($3::jsonb, '{}'),
         fencing = CASE WHEN $4 THEN $5::jsonb ELSE fencing END,
         data_loss_bytes = CASE WHEN $6 THEN $7::bigint ELSE data_loss_bytes END,
         lost_transactions = CASE WHEN $8 THEN $9::int ELSE lost_transactions END,
         estimated_loss_bytes = CASE WHEN $10 THEN $11::bigint ELSE estimated_loss_bytes END,
         epoch = CASE WHEN $12 THEN $13::bigint ELSE epoch END,
         completed_at = CASE WHEN $14 THEN now() ELSE completed_at END
       WHERE id = $1 RETURNING *`,
      [
        id,
        patch.status ?? null,
        patch.evidence ? redactedJson(patch.evidence) : null,
        has('fencing'),
        has('fencing') ? redactedJson(patch.fencing ?? null) : null,
        has('dataLossBytes'),
        patch.dataLossBytes ?? null,
        has('lostTransactions'),
        patch.lostTransactions ?? null,
        has('estimatedLossBytes'),
        patch.estimatedLossBytes ?? null,
        has('epoch'),
        patch.epoch ?? null,
        patch.completed === true,
      ],
    );
    const row = r.rows[0];
    if (!row) throw new RegionctlError('E_STORE_MISSING', `failover event ${id} does not exist`, STORE_HINT);
    return eventRow(row);
  }

  async getFailoverEvent(id: number): Promise<FailoverEventRow | null> {
    const r = await this.client.query('SELECT * FROM regionctl.failover_event WHERE id = $1', [id]);
    return r.rows[0] ? eventRow(r.rows[0]) : null;
  }

  /**
   * The transition a dead or replaced reconciler left unfinished ('planned' or
   * 'running'), with its steps: the next leader resumes it instead of starting another.
   */
  async unfinishedFailoverEvent(): Promise<{ event: FailoverEventRow; steps: FailoverStepRow[] } | null> {
    const r = await this.client.query(
      "SELECT * FROM regionctl.failover_event WHERE status IN ('planned', 'running') ORDER BY id DESC LIMIT 1",
    );
    if (!r.rows[0]) return null;
    const event = eventRow(r.rows[0]);
    return { event, steps: await this.failoverSteps(event.id) };
  }

  /** Who holds the advisory lock `name` in this control store, described; null when nobody. */
  async advisoryLockHolder(name: string): Promise<string | null> {
    const h = await lockHolder(this.client, lockKey(name));
    return h ? describeHolder(name, h) : null;
  }

  /** Regions a failover or switchover has ever moved the primary away from. */
  async formerPrimaries(): Promise<string[]> {
    const r = await this.client.query(
      "SELECT DISTINCT from_region FROM regionctl.failover_event WHERE kind IN ('failover', 'switchover') ORDER BY 1",
    );
    return r.rows.map((x) => x.from_region as string);
  }

  /** Newest first, for `regionctl events`. */
  async listFailoverEvents(limit = 50): Promise<FailoverEventRow[]> {
    const r = await this.client.query('SELECT * FROM regionctl.failover_event ORDER BY id DESC LIMIT $1', [
      limit,
    ]);
    return r.rows.map(eventRow);
  }

  /** Journals a failover step before it runs; re-recording it after a crash counts an attempt. */
  async failoverStepStarted(eventId: number, seq: number, name: string, detail: unknown = {}): Promise<void> {
    await this.client.query(
      `INSERT INTO regionctl.failover_step (event_id, seq, name, status, detail)
       VALUES ($1, $2, $3, 'started', $4)
       ON CONFLICT (event_id, seq) DO UPDATE
         SET name = EXCLUDED.name, status = 'started', detail = EXCLUDED.detail, error = NULL,
             attempts = regionctl.failover_step.attempts + 1, started_at = now(), finished_at = NULL`,
      [eventId, seq, name, redactedJson(detail)],
    );
  }

  /** Marks a step done (or skipped: its effect was already there); `detail` is merged in. */
  async failoverStepFinished(
    eventId: number,
    seq: number,
    status: 'done' | 'skipped' = 'done',
    detail: Record<string, unknown> = {},
  ): Promise<void> {
    await this.expectOne(
      `UPDATE regionctl.failover_step SET status = $3, detail = detail || $4::jsonb, finished_at = now()
       WHERE event_id = $1 AND seq = $2`,
      [eventId, seq, status, redactedJson(detail)],
      `failover step ${eventId}/${seq}`,
    );
  }

  async failoverStepFailed(eventId: number, seq: number, error: string): Promise<void> {
    await this.expectOne(
      "UPDATE regionctl.failover_step SET status = 'failed', error = $3, finished_at = now() WHERE event_id = $1 AND seq = $2",
      [eventId, seq, redactPasswords(error)],
      `failover step ${eventId}/${seq}`,
    );
  }

  async failoverSteps(eventId: number): Promise<FailoverStepRow[]> {
    const r = await this.client.query(
      'SELECT * FROM regionctl.failover_step WHERE event_id = $1 ORDER BY seq',
      [eventId],
    );
    return r.rows.map((s) => ({
      eventId: Number(s.event_id),
      seq: s.seq,
      name: s.name,
      status: s.status,
      detail: s.detail,
      error: s.error ?? null,
      attempts: s.attempts,
      startedAt: s.started_at,
      finishedAt: s.finished_at ?? null,
    }));
  }

  private async expectOne(sql: string, params: unknown[], what: string): Promise<void> {
    const r = await this.client.query(sql, params);
    if (r.rowCount !== 1) {
      throw new RegionctlError('E_STORE_MISSING', `${what} is not in the control store`, STORE_HINT);
    }
  }
}

const STORE_HINT =
  'the control store lost a row regionctl wrote earlier: check that controlStore in regions.yaml names the same database as before';

/** Connects to the control store and brings its schema up to date. */
export async function openStore(target: Target): Promise<Store> {
  let client: pg.Client;
  try {
    client = await connect(target, { applicationName: 'regionctl', statementTimeoutMs: 30_000 });
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new RegionctlError(
      'E_CONTROL_STORE_UNREACHABLE',
      `cannot reach the control store at ${target.endpoint.host}:${target.endpoint.port}/${target.database}: ${(e as Error).message}`,
      code === '3D000'
        ? `create the database ${target.database} on that server`
        : 'check controlStore in regions.yaml (in the lab: `regionctl lab up`)',
    );
  }
  try {
    await migrate(client);
  } catch (e) {
    await client.end().catch(() => {});
    if (e instanceof RegionctlError) throw e;
    throw new RegionctlError(
      'E_CONTROL_STORE_MIGRATE',
      `migrating the control store ${target.database} failed: ${(e as Error).message}`,
      'the user in controlStore must be able to create schema regionctl and its tables in that database',
    );
  }
  return new Store(client, () => client.end().catch(() => {}));
}

/** Kept for callers written before Store had methods. */
export async function audit(s: Store, e: AuditEntry): Promise<void> {
  await s.audit(e);
}
