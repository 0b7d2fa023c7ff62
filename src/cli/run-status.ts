/** `regionctl status`: one observation (or a refreshing view), no writes. */
import { logSink } from '../alerts/sink.js';
import { openAuthorityFromSpec } from '../authority/index.js';
import { reconcileOnce } from '../reconcile/reconcile.js';
import { renderStatus } from '../reconcile/render.js';
import { loadSpecOrThrow } from '../spec/load.js';
import { controlTarget } from '../sql/connect.js';
import { openStore, type Store } from '../store/store.js';

export async function runStatus(opts: {
  spec: string;
  format: string;
  watch?: boolean;
  interval: number;
}): Promise<number> {
  const { spec, dir } = await loadSpecOrThrow(opts.spec);
  let store: Store | null = null;
  try {
    store = await openStore(controlTarget(spec, dir));
  } catch (e) {
    process.stderr.write(`warning: ${(e as Error).message}; showing what the regions say\n`);
  }
  const sink = logSink((l) => process.stderr.write(`${l}\n`));
  const authority = openAuthorityFromSpec(spec, dir);
  try {
    for (;;) {
      const r = await reconcileOnce({
        spec,
        specDir: dir,
        store,
        sink,
        leader: false,
        ...(authority ? { authority } : {}),
      });
      const text = opts.format === 'json' ? `${JSON.stringify(r, null, 2)}\n` : renderStatus(r);
      if (opts.watch && process.stdout.isTTY) process.stdout.write('\x1b[2J\x1b[H');
      process.stdout.write(text);
      if (!opts.watch)
        return r.channels.every((c) => c.status === 'active') && r.authority?.quorum !== false ? 0 : 1;
      await new Promise((res) => setTimeout(res, opts.interval * 1000));
    }
  } finally {
    await store?.close();
    await authority?.close();
  }
}
