/**
 * Read-only catalog queries (PostgreSQL 15+, checked against 18) for the observer, the
 * failover code and the tests. Parameters are bind parameters ($1...), never spliced.
 * Queries that need version-specific columns read them through `to_jsonb(row) ->> 'col'`
 * so they return NULL on older servers instead of failing.
 * Run them connected to the replicated database unless noted: publications,
 * subscriptions and privileges are per database; slots and roles are per server.
 */

/** Server version, prerequisites of logical replication, role, and current WAL position. */
export const SERVER_SQL = `
SELECT current_setting('server_version_num')::int AS version_num,
       current_setting('wal_level') AS wal_level,
       current_setting('max_replication_slots')::int AS max_replication_slots,
       current_setting('max_wal_senders')::int AS max_wal_senders,
       current_setting('max_logical_replication_workers')::int AS max_logical_replication_workers,
       current_setting('max_worker_processes')::int AS max_worker_processes,
       -- PostgreSQL 18: invalidates slots idle this long (NULL before 18; '0' = off).
       current_setting('idle_replication_slot_timeout', true) AS idle_replication_slot_timeout,
       pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text
            ELSE pg_current_wal_lsn()::text END AS current_lsn,
       (SELECT count(*)::int FROM pg_replication_slots) AS used_slots`;

/** The WAL position a new commit would follow; the minuend of lag in bytes. */
export const CURRENT_LSN_SQL = `SELECT pg_current_wal_lsn()::text AS lsn`;

/** Publications with their options and COMMENT (regionctl's marker on the ones it manages). */
export const PUBLICATIONS_SQL = `
SELECT p.pubname, obj_description(p.oid, 'pg_publication') AS comment,
       p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot,
       pg_get_userbyid(p.pubowner) AS owner
FROM pg_publication p
ORDER BY p.pubname`;

/**
 * Tables of each publication ($1: publication names, text[]; NULL for all) with the row
 * filter as the server deparses it and the column list. pg_publication_tables.attnames
 * lists every column when there is no column list, so whether the publication narrows
 * columns comes from pg_publication_rel.prattrs (NULL: no column list).
 */
const PUBLICATION_TABLES_SELECT = `
SELECT pt.pubname, pt.schemaname, pt.tablename,
       pt.schemaname || '.' || pt.tablename AS qualified_name,
       pt.rowfilter,
       -- name[] has no parser in node-postgres (it would arrive as '{a,b}'): send text[].
       pt.attnames::text[] AS attnames,
       coalesce((SELECT pr.prattrs IS NOT NULL
                   FROM pg_publication_rel pr JOIN pg_publication p ON p.oid = pr.prpubid
                  WHERE p.pubname = pt.pubname
                    AND pr.prrelid = format('%I.%I', pt.schemaname, pt.tablename)::regclass), false)
         AS has_column_list
FROM pg_publication_tables pt`;
/** The above for the publications $1 (the observer's batch reads all, without the parameter). */
export const PUBLICATION_TABLES_SQL = `${PUBLICATION_TABLES_SELECT}
WHERE $1::text[] IS NULL OR pt.pubname = ANY ($1::text[])
ORDER BY pt.pubname, pt.schemaname, pt.tablename`;

/**
 * Subscriptions of the current database. The upstream LSN applied comes from the
 * subscription's replication origin, named pg_<subscription oid>; it is in the
 * publisher's LSN space. The conninfo is returned with its password masked in SQL, so
 * the secret never reaches the observer's memory (reading subconninfo needs superuser).
 */
export const SUBSCRIPTIONS_SQL = `
SELECT s.oid::bigint AS subid, s.subname, s.subenabled, s.subpublications, s.subslotname,
       pg_get_userbyid(s.subowner) AS owner,
       to_jsonb(s) ->> 'suborigin' AS origin,
       regexp_replace(s.subconninfo, 'password\\s*=\\s*(''([^''\\\\]|\\\\.)*''|[^\\s'']+)', 'password=***', 'gi')
         AS conninfo_redacted,
       obj_description(s.oid, 'pg_subscription') AS comment,
       'pg_' || s.oid AS origin_name,
       os.remote_lsn::text AS applied_lsn,
       os.local_lsn::text AS applied_local_lsn
FROM pg_subscription s
LEFT JOIN pg_replication_origin_status os ON os.external_id = 'pg_' || s.oid
WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.subname`;

