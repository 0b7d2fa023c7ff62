/** Text form of a verify result: one line per table, then what differs and what violates. */
import type { DifferingRange, KeyValues } from './diff.js';
import type { VerifyResult } from './verify.js';

function bound(k: KeyValues | null, open: string): string {
  if (!k) return open;
  return k.length === 1 ? (k[0] ?? '') : `(${k.join(', ')})`;
}

export function rangeText(keyColumns: string[], r: DifferingRange): string {
  const key = keyColumns.length === 1 ? (keyColumns[0] ?? '') : `(${keyColumns.join(', ')})`;
  return `${key} in (${bound(r.lo, '-∞')}, ${bound(r.hi, '+∞')}]: ${r.rowsA} row(s) on the primary, ${r.rowsB} on the secondary`;
}

function keyText(k: Record<string, string>): string {
  return Object.entries(k)
    .map(([c, v]) => `${c}=${v}`)
    .join(',');
}

const MB = 1024 * 1024;

export function renderVerify(r: VerifyResult): string {
  const out: string[] = [];
  const secs = r.durationMs / 1000;
  out.push(
    `verify: primary ${r.primary} (epoch ${r.epoch}), ${r.channels.length} channel(s), ` +
      `${(r.bytes / MB).toFixed(1)} MB compared in ${secs.toFixed(1)} s`,
  );
  for (const c of r.channels) {
    out.push('');
    out.push(`${c.from} → ${c.to}`);
    if (!c.reachable) {
      out.push(`  UNREACHABLE: ${c.error ?? 'no connection'}`);
      continue;
    }
    for (const t of c.tables) {
      const filter = t.rowFilter ? ` [where ${t.rowFilter}]` : '';
      const cols = t.columns ? ` [columns ${t.columns.join(', ')}]` : '';
      if (t.error) {
        out.push(`  ${t.table}: ERROR ${t.error}`);
        continue;
      }
      out.push(
        `  ${t.table}: ${t.equal ? 'equal' : 'DIFFERS'} (${t.rowsPrimary} rows on the primary, ${t.rowsSecondary} on the secondary)${filter}${cols}`,
      );
      for (const rg of t.ranges) out.push(`    range ${rangeText(t.keyColumns, rg)}`);
      const shown = t.rows.slice(0, 20);
      for (const row of shown) {
        const kind =
          row.kind === 'only-a'
            ? 'missing on the secondary'
            : row.kind === 'only-b'
              ? 'extra on the secondary'
              : 'different';
        out.push(`      ${keyText(row.key)}: ${kind}`);
      }
      if (t.rows.length > shown.length) out.push(`      … ${t.rows.length - shown.length} more row(s)`);
      if (t.truncated) out.push('      (listing truncated: more rows differ)');
    }
    for (const v of c.violations) {
      const keys = v.keys.slice(0, 10).map(keyText).join(' ');
      out.push(
        `  VIOLATION ${v.table}: ${v.count} row(s) the secondary must not hold (${v.kind}: ${v.rule})${keys ? `: ${keys}` : ''}${v.count > 10 ? ' …' : ''}`,
      );
    }
  }
  out.push('');
  out.push(
    r.ok
      ? 'result: every secondary holds exactly what its channel admits'
      : `result: ${r.differences} table(s) differ or could not be compared, ${r.violations} violation(s)`,
  );
  return `${out.join('\n')}\n`;
}
