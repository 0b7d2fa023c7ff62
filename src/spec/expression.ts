/**
 * A row filter or residency expression is pasted into `CREATE PUBLICATION ... WHERE (...)`.
 * It must be exactly one boolean expression: anything that could end the statement or hide
 * text (`;`, comments, unbalanced quotes or parentheses) is rejected, and so is what
 * PostgreSQL refuses in row filters (subqueries, non-immutable functions). This is a lexical
 * check, not a parser: PostgreSQL has the last word when the publication is created.
 */

export interface ExpressionCheck {
  problem?: string;
  /** Column names the expression refers to (best effort: unquoted words that are not keywords). */
  columns: string[];
}

const KEYWORDS = new Set(
  (
    'and or not is null true false in like ilike similar to escape between symmetric case when then else end ' +
    'distinct from any all some array collate at time zone interval date timestamp timestamptz with without ' +
    'isnull notnull unknown overlaps cast as varchar char character varying text int integer bigint smallint ' +
    'numeric decimal real double precision boolean bool uuid jsonb json'
  ).split(' '),
);

/** PostgreSQL only accepts immutable built-in functions in row filters. */
const NOT_IMMUTABLE = new Set([
  'now',
  'current_timestamp',
  'current_date',
  'current_time',
  'localtime',
  'localtimestamp',
  'clock_timestamp',
  'statement_timestamp',
  'transaction_timestamp',
  'timeofday',
  'random',
  'nextval',
  'currval',
  'current_user',
  'session_user',
  'current_setting',
  'gen_random_uuid',
  'pg_backend_pid',
]);

export function checkExpression(text: string): ExpressionCheck {
  const columns = new Set<string>();
  const fail = (problem: string): ExpressionCheck => ({ problem, columns: [...columns] });
  if (text.trim() === '') return fail('the expression is empty');
  let depth = 0;
  let i = 0;
  let afterCast = false;
  while (i < text.length) {
    const c = text[i] as string;
    const next = text[i + 1];
    if (c === ';') return fail("it contains ';': give a single expression, not statements");
    if (c === '-' && next === '-') return fail("it contains a '--' comment: remove it");
    if (c === '/' && next === '*') return fail("it contains a '/*' comment: remove it");
    if (c === '$' && /^\$[A-Za-z_]*\$/.test(text.slice(i)))
      return fail('dollar-quoted strings are not allowed: use single quotes');
    if (c === "'") {
      const end = endOfQuoted(text, i, "'");
      if (end < 0) return fail('a string literal is not closed (unbalanced single quote)');
      i = end;
      afterCast = false;
      continue;
    }
    if (c === '"') {
      const end = endOfQuoted(text, i, '"');
      if (end < 0) return fail('a quoted identifier is not closed (unbalanced double quote)');
      if (!afterCast && text[end] !== '(' && text[end] !== '.') columns.add(text.slice(i + 1, end - 1));
      i = end;
      afterCast = false;
      continue;
    }
    if (c === '(') depth++;
    if (c === ')' && --depth < 0) return fail("unbalanced parentheses: a ')' has no matching '('");
    if (c === ',' && depth === 0) return fail("it contains a top-level ',': give a single expression");
    if (/[A-Za-z_]/.test(c)) {
      let end = i + 1;
      while (end < text.length && /[\w$]/.test(text[end] as string)) end++;
      const word = text.slice(i, end).toLowerCase();
      let j = end;
      while (j < text.length && /\s/.test(text[j] as string)) j++;
      const isCall = text[j] === '(';
      if (word === 'select') return fail('subqueries are not allowed in row filters');
      if (NOT_IMMUTABLE.has(word))
        return fail(
          `${word} is not immutable, and PostgreSQL only accepts immutable functions in row filters`,
        );
      // `x::text`, `schema.fn(...)`, `t.col`: the word after :: is a type, after a dot a member.
      const isQualifier = text[end] === '.';
      if (!isCall && !afterCast && !isQualifier && !KEYWORDS.has(word)) columns.add(word);
      afterCast = false;
      i = end;
      continue;
    }
    if (c === ':' && next === ':') {
      afterCast = true;
      i += 2;
      continue;
    }
    if (!/\s/.test(c)) afterCast = false;
    i++;
  }
  if (depth !== 0) return fail("unbalanced parentheses: a '(' is not closed");
  return { columns: [...columns] };
}

/** Index just past the closing quote (doubled quotes escape), or -1 when unterminated. */
function endOfQuoted(text: string, start: number, quote: string): number {
  let i = start + 1;
  while (i < text.length) {
    if (text[i] === quote) {
      if (text[i + 1] === quote) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  return -1;
}
