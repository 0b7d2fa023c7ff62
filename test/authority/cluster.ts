/**
 * A real 3-member etcd cluster per test file (src/lab/etcd.ts), on ports in
 * 61100-61199 that no other test uses: 6 per file, 12 per concurrent test run (slot of
 * test/global-setup.ts). Above Linux's ephemeral range (32768-60999) on purpose: a port
 * in it can be the local end of someone's outgoing connection, and a member restarted
 * after a kill then found its port taken for the 60 s of TIME_WAIT (a CI run failed so). The state directory is outside the shared lab's, which each run
 * wipes: a crashed run's members are found again through their pid files and stopped.
 */
import { inject } from 'vitest';
import { EtcdAuthority } from '../../src/authority/etcd.js';
import { type EtcdLabCluster, type EtcdLabOptions, etcdDown, etcdUp } from '../../src/lab/etcd.js';
import { requirePeer } from '../support/peers.js';

export const etcdPath = requirePeer('etcd', 'apt-get install etcd-server');

/** Files that start a cluster; each has its own ports and state directory. */
export type ClusterFile = 'authority' | 'quorum';
const FILE_INDEX: Record<ClusterFile, number> = { authority: 0, quorum: 1 };

export function clusterOptions(file: ClusterFile): EtcdLabOptions {
  const slot = Math.round((inject('regionctlLab').privatePorts[0] - 55440) / 100);
  const base = 61100 + (slot % 8) * 12 + FILE_INDEX[file] * 6;
  return {
    stateDir: `/tmp/regionctl-test-etcd-${slot}-${file}`,
    members: [0, 1, 2].map((i) => ({ clientPort: base + i, peerPort: base + 3 + i })),
  };
}

export async function startCluster(opts: EtcdLabOptions): Promise<EtcdLabCluster> {
  // Whatever an earlier (crashed) run left in this directory goes first.
  await etcdDown({ stateDir: opts.stateDir, purge: true });
  return etcdUp(opts);
}

export async function stopCluster(opts: EtcdLabOptions): Promise<void> {
  await etcdDown({ stateDir: opts.stateDir, purge: true });
}

let prefixes = 0;

/** An authority under a fresh prefix (tests isolate by prefix, not by cluster). */
export function uniquePrefix(name: string): string {
  prefixes++;
  return `/regionctl-test/${name}-${process.pid}-${prefixes}-${Date.now().toString(36)}`;
}

export function authorityOn(
  endpoints: string[],
  prefix: string,
  opts: { callTimeoutMs?: number; leaseSeconds?: number } = {},
): EtcdAuthority {
  return new EtcdAuthority({
    endpoints,
    prefix,
    leaseSeconds: opts.leaseSeconds ?? 2,
    callTimeoutMs: opts.callTimeoutMs ?? 2000,
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `fn` until it returns a value other than undefined, or fail after `timeoutMs`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await sleep(50);
  }
}
