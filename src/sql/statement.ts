/**
 * The unit every SQL builder returns. A builder never executes anything; apply, the
 * Pulumi program and the tests run the statements with `runStatements`, and plans and
 * logs print them with `displaySql` (never `sql`: CREATE SUBSCRIPTION carries a password).
 */
import type pg from 'pg';

export interface Statement {
  sql: string;
  /**
   * true: may share one transaction with the transactional statements next to it.
   * false: must run on its own, outside any transaction block, after everything before
   * it has committed (CREATE SUBSCRIPTION that creates a slot, DROP SUBSCRIPTION that
   * drops one, REFRESH PUBLICATION, and session termination that must see a committed fence).
   */
  transactional: boolean;
  /** The same statement with secrets replaced, when `sql` contains any. */
  redacted?: string;
}

export function tx(sql: string, redacted?: string): Statement {
  return redacted === undefined ? { sql, transactional: true } : { sql, transactional: true, redacted };
}

export function standalone(sql: string, redacted?: string): Statement {
  return redacted === undefined ? { sql, transactional: false } : { sql, transactional: false, redacted };
}

/** What may be shown in a plan, a log line or an error message. */
export function displaySql(s: Statement): string {
  return s.redacted ?? s.sql;
}

/**
 * Runs statements in order: each run of consecutive transactional statements in one
 * transaction sent as one message, every other statement alone in autocommit mode. A failure rolls back the
 * current transaction and rethrows; statements of earlier batches stay committed, so
 * builders order their output so that any committed prefix is a safe state.
 */
export async function runStatements(c: pg.ClientBase, stmts: Statement[]): Promise<void> {
  let batch: string[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const sql = batch;
    batch = [];
    try {
      // One simple-query message for the whole transaction: one round trip instead of
      // one per statement (across regions that is 70-220 ms each). Builders produce no
      // parameters, so nothing is lost; '\n;\n' keeps a trailing `-- comment` from
      // swallowing the separator. An error skips the rest and leaves the block aborted.
      await c.query(`BEGIN;\n${sql.join('\n;\n')}\n;\nCOMMIT`);
    } catch (e) {
      await c.query('ROLLBACK').catch(() => {});
      throw e;
    }
  };
  for (const s of stmts) {
    if (s.transactional) batch.push(s.sql);
    else {
      await flush();
      await c.query(s.sql);
    }
  }
  await flush();
}
