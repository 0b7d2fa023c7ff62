/** Runs every benchmark in its own process (so one's servers or heap cannot skew another's). */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const only = process.argv.slice(2);
const benches = [
  'plan',
  'validate',
  'lab-up',
  'observe',
  'reconcile-memory',
  'failover',
  'rejoin',
  'routing',
  'verify',
  'relay',
  'wan',
].filter((b) => only.length === 0 || only.includes(b));
let failed = 0;
for (const b of benches) {
  process.stdout.write(`\n# bench/${b}\n`);
  const r = spawnSync(process.execPath, [join(here, `${b}.js`)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed === 0 ? 0 : 1;
