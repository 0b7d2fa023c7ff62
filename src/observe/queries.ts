/**
 * Catalog queries of the observer (PostgreSQL 15+). Read-only; they run in one
 * connection per region with a statement timeout.
 */

export const SERVER_SQL = `
SELECT current_setting('server_version_num')::int AS version_num,
       current_setting('wal_level') AS wal_level,
       current_setting('max_replication_slots')::int AS max_replication_slots,
       current_setting('max_wal_senders')::int AS max_wal_senders,
       current_setting('max_logical_replication_workers')::int AS max_logical_replication_workers,
       current_setting('max_worker_processes')::int AS max_worker_processes,
       pg_is_in_recovery() AS in_recovery,
       CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()::text
            ELSE pg_current_wal_lsn()::text END AS current_lsn,
       EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) AS database_exists`;

/** All slots of the cluster, with the WAL each one holds back. */
export const SLOTS_SQL = `
SELECT slot_name, database, plugin, slot_type, active,
       confirmed_flush_lsn::text AS confirmed_flush_lsn, restart_lsn::text AS restart_lsn, wal_status,
       CASE WHEN restart_lsn IS NULL THEN NULL
            ELSE pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                      ELSE pg_current_wal_lsn() END, restart_lsn)::bigint END AS retained_bytes
FROM pg_replication_slots ORDER BY slot_name`;

export const PUBLICATIONS_SQL = `
SELECT p.pubname, obj_description(p.oid, 'pg_publication') AS comment,
       pt.schemaname, pt.tablename, pt.rowfilter, pt.attnames,
       (SELECT count(*) FROM pg_attribute a
         WHERE a.attrelid = format('%I.%I', pt.schemaname, pt.tablename)::regclass
           AND a.attnum > 0 AND NOT a.attisdropped) AS ncols
FROM pg_publication p
LEFT JOIN pg_publication_tables pt ON pt.pubname = p.pubname
ORDER BY p.pubname, pt.schemaname, pt.tablename`;

/**
 * Subscriptions of the current database with worker state and the upstream LSN applied:
 * the replication origin of a subscription is named pg_<oid>.
 */
export const SUBSCRIPTIONS_SQL = `
SELECT s.subname, s.subenabled, s.subpublications, s.subslotname, s.subconninfo,
       obj_description(s.oid, 'pg_subscription') AS comment,
       (SELECT st.pid FROM pg_stat_subscription st
         WHERE st.subid = s.oid AND st.relid IS NULL AND st.pid IS NOT NULL LIMIT 1) AS worker_pid,
       (SELECT max(st.last_msg_receipt_time) FROM pg_stat_subscription st WHERE st.subid = s.oid) AS last_msg,
       (SELECT os.remote_lsn::text FROM pg_replication_origin_status os
         WHERE os.external_id = 'pg_' || s.oid) AS applied_lsn,
       coalesce((SELECT ss.apply_error_count FROM pg_stat_subscription_stats ss WHERE ss.subid = s.oid), 0) AS apply_errors,
       coalesce((SELECT ss.sync_error_count FROM pg_stat_subscription_stats ss WHERE ss.subid = s.oid), 0) AS sync_errors,
       coalesce((SELECT array_agg(format('%s.%s', n.nspname, c.relname) ORDER BY 1)
          FROM pg_subscription_rel sr JOIN pg_class c ON c.oid = sr.srrelid
          JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE sr.srsubid = s.oid AND sr.srsubstate <> 'r'), '{}') AS not_ready
FROM pg_subscription s
WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY s.subname`;

/** User tables with replica identity and a column signature that ignores column order. */
export const TABLES_SQL = `
SELECT n.nspname AS schema, c.relname AS name, c.relreplident AS replident,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) AS has_pk,
       coalesce((SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod)
                                   || CASE WHEN a.attnotnull THEN ':nn' ELSE '' END, ',' ORDER BY a.attname)
          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') AS sig
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1, 2`;

export const HEARTBEAT_EXISTS_SQL = `SELECT to_regclass('regionctl.heartbeat') IS NOT NULL AS installed`;

export const HEARTBEAT_ROWS_SQL = `
SELECT region, epoch, seq, written_at FROM regionctl.heartbeat ORDER BY region`;

/**
 * For each application role: does it exist, on which of the given tables can it write,
 * and is default_transaction_read_only set for it in this database.
 */
export const GUARDS_SQL = `
SELECT r.role,
       EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.role) AS exists,
       CASE WHEN NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r.role) THEN '{}'::text[] ELSE
         coalesce((SELECT array_agg(t ORDER BY t) FROM unnest($2::text[]) AS t
                    WHERE to_regclass(t) IS NOT NULL
                      AND has_table_privilege(r.role, t, 'INSERT,UPDATE,DELETE,TRUNCATE')), '{}') END AS writable,
       EXISTS (SELECT 1 FROM pg_db_role_setting s
                JOIN pg_roles ro ON ro.oid = s.setrole
                JOIN pg_database d ON d.oid = s.setdatabase
               WHERE ro.rolname = r.role AND d.datname = current_database()
                 AND 'default_transaction_read_only=on' = ANY (s.setconfig)) AS default_read_only
FROM unnest($1::text[]) AS r(role)
ORDER BY r.role`;
