/**
 * Versioned migrations of the control store. Append only: a released migration is
 * never edited, a change is a new version.
 */
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'channels, failover events, journal, audit',
    sql: `
CREATE TABLE regionctl.replication_channel (
  id serial PRIMARY KEY,
  primary_region text NOT NULL,
  secondary_region text NOT NULL,
  status text NOT NULL DEFAULT 'active'
    CHECK (status IN ('active', 'alert', 'lagging', 'failed', 'rebuilding')),
  epoch bigint NOT NULL DEFAULT 0,
  apply_lsn text,
  primary_lsn text,
  lag_bytes bigint,
  lag_seconds double precision,
  catchup_eta_seconds double precision,
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (primary_region, secondary_region)
);
CREATE INDEX idx_channel_status ON regionctl.replication_channel (status, lag_seconds);

CREATE TABLE regionctl.failover_event (
  id serial PRIMARY KEY,
  kind text NOT NULL CHECK (kind IN ('failover', 'switchover', 'rejoin')),
  from_region text NOT NULL,
  to_region text NOT NULL,
  trigger_reason text NOT NULL,
  epoch bigint,
  evidence jsonb NOT NULL DEFAULT '{}',
  fencing jsonb,
  forced boolean NOT NULL DEFAULT false,
  estimated_loss_bytes bigint,
  data_loss_bytes bigint,
  lost_transactions integer,
  status text NOT NULL DEFAULT 'running'
    CHECK (status IN ('planned', 'running', 'completed', 'failed', 'refused')),
  started_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);

CREATE TABLE regionctl.failover_step (
  event_id integer NOT NULL REFERENCES regionctl.failover_event (id),
  seq integer NOT NULL,
  name text NOT NULL,
  status text NOT NULL CHECK (status IN ('started', 'done', 'failed')),
  detail jsonb NOT NULL DEFAULT '{}',
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  PRIMARY KEY (event_id, seq)
);

CREATE TABLE regionctl.topology (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  primary_region text NOT NULL,
  epoch bigint NOT NULL DEFAULT 0,
  last_event_id integer REFERENCES regionctl.failover_event (id),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE regionctl.apply_run (
  id serial PRIMARY KEY,
  plan_hash text NOT NULL,
  plan jsonb NOT NULL,
  spec_commit text,
  actor text NOT NULL,
  status text NOT NULL DEFAULT 'running'
    CHECK (status IN ('running', 'succeeded', 'failed')),
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz
);

CREATE TABLE regionctl.apply_step (
  run_id integer NOT NULL REFERENCES regionctl.apply_run (id),
  seq integer NOT NULL,
  action_key text NOT NULL,
  action jsonb NOT NULL,
  status text NOT NULL CHECK (status IN ('started', 'done', 'failed')),
  error text,
  attempts integer NOT NULL DEFAULT 1,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  PRIMARY KEY (run_id, seq)
);

CREATE TABLE regionctl.reconcile_run (
  id serial PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  leader boolean NOT NULL,
  drift jsonb,
  summary jsonb
);

CREATE TABLE regionctl.audit_log (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  actor text NOT NULL,
  action text NOT NULL,
  spec_commit text,
  detail jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE regionctl.alert (
  id serial PRIMARY KEY,
  key text NOT NULL,
  channel text,
  severity text NOT NULL,
  message text NOT NULL,
  raised_at timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz
);
CREATE UNIQUE INDEX alert_open_key ON regionctl.alert (key) WHERE resolved_at IS NULL;
`,
  },
  {
    version: 2,
    name: 'interrupted apply runs, step errors, alert detail, indexes for the reconciler',
    sql: `
-- 'interrupted': a run whose process died; the next apply (under the leader lock) resumes it.
ALTER TABLE regionctl.apply_run DROP CONSTRAINT apply_run_status_check;
ALTER TABLE regionctl.apply_run ADD CONSTRAINT apply_run_status_check
  CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted'));
CREATE INDEX apply_run_status_idx ON regionctl.apply_run (status, id);

-- 'skipped': a resumed failover found a step's effect already in place.
ALTER TABLE regionctl.failover_step DROP CONSTRAINT failover_step_status_check;
ALTER TABLE regionctl.failover_step ADD CONSTRAINT failover_step_status_check
  CHECK (status IN ('started', 'done', 'failed', 'skipped'));
ALTER TABLE regionctl.failover_step ADD COLUMN error text;
ALTER TABLE regionctl.failover_step ADD COLUMN attempts integer NOT NULL DEFAULT 1;
CREATE INDEX failover_event_status_idx ON regionctl.failover_event (status, id);

ALTER TABLE regionctl.alert ADD COLUMN detail jsonb NOT NULL DEFAULT '{}';
ALTER TABLE regionctl.alert ADD COLUMN last_seen_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX alert_raised_idx ON regionctl.alert (raised_at);

CREATE INDEX audit_log_at_idx ON regionctl.audit_log (at);
CREATE INDEX reconcile_run_started_idx ON regionctl.reconcile_run (started_at);
`,
  },
  {
    version: 3,
    name: 'region state (fenced, rebuilding) and sequence snapshots of the primary',
    sql: `
CREATE TABLE regionctl.region_state (
  region text PRIMARY KEY,
  state text NOT NULL CHECK (state IN ('fenced', 'rebuilding')),
  event_id integer REFERENCES regionctl.failover_event (id),
  detail jsonb NOT NULL DEFAULT '{}',
  since timestamptz NOT NULL DEFAULT now()
);

-- Sequences are not replicated: promotion moves them past what the old primary issued.
CREATE TABLE regionctl.sequence_snapshot (
  region text NOT NULL,
  sequence text NOT NULL,
  last_value numeric,
  observed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (region, sequence)
);
`,
  },
  {
    version: 4,
    name: 'read routing: hysteresis state and the last published routing document',
    sql: `
-- One row: the routing table's memory between passes (which replica serves which read
-- class, and how many good passes a recovering one has made), so a new leader does not
-- start from nothing and flap DNS; and the document it last published.
CREATE TABLE regionctl.read_routing (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  state jsonb NOT NULL DEFAULT '{}',
  document jsonb,
  updated_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 5,
    name: 'lost-write reports of failovers',
    sql: `
-- One report per failover event: what the old primary committed after the cut and never
-- shipped. Stored before the evidence slot may be consumed or dropped.
CREATE TABLE regionctl.lost_write_report (
  event_id integer PRIMARY KEY REFERENCES regionctl.failover_event (id),
  slot_found boolean NOT NULL,
  cut_lsn text,
  upto_lsn text,
  transactions integer NOT NULL,
  total_bytes bigint NOT NULL,
  report jsonb NOT NULL,
  files jsonb NOT NULL DEFAULT '[]',
  created_at timestamptz NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 6,
    name: 'sequence snapshots keep the previous observation (draw rates)',
    sql: `
-- The value before the last one, and when: how fast the primary draws from each sequence,
-- so a failover can move a sequence past what the primary may have drawn since.
ALTER TABLE regionctl.sequence_snapshot ADD COLUMN prev_value numeric;
ALTER TABLE regionctl.sequence_snapshot ADD COLUMN prev_observed_at timestamptz;
`,
  },
];
