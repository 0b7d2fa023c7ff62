/**
 * A SQL statement produced by a builder. Some statements cannot run inside a
 * transaction block (CREATE/DROP SUBSCRIPTION that touch a remote slot); some contain a
 * secret and carry a redacted form for plans and logs.
 */
export interface Statement {
  sql: string;
  transactional: boolean;
  /** The statement with secrets replaced; log this, never `sql`, when present. */
  redacted?: string;
}

export function tx(sql: string): Statement {
  return { sql, transactional: true };
}

export function standalone(sql: string, redacted?: string): Statement {
  return redacted === undefined ? { sql, transactional: false } : { sql, transactional: false, redacted };
}

/** What may be shown to a person. */
export function shown(s: Statement): string {
  return s.redacted ?? s.sql;
}
