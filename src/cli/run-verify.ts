/** `regionctl verify`: read-only; exit 0 equal, 1 differences or violations. */
import { loadSpecOrThrow } from '../spec/load.js';
import { renderVerify } from '../verify/render.js';
import { verifyTopology } from '../verify/verify.js';

export async function runVerify(opts: {
  spec: string;
  tables?: string[];
  format: string;
  chunkRows: number;
}): Promise<number> {
  const { spec, dir } = await loadSpecOrThrow(opts.spec);
  const result = await verifyTopology(spec, dir, {
    chunkRows: opts.chunkRows,
    ...(opts.tables ? { tables: opts.tables } : {}),
    log: (l) => {
      if (l.startsWith('warning')) process.stderr.write(`${l}\n`);
    },
  });
  process.stdout.write(
    opts.format === 'json' ? `${JSON.stringify(result, null, 2)}\n` : renderVerify(result),
  );
  return result.ok ? 0 : 1;
}
