/**
 * Applies pending migrations. Safe when several processes migrate at once: all of them
 * run in one transaction that first takes a transaction-scoped advisory lock, so they
 * queue; each re-reads the applied versions under the lock (READ COMMITTED: the read
 * sees what the previous holder committed) and applies only what is still missing.
 * Either every pending migration commits or none does.
 */
import type pg from 'pg';
import { RegionctlError } from '../errors.js';
import { MIGRATIONS, type Migration } from './migrations.js';

/** Arbitrary but fixed: "rgnctl" in ASCII. Advisory locks are per database. */
const MIGRATION_LOCK_KEY = 0x72676e63746c;

export async function migrate(c: pg.ClientBase, migrations: Migration[] = MIGRATIONS): Promise<number[]> {
  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  const known = new Set(ordered.map((m) => m.version));
  const applied: number[] = [];
  await c.query('BEGIN');
  try {
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    // Quiet the NOTICEs of IF NOT EXISTS for the second and later migrators.
    await c.query('SET LOCAL client_min_messages = warning');
    await c.query('CREATE SCHEMA IF NOT EXISTS regionctl');
    await c.query(`CREATE TABLE IF NOT EXISTS regionctl.schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = (
      await c.query<{ version: number }>('SELECT version FROM regionctl.schema_migrations')
    ).rows.map((r) => r.version);
    const newer = done.filter((v) => !known.has(v)).sort((a, b) => a - b);
    if (newer.length > 0) {
      throw new RegionctlError(
        'E_CONTROL_STORE_NEWER',
        `the control store has migrations this regionctl does not know (${newer.join(', ')}): a newer version migrated it`,
        'upgrade regionctl to the version that CI and the reconciler run',
      );
    }
    const doneSet = new Set(done);
    for (const m of ordered) {
      if (doneSet.has(m.version)) continue;
      await c.query(m.sql);
      await c.query('INSERT INTO regionctl.schema_migrations (version, name) VALUES ($1, $2)', [
        m.version,
        m.name,
      ]);
      applied.push(m.version);
    }
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => {});
    throw e;
  }
  return applied;
}
