/** `regionctl failover`, `switchover`, `events`. */

import { openAuthorityFromSpec } from '../authority/index.js';
import { prepareFailover, runFailover } from '../failover/failover.js';
import { runSwitchover } from '../failover/switchover.js';
import { writeBackAfter } from '../failover/write-back-hook.js';
import { type ActingRight, withActingRight } from '../leadership/acting-right.js';
import { primaryOf } from '../model/desired.js';
import { promotionGate } from '../safety/gate.js';
import { loadSpecOrThrow } from '../spec/load.js';
import { controlTarget } from '../sql/connect.js';
import { openStore, type Store } from '../store/store.js';

const log = (line: string) => process.stderr.write(`${line}\n`);

type Ctx = {
  spec: Awaited<ReturnType<typeof loadSpecOrThrow>>['spec'];
  dir: string;
  file: string;
  store: Store;
};

/**
 * Opens the store, runs `read` (dry runs: no right needed), then `act` with the right to
 * act (src/leadership/acting-right.ts): a running reconciler steps aside for it, so a
 * person and the daemon never act at once, and it leads again afterwards.
 */
async function withStore<T>(
  specPath: string,
  who: string,
  fn: (ctx: Ctx, act: <R>(body: (right: ActingRight) => Promise<R>) => Promise<R>) => Promise<T>,
): Promise<T> {
  const { spec, dir, file } = await loadSpecOrThrow(specPath);
  const store = await openStore(controlTarget(spec, dir));
  const authority = openAuthorityFromSpec(spec, dir);
  try {
    return await fn({ spec, dir, file, store }, (body) =>
      withActingRight({ spec, specDir: dir, who, authority, log }, body),
    );
  } finally {
    await store.close();
    await authority?.close();
  }
}

/** The authority's promotion gate for a person's failover (none without an authority). */
function manualGate(right: ActingRight, from: string, acceptSplitBrainRisk: boolean) {
  const { authority, leader } = right;
  if (!authority || !leader) return undefined;
  return async (to: string, fenceConfirmed: boolean) => {
    const r = await promotionGate({
      authority,
      leader,
      from,
      to,
      fenceConfirmed,
      acceptSplitBrainRisk,
      log: (m) => log(m),
    });
    return { basis: r.decision.basis, epoch: r.topology.epoch, waitedMs: r.waitedMs };
  };
}

export async function runFailoverCommand(opts: {
  spec: string;
  to?: string;
  force?: boolean;
  acceptSplitBrainRisk?: boolean;
  dryRun?: boolean;
  reason: string;
  format: string;
  writeBackRemote?: string;
  writeBackBase?: string;
}): Promise<number> {
  return withStore(opts.spec, 'failover', async ({ spec, dir, file, store }, act) => {
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
    const out = await act((right) =>
      runFailover({
        ...base,
        ...(opts.acceptSplitBrainRisk ? { acceptSplitBrainRisk: true } : {}),
        ...(right.leader
          ? { gate: manualGate(right, prep.desired.primary, Boolean(opts.acceptSplitBrainRisk)) }
          : {}),
      }),
    );
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
  return withStore(opts.spec, 'switchover', async ({ spec, dir, store }, act) => {
    if (opts.dryRun) {
      process.stdout.write(`switchover to ${opts.to}: checks run at execution; nothing changed (dry run)\n`);
      return 0;
    }
    const out = await act(async (right) => {
      const from = (await store.getTopology())?.primaryRegion ?? primaryOf(spec);
      const gate = manualGate(right, from, false);
      return runSwitchover({
        spec,
        specDir: dir,
        store,
        log,
        force: false,
        trigger: 'switchover',
        to: opts.to,
        ...(gate ? { gate } : {}),
      });
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
