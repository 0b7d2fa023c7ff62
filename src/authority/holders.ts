/**
 * Leases held by region agents:
 *
 * - the region lease: "this region's agent is alive", plus the status it reports (its
 *   probe results). The alive key is leased and vanishes with the agent; the status key
 *   is not, so the last status of a dead agent stays readable.
 * - the primary lease, held by the primary region's agent only, at the epoch that made
 *   it primary. While the key exists the primary may accept writes; its agent fences the
 *   database when the lease is lost (validUntilMs passed, revoked, displaced, or the
 *   topology moved to another epoch). A candidate is promoted only after the key is gone
 *   plus PROMOTION_MARGIN_SECONDS, or after a verified fence.
 */
import { hostname } from 'node:os';
import { RegionctlError } from '../errors.js';
import type { EndpointPool } from './call.js';
import type { Keys } from './keys.js';
import { LeaseKeeper } from './lease.js';
import type {
  LossReason,
  PrimaryLeaseHandle,
  PrimaryLeaseInfo,
  RegionLeaseHandle,
  RegionLeaseInfo,
  RegionStatus,
  Unsubscribe,
} from './types.js';
import { checkEpoch, checkRegion, invalid, json, rangeKv, text } from './values.js';

/** A status is a few probe results, not a document: it goes through raft on every update. */
const MAX_STATUS_BYTES = 8192;

export function defaultHolder(): string {
  return `${hostname()}:${process.pid}`;
}

interface AliveValue {
  holder: string;
  since: string;
}

interface StatusValue {
  status: RegionStatus;
  at: string;
  holder: string;
}

interface PrimaryValue {
  region: string;
  epoch: number;
  holder: string;
  since: string;
}

function statusText(status: RegionStatus, holder: string): string {
  const t = JSON.stringify({ status, at: new Date().toISOString(), holder } satisfies StatusValue);
  if (Buffer.byteLength(t) > MAX_STATUS_BYTES)
    throw invalid(
      `a region status must stay under ${MAX_STATUS_BYTES} bytes as JSON (this one has ${Buffer.byteLength(t)})`,
    );
  return t;
}

abstract class Held {
  protected abstract readonly keeper: LeaseKeeper;
  protected released = false;

  get leaseId(): string {
    return this.keeper.id;
  }

  get ttlSeconds(): number {
    return this.keeper.ttlSeconds;
  }

  validUntilMs(): number {
    return this.keeper.validUntilMs();
  }

  isHeld(): boolean {
    return !this.released && this.keeper.alive();
  }

  onLost(cb: (reason: LossReason) => void): Unsubscribe {
    return this.keeper.onLost(cb);
  }

  /** Closing the authority: stop renewing silently. */
  abandon(): void {
    this.released = true;
    this.keeper.stop();
  }
}

export class EtcdRegionLease extends Held implements RegionLeaseHandle {
  private constructor(
    private readonly pool: EndpointPool,
    private readonly k: Keys,
    readonly region: string,
    private readonly holder: string,
    protected readonly keeper: LeaseKeeper,
    private readonly revision: string,
    private readonly onDone: (h: EtcdRegionLease) => void,
  ) {
    super();
    keeper.onLost(() => onDone(this));
  }

  static async hold(
    pool: EndpointPool,
    k: Keys,
    region: string,
    ttlSeconds: number,
    status: RegionStatus,
    holder: string,
    onDone: (h: EtcdRegionLease) => void,
  ): Promise<EtcdRegionLease> {
    checkRegion(region);
    const statusValue = statusText(status, holder);
    const keeper = await LeaseKeeper.grant(pool, ttlSeconds, `region ${region}`);
    const alive = JSON.stringify({ holder, since: new Date().toISOString() } satisfies AliveValue);
    const aliveKey = k.regionAlive(region);
    let revision: string | undefined;
    let other: AliveValue | undefined;
    try {
      const res = await pool.call(`region lease of ${region}`, (c, o) =>
        c
          .if(aliveKey, 'Create', '==', 0)
          .then(
            c.put(aliveKey).value(alive).lease(keeper.id),
            c.put(k.regionStatus(region)).value(statusValue),
          )
          .else(c.get(aliveKey))
          .options(o)
          .commit(),
      );
      const kv = rangeKv(res, 0);
      if (res.succeeded) revision = res.header.revision;
      else if (kv && kv.lease === keeper.id) revision = kv.create_revision;
      else other = json<AliveValue>(kv, aliveKey);
    } catch (e) {
      await keeper.revoke();
      throw e;
    }
    if (revision === undefined) {
      await keeper.revoke();
      throw new RegionctlError(
        'E_REGION_LEASE_HELD',
        `region ${region}'s lease is held by ${other?.holder ?? 'another agent'} (since ${other?.since ?? '?'})`,
        `run one agent per region; if that agent is gone, its lease expires within ${ttlSeconds} s of its last renewal: retry then`,
      );
    }
    return new EtcdRegionLease(pool, k, region, holder, keeper, revision, onDone);
  }

