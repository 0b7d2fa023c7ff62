import { describe, expect, it } from 'vitest';
import { checkExpression } from '../../src/spec/expression.js';
import { closest, didYouMean, editDistance } from '../../src/spec/suggest.js';

describe('row filter expressions', () => {
  it.each([
    "residency = 'eu'",
    "country IN ('de', 'fr') AND NOT deleted",
    "coalesce(region, 'us') <> 'eu'",
    "note = 'it''s; -- fine /* inside */ a string'",
    '"Region" = \'eu\'',
    "(a > 1) OR (b::text = 'x')",
  ])('accepts %s', (expr) => {
    expect(checkExpression(expr).problem).toBeUndefined();
  });

  it.each([
    ["residency = 'eu'; DROP TABLE customers", "';'"],
    ["residency = 'eu' -- hidden", 'comment'],
    ["residency = 'eu' /* hidden */", 'comment'],
    ["(residency = 'eu'", 'not closed'],
    ["residency = 'eu')", 'no matching'],
    ["residency = 'eu", 'single quote'],
    ['"residency = 1', 'double quote'],
    ['id IN (SELECT id FROM t)', 'subqueries'],
    ['created_at > now()', 'immutable'],
    ['a = 1, b = 2', "','"],
    ['a = $$x$$', 'dollar'],
    ['   ', 'empty'],
  ])('rejects %s', (expr, why) => {
    expect(checkExpression(expr).problem).toContain(why);
  });

  it('finds the columns an expression refers to', () => {
    expect(
      checkExpression("residency = 'eu' AND c.country::text IN ('de') AND lower(\"Name\") IS NOT NULL")
        .columns,
    ).toEqual(['residency', 'country', 'Name']);
  });
});

describe('did you mean', () => {
  it('counts a transposition as one edit', () => {
    expect(editDistance('hots', 'host')).toBe(1);
    expect(editDistance('eu-west-2', 'eu-west-1')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
  });

  it('suggests only close names', () => {
    expect(closest('eu-west-2', ['us-east-1', 'eu-west-1'])).toBe('eu-west-1');
    expect(closest('mars-1', ['us-east-1', 'eu-west-1'])).toBeUndefined();
    expect(didYouMean('secundary', ['primary', 'secondary'])).toBe(" (did you mean 'secondary'?)");
  });
});
