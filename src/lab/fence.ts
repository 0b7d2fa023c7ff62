/**
 * The lab's fence outside SQL, for an old primary nobody can reach: it rewrites the
 * region's pg_hba.conf so the application roles are rejected — the lab's equivalent of
 * revoking a security group rule or rotating credentials. It works while the server is
 * down (the file is read when it starts) and is reloaded at once when it is running.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hbaRejectLines, stripHbaBlock } from '../agent/boot-fence.js';
import { RegionctlError } from '../errors.js';
import type { RegionsSpec } from '../spec/schema.js';
import { runningProcess } from './cluster.js';
import { pgBinaries, runAsServer } from './os.js';
import { labServers, resolveStateDir } from './servers.js';

const BEGIN = '# regionctl-fence begin';
const END = '# regionctl-fence end';

function strip(text: string): string {
  return stripHbaBlock(text, BEGIN, END);
}

async function rewrite(
  spec: RegionsSpec,
  region: string,
  opts: { specDir: string; stateDir?: string },
  fenced: boolean,
) {
  const stateDir = resolveStateDir(opts.specDir, opts.stateDir);
  const s = labServers(spec, stateDir).find((x) => x.name === region);
  if (!s)
    throw new RegionctlError('E_UNKNOWN_REGION', `unknown region ${region}`, 'see `regionctl lab status`');
  const file = join(s.dataDir, 'pg_hba.conf');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new RegionctlError(
      'E_LAB_NOT_INITIALISED',
      `${s.label} has no data directory at ${s.dataDir}`,
      'run `regionctl lab up`',
    );
  }
  const block = `${BEGIN}\n${hbaRejectLines(spec.applicationRoles)}${END}\n`;
  // pg_hba.conf is read top-down: the reject lines must come first.
  writeFileSync(file, fenced ? block + strip(text) : strip(text));
  if (runningProcess(s.dataDir)) {
    const { pg_ctl } = await pgBinaries();
    await runAsServer(pg_ctl, ['reload', '-D', s.dataDir, '-s'], { cwd: s.dir });
  }
  return { region, file, fenced };
}

export function fenceLabRegion(
  spec: RegionsSpec,
  region: string,
  opts: { specDir: string; stateDir?: string },
) {
  return rewrite(spec, region, opts, true);
}

export function unfenceLabRegion(
  spec: RegionsSpec,
  region: string,
  opts: { specDir: string; stateDir?: string },
) {
  return rewrite(spec, region, opts, false);
}
