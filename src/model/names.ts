/**
 * Names of the replication objects regionctl owns. They are derived from region
 * names (validated: lowercase, digits, dashes), so they are stable and predictable;
 * everything regionctl creates starts with `rc_` so unmanaged objects are recognisable.
 */
import { createHash } from 'node:crypto';

export const MANAGED_PREFIX = 'rc_';
export const CONTROL_SCHEMA = 'regionctl';
export const HEARTBEAT_TABLE = 'regionctl.heartbeat';

/** Region name as an identifier fragment: dashes become underscores. */
export function regionIdent(region: string): string {
  return region.replaceAll('-', '_');
}

/** PostgreSQL truncates identifiers at 63 bytes; keep names unique by hashing long ones. */
function fitIdentifier(name: string): string {
  if (Buffer.byteLength(name) <= 63) return name;
  const h = createHash('sha256').update(name).digest('hex').slice(0, 10);
  return `${name.slice(0, 52)}_${h}`;
}

/** Publication on the primary feeding one secondary. */
export function publicationName(to: string): string {
  return fitIdentifier(`${MANAGED_PREFIX}pub_${regionIdent(to)}`);
}

/** Subscription on a secondary following one primary. */
export function subscriptionName(from: string, to: string): string {
  return fitIdentifier(`${MANAGED_PREFIX}sub_${regionIdent(from)}__${regionIdent(to)}`);
}

/** Slots are cluster-wide on the publisher, so the database is part of the name. */
export function slotName(database: string, from: string, to: string): string {
  return fitIdentifier(`${MANAGED_PREFIX}${database}__${regionIdent(from)}__${regionIdent(to)}`);
}

/**
 * Slot made on a newly promoted primary for the old primary's rejoin, before it accepts
 * a write: everything it changes from then on can be decoded, so a rejoin repairs only
 * the rows that changed on either side.
 */
export function rejoinSlotName(database: string, newPrimary: string, oldPrimary: string): string {
  return fitIdentifier(
    `${MANAGED_PREFIX}rejoin_${database}__${regionIdent(newPrimary)}__${regionIdent(oldPrimary)}`,
  );
}