/**
 * Workers of each subscription (pg_stat_subscription): the apply worker has relid NULL;
 * table-sync workers name the table they copy. No row at all: nothing is applying.
 */
export const SUBSCRIPTION_WORKERS_SQL = `
SELECT st.subid::bigint AS subid, st.subname, to_jsonb(st) ->> 'worker_type' AS worker_type,
       st.pid, st.relid::regclass::text AS relation,
       st.received_lsn::text AS received_lsn, st.latest_end_lsn::text AS latest_end_lsn,
       st.last_msg_send_time, st.last_msg_receipt_time, st.latest_end_time
FROM pg_stat_subscription st
JOIN pg_subscription s ON s.oid = st.subid
WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY st.subname, st.relid NULLS FIRST`;

/**
 * Per-table state of each subscription: i = initialize, d = data is being copied,
 * f = finished table copy, s = synchronized, r = ready (normal replication).
 */
export const SUBSCRIPTION_RELS_SQL = `
SELECT s.subname, n.nspname || '.' || c.relname AS qualified_name, sr.srsubstate AS state,
       sr.srsublsn::text AS sync_lsn
FROM pg_subscription_rel sr
JOIN pg_subscription s ON s.oid = sr.srsubid
JOIN pg_class c ON c.oid = sr.srrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.subname, 2`;

/**
 * Error and conflict counters of each subscription. PostgreSQL 18 adds confl_* columns;
 * `counters` is every numeric column of pg_stat_subscription_stats the server has.
 */
export const SUBSCRIPTION_STATS_SQL = `
SELECT ss.subname, ss.apply_error_count, ss.sync_error_count,
       to_jsonb(ss) - 'subid' - 'subname' - 'stats_reset' AS counters
FROM pg_stat_subscription_stats ss
JOIN pg_subscription s ON s.oid = ss.subid
WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY ss.subname`;

/**
 * Every slot of the server (slots are per server, not per database) with the WAL it
 * holds back: a slot nobody consumes keeps retained_bytes growing until the disk fills
 * or max_slot_wal_keep_size invalidates it (wal_status 'lost').
 */
export const SLOTS_SQL = `
SELECT s.slot_name, s.database, s.plugin, s.slot_type, s.active, s.active_pid, s.temporary,
       s.confirmed_flush_lsn::text AS confirmed_flush_lsn, s.restart_lsn::text AS restart_lsn,
       s.wal_status, s.safe_wal_size,
       to_jsonb(s) ->> 'invalidation_reason' AS invalidation_reason,
       to_jsonb(s) ->> 'inactive_since' AS inactive_since,
       CASE WHEN s.restart_lsn IS NULL THEN NULL
            ELSE pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                      ELSE pg_current_wal_lsn() END, s.restart_lsn)::bigint END AS retained_bytes,
       CASE WHEN s.confirmed_flush_lsn IS NULL OR pg_is_in_recovery() THEN NULL
            ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn)::bigint END AS unconfirmed_bytes
FROM pg_replication_slots s
ORDER BY s.slot_name`;

/**
 * User tables: replica identity (d = default/primary key, f = full, i = index,
 * n = nothing), whether a primary key exists (d without one means UPDATE/DELETE fail
 * once published), the replica identity index, and a column signature that ignores
 * column order (name:type[:nn][:gen]), comparable between regions.
 */
export const TABLES_SQL = `
SELECT n.nspname AS schema, c.relname AS name, n.nspname || '.' || c.relname AS qualified_name,
       c.relreplident AS replica_identity,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_primary_key,
       (SELECT i.indexrelid::regclass::text FROM pg_index i
         WHERE i.indrelid = c.oid AND i.indisreplident) AS replica_identity_index,
       coalesce((SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod)
                                   || CASE WHEN a.attnotnull THEN ':nn' ELSE '' END
                                   || CASE WHEN a.attgenerated <> '' THEN ':gen' ELSE '' END,
                                   ',' ORDER BY a.attname)
                  FROM pg_attribute a
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') AS columns_signature
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1, 2`;

/**
 * For each application role ($1 text[]) against the application tables ($2 text[],
 * schema.table; missing tables are skipped): does it exist and may it log in, on which
 * tables can it write (has_table_privilege sees ownership, role membership and PUBLIC,
 * which a REVOKE from the role does not remove), is default_transaction_read_only set
 * for it in this database, and how many sessions it has on the server.
 */
