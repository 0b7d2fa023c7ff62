/** `regionctl status` as a terminal table, readable at a glance. */
import type { ReconcileResult } from './reconcile.js';

function bytes(n: number | null): string {
  if (n === null) return '?';
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function secs(n: number | null): string {
  if (n === null) return '?';
  return n < 100 ? `${n.toFixed(1)} s` : `${Math.round(n)} s`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => `  ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ')}`.trimEnd());
}

export function renderStatus(r: ReconcileResult): string {
  const out: string[] = [];
  out.push(`regions — primary ${r.primary}, epoch ${r.epoch}, observed ${r.at} in ${r.durationMs} ms`);
  out.push(
    ...table([
      ['REGION', 'ROLE', 'REACHABLE', 'LSN'],
      ...r.regions.map((x) => [x.region, x.role, x.reachable ? 'yes' : `no (${x.reason})`, x.lsn ?? '-']),
    ]),
  );
  out.push('');
  out.push('channels');
  out.push(
    ...table([
      ['CHANNEL', 'STATUS', 'LAG', 'LAG BYTES', 'RPO alert/failover', 'CATCH-UP'],
      ...r.channels.map((c) => [
        `${c.from} → ${c.to}`,
        c.status,
        secs(c.lagSeconds),
        bytes(c.lagBytes),
        `${c.alertSeconds}/${c.failoverMaxLagSeconds} s`,
        c.catchUpSeconds === null ? (c.lagBytes ? 'not catching up' : '-') : secs(c.catchUpSeconds),
      ]),
    ]),
  );
  for (const c of r.channels) {
    if (c.reasons.length > 0) out.push(`  ! ${c.from} → ${c.to}: ${c.reasons.join('; ')}`);
  }
  const a = r.authority;
  if (a) {
    out.push('');
    if (!a.quorum) {
      out.push(`authority: NO QUORUM — automatic transitions are stopped (${a.error ?? a.summary})`);
    } else {
      out.push(
        `authority: quorum; epoch ${a.epoch ?? '-'}, primary ${a.primary ?? '-'}; leader ${a.leader ?? 'none'}; primary lease ${a.primaryLease ? `${a.primaryLease.region} at epoch ${a.primaryLease.epoch}` : 'NOT HELD'}${a.paused ? `; PAUSED: ${a.paused}` : ''}${a.handoff ? `; handoff to ${a.handoff}` : ''}`,
      );
      out.push(
        ...table([
          ['AGENT', 'ALIVE', 'LAST REPORT', 'SELF-FENCED', 'BOOT FENCE', 'PROBE FAILURES (primary/own)'],
          ...a.agents.map((g) => [
            g.region,
            g.alive ? 'yes' : 'NO',
            g.lastUpdate ?? '-',
            g.selfFenced === null ? '-' : g.selfFenced ? 'YES' : 'no',
            g.bootFence === null ? '-' : g.bootFence ? 'set' : 'no',
            `${g.primaryProbeFailures ?? '-'}/${g.databaseFailures ?? '-'}`,
          ]),
        ]),
      );
    }
  }
  out.push('');
  out.push(r.drift.length === 0 ? 'drift: none' : `drift: ${r.drift.length} item(s)`);
  for (const d of r.drift) out.push(`  - [${d.region}] ${d.message} → ${d.owner}: ${d.advice}`);
  return `${out.join('\n')}\n`;
}