  async update(status: RegionStatus): Promise<void> {
    const op = `status update of region ${this.region}`;
    if (!this.isHeld()) throw this.lostError(op);
    const value = statusText(status, this.holder);
    const aliveKey = this.k.regionAlive(this.region);
    const res = await this.pool.call(op, (c, o) =>
      c
        .if(aliveKey, 'Create', '==', this.revision)
        .then(c.put(this.k.regionStatus(this.region)).value(value))
        .else(c.get(this.k.regionStatus(this.region)))
        .options(o)
        .commit(),
    );
    if (res.succeeded || text(rangeKv(res, 0)) === value) return;
    this.keeper.markLost({
      cause: 'displaced',
      message: `region ${this.region}'s alive key is no longer ours`,
    });
    throw this.lostError(op);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    const aliveKey = this.k.regionAlive(this.region);
    if (!this.pool.isClosed()) {
      await this.pool
        .call(`release of region ${this.region}'s lease`, (c, o) =>
          c.if(aliveKey, 'Create', '==', this.revision).then(c.delete().key(aliveKey)).options(o).commit(),
        )
        .catch(() => {});
    }
    await this.keeper.revoke();
    this.onDone(this);
  }

  private lostError(op: string): RegionctlError {
    const reason = this.keeper.lossReason();
    return new RegionctlError(
      'E_REGION_LEASE_LOST',
      `${op} refused: the agent no longer holds the region lease (${this.released ? 'released' : (reason?.message ?? 'expired')})`,
      'take the lease again (holdRegionLease) once etcd answers',
    );
  }
}

export class EtcdPrimaryLease extends Held implements PrimaryLeaseHandle {
  private timer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly pool: EndpointPool,
    private readonly k: Keys,
    readonly region: string,
    readonly epoch: number,
    protected readonly keeper: LeaseKeeper,
    private readonly revision: string,
    private readonly onDone: (h: EtcdPrimaryLease) => void,
  ) {
    super();
    // No revoke on loss: the agent may still be fencing; the lease runs out by itself.
    keeper.onLost(() => {
      clearTimeout(this.timer);
      onDone(this);
    });
    this.schedule();
  }

  static async hold(
    pool: EndpointPool,
    k: Keys,
    region: string,
    epoch: number,
    ttlSeconds: number,
    holder: string,
    onDone: (h: EtcdPrimaryLease) => void,
  ): Promise<EtcdPrimaryLease> {
    checkRegion(region);
    checkEpoch(epoch, 'epoch');
    const op = `primary lease of ${region} at epoch ${epoch}`;
    const keeper = await LeaseKeeper.grant(pool, ttlSeconds, `primary ${region}`);
    const value = JSON.stringify({
      region,
      epoch,
      holder,
      since: new Date().toISOString(),
    } satisfies PrimaryValue);
    let revision: string | undefined;
    let failure: RegionctlError | undefined;
    try {
      const res = await pool.call(op, (c, o) =>
        c
          .if(k.primaryLease, 'Create', '==', 0)
          .and(k.epoch, 'Value', '==', String(epoch))
          .and(k.primary, 'Value', '==', region)
          .then(c.put(k.primaryLease).value(value).lease(keeper.id))
          .else(c.get(k.primaryLease), c.get(k.epoch), c.get(k.primary))
          .options(o)
          .commit(),
      );
      const held = rangeKv(res, 0);
      if (res.succeeded) revision = res.header.revision;
      else if (held && held.lease === keeper.id) revision = held.create_revision;
      else {
        const e = text(rangeKv(res, 1));
        const p = text(rangeKv(res, 2));
        if (e !== String(epoch) || p !== region) {
          failure = new RegionctlError(
            'E_EPOCH_CHANGED',
            `${op} refused: the topology is epoch ${e ?? '(none)'}, primary ${p ?? '(none)'}`,
            'only the primary of the current epoch may hold the primary lease: keep this region fenced and follow the topology',
          );
        } else {
          const h = json<PrimaryValue>(held, k.primaryLease);
          failure = new RegionctlError(
            'E_PRIMARY_LEASE_HELD',
            `${op} refused: it is held by ${h?.holder ?? 'another agent'} (region ${h?.region}, epoch ${h?.epoch}, since ${h?.since})`,
            `one agent holds it at a time; if that agent is gone, its lease expires within ${ttlSeconds} s of its last renewal: retry then`,
          );
        }
      }
    } catch (e) {
      await keeper.revoke();
      throw e;
    }
    if (revision === undefined) {
      await keeper.revoke();
      throw failure!;
    }
    return new EtcdPrimaryLease(pool, k, region, epoch, keeper, revision, onDone);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.timer);
    if (!this.pool.isClosed()) {
      await this.pool
        .call(`release of the primary lease of ${this.region}`, (c, o) =>
          c
            .if(this.k.primaryLease, 'Create', '==', this.revision)
            .then(c.delete().key(this.k.primaryLease))
            .options(o)
            .commit(),
        )
        .catch(() => {});
    }
    await this.keeper.revoke();
    this.onDone(this);
  }

  override abandon(): void {
    clearTimeout(this.timer);
    super.abandon();
  }

  /**
   * Besides renewing, check at the renewal rate that the key is still ours and the
   * topology still at our epoch: a primary whose key was removed, or whose epoch is
   * over, must stop (its agent fences on the loss).
   */
  private schedule(): void {
    this.timer = setTimeout(() => void this.verify(), (this.keeper.ttlSeconds * 1000) / 3);
  }

  private async verify(): Promise<void> {
    if (!this.isHeld()) return;
    try {
      const res = await this.pool.call(`primary lease check of ${this.region}`, (c, o) =>
        c
          .if(this.k.primaryLease, 'Create', '==', this.revision)
          .and(this.k.epoch, 'Value', '==', String(this.epoch))
          .then()
          .else(c.get(this.k.primaryLease), c.get(this.k.epoch))
          .options(o)
          .commit(),
      );
      if (!res.succeeded && this.isHeld()) {
        const held = rangeKv(res, 0);
        const epoch = text(rangeKv(res, 1));
        this.keeper.markLost({
          cause: 'displaced',
          message:
            held?.create_revision !== this.revision
              ? `the primary lease key of ${this.region} was removed or replaced`
              : `the topology moved to epoch ${epoch} (this lease is for epoch ${this.epoch})`,
        });
        return;
      }
    } catch {
      // etcd unavailable: the lease's own validity decides.
    }
    if (this.isHeld()) this.schedule();
  }
}

