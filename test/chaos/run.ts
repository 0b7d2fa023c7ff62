/**
 * `npm run chaos [-- 1 3 4b]`: every scenario of the fault suite (or those named), one
 * WAN lab each, then the table of the checker's figures. Writes .regionctl/chaos-report.json.
 * Exit 0 when every scenario passed, 1 otherwise, 2 when the WAN lab cannot run here.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { chaosUnsupported } from './harness.js';
import { renderTable, runScenario, SCENARIOS, type ScenarioResult } from './scenarios.js';

const REPORT = '.regionctl/chaos-report.json';
const why = chaosUnsupported();
if (why) {
  process.stderr.write(`chaos: ${why}\n`);
  process.exit(2);
}
const ids = process.argv.slice(2);
const chosen = ids.length ? SCENARIOS.filter((s) => ids.includes(s.id)) : SCENARIOS;
const unknown = ids.filter((i) => !SCENARIOS.some((s) => s.id === i));
if (unknown.length) {
  process.stderr.write(
    `chaos: unknown scenario(s) ${unknown.join(', ')}; have ${SCENARIOS.map((s) => s.id).join(', ')}\n`,
  );
  process.exit(2);
}
const rows: ScenarioResult[] = [];
for (const s of chosen) {
  const t = Date.now();
  process.stderr.write(`chaos: scenario ${s.id} — ${s.name}\n`);
  try {
    const r = await runScenario(s, (m) => process.stderr.write(`  ${m}\n`));
    rows.push(r);
    process.stderr.write(
      `chaos: scenario ${s.id} ${r.ok ? 'PASS' : 'FAIL'} in ${Math.round((Date.now() - t) / 1000)} s${r.ok ? '' : `: ${r.violations.join('; ')}`}\n`,
    );
  } catch (e) {
    process.stderr.write(`chaos: scenario ${s.id} could not run: ${(e as Error).stack}\n`);
    process.exitCode = 1;
  }
}
mkdirSync('.regionctl', { recursive: true });
writeFileSync(REPORT, `${JSON.stringify(rows, null, 2)}\n`);
process.stderr.write(`chaos: report in ${REPORT}\n`);
process.stdout.write(renderTable(rows));
if (rows.some((r) => !r.ok)) process.exitCode = 1;
