/** Fence hooks for an old primary that cannot be reached at SQL level. */
import { runFenceCommand } from '../providers/fence/command.js';
import type { RegionsSpec } from '../spec/schema.js';

export async function runFenceHooks(spec: RegionsSpec, region: string) {
  const out = [];
  for (const m of spec.failover.fencing) {
    if (m.method !== 'command') continue;
    out.push(await runFenceCommand(m, region));
  }
  return out;
}
