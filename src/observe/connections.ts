/**
 * Observation connections: one pg.Client per region, kept open across `reconcile --watch`
 * passes. Connecting costs a TCP handshake, TLS and SCRAM authentication (several round
 * trips, and PBKDF2 on both ends) — most of a pass on loopback, more between regions.
 *
 * A connection goes back into the cache only after an observation succeeded on it; one
 * that broke (its server restarted, the network reset it) is noticed by its 'error' /
 * 'end' events and replaced on the next checkout; one whose query timed out is destroyed
 * by the observer, never reused: its protocol state is unknown (a reply may still come).
 *
 * `reconcile --watch` scopes its loop with `run`, so every observation made inside it —
 * the pass, the failover check, fencing, rejoin — uses the cache without each call site
 * passing it along; one-shot commands (status, plan) observe with fresh connections.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import { type ConnectOptions, clientConfig, type Target } from '../sql/connect.js';

/**
 * TCP keepalive probes start after this much idleness (the OS default is two hours): a
 * connection idle between passes keeps NAT and firewall state alive, and a peer that
 * vanished is noticed instead of being written to.
 */
export const KEEPALIVE_INITIAL_DELAY_MS = 10_000;

/** A lock held on a table must make the observer report, not hang (set at connect: no round trip). */
const LOCK_TIMEOUT_MS = 500;

/** How long a graceful close may take before the socket is destroyed (a vanished peer never acknowledges). */
const CLOSE_TIMEOUT_MS = 1000;

export class ObserverConnection {
  /** Set when the connection errored or ended, or was closed or destroyed: never reuse it. */
  broken = false;
  /** Whether the heartbeat table was installed at the last observation (pipeline its read). */
  heartbeatInstalled = false;

  private constructor(readonly client: pg.Client) {
    // An idle client whose server dies emits 'error'; without a listener Node would crash.
    client.on('error', () => {
      this.broken = true;
    });
    client.on('end', () => {
      this.broken = true;
    });
  }

  /**
   * Connects with the observer's session settings. Pipeline mode writes the observer's
   * statements back to back and the server answers them in order: one round trip.
   */
  static async open(target: Target, opts: ConnectOptions): Promise<ObserverConnection> {
    const client = new pg.Client({
      ...clientConfig(target, opts),
      lock_timeout: LOCK_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
      pipeline: true,
    });
    const conn = new ObserverConnection(client);
    try {
      await client.connect();
    } catch (e) {
      conn.destroy();
      throw e;
    }
    return conn;
  }

  /** Immediately, without a goodbye: for a connection in an unknown state (a timed-out query). */
  destroy(): void {
    this.broken = true;
    this.client.connection.stream.destroy();
  }

  /** Politely (Terminate), but never waiting on a peer that does not answer. */
  async close(): Promise<void> {
    if (this.broken) {
      // Errored or ended already: there is nobody to say goodbye to, and pg's end() would
      // wait for an 'end' event that has been emitted before.
      this.destroy();
      return;
    }
    this.broken = true;
    let timer: NodeJS.Timeout | undefined;
    const bounded = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.destroy();
        resolve();
      }, CLOSE_TIMEOUT_MS);
    });
    await Promise.race([this.client.end().catch(() => {}), bounded]);
    clearTimeout(timer);
  }
}

export interface ObserverConnectionStats {
  /** Connections opened for the cache. */
  opened: number;
  /** Checkouts that found an open connection. */
  reused: number;
  /** Connections dropped: broken, timed out, failed, or their target changed. */
  discarded: number;
}

interface Slot {
  key: string;
  conn: ObserverConnection | null;
  busy: boolean;
}

/** A checked-out connection; `release` gives it back (kept only after a success) or closes it. */
export interface Checkout {
  conn: ObserverConnection;
  /** It served an earlier observation (it may have broken since, unnoticed). */
  reused: boolean;
  /** Keep it for the next observation (true only after a success), else close it. */
  release(keep: boolean): Promise<void>;
}

const scope = new AsyncLocalStorage<ObserverConnections>();

/** The cache of the enclosing `ObserverConnections.run`, if any. */
export function currentObserverConnections(): ObserverConnections | undefined {
  return scope.getStore();
}

/** What a connection was opened with: another endpoint or session setting must not reuse it. */
function targetKey(t: Target, opts: ConnectOptions): string {
  const ep = t.endpoint;
  // The password *reference* ({ env } / { file }), never the secret.
  const endpoint = [ep.host, ep.port, ep.user, ep.sslmode ?? null, ep.password ?? null, t.database];
  return JSON.stringify([...endpoint, opts.statementTimeoutMs ?? null, opts.applicationName ?? null]);
}

export class ObserverConnections {
  private readonly slots = new Map<string, Slot>();
  private closed = false;
  readonly stats: ObserverConnectionStats = { opened: 0, reused: 0, discarded: 0 };

  /** Runs `fn` with this cache as the default of every observation made inside it. */
  run<T>(fn: () => T): T {
    return scope.run(this, fn);
  }

  /**
   * The region's connection: the cached one if it is still open, else a new one. A second
   * observation of the same region while the first runs (or after close) gets a connection
   * of its own, closed after use: one client never carries two observations' timeouts.
   */
  async checkout(region: string, target: Target, opts: ConnectOptions): Promise<Checkout> {
    const key = targetKey(target, opts);
    let slot = this.slots.get(region);
    if (this.closed || slot?.busy) {
      const conn = await ObserverConnection.open(target, opts);
      return { conn, reused: false, release: () => conn.close() };
    }
    if (!slot) {
      slot = { key, conn: null, busy: false };
      this.slots.set(region, slot);
    }
    const s = slot;
    s.busy = true;
    try {
      if (s.conn && (s.conn.broken || s.key !== key)) {
        this.stats.discarded++;
        await s.conn.close();
        s.conn = null;
      }
      s.key = key;
      const reused = s.conn !== null;
      if (s.conn) this.stats.reused++;
      else {
        s.conn = await ObserverConnection.open(target, opts);
        this.stats.opened++;
      }
      const conn = s.conn;
      return {
        conn,
        reused,
        release: async (keep: boolean) => {
          s.busy = false;
          if (keep && !conn.broken && !this.closed) return;
          if (s.conn === conn) s.conn = null;
          this.stats.discarded++;
          await conn.close();
        },
      };
    } catch (e) {
      s.busy = false;
      throw e;
    }
  }

  /** Connections open now (idle or in use). */
  get size(): number {
    return [...this.slots.values()].filter((s) => s.conn && !s.conn.broken).length;
  }

  /** Closes every cached connection; later observations through this cache use fresh ones. */
  async close(): Promise<void> {
    this.closed = true;
    const open = [...this.slots.values()].flatMap((s) => (s.conn && !s.busy ? [s.conn] : []));
    for (const s of this.slots.values()) if (!s.busy) s.conn = null;
    await Promise.all(open.map((c) => c.close()));
  }
}
