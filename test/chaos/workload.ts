/**
 * The fault suite's independent workload: application-like writers that judge
 * regionctl from OUTSIDE. It is written only against `pg` and Node — nothing from src/
 * (not regionctl's code, not the lab's load generator) — so a bug in regionctl cannot
 * also hide in the instrument that is meant to catch it.
 *
 * Two kinds of writer, the two ways real applications find their database:
 *
 * - `dns`: resolves the primary record from the lab's JSON zone file, honouring the
 *   record's ttl (re-resolves at most every ttl seconds, and always after an error), and
 *   reconnects when the answer changes. This is the client regionctl's DNS repointing
 *   is supposed to move.
 * - `sticky`: resolves once at start and keeps talking to that address forever,
 *   reconnecting to the SAME address after errors — a pooled client with cached DNS.
 *   It keeps knocking on the old primary after a failover, so any write the old primary
 *   still accepts (a fencing failure) shows up in its log as an acknowledgement.
 *
 * Every write is one autocommit INSERT of a row whose id the client made up, so the
 * checker (checker.ts) can compare what the clients were told with what the regions
 * hold. The log is JSON lines, one write(2) per line on a file opened for append: a
 * line that was logged survives SIGTERM or SIGKILL of this process. Line types:
 *
 *   start    a writer started                {t, writer, mode, at, pid}
 *   resolve  what a writer resolved          {t, writer, mode, at, region, host, port, serial, source}
 *   conn     connected (server identity)     {t, writer, mode, at, dialed, server}
 *   conn-err could not connect: nothing sent {t, writer, mode, at, dialed, code, message}
 *   send     an INSERT is about to be sent   {t, id, writer, mode, at}
 *   ack      the INSERT returned success     {t, id, writer, mode, at, sent, server, dialed, epoch, region}
 *   err      the INSERT failed: outcome UNKNOWN (it may or may not have committed)
 *                                            {t, id, writer, mode, at, sent, code, message, dialed}
 *   stop     a writer stopped                {t, writer, mode, at, acks, errors}
 *
 * `send` is logged before every attempt so that a write whose outcome was never learnt
 * (the process was killed while it was in flight) is still known to have been tried:
 * the checker treats it, like an `err`, as unknown — neither required nor forbidden.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { setTimeout as sleepTimer } from 'node:timers/promises';
import pg from 'pg';

export type WriterMode = 'dns' | 'sticky';

export interface Address {
  host: string;
  port: number;
}

export interface WorkloadConfig {
  /** Names this workload in ids and logs, e.g. `us-east-1-clients`. */
  id: string;
  /** How many writers. With a mixed `mode` it may be omitted (it is dns + sticky). */
  writers: number;
  /** All writers of one kind, or a mix: `{dns: 2, sticky: 2}` (dns writers first). */
  mode: WriterMode | { dns: number; sticky: number };
  /** The lab's JSON zone file (regionctl's file DNS provider writes it). */
  zoneFile: string;
  /** The record applications resolve, e.g. `primary.db.shop.internal`. */
  primaryRecord: string;
  /** Where to go while the zone file has no such record yet (or no file at all). */
  fallback: Address & { region?: string };
  /** Fills a record's absent host/port: the zone format lets them default to the region's endpoint. */
  regionEndpoints?: Record<string, Address>;
  database: string;
  user: string;
  /** A file holding the password (trailing newline ignored). */
  passwordFile: string;
  /** `schema.table` or `table`, created beforehand with chaosSchemaSql(). */
  table: string;
  /** JSON-lines log, appended to. */
  logFile: string;
  /** Pause between one writer's attempts. */
  intervalMs: number;
  connectTimeoutMs: number;
  /** Bounds each INSERT, client side (a partitioned server never answers) and server side. */
  queryTimeoutMs: number;
  /** Record ttl when the zone record has none (default 5 s, the lab's). */
  defaultTtlSeconds?: number;
}

