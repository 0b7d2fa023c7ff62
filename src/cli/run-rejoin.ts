/** `regionctl rejoin REGION`. */
import { isAbsolute, resolve } from 'node:path';
import { openAuthorityFromSpec } from '../authority/index.js';
import { withActingRight } from '../leadership/acting-right.js';
import { runRejoin } from '../rejoin/rejoin.js';
import { loadSpecOrThrow } from '../spec/load.js';
import { controlTarget } from '../sql/connect.js';
import { openStore } from '../store/store.js';

export async function runRejoinCommand(
  region: string,
  opts: { spec: string; full?: boolean; dryRun?: boolean; reportDir: string; format: string },
): Promise<number> {
  const { spec, dir } = await loadSpecOrThrow(opts.spec);
  const store = await openStore(controlTarget(spec, dir));
  const authority = openAuthorityFromSpec(spec, dir);
  const log = (l: string) => process.stderr.write(`${l}\n`);
  try {
    if (opts.dryRun) {
      const states = await store.regionStates();
      const topo = await store.getTopology();
      process.stdout.write(
        `rejoin ${region} as a secondary of ${topo?.primaryRegion ?? '(spec primary)'}; region state: ${states.find((s) => s.region === region)?.state ?? 'none'}; mode ${opts.full ? 'full copy' : 'repair divergent rows'} (dry run: nothing changed)\n`,
      );
      return 0;
    }
    const out = await withActingRight({ spec, specDir: dir, who: 'rejoin', authority, log }, () =>
      runRejoin({
        spec,
        specDir: dir,
        store,
        region,
        full: Boolean(opts.full),
        log,
        reportDir: isAbsolute(opts.reportDir) ? opts.reportDir : resolve(dir, opts.reportDir),
      }),
    );
    process.stdout.write(
      opts.format === 'json'
        ? `${JSON.stringify(out, null, 2)}\n`
        : `rejoin event ${out.eventId}: ${out.region} follows ${out.primary}; lost writes: ${out.lostTransactions ?? 'unknown (no evidence slot)'} transaction(s), ${out.lostBytes ?? '?'} bytes; repaired ${out.repairedRows} row(s) (${out.mode}) in ${out.durationMs} ms\n${
            out.comparison
              ? `compared instead of decoded: ${out.comparison.savedRows} row(s) of ${out.region} that differed were saved in schema ${out.comparison.schema} there before the copy; report ${out.comparison.file}\n`
              : ''
          }`,
    );
    return 0;
  } finally {
    await store.close();
    await authority?.close();
  }
}
