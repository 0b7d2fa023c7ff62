/** `regionctl reconcile --once | --watch`. */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type AlertSink, fanOut, logSink } from '../alerts/sink.js';
import { RegionctlError } from '../errors.js';
import { type ReconcileResult, reconcileOnce } from '../reconcile/reconcile.js';
import { RECONCILE_LOCK, watch } from '../reconcile/watch.js';
import type { RoutingPublication } from '../routing/publish.js';
import { loadSpecOrThrow } from '../spec/load.js';
import type { RegionsSpec } from '../spec/schema.js';
import { controlTarget } from '../sql/connect.js';
import { describeHolder, tryAcquireLeaderLock } from '../store/leader-lock.js';
import { openStore } from '../store/store.js';

const log = (line: string) => process.stderr.write(`${line}\n`);

function reportOf(r: ReconcileResult) {
  return {
    at: r.at,
    leader: r.leader,
    primary: r.primary,
    epoch: r.epoch,
    driftFound: r.drift.length > 0,
    unhealthyChannels: r.channels.filter((c) => c.status !== 'active').length,
    drift: r.drift,
    channels: r.channels,
    regions: r.regions,
  };
}

function logRouting(p: RoutingPublication | null): void {
  if (!p) return;
  for (const m of p.moved) {
    log(JSON.stringify({ level: 'info', msg: 'read record moved', ...m }));
  }
  for (const error of p.errors) log(JSON.stringify({ level: 'error', msg: 'read routing', error }));
}

async function alertSink(spec: RegionsSpec, dir: string): Promise<AlertSink> {
  const sinks: AlertSink[] = [logSink(log)];
  if (spec.alerts?.webhook) {
    const { webhookSink } = await import('../alerts/webhook.js');
    const { resolveSecret } = await import('../secrets/resolve.js');
    sinks.push(webhookSink(resolveSecret(spec.alerts.webhook, dir, 'alerts.webhook'), { timeoutMs: 5000 }));
  }
  return fanOut(sinks, (e) =>
    log(JSON.stringify({ level: 'error', msg: 'alert sink failed', error: String(e) })),
  );
}

export async function runReconcile(opts: {
  spec: string;
  once?: boolean;
  watch?: boolean;
  interval: number;
  report?: string;
  metricsPort?: number;
  writeBackRemote?: string;
  writeBackBase?: string;
  autoRejoin?: boolean;
  reportDir?: string;
}): Promise<number> {
  if (!opts.once && !opts.watch) {
    throw new RegionctlError(
      'E_USAGE_MODE',
      'say --once or --watch',
      'e.g. `regionctl reconcile --once --report drift.json`',
    );
  }
  const { spec, dir, file } = await loadSpecOrThrow(opts.spec);
  const target = controlTarget(spec, dir);
  const store = await openStore(target);
  const sink = await alertSink(spec, dir);
  try {
    if (opts.watch) {
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      let latest: ReconcileResult | null = null;
      const routing = spec.readRouting
        ? new (await import('../routing/publish.js')).RoutingPublisher({ spec, specDir: dir, store })
        : null;
      const metrics = opts.metricsPort
        ? await (await import('../metrics/prometheus.js')).startMetricsServer({
            port: opts.metricsPort,
            latest: () => latest,
          })
        : null;
      const { openAuthorityFromSpec } = await import('../authority/index.js');
      const authority = openAuthorityFromSpec(spec, dir);
      try {
        await watch({
          spec,
          specDir: dir,
          store,
          sink,
          ...(authority ? { authority } : {}),
          intervalMs: opts.interval * 1000,
          signal: ac.signal,
          ...(opts.autoRejoin
            ? { autoRejoin: { reportDir: resolve(dir, opts.reportDir ?? '.regionctl/reports') } }
            : {}),
          ...(opts.writeBackRemote
            ? {
                writeBack: {
                  remote: opts.writeBackRemote,
                  baseBranch: opts.writeBackBase ?? 'main',
                  specFile: file,
                },
              }
            : {}),
          log,
          ...(routing
            ? { onLeaderPass: async (r: ReconcileResult) => logRouting(await routing.publish(r)) }
            : {}),
          onResult: (r) => {
            latest = r;
            if (opts.report) writeFileSync(opts.report, `${JSON.stringify(reportOf(r), null, 2)}\n`);
            const bad = r.channels.filter((c) => c.status !== 'active').map((c) => `${c.to}:${c.status}`);
            log(
              JSON.stringify({
                level: 'info',
                msg: 'reconciled',
                leader: r.leader,
                ms: r.durationMs,
                drift: r.drift.length,
                unhealthy: bad,
              }),
            );
          },
        });
      } finally {
        await authority?.close().catch(() => {});
        await metrics?.close();
      }
      return 0;
    }
    const attempt = await tryAcquireLeaderLock(target, RECONCILE_LOCK, { wait: false });
    if (!attempt.acquired)
      log(`standing by (observing only): ${describeHolder(RECONCILE_LOCK, attempt.holder)}`);
    try {
      const r = await reconcileOnce({ spec, specDir: dir, store, sink, leader: attempt.acquired });
      if (attempt.acquired && spec.readRouting) {
        const { RoutingPublisher } = await import('../routing/publish.js');
        logRouting(await new RoutingPublisher({ spec, specDir: dir, store }).publish(r));
      }
      const report = reportOf(r);
      if (opts.report) writeFileSync(opts.report, `${JSON.stringify(report, null, 2)}\n`);
      const { renderStatus } = await import('../reconcile/render.js');
      process.stdout.write(renderStatus(r));
      return report.driftFound || report.unhealthyChannels > 0 ? 2 : 0;
    } finally {
      if (attempt.acquired) await attempt.lock.release();
    }
  } finally {
    await store.close();
  }
}