/** The server as it describes itself, fetched once per connection. */
export interface ServerIdentity {
  /** pg_control_system().system_identifier; null when the role may not read it. Lab servers cloned from one initdb template SHARE it. */
  sysid: string | null;
  /** inet_server_addr(): the server's address of this connection; null over a Unix socket. */
  addr: string | null;
  /** inet_server_port(). */
  port: number | null;
  /** current_setting('cluster_name'), '' when unset. */
  cluster: string;
  /** pg_postmaster_start_time(), ISO: changes when the server restarts. */
  started: string | null;
}

interface Base {
  writer: string;
  mode: WriterMode;
  /** ms since the epoch, this client's clock. */
  at: number;
}
export interface StartLine extends Base {
  t: 'start';
  pid: number;
}
export interface ResolveLine extends Base {
  t: 'resolve';
  region: string;
  host: string;
  port: number;
  /** The zone's serial (the topology epoch); 0 when the fallback was used. */
  serial: number;
  source: 'zone' | 'fallback';
}
export interface ConnLine extends Base {
  t: 'conn';
  dialed: Address;
  server: ServerIdentity;
}
export interface ConnErrLine extends Base {
  t: 'conn-err';
  dialed: Address;
  code: string;
  message: string;
}
export interface SendLine extends Base {
  t: 'send';
  id: string;
}
export interface AckLine extends Base {
  t: 'ack';
  id: string;
  /** ms before the INSERT was sent: the commit happened in [sent, at]. */
  sent: number;
  server: ServerIdentity;
  /** The address this client dialed (a relay's, when there is one). */
  dialed: Address;
  /** The zone serial of the answer that led here (sticky: the one it resolved at start). */
  epoch: number;
  /** The region the client believed it was writing to (from the zone record). */
  region: string;
}
export interface ErrLine extends Base {
  t: 'err';
  id: string;
  sent: number;
  /** SQLSTATE, a Node error code (ECONNRESET) or TIMEOUT / CONNECTION. */
  code: string;
  message: string;
  dialed: Address;
}
export interface StopLine extends Base {
  t: 'stop';
  acks: number;
  errors: number;
}
export type LogLine =
  | StartLine
  | ResolveLine
  | ConnLine
  | ConnErrLine
  | SendLine
  | AckLine
  | ErrLine
  | StopLine;

