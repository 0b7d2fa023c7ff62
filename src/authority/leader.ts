/**
 * Leadership of the reconcilers: one lease-backed key, taken with a put-if-absent
 * transaction. The key's create revision names one term of one leader, and every
 * guarded write compares it, so a leader that lost its key (expired, revoked,
 * deleted) can write nothing more, even under the same identity.
 *
 * Not etcd3's Election: it keeps its lease with etcd3's Lease, which reports a loss only
 * after 2 × TTL; here leadership ends locally when the lease's validity runs out
 * (./lease.ts), which is no later than the moment etcd can drop the key.
 */
import type { EndpointPool } from './call.js';
import type { Keys } from './keys.js';
import { LeaseKeeper } from './lease.js';
import type { LeaderHandle, LeaderState, LossReason, Unsubscribe } from './types.js';

export interface LeaderValue {
  identity: string;
  since: string;
}

export class EtcdLeader implements LeaderHandle {
  private current: LeaderState = 'candidate';
  private keeper: LeaseKeeper | undefined;
  private revision: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly electedCallbacks = new Set<() => void>();
  private readonly lostCallbacks = new Set<(r: LossReason) => void>();
  private lostReason: LossReason | undefined;

  constructor(
    private readonly pool: EndpointPool,
    private readonly k: Keys,
    readonly identity: string,
    private readonly requestedTtl: number,
    /** How often a candidate retries and a leader checks its key. */
    private readonly pollMs: number,
    private readonly onDone: (h: EtcdLeader) => void,
  ) {}

  belongsTo(pool: EndpointPool): boolean {
    return pool === this.pool;
  }

  get leaseId(): string {
    return this.keeper?.id ?? '0';
  }

  get ttlSeconds(): number {
    return this.keeper?.ttlSeconds ?? this.requestedTtl;
  }

  /** Create revision of the leader key while this handle leads (the term's name). */
  get leaderRevision(): string | undefined {
    return this.current === 'leader' ? this.revision : undefined;
  }

  state(): LeaderState {
    return this.current;
  }

  isLeader(): boolean {
    return this.current === 'leader' && this.keeper !== undefined && this.keeper.alive();
  }

  validUntilMs(): number {
    return this.current === 'leader' && this.keeper ? this.keeper.validUntilMs() : 0;
  }

  onElected(cb: () => void): Unsubscribe {
    if (this.current === 'leader') {
      queueMicrotask(cb);
      return () => {};
    }
    this.electedCallbacks.add(cb);
    return () => this.electedCallbacks.delete(cb);
  }

  onLost(cb: (reason: LossReason) => void): Unsubscribe {
    if (this.lostReason) {
      const r = this.lostReason;
      queueMicrotask(() => cb(r));
      return () => {};
    }
    this.lostCallbacks.add(cb);
    return () => this.lostCallbacks.delete(cb);
  }

