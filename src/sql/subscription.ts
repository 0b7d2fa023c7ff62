/** Subscriptions: one per channel, on the secondary, following the primary's publication. */
import type { DesiredSubscription } from '../model/desired.js';
import { redactConninfo } from './connect.js';
import { ident, literal } from './quote.js';
import { type Statement, standalone, tx } from './statement.js';

export interface CreateSubscriptionOptions {
  copyData: boolean;
  createSlot: boolean;
  enabled: boolean;
  /** 'none': do not forward changes that did not originate on the publisher. */
  origin?: 'none' | 'any';
}

export function createSubscriptionSql(
  s: DesiredSubscription,
  conninfo: string,
  o: CreateSubscriptionOptions,
): Statement[] {
  const withOpts = [
    `copy_data = ${o.copyData}`,
    `create_slot = ${o.createSlot}`,
    `enabled = ${o.enabled}`,
    `slot_name = ${literal(s.slotName)}`,
    `origin = ${o.origin ?? 'any'}`,
  ].join(', ');
  const make = (info: string) =>
    `CREATE SUBSCRIPTION ${ident(s.name)} CONNECTION ${literal(info)} PUBLICATION ${ident(s.publication)} WITH (${withOpts})`;
  // With create_slot the server connects to the publisher: not allowed in a transaction block.
  return [standalone(make(conninfo), make(redactConninfo(conninfo)))];
}

/**
 * keepSlot: detach without touching the publisher (it may be dead), leaving the slot
 * there — after a failover it is the evidence of what the old primary never shipped.
 */
export function dropSubscriptionSql(name: string, o: { keepSlot: boolean }): Statement[] {
  if (o.keepSlot) {
    return [
      tx(`ALTER SUBSCRIPTION ${ident(name)} DISABLE`),
      tx(`ALTER SUBSCRIPTION ${ident(name)} SET (slot_name = NONE)`),
      tx(`DROP SUBSCRIPTION ${ident(name)}`),
    ];
  }
  return [standalone(`DROP SUBSCRIPTION IF EXISTS ${ident(name)}`)];
}

export function enableSubscriptionSql(name: string): Statement[] {
  return [tx(`ALTER SUBSCRIPTION ${ident(name)} ENABLE`)];
}

export function disableSubscriptionSql(name: string): Statement[] {
  return [tx(`ALTER SUBSCRIPTION ${ident(name)} DISABLE`)];
}

export function refreshSubscriptionSql(name: string, copyData: boolean): Statement[] {
  // REFRESH PUBLICATION cannot run inside a transaction block.
  return [standalone(`ALTER SUBSCRIPTION ${ident(name)} REFRESH PUBLICATION WITH (copy_data = ${copyData})`)];
}
