/**
 * Plans as text (terminal), markdown (pull-request comment) and JSON (machines).
 * Plans hold no secrets by construction: actions carry names and filters, never
 * connection strings.
 */
import type { DesiredState, PublishedTable } from '../model/desired.js';
import { parseMarker } from '../model/marker.js';
import type { Observed, ReachableRegion } from '../model/observed.js';
import { redactPasswords } from '../sql/subscription.js';
import type { Action, Risk } from './actions.js';
import { assertNever, describeAction } from './actions.js';
import type { Plan, Problem } from './plan.js';

const RISK_LABEL: Record<Risk, string> = {
  create: 'create',
  alter: 'alter',
  drop: 'drop',
  resync: 'resync',
  'data-loss': 'DATA LOSS POSSIBLE',
  'dns-cutover': 'DNS cutover',
};

export function countByRisk(actions: Action[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of actions) out[a.risk] = (out[a.risk] ?? 0) + 1;
  return out;
}

function summaryLine(plan: Plan): string {
  if (plan.actions.length === 0 && plan.unreachable.length > 0) {
    return `No changes for the reachable regions; ${plan.unreachable.length} region(s) could not be observed, so the regions may still differ from the spec.`;
  }
  if (plan.actions.length === 0) return 'No changes. The regions match regions.yaml.';
  const counts = countByRisk(plan.actions);
  const parts = Object.keys(counts)
    .sort()
    .map((k) => `${counts[k]} ${k}`);
  return `Plan: ${plan.actions.length} action(s): ${parts.join(', ')}.`;
}

function problemLine(p: Problem): string {
  const where = p.region ? ` [${p.region}${p.channel ? `, ${p.channel}` : ''}]` : '';
  return `${p.severity} ${p.code}${where} ${p.message}\n    hint: ${p.hint}`;
}

export function renderText(plan: Plan): string {
  const lines: string[] = [];
  lines.push(`database ${plan.database}, primary ${plan.primary}, plan ${plan.hash.slice(0, 12)}`);
  for (const u of plan.unreachable) lines.push(`! region ${u.region} unreachable: ${u.reason}`);
  plan.actions.forEach((a, i) => {
    lines.push(`${String(i + 1).padStart(3)}. [${a.region}] ${describeAction(a)}  (${RISK_LABEL[a.risk]})`);
    lines.push(`       why: ${a.reason}`);
  });
  for (const p of plan.problems) lines.push(problemLine(p));
  lines.push(summaryLine(plan));
  return `${lines.join('\n')}\n`;
}

export interface MarkdownContext {
  specPath: string;
  specCommit: string | null;
  /** What the plan was made from: with it, alters show before → after. */
  observed?: Observed;
  /** The desired state: with it, actions are grouped by channel. */
  desired?: DesiredState;
}

/** A code span that survives any content (row filters may hold backticks). */
function code(text: string): string {
  const fence = text.includes('`') ? '``' : '`';
  return `${fence}${fence === '``' ? ' ' : ''}${text}${fence === '``' ? ' ' : ''}${fence}`;
}

function tableDef(t: PublishedTable | undefined): string {
  if (!t) return '(not published)';
  const parts = [t.columns ? `columns (${t.columns.join(', ')})` : 'all columns'];
  parts.push(t.rowFilter ? `WHERE ${t.rowFilter}` : 'all rows');
  return parts.join(', ');
}

function region(ctx: MarkdownContext, name: string): ReachableRegion | null {
  const o = ctx.observed?.regions.find((r) => r.region === name);
  return o?.reachable ? o : null;
}

/** The published definition before the plan: the marker regionctl wrote, else the catalog's. */
function previousTables(
  ctx: MarkdownContext,
  a: Action & { kind: 'alter-publication' },
): PublishedTable[] | null {
  const pub = region(ctx, a.region)?.publications.find((p) => p.name === a.publication.name);
  if (!pub) return null;
  const marker = parseMarker(pub.comment);
  if (marker) return marker.tables;
  return pub.tables.map((t) => {
    const out: PublishedTable = { table: t.table };
    if (t.rowFilter) out.rowFilter = t.rowFilter;
    if (t.columns) out.columns = t.columns;
    return out;
  });
}

/** before → after lines of one action (empty when the description says it all). */
export function changeLines(a: Action, ctx: MarkdownContext): string[] {
  switch (a.kind) {
    case 'install-heartbeat':
      return [`${code('regionctl.heartbeat')}: (none) → created`];
    case 'set-guard': {
      const seen = region(ctx, a.region)?.guards ?? [];
      return a.guard.roles.map((role) => {
        const g = seen.find((x) => x.role === role);
        const before = !g?.exists
          ? 'missing'
          : g.writableTables.length > 0 && !g.defaultReadOnly
            ? 'read-write'
            : g.writableTables.length === 0 && g.defaultReadOnly
              ? 'read-only'
              : 'partly writable';
        return `role ${code(role)}: ${before} → ${a.guard.mode}`;
      });
    }
    case 'create-publication':
      return a.publication.tables.map((t) => `${code(t.table)}: (none) → ${code(tableDef(t))}`);
    case 'alter-publication': {
      const prev = previousTables(ctx, a);
      if (!prev) return [];
      const before = new Map(prev.map((t) => [t.table, t]));
      const after = new Map(a.publication.tables.map((t) => [t.table, t]));
      const names = [...new Set([...before.keys(), ...after.keys()])].sort();
      const out: string[] = [];
      for (const n of names) {
        const b = before.get(n);
        const x = after.get(n);
        if (b && x && tableDef(b) === tableDef(x)) continue;
        out.push(
          `${code(n)}: ${b ? code(tableDef(b)) : '(not published)'} → ${x ? code(tableDef(x)) : '(not published)'}`,
        );
      }
      return out;
    }
    case 'drop-publication':
      return [`publication ${code(a.name)}: exists → (none)`];
    case 'create-subscription':
      return [
        `subscription ${code(a.subscription.name)}: (none) → publication ${code(a.subscription.publication)} on ${a.subscription.fromRegion}, slot ${code(a.subscription.slotName)}`,
      ];
    case 'enable-subscription':
      return [`subscription ${code(a.name)}: disabled → enabled`];
    case 'refresh-subscription':
      return [];
    case 'drop-subscription':
      return [`subscription ${code(a.name)}: exists → (none)`];
    case 'truncate-tables':
      return [`${a.tables.map(code).join(', ')}: current rows → emptied, then copied again`];
    default:
      return assertNever(a);
  }
}

