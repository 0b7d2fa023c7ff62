/**
 * Rejoin an old primary as a secondary of the current primary, at a cost that grows with
 * the divergence, not with the size of the database:
 *
 * 1. fence it (no application write may land there) and mark it `rebuilding`;
 * 2. report the writes it committed after the cut point and never shipped — decoded from
 *    the slot its promoted successor left behind, stored before anything is consumed;
 * 3. list the rows the current primary changed since the promotion — decoded from the
 *    rejoin slot the failover made before the new primary accepted a write;
 * 4. create the old primary's subscription slot with an exported snapshot, repair exactly
 *    the rows of 2 ∪ 3 to their content in that snapshot, and subscribe from that slot
 *    (no copy): nothing is missed or applied twice between repair and streaming;
 * 5. drop the evidence and rejoin slots; 6. let the application roles log in, read-only.
 *
 * Without those slots (or with --full) step 4 copies the whole tables from the snapshot.
 */

import type pg from 'pg';
import { openClients } from '../apply/execute.js';
import { RegionctlError } from '../errors.js';
import { appTables, fenceRegion } from '../failover/failover.js';
import { stepRunner } from '../failover/steps.js';
import { desiredState } from '../model/desired.js';
import { HEARTBEAT_TABLE, publicationName, rejoinSlotName, slotName } from '../model/names.js';
import { effectiveSpec } from '../model/promote.js';
import { observe } from '../observe/observe.js';
import type { RegionsSpec } from '../spec/schema.js';
import { SUBSCRIPTION_EXISTS_SQL } from '../sql/catalog.js';
import { conninfo, regionTarget } from '../sql/connect.js';
import { unfenceSql } from '../sql/guard.js';
import { dropPublicationSql } from '../sql/publication.js';
import { dropIdleSlots } from '../sql/slots.js';
import { runStatements } from '../sql/statement.js';
import { createSubscriptionSql } from '../sql/subscription.js';
import type { Store } from '../store/store.js';
import {
  findReplayConflicts,
  type LostTransaction,
  type LostWriteReport,
  lostWriteReport,
  storeLostWriteReport,
  writeLostWriteFiles,
} from './lost-writes.js';
import { quarantineDifferences } from './quarantine.js';
import { copyTableFull, primaryKeyColumns, repairKeys, setReplicaRole } from './repair.js';
import { exportSnapshotSlot } from './snapshot.js';

export interface RejoinOptions {
  spec: RegionsSpec;
  specDir: string;
  store: Store;
  region: string;
  full: boolean;
  log: (line: string) => void;
  /** Where the lost-write report files go (JSON and replayable SQL). */
  reportDir: string;
  crashAfter?: string;
}

export interface RejoinOutcome {
  eventId: number;
  region: string;
  primary: string;
  lostTransactions: number | null;
  lostBytes: number | null;
  repairedRows: number;
  mode: 'keys' | 'full';
  durationMs: number;
  /**
   * A whole-table rejoin (--full, or no evidence slot): the report built by comparison
   * and where the old primary's differing rows were saved before they were overwritten.
   */
  comparison?: { file: string; schema: string; savedRows: number };
}

/** The primary keys every decoded change touched, per table (the identity may be wider). */
async function primaryKeysOnly(
  c: pg.ClientBase,
  txs: LostTransaction[],
  truncated: Set<string>,
): Promise<Map<string, Map<string, Record<string, unknown>>>> {
  const out = new Map<string, Map<string, Record<string, unknown>>>();
  const pks = new Map<string, string[]>();
  for (const t of txs) {
    for (const ch of t.changes) {
      if (ch.op === 'truncate') {
        // A truncate touched every row: that table is copied whole.
        truncated.add(ch.table);
        continue;
      }
      let pk = pks.get(ch.table);
      if (!pk) {
        pk = await primaryKeyColumns(c, ch.table);
        pks.set(ch.table, pk);
      }
      let m = out.get(ch.table);
      if (!m) {
        m = new Map();
        out.set(ch.table, m);
      }
      // Both ends of an UPDATE that changed the key (its own, or one a foreign key's
      // ON UPDATE CASCADE made): the old key must come back, the new one must go.
      for (const row of [ch.key ?? ch.oldValues, ch.values]) {
        if (!row || pk.length === 0 || pk.some((k) => row[k] === undefined)) continue;
        const key = Object.fromEntries(pk.map((k) => [k, row[k]]));
        m.set(JSON.stringify(key), key);
      }
    }
  }
  return out;
}

