/**
 * One right to act (src/leadership/acting-right.ts): a person's command running beside
 * `reconcile --watch` asks it to step aside, acts while the reconciler only observes,
 * and gives the right back; the reconciler leads again. Both forms: the control store's
 * advisory locks (no authority) and the authority's leader key (a real 3-member etcd).
 * What this does not prove: the timing against a transition in flight (the reconciler
 * steps aside under the same mutex its transitions run under; see watch.ts).
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Authority } from '../../src/authority/types.js';
import type { EtcdLabOptions } from '../../src/lab/etcd.js';
import { acquireActingRight } from '../../src/leadership/acting-right.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore } from '../../src/store/store.js';
import { authorityOn, etcdPath, startCluster, stopCluster, uniquePrefix } from '../authority/cluster.js';
import { applySpec, fastFailover, startWatch } from '../support/failover.js';
import { privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const count = (logs: string[], text: string) => logs.filter((l) => l.includes(text)).length;

async function handoffRoundTrip(name: string, authority: Authority | undefined, leaderLog: string) {
  const lab = await privateLab(name, fastFailover);
  const store = await openStore(controlTarget(lab.spec, lab.specDir));
  await applySpec(lab, store);
  const w = startWatch(lab, store, authority ? { authority } : {});
  try {
    await waitFor(() => count(w.logs, leaderLog) === 1, {
      what: 'the reconciler leading',
      timeoutMs: 20_000,
    });
    const right = await acquireActingRight({
      spec: lab.spec,
      specDir: lab.specDir,
      who: 'test',
      authority,
      timeoutMs: 20_000,
    });
    try {
      expect(count(w.logs, 'stepped aside')).toBe(1);
      if (authority) {
        expect(right.leader?.isLeader()).toBe(true);
        expect((await authority.leader())?.identity).toBe(right.identity);
      }
      // While the command holds the right, the reconciler observes and does not lead.
      await new Promise((r) => setTimeout(r, 2500));
      expect(count(w.logs, leaderLog)).toBe(1);
      expect(w.latest()).not.toBeNull();
    } finally {
      await right.release();
    }
    await waitFor(() => count(w.logs, leaderLog) === 2, {
      what: 'the reconciler leading again',
      timeoutMs: 20_000,
    });
    expect(count(w.logs, 'campaigning again')).toBe(1);
    // A second command gets the right again, the same way.
    const again = await acquireActingRight({
      spec: lab.spec,
      specDir: lab.specDir,
      who: 'test-2',
      authority,
      timeoutMs: 20_000,
    });
    await again.release();
    expect(count(w.logs, 'stepped aside')).toBe(2);
  } finally {
    await w.stop();
    await store.close();
    await lab.close();
  }
}

describe('a command takes the right to act from a running reconciler', () => {
  it('without an authority: the control store locks', async () => {
    await handoffRoundTrip('handoff_lock', undefined, 'leader: this reconciler acts');
  }, 120_000);
});

/** Ports 61300-61399 are this file's (above the ephemeral range, see test/authority/cluster.ts). */
function clusterOptions(): EtcdLabOptions {
  const slot = Math.round((inject('regionctlLab').privatePorts[0] - 55440) / 100);
  const base = 61300 + (slot % 8) * 6;
  return {
    stateDir: `/tmp/regionctl-test-etcd-${slot}-handoff`,
    members: [0, 1, 2].map((i) => ({ clientPort: base + i, peerPort: base + 3 + i })),
  };
}

describe.skipIf(!etcdPath)('a command takes the right to act from a running reconciler (authority)', () => {
  const opts = clusterOptions();
  let up = false;
  let authority: Authority | undefined;
  beforeAll(async () => {
    await startCluster(opts);
    up = true;
  }, 60_000);
  afterAll(async () => {
    await authority?.close();
    if (up) await stopCluster(opts);
  });

  it("with an authority: the leader key in etcd, the command's guarded writes under its own term", async () => {
    authority = authorityOn(
      opts.members.map((m) => `http://127.0.0.1:${m.clientPort}`),
      uniquePrefix('handoff'),
    );
    await handoffRoundTrip('handoff_etcd', authority, 'leader (authority): this reconciler acts');
  }, 120_000);
});
