/**
 * Connections to regions and to the control store. Every connection has connect and
 * statement timeouts, so an unreachable or hung server becomes an error value quickly
 * instead of a stuck process.
 */
import pg from 'pg';
import { resolveSecret } from '../secrets/resolve.js';
import type { EndpointSpec } from '../spec/schema.js';

export interface ConnectOptions {
  /** Connect timeout in ms (default 3000). */
  connectTimeoutMs?: number;
  /** Statement timeout in ms (default 30000; 0 disables it). */
  statementTimeoutMs?: number;
  applicationName?: string;
}

export interface Target {
  endpoint: EndpointSpec;
  database: string;
  /** Directory of regions.yaml: relative secret paths are resolved against it. */
  specDir: string;
  /** What this is, for error messages: e.g. `region eu-west-1`. */
  label: string;
}

export function clientConfig(t: Target, opts: ConnectOptions = {}): pg.ClientConfig {
  const ep = t.endpoint;
  const cfg: pg.ClientConfig = {
    host: ep.host,
    port: ep.port,
    user: ep.user,
    database: t.database,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 3000,
    application_name: opts.applicationName ?? 'regionctl',
  };
  if (ep.password) cfg.password = resolveSecret(ep.password, t.specDir, `${t.label} password`);
  const st = opts.statementTimeoutMs ?? 30_000;
  if (st > 0) cfg.statement_timeout = st;
  if (ep.sslmode && ep.sslmode !== 'disable' && ep.sslmode !== 'prefer') {
    cfg.ssl = { rejectUnauthorized: ep.sslmode === 'verify-full' };
  }
  return cfg;
}

/** libpq conninfo for CREATE SUBSCRIPTION. Contains the password: never log it. */
export function conninfo(t: Target): string {
  const ep = t.endpoint;
  const parts: [string, string][] = [
    ['host', ep.host],
    ['port', String(ep.port)],
    ['user', ep.user],
    ['dbname', t.database],
    ['application_name', 'regionctl'],
    // Across regions a publisher can vanish without a FIN (a partition). Without these,
    // the subscriber's connects hang for the kernel's SYN retries (minutes) — and so do
    // DROP SUBSCRIPTION and ALTER SUBSCRIPTION, which connect to drop table-sync slots —
    // and a dead stream is noticed only after wal_receiver_timeout (60 s by default).
    ['connect_timeout', '10'],
    ['keepalives', '1'],
    ['keepalives_idle', '10'],
    ['keepalives_interval', '5'],
    ['keepalives_count', '3'],
  ];
  if (ep.password) parts.push(['password', resolveSecret(ep.password, t.specDir, `${t.label} password`)]);
  if (ep.sslmode) parts.push(['sslmode', ep.sslmode]);
  return parts.map(([k, v]) => `${k}=${conninfoValue(v)}`).join(' ');
}

function conninfoValue(v: string): string {
  return `'${v.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`;
}

/** Redacted form of a conninfo string, for plans and logs. */
export function redactConninfo(info: string): string {
  return info.replace(/password='(?:[^'\\]|\\.)*'/g, "password='***'");
}

export async function connect(t: Target, opts: ConnectOptions = {}): Promise<pg.Client> {
  const client = new pg.Client(clientConfig(t, opts));
  // An idle client whose server dies emits 'error'; without a listener Node would crash.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (e) {
    await endWithin(client);
    throw e;
  }
  return client;
}

/**
 * Closes a client, waiting at most `ms` for the server's goodbye. `end()` sends Terminate
 * and waits for the socket to close: across a partition (packets dropped, no RST) that
 * never happens, and a prober or agent awaiting it would hang for good — its vote frozen
 * at the last value. Past the deadline the socket is destroyed.
 */
export async function endWithin(c: pg.Client, ms = 500): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const ended = c.end().then(
    () => true,
    () => true,
  );
  const late = new Promise<boolean>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  const ok = await Promise.race([ended, late]);
  clearTimeout(timer);
  if (!ok) (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
}

/** Rejects after `ms`: for queries whose answer a partition may swallow (statement_timeout is the server's). */
export async function withDeadline<T>(p: Promise<T>, ms: number, what = 'query'): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(t);
  }
}

/** Target of one region's replicated database. */
export function regionTarget(
  spec: { database: string; regions: { name: string; endpoint: EndpointSpec }[] },
  region: string,
  specDir: string,
): Target {
  const r = spec.regions.find((x) => x.name === region);
  if (!r) throw new Error(`unknown region '${region}'`);
  return { endpoint: r.endpoint, database: spec.database, specDir, label: `region ${region}` };
}

/** Target of the control store. */
export function controlTarget(
  spec: { controlStore: EndpointSpec & { database: string } },
  specDir: string,
): Target {
  const { database, ...endpoint } = spec.controlStore;
  return { endpoint, database, specDir, label: 'control store' };
}
