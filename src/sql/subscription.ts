/**
 * Subscriptions on secondaries. CREATE SUBSCRIPTION embeds the publisher's conninfo,
 * password included (PostgreSQL has no other way to hand it to the apply worker), so
 * every statement that carries it also carries a `redacted` twin: plans, logs and
 * errors show only that one.
 */
import type { DesiredSubscription } from '../model/desired.js';
import { ident, literal } from './quote.js';
import { type Statement, standalone, tx } from './statement.js';

export interface CreateSubscriptionOptions {
  /** Copy the existing rows of every published table first (a new channel: yes; a re-pointed one: no). */
  copyData: boolean;
  /** Create the slot on the publisher now; false when the slot was made beforehand (consistent resync). */
  createSlot: boolean;
  enabled: boolean;
  /**
   * 'none' applies only changes that originated on the publisher itself: needed when
   * two regions subscribe to each other for a moment (switchover), or rows would echo
   * back and forth. Omitted: the server default ('any').
   */
  origin?: 'none' | 'any';
}

export interface SubscriptionMarker {
  managedBy: 'regionctl';
  fromRegion: string;
  publication: string;
  slotName: string;
  source: { host: string; port: number; database: string };
}

export function subscriptionMarker(s: DesiredSubscription): string {
  const m: SubscriptionMarker = {
    managedBy: 'regionctl',
    fromRegion: s.fromRegion,
    publication: s.publication,
    slotName: s.slotName,
    source: { host: s.source.host, port: s.source.port, database: s.source.database },
  };
  return JSON.stringify(m);
}

/** null for unmanaged subscriptions and for comments that are not regionctl's JSON. */
export function parseSubscriptionMarker(comment: string | null): SubscriptionMarker | null {
  if (!comment) return null;
  try {
    const v = JSON.parse(comment) as Partial<SubscriptionMarker> | null;
    if (!v || typeof v !== 'object' || v.managedBy !== 'regionctl') return null;
    const src = v.source;
    if (
      typeof v.fromRegion !== 'string' ||
      typeof v.publication !== 'string' ||
      typeof v.slotName !== 'string' ||
      !src ||
      typeof src.host !== 'string' ||
      typeof src.port !== 'number' ||
      typeof src.database !== 'string'
    )
      return null;
    return {
      managedBy: 'regionctl',
      fromRegion: v.fromRegion,
      publication: v.publication,
      slotName: v.slotName,
      source: { host: src.host, port: src.port, database: src.database },
    };
  } catch {
    return null;
  }
}

/**
 * Masks passwords in a libpq conninfo, in every form libpq accepts: `password='...'`
 * (with backslash escapes), `password=bare`, and the password part of a URI.
 */
export function redactPasswords(text: string): string {
  return text
    .replace(/(\bpassword\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|[^\s']+)/gi, "$1'***'")
    .replace(/(postgres(?:ql)?:\/\/[^:@/\s]*:)[^@\s]*@/gi, '$1***@');
}

function withSecret(build: (info: string) => string, conninfo: string, transactional: boolean): Statement {
  const sql = build(conninfo);
  const redacted = build(redactPasswords(conninfo));
  return transactional ? tx(sql, redacted) : standalone(sql, redacted);
}

export function createSubscriptionSql(
  s: DesiredSubscription,
  conninfo: string,
  opts: CreateSubscriptionOptions,
): Statement[] {
  const withOpts = [
    // Named explicitly: the slot name is cluster-wide on the publisher and must not
    // depend on the subscription's name (which collides across databases).
    `slot_name = ${literal(s.slotName)}`,
    `copy_data = ${opts.copyData}`,
    `create_slot = ${opts.createSlot}`,
    `enabled = ${opts.enabled}`,
  ];
  if (opts.origin) withOpts.push(`origin = ${literal(opts.origin)}`);
  const build = (info: string) =>
    `CREATE SUBSCRIPTION ${ident(s.name)} CONNECTION ${literal(info)} PUBLICATION ${ident(s.publication)} WITH (${withOpts.join(', ')})`;
  return [
    // Creating the remote slot cannot be rolled back, so PostgreSQL refuses it inside a
    // transaction block.
    withSecret(build, conninfo, !opts.createSlot),
    tx(`COMMENT ON SUBSCRIPTION ${ident(s.name)} IS ${literal(subscriptionMarker(s))}`),
  ];
}

/**
 * keepSlot: detach from the slot before dropping, so the slot stays on the publisher:
 * it is the evidence of what the subscriber never confirmed (rejoin decodes it), and
 * it is the only way to drop a subscription whose publisher is unreachable. The three
 * statements may share a transaction. The caller must know the subscription exists
 * (ALTER SUBSCRIPTION has no IF EXISTS).
 * Otherwise: a plain DROP, which connects to the publisher and drops the slot there,
 * so it cannot run in a transaction block.
 */
export function dropSubscriptionSql(name: string, opts: { keepSlot: boolean }): Statement[] {
  if (opts.keepSlot) {
    return [
      tx(`ALTER SUBSCRIPTION ${ident(name)} DISABLE`),
      tx(`ALTER SUBSCRIPTION ${ident(name)} SET (slot_name = NONE)`),
      tx(`DROP SUBSCRIPTION IF EXISTS ${ident(name)}`),
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

/** Starts replicating tables added to the publication (copyData: copy their rows first). */
export function refreshSubscriptionSql(name: string, copyData: boolean): Statement[] {
  return [standalone(`ALTER SUBSCRIPTION ${ident(name)} REFRESH PUBLICATION WITH (copy_data = ${copyData})`)];
}

/** Re-points a subscription (new host or rotated password); the slot name is unchanged. */
export function alterSubscriptionConnectionSql(name: string, conninfo: string): Statement[] {
  return [
    withSecret((info) => `ALTER SUBSCRIPTION ${ident(name)} CONNECTION ${literal(info)}`, conninfo, true),
  ];
}