/** Which channel an action belongs to, for grouping; null for region-wide actions. */
function channelOf(a: Action, desired: DesiredState | undefined): string | null {
  const channels = desired?.channels ?? [];
  const label = (from: string, to: string) => `${from} → ${to}`;
  switch (a.kind) {
    case 'install-heartbeat':
    case 'set-guard':
      return null;
    case 'create-publication':
    case 'alter-publication':
      return label(a.region, a.publication.forRegion);
    case 'create-subscription':
      return label(a.subscription.fromRegion, a.region);
    case 'enable-subscription':
    case 'refresh-subscription':
    case 'drop-subscription': {
      const c = channels.find((x) => x.subscription.name === a.name);
      return c ? label(c.from, c.to) : `subscription ${a.name}`;
    }
    case 'drop-publication': {
      const c = channels.find((x) => x.publication.name === a.name && x.from === a.region);
      return c ? label(c.from, c.to) : `publication ${a.name}`;
    }
    case 'truncate-tables': {
      const c = channels.find((x) => x.to === a.region);
      return c ? label(c.from, c.to) : null;
    }
    default:
      return assertNever(a);
  }
}

/**
 * Deterministic markdown for a pull-request comment: header (spec commit, plan hash),
 * counts by risk, then per region (sorted) and channel the actions in plan order with
 * their risk label and before → after. Plans hold no secrets by construction; the text
 * is still passed through the password redaction before it leaves.
 */
export function renderMarkdown(plan: Plan, ctx: MarkdownContext): string {
  const out: string[] = [];
  out.push(`### regionctl plan — \`${plan.database}\``);
  out.push('');
  out.push(
    `Spec \`${ctx.specPath}\`${ctx.specCommit ? ` at \`${ctx.specCommit.slice(0, 12)}\`` : ' (not committed)'} · primary **${plan.primary}** · plan hash \`${plan.hash.slice(0, 16)}\``,
  );
  out.push('');
  out.push(summaryLine(plan));
  const counts = countByRisk(plan.actions);
  if (plan.actions.length > 0) {
    out.push('');
    out.push('| risk | count |');
    out.push('|---|---|');
    for (const k of Object.keys(counts).sort()) out.push(`| ${RISK_LABEL[k as Risk]} | ${counts[k]} |`);
  }
  const step = new Map(plan.actions.map((a, i) => [a, i + 1]));
  const regions = [...new Set(plan.actions.map((a) => a.region))].sort();
  for (const r of regions) {
    out.push('');
    out.push(`#### ${r}`);
    const mine = plan.actions.filter((x) => x.region === r);
    const groups = [...new Set(mine.map((a) => channelOf(a, ctx.desired)))];
    for (const g of groups) {
      out.push('');
      out.push(g === null ? '_region-wide_' : `_channel ${g}_`);
      out.push('');
      for (const a of mine.filter((x) => channelOf(x, ctx.desired) === g)) {
        out.push(`- ${step.get(a)}. **${RISK_LABEL[a.risk]}** ${describeAction(a)} — ${a.reason}`);
        for (const line of changeLines(a, ctx)) out.push(`  - ${line}`);
      }
    }
  }
  if (plan.problems.length > 0 || plan.unreachable.length > 0) {
    out.push('');
    out.push('#### Problems');
    out.push('');
    for (const p of plan.problems) {
      out.push(
        `- ${p.severity === 'error' ? '⛔' : '⚠️'} \`${p.code}\`${p.region ? ` (${p.region})` : ''} ${p.message}. _${p.hint}_`,
      );
    }
  }
  return redactPasswords(`${out.join('\n')}\n`);
}

/**
 * The last line of defence for output that leaves the machine (PR comments): every
 * known secret value is masked wherever it appears. Values shorter than 6 characters
 * are skipped: masking them would shred ordinary words and protect little.
 */
export function scrubSecrets(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const s of [...new Set(secrets)].filter((x) => x.length >= 6).sort((a, b) => b.length - a.length)) {
    // Until none is left: masking can join the text around it into the secret again.
    while (out.includes(s)) out = out.split(s).join('***');
  }
  return out;
}

export function renderJson(plan: Plan): string {
  return `${JSON.stringify(plan, null, 2)}\n`;
}
