/**
 * Session tokens for read-your-writes: the primary's WAL position after a commit, tagged
 * with the primary's failover epoch (LSNs of different primaries are different spaces).
 * Serialized as `e<epoch>.<LSN>`, e.g. `e1.16/B374D848`: short, and safe in a cookie or
 * a header (no space, comma, semicolon, quote or backslash).
 */
import { RegionctlError } from '../errors.js';
import { compareLsn } from '../model/lsn.js';

export interface SessionToken {
  epoch: number;
  lsn: string;
}

const TOKEN = /^e(\d{1,15})\.([0-9A-F]{1,8}\/[0-9A-F]{1,8})$/i;

export function formatToken(t: SessionToken): string {
  return `e${t.epoch}.${t.lsn.toUpperCase()}`;
}

export function parseToken(text: string): SessionToken {
  const m = TOKEN.exec(text.trim());
  if (!m?.[1] || !m[2]) {
    throw new RegionctlError(
      'E_TOKEN_INVALID',
      `not a regionctl session token: '${text.slice(0, 40)}'`,
      'pass the token a write returned (e.g. e1.16/B374D848), or none',
    );
  }
  return { epoch: Number(m[1]), lsn: m[2].toUpperCase() };
}

/**
 * The later of two tokens, for a session that wrote more than once: a later epoch wins
 * (its writes happened after the failover), within one epoch the higher position.
 */
export function laterToken(a: string | null | undefined, b: string | null | undefined): string | null {
  if (!a) return b ?? null;
  if (!b) return a;
  const x = parseToken(a);
  const y = parseToken(b);
  if (x.epoch !== y.epoch) return x.epoch > y.epoch ? a : b;
  return compareLsn(x.lsn, y.lsn) >= 0 ? a : b;
}
