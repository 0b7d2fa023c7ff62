/**
 * Every etcd call goes through `EndpointPool.call`: it has a deadline, it tries the
 * members in a sensible order, and its failure becomes a RegionctlError with a stable
 * code.
 *
 * Why not the etcd3 client's own pool and policies: etcd without a quorum does not
 * refuse writes or linearizable reads, it holds them until a leader exists, and a
 * partitioned member holds them until the deadline. The client's default circuit
 * breaker counts those timeouts and then refuses a member for 5 s, and its retry policy
 * retries a call whose deadline has already passed; a one-second etcd election would
 * open every breaker and cost every lease (TTL 2 s) its renewal. So there is one etcd3
 * client per member with fault handling switched off, and the choice of member is
 * made here:
 *
 * - the member that answered last is asked first (clients pin to a working member);
 *   members that failed in the last few seconds are asked last;
 * - a call that fails fast (connection refused) moves on to the next member at once; a
 *   call that hangs (partitioned member, no quorum) gets at most half the remaining
 *   time, so one bad member cannot consume the whole deadline;
 * - the deadline is absolute; a local timer backs up gRPC's deadline.
 *
 * A write may be attempted on a second member after the first timed out, and the first
 * may still have applied it: every write built on this must be idempotent or recognise
 * its own earlier write (they do; see etcd.ts).
 */
import {
  Etcd3,
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  EtcdRoleNotGrantedError,
  GRPCDeadlineExceededError,
  type IOptions,
  isRecoverableError,
} from 'etcd3';
import { RegionctlError } from '../errors.js';
import type { AuthorityConfig } from './config.js';

/** gRPC call options regionctl sets: an absolute deadline (ms since the epoch). */
export interface CallOptions {
  deadline: number;
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/** Runs the call once: no retry, no breaker (both are decided by EndpointPool). */
const passThrough = {
  execute: <T>(fn: () => PromiseLike<T> | T): Promise<T> => Promise.resolve().then(fn),
} as unknown as Policy;

/** A member that failed within this window is asked only after the others. */
const DEMOTE_MS = 3000;
/** Grace after an attempt's gRPC deadline before the local timer abandons it. */
const BACKSTOP_GRACE_MS = 100;

interface Member {
  endpoint: string;
  client: Etcd3;
  failedAt: number;
}

export class EndpointPool {
  private readonly members: Member[];
  private preferred = 0;
  private closed = false;

  constructor(
    private readonly config: Pick<AuthorityConfig, 'endpoints' | 'callTimeoutMs' | 'tls' | 'auth'>,
  ) {
    if (config.endpoints.length === 0) {
      throw new RegionctlError(
        'E_AUTHORITY_CONFIG',
        'authority: no etcd endpoints',
        'list them in authority.endpoints',
      );
    }
    this.members = config.endpoints.map((endpoint) => ({
      endpoint,
      client: new Etcd3(clientOptions(endpoint, config)),
      failedAt: 0,
    }));
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.endpoint);
  }

  get timeoutMs(): number {
    return this.config.callTimeoutMs;
  }

  isClosed(): boolean {
    return this.closed;
  }

  /**
   * Run `fn` against one member after another until one answers or `timeoutMs` has
   * passed. Errors that are not about reachability (a refused permission, a bad
   * request) are not retried on another member.
   */
  async call<T>(
    op: string,
    fn: (client: Etcd3, options: CallOptions) => Promise<T>,
    timeoutMs = this.config.callTimeoutMs,
  ): Promise<T> {
    if (this.closed) throw closedError(op);
    const started = Date.now();
    const deadline = started + timeoutMs;
    const order = this.order();
    let lastError: unknown = new Error('no member was tried');
    for (let i = 0; i < order.length; i++) {
      const m = order[i]!;
      const now = Date.now();
      const remaining = deadline - now;
      if (remaining <= 0) break;
      const last = i === order.length - 1;
      const attemptDeadline = last ? deadline : now + Math.max(Math.ceil(remaining / 2), 1);
      try {
        const result = await withBackstop(fn(m.client, { deadline: attemptDeadline }), attemptDeadline);
        m.failedAt = 0;
        this.preferred = this.members.indexOf(m);
        return result;
      } catch (e) {
        if (this.closed) throw closedError(op);
        lastError = e;
        if (!isReachabilityError(e)) throw authorityError(this, op, e, Date.now() - started);
        m.failedAt = Date.now();
      }
    }
    throw authorityError(this, op, lastError, Date.now() - started);
  }