/** DDL for the workload's table. DDL is not replicated: the suite runs it on EVERY region. */
export function chaosSchemaSql(table: string): string {
  const parts = tableParts(table);
  const schema = parts.length === 2 ? `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(parts[0] ?? '')};\n` : '';
  return `${schema}CREATE TABLE IF NOT EXISTS ${qualified(table)} (
  id text PRIMARY KEY,
  writer text NOT NULL,
  client_ts timestamptz NOT NULL,
  server_ts timestamptz NOT NULL DEFAULT clock_timestamp()
);\n`;
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

function tableParts(table: string): string[] {
  const parts = table.split('.');
  if (parts.length > 2 || !parts.every((p) => IDENT.test(p))) {
    throw new Error(`table '${table}' must be 'name' or 'schema.name' of plain identifiers`);
  }
  return parts;
}

function quoteIdent(s: string): string {
  return `"${s.replaceAll('"', '""')}"`;
}

function qualified(table: string): string {
  return tableParts(table).map(quoteIdent).join('.');
}

/** Validates a parsed JSON config; the error says which field is wrong. */
export function parseWorkloadConfig(raw: unknown): WorkloadConfig {
  if (!raw || typeof raw !== 'object') throw new Error('workload config: expected a JSON object');
  const o = raw as Record<string, unknown>;
  const str = (k: string): string => {
    const v = o[k];
    if (typeof v !== 'string' || v === '')
      throw new Error(`workload config: '${k}' must be a non-empty string`);
    return v;
  };
  const num = (k: string, v: unknown = o[k]): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      throw new Error(`workload config: '${k}' must be a non-negative number`);
    return v;
  };
  const address = (k: string, v: unknown): Address & { region?: string } => {
    const a = v as Record<string, unknown> | undefined;
    if (!a || typeof a.host !== 'string' || typeof a.port !== 'number')
      throw new Error(`workload config: '${k}' must be {host: string, port: number}`);
    return typeof a.region === 'string'
      ? { host: a.host, port: a.port, region: a.region }
      : { host: a.host, port: a.port };
  };

  let mode: WorkloadConfig['mode'];
  let writers: number;
  if (o.mode === 'dns' || o.mode === 'sticky') {
    mode = o.mode;
    writers = num('writers');
  } else if (o.mode && typeof o.mode === 'object') {
    const m = o.mode as Record<string, unknown>;
    mode = { dns: num('mode.dns', m.dns ?? 0), sticky: num('mode.sticky', m.sticky ?? 0) };
    writers = mode.dns + mode.sticky;
    if (o.writers !== undefined && o.writers !== writers)
      throw new Error(`workload config: 'writers' (${String(o.writers)}) must equal mode.dns + mode.sticky`);
  } else {
    throw new Error(`workload config: 'mode' must be "dns", "sticky" or {dns: n, sticky: n}`);
  }
  if (!Number.isInteger(writers) || writers < 1) throw new Error('workload config: need at least one writer');

  let regionEndpoints: Record<string, Address> | undefined;
  if (o.regionEndpoints !== undefined) {
    if (!o.regionEndpoints || typeof o.regionEndpoints !== 'object')
      throw new Error(`workload config: 'regionEndpoints' must be {region: {host, port}}`);
    regionEndpoints = {};
    for (const [region, a] of Object.entries(o.regionEndpoints)) {
      const { host, port } = address(`regionEndpoints.${region}`, a);
      regionEndpoints[region] = { host, port };
    }
  }
  const table = str('table');
  tableParts(table);
  const cfg: WorkloadConfig = {
    id: str('id'),
    writers,
    mode,
    zoneFile: str('zoneFile'),
    primaryRecord: str('primaryRecord'),
    fallback: address('fallback', o.fallback),
    database: str('database'),
    user: str('user'),
    passwordFile: str('passwordFile'),
    table,
    logFile: str('logFile'),
    intervalMs: num('intervalMs'),
    connectTimeoutMs: num('connectTimeoutMs'),
    queryTimeoutMs: num('queryTimeoutMs'),
  };
  if (regionEndpoints) cfg.regionEndpoints = regionEndpoints;
  if (o.defaultTtlSeconds !== undefined) cfg.defaultTtlSeconds = num('defaultTtlSeconds');
  return cfg;
}

/** The mode of each writer, in writer order. */
export function writerModes(cfg: WorkloadConfig): WriterMode[] {
  if (typeof cfg.mode === 'string') return Array.from({ length: cfg.writers }, () => cfg.mode as WriterMode);
  return [
    ...Array.from({ length: cfg.mode.dns }, (): WriterMode => 'dns'),
    ...Array.from({ length: cfg.mode.sticky }, (): WriterMode => 'sticky'),
  ];
}

export interface Resolution extends Address {
  region: string;
  serial: number;
  /** Seconds this answer may be cached. */
  ttl: number;
  source: 'zone' | 'fallback';
}

interface ZoneRecord {
  region?: unknown;
  host?: unknown;
  port?: unknown;
  ttl?: unknown;
}

/**
 * Resolves the primary record the way an application would. Returns undefined when the
 * zone has a record this client cannot turn into an address (no host/port and no
 * regionEndpoints entry for its region) or the file is unreadable JSON: callers keep
 * their previous answer rather than guess. A missing file or record means "no record
 * yet": the fallback.
 */
