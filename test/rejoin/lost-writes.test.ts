/**
 * The lost-write report on a real failover: rows written on the old primary after the
 * candidate stopped applying are exactly the report's transactions (keys, values, commit
 * LSNs after the cut), the slot is only peeked, the report is stored before the slot may
 * be dropped, the SQL file replays the rows onto the new primary, and without the slot the
 * row-level comparison finds the same keys.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFailover } from '../../src/failover/failover.js';
import { compareLsn } from '../../src/model/lsn.js';
import { publicationName, slotName } from '../../src/model/names.js';
import {
  consumeEvidenceSlot,
  dropEvidenceSlot,
  type LostWriteReport,
  loadLostWriteReport,
  lostWriteReport,
  replaySql,
  rowLevelComparison,
  storeLostWriteReport,
  writeLostWriteFiles,
} from '../../src/rejoin/lost-writes.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore, type Store } from '../../src/store/store.js';
import { applySpec, fastFailover } from '../support/failover.js';
import { type PrivateLab, privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const TABLES = ['public.customers', 'public.orders', 'public.order_items', 'public.products'];

/** What two peeks must agree on (the WAL end and the time of the report may move). */
function stable(r: LostWriteReport) {
  return {
    transactions: r.transactions,
    totalBytes: r.totalBytes,
    columnTypes: r.columnTypes,
    slot: r.slotConfirmedLsn,
  };
}