export async function regionLeases(pool: EndpointPool, k: Keys): Promise<RegionLeaseInfo[]> {
  const res = await pool.call('region lease read', (c, o) =>
    c.getAll().prefix(k.regionsPrefix).options(o).exec(),
  );
  const byRegion = new Map<string, RegionLeaseInfo>();
  for (const kv of res.kvs) {
    const key = kv.key.toString();
    const [region, leaf] = key.slice(k.regionsPrefix.length).split('/');
    if (!region || (leaf !== 'alive' && leaf !== 'status')) continue;
    const info = byRegion.get(region) ?? {
      region,
      alive: false,
      status: null,
      lastUpdate: null,
      holder: null,
    };
    if (leaf === 'alive') {
      info.alive = true;
      info.holder = json<AliveValue>(kv, key)?.holder ?? null;
    } else {
      const s = json<StatusValue>(kv, key);
      info.status = s?.status ?? null;
      info.lastUpdate = s?.at ?? null;
      info.holder ??= s?.holder ?? null;
    }
    byRegion.set(region, info);
  }
  return [...byRegion.values()].sort((a, b) => a.region.localeCompare(b.region));
}

export async function primaryLease(pool: EndpointPool, k: Keys): Promise<PrimaryLeaseInfo | null> {
  const res = await pool.call('primary lease read', (c, o) => c.get(k.primaryLease).options(o).exec());
  const kv = res.kvs[0];
  const v = json<PrimaryValue>(kv, k.primaryLease);
  if (!kv || !v) return null;
  const info: PrimaryLeaseInfo = { region: v.region, epoch: v.epoch, holder: v.holder };
  const asked = Date.now();
  const ttl = await pool
    .call('primary lease TTL read', (c, o) => c.leaseClient.leaseTimeToLive({ ID: kv.lease }, o))
    .then((r) => Number(r.TTL))
    .catch(() => undefined);
  // -1: expired between the two reads; the key is gone or about to be.
  if (ttl !== undefined && ttl < 0) return null;
  if (ttl !== undefined) info.expiresAtMs = asked + ttl * 1000;
  return info;
}