export const ROLE_GUARDS_SQL = `
SELECT r.role,
       ro.oid IS NOT NULL AS exists,
       coalesce(ro.rolcanlogin, false) AS can_login,
       coalesce(ro.rolsuper, false) AS is_superuser,
       CASE WHEN ro.oid IS NULL THEN '{}'::text[] ELSE
         coalesce((SELECT array_agg(t ORDER BY t) FROM unnest($2::text[]) AS t
                    WHERE to_regclass(t) IS NOT NULL
                      AND has_table_privilege(ro.oid, t::regclass, 'INSERT,UPDATE,DELETE,TRUNCATE')), '{}')
       END AS writable_tables,
       EXISTS (SELECT 1 FROM pg_db_role_setting s, unnest(s.setconfig) AS cfg
                WHERE s.setrole = ro.oid
                  AND s.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND lower(cfg) IN ('default_transaction_read_only=on', 'default_transaction_read_only=true',
                                     'default_transaction_read_only=1', 'default_transaction_read_only=yes'))
         AS default_read_only,
       (SELECT count(*)::int FROM pg_stat_activity a WHERE a.usename = r.role) AS sessions
FROM unnest($1::text[]) AS r(role)
LEFT JOIN pg_roles ro ON ro.rolname = r.role
ORDER BY r.role`;

/** The heartbeat table and the read-your-writes function are installed together (heartbeatDdl). */
export const HEARTBEAT_EXISTS_SQL = `SELECT to_regclass('regionctl.heartbeat') IS NOT NULL
  AND to_regprocedure('regionctl.applied_lsn(text)') IS NOT NULL AS installed`;

/** written_at is the primary's clock: compare it only with other primary timestamps. */
export const HEARTBEAT_ROWS_SQL = `
SELECT region, epoch, seq, written_at FROM regionctl.heartbeat ORDER BY region`;

/**
 * Sequences with their last value and the column that owns them (if any): promoting a
 * secondary must first move them past anything the old primary may have issued
 * (sequences are not replicated). last_value is NULL when never used.
 */
export const SEQUENCES_SQL = `
SELECT s.schemaname || '.' || s.sequencename AS sequence, s.last_value, s.increment_by,
       (SELECT d.refobjid::regclass::text || '.' || a.attname
          FROM pg_depend d
          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = format('%I.%I', s.schemaname, s.sequencename)::regclass
           AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
         LIMIT 1) AS owned_by
FROM pg_sequences s
WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1`;

/** Sessions of the given roles ($1 text[]) on the server: a fence is complete when this is empty. */
export const ROLE_SESSIONS_SQL = `
SELECT pid, usename, datname, state, backend_start, xact_start
FROM pg_stat_activity
WHERE usename = ANY ($1::text[]) AND pid <> pg_backend_pid()
ORDER BY pid`;

/**
 * Does this database have a subscription of that name ($1)? pg_subscription is shared by
 * every database of the server, and channel names do not include the database.
 */
export const SUBSCRIPTION_EXISTS_SQL =
  'SELECT 1 FROM pg_subscription WHERE subname = $1 AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())';

/**
 * The rows of `sql` as one JSON array of objects (field name → expression over the row
 * `q`), in `order`: an aggregate's input order is only guaranteed by its own ORDER BY, not
 * by the subquery's. '[]' when there are no rows.
 */
function jsonRows(sql: string, fields: Record<string, string>, order: string): string {
  const pairs = Object.entries(fields)
    .map(([name, expr]) => `'${name}', ${expr}`)
    .join(', ');
  return `(SELECT coalesce(json_agg(json_build_object(${pairs}) ORDER BY ${order}), '[]'::json)
   FROM (${sql}) q)`;
}

/**
 * The observer's batched reads: the queries above, unchanged, as JSON columns of one or
 * two statements, so observing a region costs one round trip instead of a dozen (each is
 * 70–220 ms between regions). Values that JSON would change are sent as text, exactly as
 * node-postgres receives them in a row, and parsed with the same parsers: bigint (JSON
 * numbers lose precision beyond 2^53: a sequence's last_value) and timestamptz (JSON
 * writes '2025-01-01T10:00:00.123456+00:00', which the row parser does not read).
 */