function withoutTable(d: LostWriteReport, table: string): LostWriteReport {
  const transactions = d.transactions
    .map((t) => ({ ...t, changes: t.changes.filter((c) => c.table !== table) }))
    .filter((t) => t.changes.length > 0);
  return { ...d, transactions };
}

export async function runRejoin(o: RejoinOptions): Promise<RejoinOutcome> {
  const t0 = performance.now();
  const topo = await o.store.getTopology();
  const states = await o.store.regionStates();
  const excluded = states.map((s) => s.region).filter((r) => r !== o.region);
  // The topology with the rejoining region in it: the channel from the primary to it.
  const spec = effectiveSpec(o.spec, topo, excluded);
  const desired = desiredState(spec);
  const primary = desired.primary;
  if (o.region === primary) {
    throw new RegionctlError(
      'E_REJOIN_PRIMARY',
      `${o.region} is the primary`,
      'rejoin a former primary, not the current one',
    );
  }
  const channel = desired.channels.find((c) => c.to === o.region);
  if (!channel)
    throw new RegionctlError('E_UNKNOWN_REGION', `no channel feeds ${o.region}`, 'check regions.yaml');
  const demotion = (await o.store.listFailoverEvents(200)).find(
    (e) => e.kind === 'failover' && e.fromRegion === o.region && e.status === 'completed',
  );
  const observed = await observe(spec, o.specDir);
  const here = observed.regions.find((r) => r.region === o.region);
  if (!here?.reachable) {
    throw new RegionctlError(
      'E_REJOIN_UNREACHABLE',
      `${o.region} is unreachable: ${here && !here.reachable ? here.reason : ''}`,
      'bring it back (`regionctl lab start` in the lab), then rejoin',
    );
  }
  const unfinished = await o.store.unfinishedFailoverEvent();
  const eventId =
    unfinished?.event.kind === 'rejoin' && unfinished.event.fromRegion === o.region
      ? unfinished.event.id
      : await o.store.createFailoverEvent({
          kind: 'rejoin',
          fromRegion: o.region,
          toRegion: primary,
          triggerReason: 'rejoin',
          epoch: topo?.epoch ?? 0,
          evidence: { demotionEvent: demotion?.id ?? null, full: o.full },
          forced: false,
          estimatedLossBytes: demotion?.estimatedLossBytes ?? null,
        });
  const s = await stepRunner(o.store, eventId, o.log, o.crashAfter);
  const clients = await openClients(spec, o.specDir);
  try {
    await s.step(1, 'fence', async () => {
      const f = await fenceRegion(spec, o.specDir, o.region, observed, desired);
      await o.store.setRegionState(o.region, 'rebuilding', eventId);
      return { ...f };
    });
    const old = await clients.client(o.region);
    const cur = await clients.client(primary);

    const lost = await s.step(2, 'lost-writes', async () => {
      if (!demotion) return { slotFound: false, reason: 'no failover demoted this region' };
      const cutLsn = (demotion.evidence as { cutLsn?: string }).cutLsn ?? '0/0';
      const evidenceSlot = slotName(spec.database, o.region, demotion.toRegion);
      await releaseGhostSender(old, cur, evidenceSlot, o.log);
      const all = await lostWriteReport({
        oldPrimary: old,
        slotName: evidenceSlot,
        publication: publicationName(demotion.toRegion),
        cutLsn,
        eventId: demotion.id,
      });
      if (!all.slotFound) return { slotFound: false, evidenceSlot, reason: all.reason ?? null };
      // The heartbeat rides the channel but is regionctl's, not an application write.
      const d = withoutTable(all, HEARTBEAT_TABLE);
      // Stored before anything is consumed or dropped (step 5 drops the slot).
      const conflicts = await findReplayConflicts(cur, d);
      const files = writeLostWriteFiles(d, o.reportDir, conflicts);
      const written = [files.json, files.sql, ...(files.conflicts ? [files.conflicts] : [])];
      await storeLostWriteReport(o.store, demotion.id, d, { files: written });
      return {
        slotFound: true,
        evidenceSlot,
        transactions: d.transactions.length,
        bytes: d.totalBytes,
        files: written,
        conflicts: conflicts.length,
      };
    });

    const changed = await s.step(3, 'changed-on-primary', async () => {
      const slot = rejoinSlotName(spec.database, primary, o.region);
      const d = await lostWriteReport({
        oldPrimary: cur,
        slotName: slot,
        publication: publicationName(o.region),
        cutLsn: '0/0',
        eventId,
      });
      return { slotFound: d.slotFound, slot, transactions: d.transactions.length };
    });

    const full =
      o.full ||
      !(lost as { slotFound?: boolean }).slotFound ||
      !(changed as { slotFound?: boolean }).slotFound;
    // 4. Before anything overwrites whole tables here, the rows that differ from the
    //    primary are saved (src/rejoin/quarantine.ts): they may be the only copy.
    const quarantined = await s.step(4, 'quarantine', async () => {
      if (!full)
        return { skipped: 'the evidence slot was read: the lost-write report holds every lost write' };
      const tables = channel.publication.tables.filter((t) => t.table !== HEARTBEAT_TABLE);
      const q = await quarantineDifferences({
        old,
        primary: cur,
        tables,
        eventId,
        region: o.region,
        primaryRegion: primary,
        reportDir: o.reportDir,
        log: o.log,
      });
      return { method: 'comparison', file: q.file, schema: q.report.schema, savedRows: q.report.savedRows };
    });
    const repaired = await s.step(5, 'repair-and-subscribe', async () => {
      const exists = await old.query(SUBSCRIPTION_EXISTS_SQL, [channel.subscription.name]);
      if (exists.rowCount) return { already: true, rows: 0 };
      // A slot left by an interrupted attempt: its snapshot is gone, start over.
      await dropIdleSlots(cur, [channel.subscription.slotName]);
      const snap = await exportSnapshotSlot(
        regionTarget(spec, primary, o.specDir),
        channel.subscription.slotName,
      );
      // Keys are decoded after the snapshot exists, up to its consistent point: a change
      // the primary makes after that point is streamed by the new slot, none is missed.
      let keys = new Map<string, Map<string, Record<string, unknown>>>();
      const truncated = new Set<string>();
      let rows = 0;
      try {
        if (!full && demotion) {
          const cutLsn = (demotion.evidence as { cutLsn?: string }).cutLsn ?? '0/0';
          const a = await lostWriteReport({
            oldPrimary: old,
            slotName: slotName(spec.database, o.region, demotion.toRegion),
            publication: publicationName(demotion.toRegion),
            cutLsn,
            eventId: demotion.id,
          });
          const b = await lostWriteReport({
            oldPrimary: cur,
            slotName: rejoinSlotName(spec.database, primary, o.region),
            publication: publicationName(o.region),
            cutLsn: '0/0',
            eventId,
            uptoLsn: snap.consistentPoint,
          });
          keys = await primaryKeysOnly(old, [...a.transactions, ...b.transactions], truncated);
        }
        await old.query('BEGIN');
        await setReplicaRole(old);
        for (const t of channel.publication.tables) {
          const keyless = (await primaryKeyColumns(old, t.table)).length === 0;
          if (full || truncated.has(t.table) || keyless) {
            rows += (await copyTableFull(snap.reader, old, t.table, t.rowFilter)).rows;
          } else {
            const k = [...(keys.get(t.table)?.values() ?? [])];
            const r = await repairKeys(snap.reader, old, t.table, k, t.rowFilter);
            rows += r.inserted + r.deleted;
          }
        }
        await old.query('COMMIT');
        const info = conninfo(regionTarget(spec, primary, o.specDir));
        await runStatements(
          old,
          createSubscriptionSql(channel.subscription, info, {
            copyData: false,
            createSlot: false,
            enabled: true,
          }),
        );
      } catch (e) {
        await old.query('ROLLBACK').catch(() => {});
        throw e;
      } finally {
        await snap.close();
      }
      return { mode: full ? 'full' : 'keys', rows, consistentPoint: snap.consistentPoint };
    });

    await s.step(6, 'drop-evidence', async () => {
      // Only now: the report is stored (step 2) and the region follows the primary.
      const dropped: string[] = [];
      const drop = async (c: pg.ClientBase, slots: string[]) => {
        dropped.push(...(await dropIdleSlots(c, slots)));
      };
      // Every slot the old primary kept for a channel it fed (the report covers what mattered).
      await drop(
        old,
        desired.regions.filter((r) => r !== o.region).map((r) => slotName(spec.database, o.region, r)),
      );
      await drop(cur, [rejoinSlotName(spec.database, primary, o.region)]);
      // Publications it had as a primary feed nobody now.
      const pubs = await old.query("SELECT pubname FROM pg_publication WHERE pubname LIKE 'rc\\_pub\\_%'");
      for (const p of pubs.rows) await runStatements(old, dropPublicationSql(p.pubname as string));
      return { dropped };
    });

    await s.step(7, 'read-only', async () => {
      const tables = appTables(here, desired);
      await runStatements(old, unfenceSql(spec.applicationRoles, tables, spec.database, 'read-only'));
      await o.store.setRegionState(o.region, null, eventId);
      return {};
    });

    const lostInfo = lost as { transactions?: number; bytes?: number };
    const outcome: RejoinOutcome = {
      eventId,
      region: o.region,
      primary,
      lostTransactions: lostInfo.transactions ?? null,
      lostBytes: lostInfo.bytes ?? null,
      repairedRows: Number((repaired as { rows?: number }).rows ?? 0),
      mode: full ? 'full' : 'keys',
      durationMs: Math.round(performance.now() - t0),
      ...((quarantined as { method?: string }).method === 'comparison'
        ? {
            comparison: {
              file: String((quarantined as { file?: string }).file),
              schema: String((quarantined as { schema?: string }).schema),
              savedRows: Number((quarantined as { savedRows?: number }).savedRows ?? 0),
            },
          }
        : {}),
    };
    await o.store.updateFailoverEvent(eventId, {
      status: 'completed',
      completed: true,
      evidence: { outcome },
    });
    return outcome;
  } finally {
    await clients.close();
  }
}

/**
 * The failover detached the subscriber that used the evidence slot (its subscription
 * was dropped keeping the slot). A walsender still shown active on that slot is the ghost
 * of a connection that died in a partition: the old primary notices only after
 * wal_sender_timeout (60 s by default). If the subscriber's side confirms no
 * subscription uses that slot any more, the ghost is ended so the lost writes can be
 * read now; otherwise the slot is genuinely in use and the report refuses, as before.
 */
async function releaseGhostSender(
  old: pg.ClientBase,
  subscriberSide: pg.ClientBase,
  slot: string,
  log: (l: string) => void,
): Promise<void> {
  const a = await old.query('SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active', [
    slot,
  ]);
  const pid = a.rows[0]?.active_pid as number | undefined;
  if (!pid) return;
  const used = await subscriberSide.query('SELECT 1 FROM pg_subscription WHERE subslotname = $1', [slot]);
  if (used.rowCount) return;
  await old.query('SELECT pg_terminate_backend($1, 5000)', [pid]);
  log(`ended walsender ${pid}: the ghost of the detached subscriber on evidence slot ${slot}`);
}
