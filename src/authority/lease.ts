/**
 * One etcd lease kept alive by regionctl itself, with a local notion of how long it is
 * certainly valid. etcd3's own Lease reports loss only after 2 × TTL without a renewal
 * and times renewals from their *answers*; a leader or a primary must know sooner and
 * more conservatively:
 *
 *   validUntil = (time the last acknowledged renewal was sent) + TTL
 *
 * etcd received that renewal after it was sent, so it expires the lease no earlier
 * (leader changes in etcd only extend leases). When validUntil passes without a newer
 * acknowledged renewal — partition, no quorum, a paused process — the lease counts as
 * lost here, at or before the moment the key can vanish in etcd and another party may
 * act on it.
 */
import { castGrpcError, type Etcd3, GRPCDeadlineExceededError } from 'etcd3';
import type { EndpointPool } from './call.js';
import type { LossReason, Unsubscribe } from './types.js';

/** Retry delay after a failed renewal: soon, the lease is running out. */
const RETRY_MS = 150;

export class LeaseKeeper {
  private validUntil: number;
  private lost: LossReason | undefined;
  private stopped = false;
  private inFlight = false;
  private tickTimer: NodeJS.Timeout | undefined;
  private expiryTimer: NodeJS.Timeout | undefined;
  private readonly lostCallbacks = new Set<(r: LossReason) => void>();

  private constructor(
    private readonly pool: EndpointPool,
    readonly id: string,
    readonly ttlSeconds: number,
    sentAt: number,
  ) {
    this.validUntil = sentAt + ttlSeconds * 1000;
    this.armExpiry();
    this.schedule(this.intervalMs());
  }

  /** Grant a lease (etcd may raise the TTL to its minimum) and start renewing it. */
  static async grant(pool: EndpointPool, ttlSeconds: number, what: string): Promise<LeaseKeeper> {
    const sentAt = Date.now();
    const res = await pool.call(`grant of a ${ttlSeconds} s lease for ${what}`, (c, o) =>
      c.leaseClient.leaseGrant({ TTL: ttlSeconds }, o),
    );
    return new LeaseKeeper(pool, res.ID, Number(res.TTL), sentAt);
  }

  validUntilMs(): number {
    return this.validUntil;
  }

  /** Renewed, not lost, not stopped, and validUntil not passed. */
  alive(): boolean {
    return !this.lost && !this.stopped && Date.now() < this.validUntil;
  }

  lossReason(): LossReason | undefined {
    return this.lost;
  }

  onLost(cb: (r: LossReason) => void): Unsubscribe {
    if (this.lost) {
      const reason = this.lost;
      queueMicrotask(() => cb(reason));
      return () => {};
    }
    this.lostCallbacks.add(cb);
    return () => this.lostCallbacks.delete(cb);
  }

  /** Declare the lease lost (also used by holders that find their key displaced). Fires the callbacks once. */
  markLost(reason: LossReason): void {
    if (this.lost || this.stopped) return;
    this.lost = reason;
    this.halt();
    for (const cb of this.lostCallbacks) {
      try {
        cb(reason);
      } catch {
        // A failing callback must not keep the others from learning about the loss.
      }
    }
    this.lostCallbacks.clear();
  }

  /** Stop renewing without telling etcd (the lease runs out on its own); no callbacks. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.halt();
    this.lostCallbacks.clear();
  }

  /**
   * Stop renewing and revoke the lease in etcd: its keys vanish now. Best effort when
   * etcd is down. Also after a loss (the lease may still be alive in etcd): never for a
   * lease whose holder may still be acting on it, such as a primary that is fencing.
   */
  async revoke(): Promise<void> {
    this.stop();
    if (this.pool.isClosed()) return;
    await this.pool
      .call(`revoke of lease ${this.id}`, (c, o) => c.leaseClient.leaseRevoke({ ID: this.id }, o))
      .catch(() => {
        // Unreachable etcd: the lease expires by itself within its TTL.
      });
  }

  private intervalMs(): number {
    // As the official Go client: renew at a third of the TTL, so two renewals may fail.
    return (this.ttlSeconds * 1000) / 3;
  }

  private halt(): void {
    clearTimeout(this.tickTimer);
    clearTimeout(this.expiryTimer);
    this.tickTimer = undefined;
    this.expiryTimer = undefined;
  }

  private schedule(ms: number): void {
    if (this.lost || this.stopped) return;
    clearTimeout(this.tickTimer);
    this.tickTimer = setTimeout(() => void this.renew(), ms);
  }

  private armExpiry(): void {
    clearTimeout(this.expiryTimer);
    if (this.lost || this.stopped) return;
    this.expiryTimer = setTimeout(
      () => {
        if (Date.now() >= this.validUntil) {
          this.markLost({
            cause: 'expired',
            message: `no renewal of lease ${this.id} was acknowledged within its ${this.ttlSeconds} s TTL (etcd unreachable or without quorum)`,
          });
        } else {
          this.armExpiry();
        }
      },
      Math.max(this.validUntil - Date.now(), 0) + 1,
    );
  }

  private async renew(): Promise<void> {
    if (this.inFlight || this.lost || this.stopped) return;
    this.inFlight = true;
    const sentAt = Date.now();
    let ok = false;
    try {
      // Waiting past validUntil is pointless: by then the lease counts as lost here.
      const budget = Math.max(this.validUntil - sentAt, 50);
      const ttl = await this.pool.call(
        `renewal of lease ${this.id}`,
        (c, o) => keepaliveOnce(c, this.id, o.deadline),
        Math.min(budget, this.pool.timeoutMs),
      );
      if (ttl <= 0) {
        this.markLost({
          cause: 'revoked',
          message: `etcd says lease ${this.id} is gone (revoked or expired)`,
        });
        return;
      }
      if (this.lost || this.stopped) return;
      this.validUntil = Math.max(this.validUntil, sentAt + ttl * 1000);
      this.armExpiry();
      ok = true;
    } catch {
      // Counted by the expiry timer; try again soon.
    } finally {
      this.inFlight = false;
      this.schedule(ok ? this.intervalMs() : RETRY_MS);
    }
  }
}

/** One renewal on its own stream, so it carries its own deadline; resolves etcd's TTL (0: lease gone). */
async function keepaliveOnce(client: Etcd3, id: string, deadline: number): Promise<number> {
  const stream = await client.leaseClient.leaseKeepAlive({ deadline });
  return new Promise<number>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(
      () => {
        if (settled) return;
        settled = true;
        stream.cancel();
        reject(new GRPCDeadlineExceededError('lease renewal timed out'));
      },
      Math.max(deadline - Date.now(), 0) + 50,
    );
    stream.on('data', (res) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(Number(res.TTL));
      stream.end();
    });
    stream.on('error', (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(castGrpcError(err));
    });
    stream.write({ ID: id });
  });
}
