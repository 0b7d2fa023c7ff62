/** Replication slots regionctl owns by name. */
import type pg from 'pg';

/**
 * Drops the named slots that nothing is using (a crash or an earlier transition left
 * them behind) and returns the ones dropped. An active slot is someone's stream: kept.
 */
export async function dropIdleSlots(c: pg.ClientBase, slots: string[]): Promise<string[]> {
  const r = await c.query(
    'SELECT slot_name, pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ANY($1) AND NOT active',
    [slots],
  );
  return r.rows.map((x) => x.slot_name as string);
}
