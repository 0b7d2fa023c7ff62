/**
 * Plans as text (terminal), markdown (pull-request comment) and JSON (machines).
 * Plans hold no secrets by construction: actions carry names and filters, never
 * connection strings.
 */
import type { Action, Risk } from './actions.js';
import { describeAction } from './actions.js';
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
}

/** Deterministic markdown for a pull-request comment, grouped by region. */
export function renderMarkdown(plan: Plan, ctx: MarkdownContext): string {
  const out: string[] = [];
  out.push(`### regionctl plan — \`${plan.database}\``);
  out.push('');
  out.push(
    `Spec \`${ctx.specPath}\`${ctx.specCommit ? ` at \`${ctx.specCommit.slice(0, 12)}\`` : ''} · primary **${plan.primary}** · plan hash \`${plan.hash.slice(0, 16)}\``,
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
  const regions = [...new Set(plan.actions.map((a) => a.region))].sort();
  for (const region of regions) {
    out.push('');
    out.push(`#### ${region}`);
    out.push('');
    for (const a of plan.actions.filter((x) => x.region === region)) {
      out.push(`- **${RISK_LABEL[a.risk]}** ${describeAction(a)} — ${a.reason}`);
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
  return `${out.join('\n')}\n`;
}

export function renderJson(plan: Plan): string {
  return `${JSON.stringify(plan, null, 2)}\n`;
}
