/** `regionctl failover`, `switchover`, `events`. */
import { prepareFailover, runFailover } from '../failover/failover.js';
import { runSwitchover } from '../failover/switchover.js';
import { writeBackAfter } from '../failover/write-back-hook.js';
import { RECONCILE_LOCK } from '../reconcile/watch.js';
import { loadSpecOrThrow } from '../spec/load.js';
import { controlTarget } from '../sql/connect.js';
import { acquireLeaderLock } from '../store/leader-lock.js';
import { openStore, type Store } from '../store/store.js';

const log = (line: string) => process.stderr.write(`${line}\n`);

async function withLeader<T>(
  specPath: string,
  fn: (ctx: {
    spec: Awaited<ReturnType<typeof loadSpecOrThrow>>['spec'];
    dir: string;
    file: string;
    store: Store;
  }) => Promise<T>,
): Promise<T> {
  const { spec, dir, file } = await loadSpecOrThrow(specPath);
  const target = controlTarget(spec, dir);
  const store = await openStore(target);
  // Transitions run under the reconciler's leader lock: a person and the daemon never act at once.
  const lock = await acquireLeaderLock(target, RECONCILE_LOCK, { wait: true, timeoutMs: 10_000 });
  try {
    return await fn({ spec, dir, file, store });
  } finally {
    await lock.release();
    await store.close();
  }
}

export async function runFailoverCommand(opts: {
  spec: string;
  to?: string;
  force?: boolean;
  dryRun?: boolean;
  reason: string;
  format: string;
  writeBackRemote?: string;
  writeBackBase?: string;
}): Promise<number> {
  return withLeader(opts.spec, async ({ spec, dir, file, store }) => {
    const base = {
      spec,
      specDir: dir,
      store,
      log,
      force: Boolean(opts.force),
      trigger: opts.reason,
      ...(opts.to ? { to: opts.to } : {}),
    };
    const prep = await prepareFailover(base);
    const c = prep.choice;
    if (opts.format === 'json' && opts.dryRun) {
      process.stdout.write(`${JSON.stringify({ primary: prep.desired.primary, choice: c }, null, 2)}\n`);
      return c.refusal && !opts.force ? 1 : 0;
    }
    process.stdout.write(`failover from ${prep.desired.primary} (epoch ${prep.epoch})\n`);
    for (const r of c.ranking) {
      process.stdout.write(
        `  ${r.region.padEnd(16)} ${r.eligible ? 'eligible' : 'not eligible'}  applied ${r.appliedLsn ?? '-'}  priority ${r.priority === Number.MAX_SAFE_INTEGER ? '-' : r.priority}  ${r.eligible ? '' : r.why}\n`,
      );
    }
    process.stdout.write(
      `candidate: ${c.candidate ?? 'none'}; expected loss: ${c.loss.bytes ?? '?'} bytes, window ${c.loss.windowSeconds?.toFixed(1) ?? '?'} s (${c.loss.note})\n`,
    );
    if (c.refusal) process.stdout.write(`${opts.force ? 'FORCED past' : 'refused'}: ${c.refusal}\n`);
    if (opts.dryRun) return c.refusal && !opts.force ? 1 : 0;
    const out = await runFailover(base, prep);
    await writeBackAfter(
      opts.writeBackRemote
        ? { remote: opts.writeBackRemote, baseBranch: opts.writeBackBase ?? 'main' }
        : undefined,
      store,
      { specFile: file, eventId: out.eventId, kind: 'failover', newPrimary: out.to, reason: opts.reason },
      log,
    );
    const summary = { ...out, choice: undefined };
    process.stdout.write(
      opts.format === 'json'
        ? `${JSON.stringify(summary, null, 2)}\n`
        : `failover event ${out.eventId}: ${out.from} → ${out.to} done in ${out.executionMs} ms (fence ${out.fenceConfirmed ? 'confirmed' : 'NOT confirmed'}, DNS ${out.dnsMoved ? 'moved' : 'NOT moved'})\n`,
    );
    return 0;
  });
}

export async function runSwitchoverCommand(opts: {
  spec: string;
  to: string;
  dryRun?: boolean;
  format: string;
}): Promise<number> {
  return withLeader(opts.spec, async ({ spec, dir, store }) => {
    if (opts.dryRun) {
      process.stdout.write(`switchover to ${opts.to}: checks run at execution; nothing changed (dry run)\n`);
      return 0;
    }
    const out = await runSwitchover({
      spec,
      specDir: dir,
      store,
      log,
      force: false,
      trigger: 'switchover',
      to: opts.to,
    });
    process.stdout.write(
      opts.format === 'json'
        ? `${JSON.stringify(out, null, 2)}\n`
        : `switchover event ${out.eventId}: ${out.from} → ${out.to}; writes failed for ${out.writeUnavailableMs} ms, DNS moved after ${out.dnsMs} ms; no data lost\n`,
    );
    return 0;
  });
}

export async function runEvents(opts: { spec: string; limit: string; format: string }): Promise<number> {
  const { spec, dir } = await loadSpecOrThrow(opts.spec);
  const store = await openStore(controlTarget(spec, dir));
  try {
    const events = await store.listFailoverEvents(Number(opts.limit) || 20);
    if (opts.format === 'json') {
      const withSteps = [];
      for (const e of events) withSteps.push({ ...e, steps: await store.failoverSteps(e.id) });
      process.stdout.write(`${JSON.stringify(withSteps, null, 2)}\n`);
      return 0;
    }
    if (events.length === 0) process.stdout.write('no failover events\n');
    for (const e of events) {
      process.stdout.write(
        `#${e.id} ${e.kind} ${e.fromRegion} → ${e.toRegion} ${e.status}${e.forced ? ' (forced)' : ''} started ${e.startedAt.toISOString()}${e.completedAt ? `, completed ${e.completedAt.toISOString()}` : ''}\n    trigger: ${e.triggerReason}; estimated loss ${e.estimatedLossBytes ?? '?'} B; exact loss ${e.dataLossBytes ?? 'not yet measured'} B\n`,
      );
    }
    return 0;
  } finally {
    await store.close();
  }
}
