/**
 * The metrics endpoint, scraped over HTTP from a real server: the exposition format
 * (HELP/TYPE, escaped label values), one status series per status, unknown values left
 * out rather than faked, /healthz, and the example alert rules naming real metrics.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { escapeLabelValue, type MetricsServer, startMetricsServer } from '../../src/metrics/prometheus.js';
import type { ChannelHealth } from '../../src/observe/health.js';
import type { ReconcileResult } from '../../src/reconcile/reconcile.js';

function channel(to: string, over: Partial<ChannelHealth> = {}): ChannelHealth {
  return {
    from: 'us-east-1',
    to,
    status: 'active',
    reasons: [],
    primaryLsn: '0/3000000',
    appliedLsn: '0/2FFF000',
    lagBytes: 4096,
    lagSeconds: 0.5,
    lagSecondsSource: 'heartbeat',
    writeRateBps: 1000,
    applyRateBps: 2000,
    catchUpSeconds: 4.1,
    alertSeconds: 10,
    failoverMaxLagSeconds: 60,
    ...over,
  };
}

function result(): ReconcileResult {
  return {
    at: '2025-01-01T00:00:00.000Z',
    durationMs: 42,
    leader: true,
    primary: 'us-east-1',
    epoch: 1,
    regions: [
      {
        region: 'ap-southeast-1',
        role: 'unreachable',
        reachable: false,
        lsn: null,
        reason: 'connection refused',
      },
      { region: 'eu-west-1', role: 'secondary', reachable: true, lsn: '0/2FFF000', reason: null },
      { region: 'us-east-1', role: 'primary', reachable: true, lsn: '0/3000000', reason: null },
    ],
    channels: [
      channel('eu-west-1'),
      channel('ap-southeast-1', {
        status: 'failed',
        lagBytes: null,
        lagSeconds: null,
        catchUpSeconds: null,
        alertSeconds: 30,
        failoverMaxLagSeconds: 300,
      }),
    ],
    drift: [
      {
        kind: 'subscription-disabled',
        region: 'eu-west-1',
        object: 's',
        message: 'm',
        owner: 'regionctl apply',
        advice: 'a',
      },
      {
        kind: 'unmanaged-slot',
        region: 'us-east-1',
        object: 'x',
        message: 'm',
        owner: 'operator',
        advice: 'a',
      },
    ],
    plan: { database: 'shop', primary: 'us-east-1', actions: [], problems: [], unreachable: [], hash: '' },
    alertsRaised: [],
    alertsResolved: [],
  };
}

let server: MetricsServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function scrape(path: string): Promise<{ status: number; type: string | null; body: string }> {
  if (!server) throw new Error('no server');
  const res = await fetch(`http://127.0.0.1:${server.port}${path}`);
  return { status: res.status, type: res.headers.get('content-type'), body: await res.text() };
}

/** name{labels} value lines → map, the way a scraper reads them. */
function samples(body: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of body.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line);
    expect(m, `malformed sample line: ${line}`).not.toBeNull();
    out.set(m?.[1] ?? '', Number(m?.[2]));
  }
  return out;
}

