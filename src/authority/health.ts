/**
 * What each etcd member says about itself and whether a majority works, for status and
 * alerts: "losing etcd quorum stops automatic transitions and says so". Every member
 * is asked in parallel, each question with the call deadline, so a dead or partitioned
 * member costs one deadline, not one per member.
 */
import type { EndpointPool } from './call.js';
import type { Keys } from './keys.js';
import type { AuthorityHealth, EndpointHealth } from './types.js';

export async function health(pool: EndpointPool, k: Keys): Promise<AuthorityHealth> {
  const endpoints = await Promise.all(
    pool.endpoints.map(async (endpoint): Promise<EndpointHealth> => {
      const [status, read] = await Promise.allSettled([
        pool.callOn(endpoint, 'member status', (c, o) => c.maintenance.status(o)),
        // Linearizable (the default): it needs the member to reach a working majority.
        pool.callOn(endpoint, 'quorum read', (c, o) => c.get(k.epoch).options(o).exec()),
      ]);
      const h: EndpointHealth = {
        endpoint,
        reachable: status.status === 'fulfilled',
        leader: false,
        hasLeader: false,
        quorum: read.status === 'fulfilled',
      };
      if (status.status === 'fulfilled') {
        const s = status.value;
        h.leader = s.leader !== '0' && s.leader === s.header.member_id;
        h.hasLeader = s.leader !== '0';
        h.version = s.version;
        h.raftTerm = s.raftTerm;
        if (s.errors.length > 0) h.error = s.errors.join('; ');
      } else {
        h.error = errorText(status.reason);
      }
      if (read.status === 'rejected' && h.reachable) h.error ??= errorText(read.reason);
      return h;
    }),
  );
  const quorum = endpoints.some((e) => e.quorum);
  return { endpoints, quorum, summary: summary(endpoints, quorum) };
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function summary(endpoints: EndpointHealth[], quorum: boolean): string {
  const n = endpoints.length;
  const up = endpoints.filter((e) => e.reachable).length;
  const down = endpoints.filter((e) => !e.reachable).map((e) => e.endpoint);
  if (!quorum) {
    return (
      `etcd has no quorum (${up} of ${n} members reachable${down.length ? `; down: ${down.join(', ')}` : ''}): ` +
      'automatic transitions are stopped until a majority of members is back'
    );
  }
  const leader = endpoints.find((e) => e.leader)?.endpoint;
  const spare = up - (Math.floor(n / 2) + 1);
  if (down.length === 0) return `etcd healthy: ${n} of ${n} members, leader ${leader ?? 'unknown'}`;
  return (
    `etcd has quorum with ${up} of ${n} members (down: ${down.join(', ')}); ` +
    (spare <= 0 ? 'losing one more stops automatic transitions' : `${spare} more may fail`)
  );
}
