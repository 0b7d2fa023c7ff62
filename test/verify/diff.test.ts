/**
 * diffTable on two servers of the shared lab, on a table that is not replicated (so each
 * side is exactly what the test wrote): a composite key, differences at both ends and in
 * the middle of many chunks, found by bisection without listing the equal rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffTable } from '../../src/verify/diff.js';
import { type TestTopology, testTopology } from '../support/topology.js';

const DDL = `CREATE TABLE public.pairs (a int, b text, v text, at timestamptz, PRIMARY KEY (a, b))`;
const FILL = `INSERT INTO public.pairs SELECT g / 3, 'k' || (g % 3), md5(g::text), '2026-01-01'::timestamptz + g * interval '1 second'
  FROM generate_series(1, 30000) g`;

describe('diffTable', () => {
  let topo: TestTopology;
  beforeAll(async () => {
    topo = await testTopology('verify_diff');
    for (const r of ['us-east-1', 'eu-west-1']) {
      const c = await topo.client(r);
      await c.query(DDL);
      await c.query(FILL);
    }
  });
  afterAll(async () => {
    await topo?.close();
  });

  it('hashes rows as text when a column type has no hash function (json)', async () => {
    const a = await topo.client('us-east-1');
    const b = await topo.client('eu-west-1');
    for (const c of [a, b]) {
      await c.query('CREATE TABLE public.docs (id int PRIMARY KEY, body json)');
      await c.query(
        `INSERT INTO public.docs SELECT g, json_build_object('n', g) FROM generate_series(1, 500) g`,
      );
    }
    await b.query(`UPDATE public.docs SET body = '{"n": -1}' WHERE id = 77`);
    const d = await diffTable(a, b, 'public.docs', { chunkRows: 100, fetchRows: true });
    expect(d.hashMode).toBe('text');
    expect(d.rows).toEqual([
      {
        key: { id: '77' },
        kind: 'different',
        a: { id: 77, body: { n: 77 } },
        b: { id: 77, body: { n: -1 } },
      },
    ]);
  });

  it('finds exactly the differing keys of a composite-key table, across chunks and at both ends', async () => {
    const a = await topo.client('us-east-1');
    const b = await topo.client('eu-west-1');
    const same = await diffTable(a, b, 'public.pairs', { chunkRows: 1000 });
    expect(same).toMatchObject({ equal: true, rowsA: 30000, rowsB: 30000, chunks: 31, rows: [], ranges: [] });

    await b.query("UPDATE public.pairs SET v = 'x' WHERE (a, b) IN ((1000, 'k1'), (7000, 'k2'))");
    await b.query("DELETE FROM public.pairs WHERE (a, b) = (5000, 'k0')");
    await b.query(
      "INSERT INTO public.pairs VALUES (-5, 'k0', 'before the first'), (99999, 'k9', 'after the last')",
    );
    // A session time zone must not matter: rows are compared in UTC.
    await b.query("SET TimeZone = 'Asia/Kolkata'");
    const d = await diffTable(a, b, 'public.pairs', { chunkRows: 1000, leafRows: 16, fanout: 4 });
    expect((await b.query('SHOW TimeZone')).rows[0].TimeZone).toBe('Asia/Kolkata');
    expect(d.equal).toBe(false);
    expect(d.keyColumns).toEqual(['a', 'b']);
    expect(d.rows.map((r) => `${r.key.a}/${r.key.b}:${r.kind}`)).toEqual([
      '-5/k0:only-b',
      '1000/k1:different',
      '5000/k0:only-a',
      '7000/k2:different',
      '99999/k9:only-b',
    ]);
    for (const r of d.ranges) expect(Math.max(r.rowsA, r.rowsB)).toBeLessThanOrEqual(16);
    expect(d.truncated).toBe(false);

    // Re-checking one reported range only reads that range.
    const mid = d.ranges.find((r) => r.lo && Number(r.lo[0]) < 5000 && r.hi && Number(r.hi[0]) >= 5000);
    expect(mid).toBeDefined();
    const again = await diffTable(a, b, 'public.pairs', {
      within: { lo: mid?.lo ?? null, hi: mid?.hi ?? null },
    });
    expect(again.rows.map((r) => `${r.key.a}/${r.key.b}:${r.kind}`)).toEqual(['5000/k0:only-a']);

    // maxRows bounds the listing; the rest is still reported as ranges.
    const capped = await diffTable(a, b, 'public.pairs', { chunkRows: 1000, leafRows: 16, maxRows: 2 });
    expect(capped.rows).toHaveLength(2);
    expect(capped.truncated).toBe(true);
    expect(capped.ranges.length).toBeGreaterThanOrEqual(3);

    // Hashing the rows' text instead of their values finds the same rows.
    const text = await diffTable(a, b, 'public.pairs', { chunkRows: 1000, leafRows: 16, hashMode: 'text' });
    expect(text.rows).toEqual(d.rows);
    expect(d.hashMode).toBe('record');

    // Inside a caller's transaction (a snapshot reader), diffTable leaves it usable.
    await a.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    const inTx = await diffTable(a, b, 'public.pairs', { chunkRows: 1000 });
    expect(inTx.rows).toHaveLength(5);
    expect((await a.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await a.query('COMMIT');

    // An empty side: everything is only-a, found chunk by chunk.
    await b.query('TRUNCATE public.pairs');
    const empty = await diffTable(a, b, 'public.pairs', { chunkRows: 5000, maxRows: 100 });
    expect(empty).toMatchObject({ equal: false, rowsA: 30000, rowsB: 0, truncated: true });
    expect(empty.rows.every((r) => r.kind === 'only-a')).toBe(true);
  });
});