  /** One attempt on one member only (health questions are about that member). */
  async callOn<T>(
    endpoint: string,
    op: string,
    fn: (client: Etcd3, options: CallOptions) => Promise<T>,
    timeoutMs = this.config.callTimeoutMs,
  ): Promise<T> {
    const m = this.members.find((x) => x.endpoint === endpoint);
    if (!m) throw new RangeError(`${endpoint} is not an endpoint of this authority`);
    if (this.closed) throw closedError(op);
    const started = Date.now();
    const deadline = started + timeoutMs;
    try {
      return await withBackstop(fn(m.client, { deadline }), deadline);
    } catch (e) {
      if (this.closed) throw closedError(op);
      throw authorityError({ endpoints: [endpoint], timeoutMs }, op, e, Date.now() - started);
    }
  }

  /** Close every client; calls in flight fail with E_AUTHORITY_CLOSED. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const m of this.members) m.client.close();
  }

  /** Preferred member first, then members without a recent failure, then the rest. */
  private order(): Member[] {
    const now = Date.now();
    const n = this.members.length;
    const rotated = this.members.map((_, i) => this.members[(this.preferred + i) % n]!);
    const fresh = rotated.filter((m) => now - m.failedAt > DEMOTE_MS);
    const stale = rotated
      .filter((m) => now - m.failedAt <= DEMOTE_MS)
      .sort((a, b) => a.failedAt - b.failedAt);
    return [...fresh, ...stale];
  }
}

function clientOptions(
  endpoint: string,
  config: Pick<AuthorityConfig, 'callTimeoutMs' | 'tls' | 'auth'>,
): IOptions {
  const options: IOptions = {
    hosts: endpoint,
    faultHandling: { host: () => passThrough, global: passThrough },
    // Only for calls that do not pass their own deadline (the auth token exchange).
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + config.callTimeoutMs }),
    dialTimeout: config.callTimeoutMs,
  };
  if (config.tls?.ca || config.tls?.cert) {
    options.credentials = {
      rootCertificate: config.tls.ca ?? Buffer.alloc(0),
      ...(config.tls.key ? { privateKey: config.tls.key } : {}),
      ...(config.tls.cert ? { certChain: config.tls.cert } : {}),
    };
  }
  if (config.auth) options.auth = { username: config.auth.username, password: config.auth.password };
  return options;
}

async function withBackstop<T>(p: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  // The abandoned call settles later on its own gRPC deadline; nobody listens then.
  p.catch(() => {});
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new GRPCDeadlineExceededError('deadline exceeded (local timer)')),
          Math.max(deadline - Date.now(), 0) + BACKSTOP_GRACE_MS,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Transport trouble that another member may not have: unreachable, reset, timed out. */
function isReachabilityError(e: unknown): boolean {
  return e instanceof Error && (isRecoverableError(e) || e instanceof GRPCDeadlineExceededError);
}

function closedError(op: string): RegionctlError {
  return new RegionctlError(
    'E_AUTHORITY_CLOSED',
    `${op}: the authority connection is closed`,
    'open a new one (a bug if the caller did not close it itself)',
  );
}

export function authorityError(
  pool: Pick<EndpointPool, 'endpoints' | 'timeoutMs'>,
  op: string,
  e: unknown,
  ms: number,
): RegionctlError {
  if (e instanceof RegionctlError) return e;
  const cause = e instanceof Error ? (e.message.split('\n')[0] ?? e.message) : String(e);
  if (
    e instanceof EtcdPermissionDeniedError ||
    e instanceof EtcdAuthenticationFailedError ||
    e instanceof EtcdRoleNotGrantedError
  ) {
    return new RegionctlError(
      'E_AUTHORITY_DENIED',
      `etcd refused ${op}: ${cause}`,
      "check authority.username/password and that the user's role may read and write the authority prefix",
    );
  }
  if (e instanceof Error && !isReachabilityError(e)) {
    return new RegionctlError(
      'E_AUTHORITY_FAILED',
      `etcd rejected ${op}: ${cause}`,
      'a bug in regionctl or an incompatible etcd (regionctl needs the v3 API, etcd ≥ 3.4); report it with this message',
    );
  }
  // "Did not complete" is not "refused": a write that reached etcd's leader stays in its
  // log and may commit once a majority is back, its comparisons (leader term, epoch)
  // evaluated then. Callers re-read before they act on a timed-out write.
  return new RegionctlError(
    'E_AUTHORITY_UNAVAILABLE',
    `etcd did not complete ${op} within ${ms} ms (deadline ${pool.timeoutMs} ms; endpoints ${pool.endpoints.join(', ')}): ${cause}`,
    'etcd needs a majority of its members up and reachable (`etcdctl endpoint health --cluster` shows which are not); ' +
      'until it answers, regionctl starts no transition and changes no topology. A write that timed out may still ' +
      'be applied when etcd recovers (only if its leader and epoch checks still hold then): re-read before acting on it',
  );
}