/** Server-wide: SERVER_SQL's columns, the server's clock, and SLOTS_SQL. No parameters. */
export const OBSERVE_SERVER_SQL = `
SELECT srv.*, clock_timestamp() AS now,
       ${jsonRows(
         SLOTS_SQL,
         {
           slot_name: 'q.slot_name',
           database: 'q.database',
           plugin: 'q.plugin',
           slot_type: 'q.slot_type',
           active: 'q.active',
           confirmed_flush_lsn: 'q.confirmed_flush_lsn',
           restart_lsn: 'q.restart_lsn',
           wal_status: 'q.wal_status',
           invalidation_reason: 'q.invalidation_reason',
           retained_bytes: 'q.retained_bytes::text',
         },
         'q.slot_name',
       )} AS slots
FROM (${SERVER_SQL}) srv`;

/**
 * Per database, in one snapshot: publications and their tables, subscriptions with their
 * workers, table states and counters, tables, sequences, whether the heartbeat is
 * installed, and the guards ($1: application roles, $2: application tables, as in
 * ROLE_GUARDS_SQL). Heartbeat rows are not here: naming a table that may not exist would
 * fail the whole statement (HEARTBEAT_ROWS_SQL is pipelined behind it when it exists).
 * Among a subscription's workers without a table, the leader apply worker comes first,
 * then parallel apply workers (their order was unspecified).
 */
export const OBSERVE_DATABASE_SQL = `
SELECT ${jsonRows(PUBLICATIONS_SQL, { pubname: 'q.pubname', comment: 'q.comment' }, 'q.pubname')} AS publications,
       ${jsonRows(
         PUBLICATION_TABLES_SELECT,
         {
           pubname: 'q.pubname',
           qualified_name: 'q.qualified_name',
           rowfilter: 'q.rowfilter',
           attnames: 'q.attnames',
           has_column_list: 'q.has_column_list',
         },
         'q.pubname, q.schemaname, q.tablename',
       )} AS publication_tables,
       ${jsonRows(
         SUBSCRIPTIONS_SQL,
         {
           subname: 'q.subname',
           subenabled: 'q.subenabled',
           subpublications: 'q.subpublications',
           subslotname: 'q.subslotname',
           conninfo_redacted: 'q.conninfo_redacted',
           comment: 'q.comment',
           applied_lsn: 'q.applied_lsn',
         },
         'q.subname',
       )} AS subscriptions,
       ${jsonRows(
         SUBSCRIPTION_WORKERS_SQL,
         {
           subname: 'q.subname',
           relation: 'q.relation',
           pid: 'q.pid',
           latest_end_lsn: 'q.latest_end_lsn',
           last_msg_receipt_time: 'q.last_msg_receipt_time::text',
         },
         "q.subname, q.relation NULLS FIRST, q.worker_type = 'parallel apply', q.pid",
       )} AS subscription_workers,
       ${jsonRows(
         SUBSCRIPTION_RELS_SQL,
         { subname: 'q.subname', qualified_name: 'q.qualified_name', state: 'q.state' },
         'q.subname, q.qualified_name',
       )} AS subscription_rels,
       ${jsonRows(
         SUBSCRIPTION_STATS_SQL,
         {
           subname: 'q.subname',
           apply_error_count: 'q.apply_error_count::text',
           sync_error_count: 'q.sync_error_count::text',
           counters: 'q.counters',
         },
         'q.subname',
       )} AS subscription_stats,
       ${jsonRows(
         TABLES_SQL,
         {
           qualified_name: 'q.qualified_name',
           replica_identity: 'q.replica_identity',
           has_primary_key: 'q.has_primary_key',
           columns_signature: 'q.columns_signature',
         },
         'q.schema, q.name',
       )} AS tables,
       ${jsonRows(
         SEQUENCES_SQL,
         {
           sequence: 'q.sequence',
           last_value: 'q.last_value::text',
           increment_by: 'q.increment_by::text',
           owned_by: 'q.owned_by',
         },
         'q.sequence',
       )} AS sequences,
       (${HEARTBEAT_EXISTS_SQL}) AS heartbeat_installed,
       ${jsonRows(
         ROLE_GUARDS_SQL,
         {
           role: 'q.role',
           exists: 'q."exists"',
           writable_tables: 'q.writable_tables',
           default_read_only: 'q.default_read_only',
           can_login: 'q.can_login',
           sessions: 'q.sessions',
         },
         'q.role',
       )} AS guards`;
