/**
 * Applies pending migrations. Safe when several processes migrate at once: each takes
 * a transaction-scoped advisory lock and re-reads the applied versions under it.
 */
import type pg from 'pg';
import { MIGRATIONS, type Migration } from './migrations.js';

/** Arbitrary but fixed: "rgnctl" in ASCII. */
const MIGRATION_LOCK_KEY = 0x72676e63746c;

export async function migrate(c: pg.Client, migrations: Migration[] = MIGRATIONS): Promise<number[]> {
  const applied: number[] = [];
  await c.query('BEGIN');
  try {
    await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await c.query('CREATE SCHEMA IF NOT EXISTS regionctl');
    await c.query(`CREATE TABLE IF NOT EXISTS regionctl.schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const done = new Set(
      (await c.query('SELECT version FROM regionctl.schema_migrations')).rows.map((r) => r.version as number),
    );
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue;
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
