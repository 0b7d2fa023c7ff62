/**
 * The Authority on etcd (v3 API, etcd ≥ 3.4, npm client etcd3). Composes the pieces:
 * calls with deadlines (./call.ts), leases (./lease.ts), leadership (./leader.ts),
 * topology and transitions (./topology.ts), agent leases (./holders.ts), health
 * (./health.ts). Key layout: ./keys.ts.
 */
import { RegionctlError } from '../errors.js';
import { EndpointPool } from './call.js';
import type { AuthorityConfig } from './config.js';
import { EtcdHandoff, readHandoff } from './handoff.js';
import { health } from './health.js';
import { defaultHolder, EtcdPrimaryLease, EtcdRegionLease, primaryLease, regionLeases } from './holders.js';
import { type Keys, keys } from './keys.js';
import { EtcdLeader, type LeaderValue } from './leader.js';
import * as topo from './topology.js';
import type {
  Authority,
  AuthorityHealth,
  HandoffHandle,
  HandoffInfo,
  HoldOptions,
  LeaderHandle,
  LeaderInfo,
  PauseInfo,
  PrimaryLeaseHandle,
  PrimaryLeaseInfo,
  RegionLeaseHandle,
  RegionLeaseInfo,
  RegionStatus,
  Topology,
  TransitionRecord,
  TransitionUpdate,
} from './types.js';
import { invalid, json } from './values.js';

/** How often a candidate retries and a leader checks its key: takeover ≤ TTL + this after a loss. */
const MAX_POLL_MS = 500;

export class EtcdAuthority implements Authority {
  readonly prefix: string;
  readonly leaseSeconds: number;
  private readonly pool: EndpointPool;
  private readonly k: Keys;
  private readonly handles = new Set<{ abandon(): void }>();

  constructor(config: AuthorityConfig) {
    if (!config.prefix.startsWith('/'))
      throw invalid(`authority prefix '${config.prefix}' must start with /`);
    this.prefix = config.prefix.replace(/\/+$/, '');
    this.leaseSeconds = config.leaseSeconds;
    this.pool = new EndpointPool(config);
    this.k = keys(this.prefix);
  }

  get endpoints(): string[] {
    return this.pool.endpoints;
  }

  async campaign(identity: string, ttlSeconds = this.leaseSeconds): Promise<LeaderHandle> {
    if (identity.length === 0) throw invalid('a leader needs a non-empty identity');
    const pollMs = Math.min(MAX_POLL_MS, (ttlSeconds * 1000) / 4);
    const handle = new EtcdLeader(this.pool, this.k, identity, ttlSeconds, pollMs, (h) =>
      this.handles.delete(h),
    );
    this.handles.add(handle);
    try {
      await handle.start();
    } catch (e) {
      handle.abandon();
      this.handles.delete(handle);
      throw e;
    }
    return handle;
  }

  async leader(): Promise<LeaderInfo | null> {
    const res = await this.pool.call('leader read', (c, o) => c.get(this.k.leader).options(o).exec());
    const v = json<LeaderValue>(res.kvs[0], this.k.leader);
    return v ? { identity: v.identity, since: v.since } : null;
  }

  async topology(): Promise<Topology | null> {
    return topo.readTopology(this.pool, this.k);
  }

  async ensureTopology(initialPrimary: string): Promise<Topology> {
    return topo.ensureTopology(this.pool, this.k, initialPrimary);
  }

  async casTopology(expected: Topology, next: Topology, leader: LeaderHandle): Promise<Topology> {
    return topo.casTopology(this.pool, this.k, expected, next, this.own(leader));
  }

  async guardedStep(
    leader: LeaderHandle,
    epoch: number,
    update: TransitionUpdate,
  ): Promise<TransitionRecord> {
    return topo.guardedStep(this.pool, this.k, this.own(leader), epoch, update);
  }

  async inFlight(): Promise<TransitionRecord | null> {
    return topo.inFlight(this.pool, this.k);
  }

  async clearTransition(leader: LeaderHandle, id: string): Promise<boolean> {
    return topo.clearTransition(this.pool, this.k, this.own(leader), id);
  }

  async holdRegionLease(
    region: string,
    ttlSeconds: number | undefined,
    status: RegionStatus,
    opts: HoldOptions = {},
  ): Promise<RegionLeaseHandle> {
    const h = await EtcdRegionLease.hold(
      this.pool,
      this.k,
      region,
      ttlSeconds ?? this.leaseSeconds,
      status,
      opts.holder ?? defaultHolder(),
      (x) => this.handles.delete(x),
    );
    if (h.isHeld()) this.handles.add(h);
    return h;
  }

  async regionLeases(): Promise<RegionLeaseInfo[]> {
    return regionLeases(this.pool, this.k);
  }

  async holdPrimaryLease(
    region: string,
    epoch: number,
    ttlSeconds = this.leaseSeconds,
    opts: HoldOptions = {},
  ): Promise<PrimaryLeaseHandle> {
    const h = await EtcdPrimaryLease.hold(
      this.pool,
      this.k,
      region,
      epoch,
      ttlSeconds,
      opts.holder ?? defaultHolder(),
      (x) => this.handles.delete(x),
    );
    if (h.isHeld()) this.handles.add(h);
    return h;
  }

  async primaryLease(): Promise<PrimaryLeaseInfo | null> {
    return primaryLease(this.pool, this.k);
  }

  async requestHandoff(who: string): Promise<HandoffHandle> {
    if (who.length === 0) throw invalid('a handoff request needs a non-empty identity');
    const h = await EtcdHandoff.request(this.pool, this.k, who, this.leaseSeconds, (x) =>
      this.handles.delete(x),
    );
    this.handles.add(h);
    return h;
  }

  async handoff(): Promise<HandoffInfo | null> {
    return readHandoff(this.pool, this.k);
  }

  async setPaused(reason: string | null, by?: string): Promise<void> {
    if (reason === null) {
      await this.pool.call('resume (clear pause)', (c, o) => c.delete().key(this.k.paused).options(o).exec());
      return;
    }
    if (reason.trim().length === 0) throw invalid('a pause needs a reason');
    const value: PauseInfo = { reason, at: new Date().toISOString(), ...(by ? { by } : {}) };
    await this.pool.call('pause', (c, o) =>
      c.put(this.k.paused).value(JSON.stringify(value)).options(o).exec(),
    );
  }

  async paused(): Promise<PauseInfo | null> {
    const res = await this.pool.call('pause read', (c, o) => c.get(this.k.paused).options(o).exec());
    return json<PauseInfo>(res.kvs[0], this.k.paused) ?? null;
  }

  async health(): Promise<AuthorityHealth> {
    return health(this.pool, this.k);
  }

  /**
   * Stops every renewal and poll and closes the connections, so nothing keeps the
   * process alive. Held leases are not revoked: they run out in etcd within their TTL
   * (resign or release first for a prompt handover).
   */
  async close(): Promise<void> {
    for (const h of this.handles) h.abandon();
    this.handles.clear();
    this.pool.close();
  }

  private own(leader: LeaderHandle): EtcdLeader {
    if (!(leader instanceof EtcdLeader) || !leader.belongsTo(this.pool)) {
      throw new RegionctlError(
        'E_STALE_LEADER',
        `'${leader.identity}' is not a leader handle of this authority connection`,
        'use the handle returned by campaign() on the same Authority',
      );
    }
    return leader;
  }
}