export function resolvePrimary(cfg: WorkloadConfig): Resolution | undefined {
  const ttlDefault = cfg.defaultTtlSeconds ?? 5;
  const fallback = (): Resolution => ({
    host: cfg.fallback.host,
    port: cfg.fallback.port,
    region: cfg.fallback.region ?? 'fallback',
    serial: 0,
    ttl: ttlDefault,
    source: 'fallback',
  });
  let text: string;
  try {
    text = readFileSync(cfg.zoneFile, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return fallback();
    return undefined;
  }
  let zone: { serial?: unknown; records?: Record<string, ZoneRecord> };
  try {
    zone = JSON.parse(text);
  } catch {
    return undefined; // Writers replace the file atomically, but a foreign writer may not.
  }
  const rec = zone?.records?.[cfg.primaryRecord];
  if (!rec) return fallback();
  if (typeof rec.region !== 'string') return undefined;
  const ep = cfg.regionEndpoints?.[rec.region];
  const host = typeof rec.host === 'string' ? rec.host : ep?.host;
  const port = typeof rec.port === 'number' ? rec.port : ep?.port;
  if (host === undefined || port === undefined) return undefined;
  return {
    host,
    port,
    region: rec.region,
    serial: typeof zone.serial === 'number' ? zone.serial : 0,
    ttl: typeof rec.ttl === 'number' && rec.ttl >= 0 ? rec.ttl : ttlDefault,
    source: 'zone',
  };
}

export interface WorkloadOptions {
  /** Overrides passwordFile (tests). */
  password?: string;
  /** Sees every line as it is logged (tests, progress). */
  onLine?: (line: LogLine) => void;
}

export interface WriterStats {
  writer: string;
  mode: WriterMode;
  acks: number;
  errors: number;
  connErrors: number;
}

export interface Workload {
  /** Stops every writer: in-flight writes finish (bounded by the timeouts) and are logged. */
  stop(): Promise<void>;
  stats(): WriterStats[];
  /** Settles when every writer has stopped (after stop()). */
  readonly done: Promise<void>;
}

/** Starts the writers. The log file is opened for append (created if absent). */
export function startWorkload(cfg: WorkloadConfig, opts: WorkloadOptions = {}): Workload {
  const password = opts.password ?? readFileSync(cfg.passwordFile, 'utf8').replace(/\r?\n$/, '');
  const fd = openSync(cfg.logFile, 'a');
  const log = (line: LogLine) => {
    // One write(2) per whole line on an O_APPEND descriptor: concurrent writers never
    // interleave within a line and nothing sits in a userspace buffer when we are killed.
    writeSync(fd, `${JSON.stringify(line)}\n`);
    opts.onLine?.(line);
  };
  const abort = new AbortController();
  // A process restarted with the same config must not reuse ids (they are primary keys).
  const run = randomBytes(3).toString('hex');
  const writers = writerModes(cfg).map(
    (mode, i) => new Writer(cfg, password, `${cfg.id}-${run}-w${i}`, mode, log, abort.signal),
  );
  const done = Promise.all(writers.map((w) => w.run())).then(() => closeSync(fd));
  let stopping: Promise<void> | undefined;
  return {
    done,
    stats: () => writers.map((w) => w.stats()),
    stop: () => {
      if (!stopping) {
        abort.abort();
        stopping = done;
      }
      return stopping;
    },
  };
}

interface Connection {
  client: pg.Client;
  to: Resolution;
  server: ServerIdentity;
  broken: boolean;
}

class Writer {
  private seq = 0;
  private acks = 0;
  private errors = 0;
  private connErrors = 0;
  private conn: Connection | undefined;
  /** The current answer; for a sticky writer, the one from start, forever. */
  private target: Resolution | undefined;
  private resolvedAt = 0;
  private mustResolve = true;

  constructor(
    private readonly cfg: WorkloadConfig,
    private readonly password: string,
    private readonly name: string,
    private readonly mode: WriterMode,
    private readonly log: (l: LogLine) => void,
    private readonly signal: AbortSignal,
  ) {}

  stats(): WriterStats {
    return {
      writer: this.name,
      mode: this.mode,
      acks: this.acks,
      errors: this.errors,
      connErrors: this.connErrors,
    };
  }

  private base() {
    return { writer: this.name, mode: this.mode, at: Date.now() };
  }

  async run(): Promise<void> {
    this.log({ t: 'start', ...this.base(), pid: process.pid });
    try {
      while (!this.signal.aborted) {
        await this.step();
      }
    } finally {
      this.drop();
      this.log({ t: 'stop', ...this.base(), acks: this.acks, errors: this.errors });
    }
  }

  private async step(): Promise<void> {
    if (this.conn?.broken) {
      // The server closed the idle connection (terminated, restarted): a connection error.
      this.drop();
      if (this.mode === 'dns') this.mustResolve = true;
    }
    this.maybeResolve();
    const target = this.target;
    if (!target) {
      await this.pause(this.retryDelay()); // Unresolvable zone record: try again shortly.
      return;
    }
    if (this.conn && !sameAddress(this.conn.to, target)) this.drop(); // DNS moved: follow it.
    if (!this.conn) {
      const ok = await this.connect(target);
      if (!ok) {
        await this.pause(this.retryDelay());
        return;
      }
    }
    const conn = this.conn;
    if (!conn) return;
    if (this.mode === 'dns') conn.to = target; // Same address; the newest serial is what it believes now.
    await this.write(conn);
    await this.pause(this.cfg.intervalMs);
  }

  /** dns: when the ttl ran out or after an error. sticky: once. */
  private maybeResolve(): void {
    if (this.mode === 'sticky' && this.target) return;
    const now = Date.now();
    if (this.target && !this.mustResolve && now - this.resolvedAt < this.target.ttl * 1000) return;
    const r = resolvePrimary(this.cfg);
    this.resolvedAt = now;
    if (!r) return; // Keep the previous answer (if any); mustResolve stays set.
    this.mustResolve = false;
    const prev = this.target;
    this.target = r;
    if (!prev || !sameAddress(prev, r) || prev.region !== r.region || prev.serial !== r.serial) {
      this.log({
        t: 'resolve',
        ...this.base(),
        region: r.region,
        host: r.host,
        port: r.port,
        serial: r.serial,
        source: r.source,
      });
    }
  }

  private async connect(to: Resolution): Promise<boolean> {
    const client = new pg.Client({
      host: to.host,
      port: to.port,
      database: this.cfg.database,
      user: this.cfg.user,
      password: this.password,
      connectionTimeoutMillis: this.cfg.connectTimeoutMs,
      // Client side: a partitioned server never answers, and statement_timeout cannot fire there.
      query_timeout: this.cfg.queryTimeoutMs,
      statement_timeout: this.cfg.queryTimeoutMs,
      keepAlive: true,
      application_name: this.name.slice(0, 63),
    });
    const conn: Connection = { client, to, server: emptyIdentity(), broken: false };
    // An idle connection whose server dies emits 'error'; unhandled, it would crash the process.
    client.on('error', () => {
      conn.broken = true;
    });
    client.on('end', () => {
      conn.broken = true;
    });
    const dialed = { host: to.host, port: to.port };
    try {
      await client.connect();
      conn.server = await identify(client);
    } catch (e) {
      this.connErrors++;
      this.log({ t: 'conn-err', ...this.base(), dialed, ...describe(e) });
      discard(client);
      if (this.mode === 'dns') this.mustResolve = true;
      return false;
    }
    this.conn = conn;
    this.log({ t: 'conn', ...this.base(), dialed, server: conn.server });
    return true;
  }

  private async write(conn: Connection): Promise<void> {
    const id = `${this.name}-${this.seq++}`;
    const sent = Date.now();
    const dialed = { host: conn.to.host, port: conn.to.port };
    this.log({ t: 'send', id, writer: this.name, mode: this.mode, at: sent });
    try {
      await conn.client.query(
        `INSERT INTO ${qualified(this.cfg.table)}(id, writer, client_ts) VALUES ($1, $2, $3)`,
        [id, this.name, new Date(sent)],
      );
      this.acks++;
      this.log({
        t: 'ack',
        id,
        ...this.base(),
        sent,
        server: conn.server,
        dialed,
        epoch: conn.to.serial,
        region: conn.to.region,
      });
    } catch (e) {
      this.errors++;
      this.log({ t: 'err', id, ...this.base(), sent, ...describe(e), dialed });
      // Whatever failed (fenced role, read-only server, timeout, reset), start over on a
      // fresh connection: the old one may be half-dead. dns writers also ask DNS again.
      this.drop();
      if (this.mode === 'dns') this.mustResolve = true;
      await this.pause(this.retryDelay());
    }
  }

  private drop(): void {
    if (!this.conn) return;
    discard(this.conn.client);
    this.conn = undefined;
  }

  /** After a failure: not faster than every 100 ms, so a refused port does not flood the log. */
  private retryDelay(): number {
    return Math.max(this.cfg.intervalMs, 100);
  }

  private async pause(ms: number): Promise<void> {
    if (ms <= 0 || this.signal.aborted) return;
    await sleepTimer(ms, undefined, { signal: this.signal }).catch(() => {});
  }
}

function sameAddress(a: Address, b: Address): boolean {
  return a.host === b.host && a.port === b.port;
}

function emptyIdentity(): ServerIdentity {
  return { sysid: null, addr: null, port: null, cluster: '', started: null };
}

/**
 * Who answered, as the server says. The system identifier alone does not identify a lab
 * server (the lab clones one initdb template), so addr/port/cluster_name/start time come
 * along. pg_control_system() may be denied to a non-superuser: then sysid is null.
 */
async function identify(client: pg.Client): Promise<ServerIdentity> {
  const r = await client.query<{
    addr: string | null;
    port: number | null;
    cluster: string;
    started: Date | null;
  }>(
    `SELECT host(inet_server_addr()) AS addr, inet_server_port() AS port,
            current_setting('cluster_name') AS cluster, pg_postmaster_start_time() AS started`,
  );
  const row = r.rows[0];
  let sysid: string | null = null;
  try {
    const s = await client.query<{ sysid: string }>(
      'SELECT system_identifier::text AS sysid FROM pg_control_system()',
    );
    sysid = s.rows[0]?.sysid ?? null;
  } catch (e) {
    if ((e as { code?: string }).code !== '42501') throw e; // Only "permission denied" is expected.
  }
  return {
    sysid,
    addr: row?.addr ?? null,
    port: row?.port ?? null,
    cluster: row?.cluster ?? '',
    started: row?.started ? row.started.toISOString() : null,
  };
}

function describe(e: unknown): { code: string; message: string } {
  const err = e as { code?: unknown; message?: unknown };
  const message = typeof err?.message === 'string' ? err.message : String(e);
  if (typeof err?.code === 'string' && err.code) return { code: err.code, message };
  if (/timeout/i.test(message)) return { code: 'TIMEOUT', message };
  return { code: 'CONNECTION', message };
}

/**
 * Close without waiting: a graceful end() to a partitioned server could wait for TCP to
 * give up. end() destroys the socket itself when a query is still active; otherwise it
 * sends Terminate, and the socket is destroyed a moment later if that did not finish.
 */
function discard(client: pg.Client): void {
  const c = client as unknown as { connection?: { stream?: { destroy(): void } } };
  const timer = setTimeout(() => c.connection?.stream?.destroy(), 1000);
  timer.unref();
  client
    .end()
    .catch(() => {})
    .finally(() => clearTimeout(timer));
}