describe('lost-write report after a failover', () => {
  let lab: PrivateLab;
  let store: Store;
  beforeAll(async () => {
    lab = await privateLab('lw_report', fastFailover);
    store = await openStore(controlTarget(lab.spec, lab.specDir));
    await applySpec(lab, store);
  });
  afterAll(async () => {
    await store?.close();
    await lab?.close();
  });

  it('lists exactly the unshipped transactions, keeps the slot, replays, and falls back without the slot', async () => {
    const us = await lab.client('us-east-1');
    const eu = await lab.client('eu-west-1');
    const before = await us.query(
      "INSERT INTO public.orders (customer_id, total_cents, status) SELECT 1, g, 'before' FROM generate_series(1, 20) g RETURNING id",
    );
    const beforeIds = before.rows.map((r) => Number(r.id));
    await waitFor(
      async () => (await eu.query('SELECT count(*)::int n FROM public.orders')).rows[0].n === 20,
      {
        what: 'orders shipped before the outage',
        timeoutMs: 20_000,
      },
    );
    await eu.query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 DISABLE');
    await waitFor(
      async () =>
        (
          await eu.query(
            "SELECT count(*)::int n FROM pg_stat_subscription WHERE subname = 'rc_sub_us_east_1__eu_west_1' AND pid IS NOT NULL",
          )
        ).rows[0].n === 0,
      { what: 'the apply worker to stop', timeoutMs: 10_000 },
    );

    // Six transactions the candidate never receives.
    const lostOrderIds: number[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await us.query(
        "INSERT INTO public.orders (customer_id, total_cents, status) VALUES (9, $1, 'lost') RETURNING id",
        [5000 + i],
      );
      lostOrderIds.push(Number(r.rows[0].id));
    }
    await us.query('BEGIN');
    const cust = await us.query(
      "INSERT INTO public.customers (name, email, residency) VALUES ('Zoë O''Brien', 'z@example.eu', 'eu') RETURNING id",
    );
    const prod = await us.query(
      "INSERT INTO public.products (sku, name, price_cents) VALUES ('lost-1', 'tab\tand \"quotes\"', 42) RETURNING id",
    );
    await us.query('COMMIT');
    const updatedId = beforeIds[3] ?? 0;
    const deletedId = beforeIds[5] ?? 0;
    await us.query("UPDATE public.orders SET status = 'changed-after-cut', total_cents = 7 WHERE id = $1", [
      updatedId,
    ]);
    await us.query('DELETE FROM public.orders WHERE id = $1', [deletedId]);
    const lostRows = (
      await us.query('SELECT id, created_at::text AS t FROM public.orders WHERE id = ANY($1) ORDER BY id', [
        lostOrderIds,
      ])
    ).rows;

    await lab.kill('us-east-1');
    const out = await runFailover({
      spec: lab.spec,
      specDir: lab.specDir,
      store,
      log: () => {},
      force: true,
      trigger: 'test',
      to: 'eu-west-1',
    });
    await lab.start('us-east-1');
    const old = await lab.client('us-east-1');
    const ev = await store.getFailoverEvent(out.eventId);
    const cutLsn = (ev?.evidence as { cutLsn?: string } | undefined)?.cutLsn ?? '';
    expect(cutLsn).toMatch(/\//);

    const input = {
      oldPrimary: old,
      slotName: slotName(lab.spec.database, 'us-east-1', 'eu-west-1'),
      publication: publicationName('eu-west-1'),
      cutLsn,
      eventId: out.eventId,
    };
    // Not consumed = confirmed_flush_lsn unchanged. restart_lsn is the server's own
    // bookkeeping: decoding may move it past WAL it no longer needs (seen under load), which
    // loses nothing after the confirmed position.
    const slotPos = async () =>
      (
        await old.query(
          'SELECT confirmed_flush_lsn::text AS c FROM pg_replication_slots WHERE slot_name = $1',
          [input.slotName],
        )
      ).rows[0];
    const posBefore = await slotPos();
    const report = await lostWriteReport(input);
    expect(report.slotFound).toBe(true);
    expect(report.transactions).toHaveLength(6);
    for (const t of report.transactions) expect(compareLsn(t.commitLsn, cutLsn)).toBeGreaterThan(0);
    const changes = report.transactions.map((t) =>
      t.changes.map((c) => `${c.op} ${c.table} ${JSON.stringify(c.key)}`),
    );
    expect(changes).toEqual([
      [`insert public.orders {"id":${lostOrderIds[0]}}`],
      [`insert public.orders {"id":${lostOrderIds[1]}}`],
      [`insert public.orders {"id":${lostOrderIds[2]}}`],
      [
        `insert public.customers {"id":${cust.rows[0].id}}`,
        `insert public.products {"id":${prod.rows[0].id}}`,
      ],
      [`update public.orders {"id":${updatedId}}`],
      [`delete public.orders {"id":${deletedId}}`],
    ]);
    // Nothing committed before the cut: none of the 20 shipped inserts.
    const reportedIds = report.transactions.flatMap((t) =>
      t.changes.filter((c) => c.table === 'public.orders').map((c) => c.key.id),
    );
    for (const id of beforeIds.filter((x) => x !== updatedId && x !== deletedId))
      expect(reportedIds).not.toContain(id);
    // Values typed, timestamps to the microsecond as PostgreSQL printed them.
    const first = report.transactions[0]?.changes[0]?.values;
    expect(first).toMatchObject({ id: lostOrderIds[0], customer_id: 9, total_cents: 5000, status: 'lost' });
    expect(first?.created_at).toBe(lostRows[0]?.t);
    expect(report.transactions[3]?.changes[0]?.values).toMatchObject({
      name: "Zoë O'Brien",
      residency: 'eu',
    });
    expect(report.transactions[4]?.changes[0]?.values).toMatchObject({
      status: 'changed-after-cut',
      total_cents: 7,
    });
    expect(report.totalBytes).toBeGreaterThan(0);
    expect(report.totalBytes).toBe(
      Number(
        (
          await old.query('SELECT ($1::pg_lsn - $2::pg_lsn)::bigint AS d', [
            report.transactions.at(-1)?.commitLsn,
            cutLsn,
          ])
        ).rows[0].d,
      ),
    );

    // Peeking does not consume: same report, same slot position.
    expect(stable(await lostWriteReport(input))).toEqual(stable(report));
    expect(await slotPos()).toEqual(posBefore);

    // The slot cannot be dropped before the report is stored.
    await expect(dropEvidenceSlot(old, store, out.eventId, input.slotName)).rejects.toMatchObject({
      code: 'E_REPORT_NOT_STORED',
    });
    const files = writeLostWriteFiles(report, join(lab.stateDir, 'reports'));
    await storeLostWriteReport(store, out.eventId, report, { files: [files.json, files.sql] });
    const stored = await store.getFailoverEvent(out.eventId);
    expect(stored?.lostTransactions).toBe(6);
    expect(stored?.dataLossBytes).toBe(report.totalBytes);
    expect(stable((await loadLostWriteReport(store, out.eventId)) as LostWriteReport)).toEqual(
      stable(report),
    );
    expect(JSON.parse(readFileSync(files.json, 'utf8')).transactions).toHaveLength(6);
    const sql = readFileSync(files.sql, 'utf8');
    expect(sql).toBe(replaySql(report));

    // Once stored, the slot may be consumed — up to where the report stopped, no further.
    const consumed = await consumeEvidenceSlot(old, store, out.eventId, input.slotName);
    expect(consumed.advancedTo).not.toBeNull();
    const afterConsume = await lostWriteReport(input);
    expect(afterConsume.slotFound).toBe(true);
    expect(afterConsume.transactions).toEqual([]);

    // Without the slot: the report says so, and the row-level comparison finds the same keys.
    expect(await dropEvidenceSlot(old, store, out.eventId, input.slotName)).toEqual({ dropped: true });
    const gone = await lostWriteReport(input);
    expect(gone.slotFound).toBe(false);
    expect(gone.transactions).toEqual([]);
    const cmp = await rowLevelComparison(old, eu, TABLES, { chunkRows: 7 });
    const byTable = Object.fromEntries(cmp.map((c) => [c.table, c]));
    expect(byTable['public.orders']?.onlyOnOld.map((r) => Number(r.key.id))).toEqual(lostOrderIds);
    expect(byTable['public.orders']?.different.map((r) => Number(r.key.id))).toEqual([updatedId]);
    expect(byTable['public.orders']?.different[0]?.a).toMatchObject({ status: 'changed-after-cut' });
    expect(byTable['public.orders']?.onlyOnNewCount).toBe(1); // the row deleted on the old primary
    expect(byTable['public.customers']?.onlyOnOld.map((r) => Number(r.key.id))).toEqual([
      Number(cust.rows[0].id),
    ]);
    expect(byTable['public.products']?.onlyOnOld.map((r) => Number(r.key.id))).toEqual([
      Number(prod.rows[0].id),
    ]);
    expect(byTable['public.order_items']?.onlyOnOld).toEqual([]);

    // The SQL file replays the lost writes onto the new primary: afterwards both agree.
    await eu.query(sql);
    const after = await rowLevelComparison(old, eu, TABLES);
    for (const t of after) {
      expect(t.onlyOnOld, t.table).toEqual([]);
      expect(t.different, t.table).toEqual([]);
      expect(t.onlyOnNewCount, t.table).toBe(0);
    }
    // Replaying twice fails loudly — its inserts collide with the rows it made — and
    // changes nothing: a lost write is never dropped in silence by ON CONFLICT DO NOTHING.
    expect(sql).not.toMatch(/ON CONFLICT/);
    await expect(eu.query(sql)).rejects.toMatchObject({ code: '23505' });
    await eu.query('ROLLBACK');
    const again = await rowLevelComparison(old, eu, TABLES);
    for (const t of again) expect(t.onlyOnNewCount, t.table).toBe(0);
  });
});
