/**
 * A person's command asks the reconcilers to step aside: a leased key under the prefix.
 * While it exists the leading reconciler resigns at its next safe point (never in the
 * middle of a transition) and no reconciler campaigns, so the command's own campaign
 * wins and it acts under the same leader key every guarded write checks. The key is
 * leased: a command that dies lets the reconcilers lead again within the TTL.
 */
import type { EndpointPool } from './call.js';
import type { Keys } from './keys.js';
import { LeaseKeeper } from './lease.js';
import type { HandoffHandle, HandoffInfo } from './types.js';
import { json } from './values.js';

export class EtcdHandoff implements HandoffHandle {
  private released = false;

  private constructor(
    private readonly keeper: LeaseKeeper,
    private readonly onDone: (h: EtcdHandoff) => void,
  ) {}

  static async request(
    pool: EndpointPool,
    k: Keys,
    who: string,
    ttlSeconds: number,
    onDone: (h: EtcdHandoff) => void,
  ): Promise<EtcdHandoff> {
    const keeper = await LeaseKeeper.grant(pool, ttlSeconds, `handoff to ${who}`);
    const value = JSON.stringify({ who, since: new Date().toISOString() } satisfies HandoffInfo);
    try {
      await pool.call(`handoff request of ${who}`, (c, o) =>
        c.put(k.handoff).value(value).lease(keeper.id).options(o).exec(),
      );
    } catch (e) {
      await keeper.revoke();
      throw e;
    }
    return new EtcdHandoff(keeper, onDone);
  }

  isHeld(): boolean {
    return !this.released && this.keeper.alive();
  }

  /** Revoking the lease deletes the key: the reconcilers campaign again. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.keeper.revoke();
    this.onDone(this);
  }

  abandon(): void {
    this.released = true;
    this.keeper.stop();
  }
}

export async function readHandoff(pool: EndpointPool, k: Keys): Promise<HandoffInfo | null> {
  const res = await pool.call('handoff read', (c, o) => c.get(k.handoff).options(o).exec());
  return json<HandoffInfo>(res.kvs[0], k.handoff) ?? null;
}
