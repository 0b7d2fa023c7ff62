/** PostgreSQL LSNs (`X/Y` hex) as bigint, for comparison and byte distances. */

export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new Error(`not an LSN: '${text}'`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Bytes from `from` to `to`; 0 when `to` is not ahead. */
export function lsnDistance(to: string, from: string): number {
  const d = parseLsn(to) - parseLsn(from);
  return d > 0n ? Number(d) : 0;
}

export function compareLsn(a: string, b: string): number {
  const d = parseLsn(a) - parseLsn(b);
  return d === 0n ? 0 : d > 0n ? 1 : -1;
}