  waitForLeadership(timeoutMs: number): Promise<boolean> {
    if (this.current === 'leader') return Promise.resolve(true);
    if (this.current !== 'candidate') return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (v: boolean) => {
        clearTimeout(timer);
        offElected();
        offLost();
        clearInterval(watchEnd);
        resolve(v);
      };
      const timer = setTimeout(() => done(false), timeoutMs);
      const offElected = this.onElected(() => done(true));
      const offLost = this.onLost(() => done(false));
      // Resigned or closed while waiting: no callback fires for those.
      const watchEnd = setInterval(() => {
        if (this.current === 'resigned') done(false);
      }, 100);
    });
  }

  /** First attempt; throws E_AUTHORITY_UNAVAILABLE when etcd cannot grant a lease. */
  async start(): Promise<void> {
    await this.attempt();
    this.schedule();
  }

  async resign(): Promise<void> {
    if (this.current === 'resigned' || this.current === 'lost') return;
    const wasLeader = this.current === 'leader';
    const revision = this.revision;
    this.current = 'resigned';
    this.halt();
    if (wasLeader && revision && !this.pool.isClosed()) {
      // Delete only our own term's key; revoking the lease would drop it too, but an
      // explicit delete lets the next leader in even if the revoke is lost.
      await this.pool
        .call('resignation', (c, o) =>
          c
            .if(this.k.leader, 'Create', '==', revision)
            .then(c.delete().key(this.k.leader))
            .options(o)
            .commit(),
        )
        .catch(() => {});
    }
    await this.keeper?.revoke();
    this.onDone(this);
  }

  /** A guarded write found another term's key (or none): this term is over. */
  displaced(message: string): void {
    if (this.current === 'leader') this.keeper?.markLost({ cause: 'displaced', message });
  }

  /** Closing the authority: stop everything silently (the lease runs out in etcd). */
  abandon(): void {
    if (this.current === 'candidate' || this.current === 'leader') this.current = 'resigned';
    this.halt();
    this.keeper?.stop();
  }

  private halt(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.electedCallbacks.clear();
  }

  private schedule(): void {
    if (this.current !== 'candidate' && this.current !== 'leader') return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), this.pollMs);
  }

  private async tick(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      if (this.current === 'candidate') await this.attempt();
      else if (this.current === 'leader') await this.verify();
    } catch {
      // etcd unavailable: a candidate tries again; a leader's lease decides.
    } finally {
      this.busy = false;
      this.schedule();
    }
  }

  private async attempt(): Promise<void> {
    // Read first: a put-if-absent transaction goes through raft even when its compare
    // fails, and candidates poll; a candidate holds no lease while someone else leads.
    const seen = await this.pool.call('leader read', (c, o) => c.get(this.k.leader).options(o).exec());
    const holder = seen.kvs[0];
    if (holder && holder.lease !== this.keeper?.id) {
      const idle = this.keeper;
      this.keeper = undefined;
      if (idle) void idle.revoke();
      return;
    }
    if (!this.keeper?.alive()) {
      this.keeper?.stop();
      this.keeper = undefined;
      const keeper = await LeaseKeeper.grant(
        this.pool,
        this.requestedTtl,
        `leader candidate ${this.identity}`,
      );
      if (this.current !== 'candidate') {
        await keeper.revoke();
        return;
      }
      this.keeper = keeper;
      keeper.onLost((r) => this.keeperLost(keeper, r));
    }
    const keeper = this.keeper;
    const value: LeaderValue = { identity: this.identity, since: new Date().toISOString() };
    const res = await this.pool.call(`leader campaign of ${this.identity}`, (c, o) =>
      c
        .if(this.k.leader, 'Create', '==', 0)
        .then(c.put(this.k.leader).value(JSON.stringify(value)).lease(keeper.id))
        .else(c.get(this.k.leader))
        .options(o)
        .commit(),
    );
    let revision: string | undefined;
    if (res.succeeded) revision = res.header.revision;
    else {
      // Our own put may have landed on a member that then timed out, and this is the
      // retry: the key under our lease is ours.
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (kv && kv.lease === keeper.id) revision = kv.create_revision;
    }
    if (revision === undefined || this.current !== 'candidate' || !keeper.alive()) return;
    this.revision = revision;
    this.current = 'leader';
    for (const cb of this.electedCallbacks) cb();
    this.electedCallbacks.clear();
  }

  private async verify(): Promise<void> {
    const revision = this.revision;
    const res = await this.pool.call('leader key check', (c, o) => c.get(this.k.leader).options(o).exec());
    const kv = res.kvs[0];
    if (this.current !== 'leader' || revision !== this.revision) return;
    if (!kv || kv.create_revision !== revision) {
      this.keeper?.markLost({
        cause: 'displaced',
        message: kv
          ? `the leader key now belongs to another term (create revision ${kv.create_revision}, ours ${revision})`
          : 'the leader key was deleted',
      });
    }
  }

  private keeperLost(keeper: LeaseKeeper, reason: LossReason): void {
    if (keeper !== this.keeper) return;
    if (this.current === 'candidate') {
      this.keeper = undefined;
      return;
    }
    if (this.current !== 'leader') return;
    this.current = 'lost';
    this.lostReason = reason;
    this.halt();
    for (const cb of this.lostCallbacks) {
      try {
        cb(reason);
      } catch {
        // Every listener must hear about the loss.
      }
    }
    this.lostCallbacks.clear();
    // The key may still exist until etcd expires the lease; revoking it lets the next
    // leader in sooner (best effort: when etcd is unreachable, this fails too).
    void keeper.revoke();
    this.onDone(this);
  }
}