describe('metrics endpoint', () => {
  it('serves the latest pass in the Prometheus text format', async () => {
    const r = result();
    server = await startMetricsServer({ port: 0, latest: () => r });
    const { status, type, body } = await scrape('/metrics');
    expect(status).toBe(200);
    expect(type).toMatch(/^text\/plain; version=0\.0\.4/);
    const s = samples(body);
    expect(s.get('regionctl_channel_lag_bytes{from="us-east-1",to="eu-west-1"}')).toBe(4096);
    expect(s.get('regionctl_channel_lag_seconds{from="us-east-1",to="eu-west-1"}')).toBe(0.5);
    // Unknown lag is absent, not 0 (0 would read as "healthy").
    expect(s.has('regionctl_channel_lag_bytes{from="us-east-1",to="ap-southeast-1"}')).toBe(false);
    expect(s.get('regionctl_channel_status{from="us-east-1",to="ap-southeast-1",status="failed"}')).toBe(1);
    expect(s.get('regionctl_channel_status{from="us-east-1",to="ap-southeast-1",status="active"}')).toBe(0);
    expect(s.get('regionctl_channel_status{from="us-east-1",to="eu-west-1",status="active"}')).toBe(1);
    expect([...s.keys()].filter((k) => k.startsWith('regionctl_channel_status{'))).toHaveLength(8);
    expect(s.get('regionctl_channel_rpo_alert_seconds{from="us-east-1",to="ap-southeast-1"}')).toBe(30);
    expect(s.get('regionctl_region_reachable{region="ap-southeast-1"}')).toBe(0);
    expect(s.get('regionctl_region_reachable{region="us-east-1"}')).toBe(1);
    expect(s.get('regionctl_reconcile_duration_seconds')).toBe(0.042);
    expect(s.get('regionctl_reconcile_leader')).toBe(1);
    expect(s.get('regionctl_drift_items')).toBe(2);
    expect(s.get('regionctl_drift_items_by_owner{owner="operator"}')).toBe(1);
    expect(s.get('regionctl_drift_items_by_owner{owner="spec author"}')).toBe(0);
    // Every family has HELP and TYPE before its samples.
    const families = new Set([...s.keys()].map((k) => k.replace(/\{.*$/, '')));
    for (const f of families) {
      const help = body.indexOf(`# HELP ${f} `);
      const typ = body.indexOf(`# TYPE ${f} gauge`);
      expect(help, f).toBeGreaterThanOrEqual(0);
      expect(typ, f).toBeGreaterThan(help);
      expect(body.indexOf(`\n${f}`)).toBeGreaterThan(typ);
    }
  });

  it('escapes label values', async () => {
    expect(escapeLabelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
    const r = result();
    const first = r.regions[0];
    if (first) first.region = 'we"ird\\re\ngion';
    server = await startMetricsServer({ port: 0, latest: () => r });
    const { body } = await scrape('/metrics');
    expect(body).toContain('regionctl_region_reachable{region="we\\"ird\\\\re\\ngion"} 0');
    samples(body); // still one sample per line
  });

  it('before the first pass: families without samples; /healthz answers; other paths are 404', async () => {
    server = await startMetricsServer({ port: 0, latest: () => null });
    const m = await scrape('/metrics');
    expect(m.status).toBe(200);
    expect(samples(m.body).size).toBe(0);
    expect(m.body).toContain('# TYPE regionctl_channel_lag_seconds gauge');
    const h = await scrape('/healthz');
    expect(h.status).toBe(200);
    expect(h.body).toBe('ok\n');
    expect((await scrape('/nope')).status).toBe(404);
  });

  it('listens on loopback by default and says when the port is taken', async () => {
    server = await startMetricsServer({ port: 0, latest: () => null });
    await expect(startMetricsServer({ port: server.port, latest: () => null })).rejects.toMatchObject({
      code: 'E_METRICS_PORT',
    });
  });

  it('the example alert rules use metrics the endpoint serves', async () => {
    const rules = parse(readFileSync(join(process.cwd(), 'examples', 'prometheus-alerts.yml'), 'utf8')) as {
      groups: { rules: { alert: string; expr: string }[] }[];
    };
    const r = result();
    server = await startMetricsServer({ port: 0, latest: () => r });
    const { body } = await scrape('/metrics');
    const exprs = rules.groups.flatMap((g) => g.rules).map((x) => x.expr);
    expect(exprs.length).toBeGreaterThanOrEqual(4);
    for (const e of exprs) {
      for (const name of e.match(/regionctl_[a-z_]+/g) ?? [])
        expect(body, `${name} in ${e}`).toContain(`# TYPE ${name} gauge`);
    }
  });
});
