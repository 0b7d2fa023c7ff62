/**
 * Prometheus endpoint for `regionctl reconcile --watch --metrics-port`: the figures of the
 * latest reconcile pass in the text exposition format (0.0.4), written here rather than
 * pulled in from a client library — a handful of gauges does not need one.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RegionctlError } from '../errors.js';
import type { DriftOwner } from '../observe/drift.js';
import type { ChannelStatus } from '../observe/health.js';
import type { ReconcileResult } from '../reconcile/reconcile.js';

export interface MetricsServerOptions {
  port: number;
  /** Loopback by default: metrics name regions and hosts; expose them on purpose. */
  host?: string;
  latest: () => ReconcileResult | null;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

const STATUSES: ChannelStatus[] = ['active', 'alert', 'lagging', 'failed'];
const OWNERS: DriftOwner[] = ['regionctl apply', 'operator', 'spec author'];

type Labels = Record<string, string>;

/** Label values escape backslash, double quote and line feed (exposition format). */
export function escapeLabelValue(v: string): string {
  return v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');
}

function escapeHelp(v: string): string {
  return v.replaceAll('\\', '\\\\').replaceAll('\n', '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}

class Exposition {
  private readonly lines: string[] = [];

  family(name: string, help: string, samples: { labels: Labels; value: number | null }[]): void {
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} gauge`);
    for (const s of samples) {
      // Unknown is no sample: a NaN would make `lag > threshold` rules silently false anyway.
      if (s.value === null) continue;
      const labels = Object.entries(s.labels)
        .map(([k, v]) => `${k}="${escapeLabelValue(v)}"`)
        .join(',');
      this.lines.push(`${name}${labels ? `{${labels}}` : ''} ${formatValue(s.value)}`);
    }
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

export function renderMetrics(r: ReconcileResult | null): string {
  const x = new Exposition();
  const channels = r?.channels ?? [];
  const ch = (c: { from: string; to: string }): Labels => ({ from: c.from, to: c.to });
  x.family(
    'regionctl_channel_lag_bytes',
    'WAL bytes the secondary has not applied yet (primary current LSN minus applied upstream LSN).',
    channels.map((c) => ({ labels: ch(c), value: c.lagBytes })),
  );
  x.family(
    'regionctl_channel_lag_seconds',
    "Age of the oldest change the secondary has not applied, by the primary's clock.",
    channels.map((c) => ({ labels: ch(c), value: c.lagSeconds })),
  );
  x.family(
    'regionctl_channel_status',
    'Channel status: 1 for the current status, 0 for the others.',
    channels.flatMap((c) =>
      STATUSES.map((s) => ({ labels: { ...ch(c), status: s }, value: c.status === s ? 1 : 0 })),
    ),
  );
  x.family(
    'regionctl_channel_rpo_alert_seconds',
    'Lag in seconds above which the channel alerts (rpo.alertSeconds).',
    channels.map((c) => ({ labels: ch(c), value: c.alertSeconds })),
  );
  x.family(
    'regionctl_channel_rpo_failover_max_lag_seconds',
    'Lag in seconds above which the secondary is not a failover candidate (rpo.failoverMaxLagSeconds).',
    channels.map((c) => ({ labels: ch(c), value: c.failoverMaxLagSeconds })),
  );
  x.family(
    'regionctl_channel_catch_up_seconds',
    'Seconds to catch up at the observed write and apply rates (absent when not catching up).',
    channels.map((c) => ({ labels: ch(c), value: c.catchUpSeconds })),
  );
  x.family(
    'regionctl_region_reachable',
    'Whether the region answered the last observation (1) or not (0).',
    (r?.regions ?? []).map((g) => ({ labels: { region: g.region }, value: g.reachable ? 1 : 0 })),
  );
  x.family(
    'regionctl_reconcile_duration_seconds',
    'Duration of the last reconcile pass.',
    r ? [{ labels: {}, value: r.durationMs / 1000 }] : [],
  );
  x.family(
    'regionctl_reconcile_last_timestamp_seconds',
    'When the last reconcile pass observed (Unix time): a stale value means the loop is stuck.',
    r ? [{ labels: {}, value: Date.parse(r.at) / 1000 }] : [],
  );
  x.family(
    'regionctl_reconcile_leader',
    'Whether this reconciler holds the leader lock (1) or stands by (0).',
    r ? [{ labels: {}, value: r.leader ? 1 : 0 }] : [],
  );
  x.family(
    'regionctl_drift_items',
    'Drift items between regions.yaml and reality in the last pass.',
    r ? [{ labels: {}, value: r.drift.length }] : [],
  );
  x.family(
    'regionctl_drift_items_by_owner',
    'Drift items by who should act.',
    r
      ? OWNERS.map((o) => ({ labels: { owner: o }, value: r.drift.filter((d) => d.owner === o).length }))
      : [],
  );
  const a = r?.authority;
  x.family(
    'regionctl_authority_quorum',
    'Whether the authority (etcd) answered with a working majority in the last pass (1) or not (0): at 0 no automatic transition runs.',
    a ? [{ labels: {}, value: a.quorum ? 1 : 0 }] : [],
  );
  x.family(
    'regionctl_authority_epoch',
    "The authority's topology epoch (each failover or switchover adds one).",
    a?.epoch != null ? [{ labels: {}, value: a.epoch }] : [],
  );
  x.family(
    'regionctl_authority_primary_lease_held',
    "Whether the primary region's agent holds the primary lease at the current epoch (1) or not (0).",
    a?.quorum && a.primary
      ? [
          {
            labels: { region: a.primary },
            value: a.primaryLease?.region === a.primary && a.primaryLease.epoch === a.epoch ? 1 : 0,
          },
        ]
      : [],
  );
  x.family(
    'regionctl_agent_alive',
    "Whether the region's agent holds its region lease (1) or not (0).",
    a?.quorum ? a.agents.map((g) => ({ labels: { region: g.region }, value: g.alive ? 1 : 0 })) : [],
  );
  x.family(
    'regionctl_agent_self_fenced',
    'Whether the region agent reports its database fenced by itself (1) or not (0).',
    a?.quorum
      ? a.agents.map((g) => ({
          labels: { region: g.region },
          value: g.selfFenced === null ? null : g.selfFenced ? 1 : 0,
        }))
      : [],
  );
  return x.text();
}

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const host = opts.host ?? '127.0.0.1';
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      let body: string;
      try {
        body = renderMetrics(opts.latest());
      } catch (e) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(e as Error).message}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (path === '/healthz') {
      // Alive is enough: whether the passes are fresh is what the metrics are for.
      res.writeHead(200, { 'content-type': 'text/plain' }).end(req.method === 'HEAD' ? undefined : 'ok\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  });
  // Scrapers keep connections alive; close() must not wait for them.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException) => {
      reject(
        new RegionctlError(
          'E_METRICS_PORT',
          `cannot serve metrics on ${host}:${opts.port}: ${e.code ?? e.message}`,
          e.code === 'EADDRINUSE'
            ? 'another process uses the port: choose another --metrics-port'
            : undefined,
        ),
      );
    };
    server.once('error', onError);
    server.listen(opts.port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
