/**
 * The WAN lab's record of what it made and what faults are in force, in the lab's state
 * directory (`<state>/wan/wan.json`). Written before anything is created, so that
 * `lab down` after a crash at any point knows every name to remove. Kept free of heavy
 * imports: `labServers` reads it on every lab command to place servers in namespaces.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cut, RttConfig, WanLayout } from './plan.js';

export interface WanState {
  version: 1;
  layout: WanLayout;
  /** The spec's primary when the lab was made (where the control plane sits by default). */
  primary: string;
  rtt: RttConfig;
  cuts: Cut[];
  /**
   * Loopback ports (the control store's) the control plane cannot reach: the store is
   * in the host's namespace, so its cut is a rule in the host's chain.
   */
  blockedLocalPorts?: number[];
  /** Region → port its server listens on (and the relay serves). */
  ports: Record<string, number>;
  /** The generated spec whose endpoints are the relay addresses. */
  specFile: string;
  /**
   * Settings of the regions' servers: `production` leaves wal_sender_timeout,
   * wal_receiver_timeout and wal_receiver_status_interval at PostgreSQL's defaults.
   */
  serverSettings: 'production' | 'lab';
  createdAt: string;
}

export function wanDir(stateDir: string): string {
  return join(stateDir, 'wan');
}

export function wanStatePath(stateDir: string): string {
  return join(wanDir(stateDir), 'wan.json');
}

export function readWanState(stateDir: string): WanState | undefined {
  try {
    const s = JSON.parse(readFileSync(wanStatePath(stateDir), 'utf8')) as WanState;
    return s?.version === 1 && s.layout ? s : undefined;
  } catch {
    return undefined;
  }
}

export function writeWanState(stateDir: string, s: WanState): void {
  mkdirSync(wanDir(stateDir), { recursive: true });
  const file = wanStatePath(stateDir);
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`);
  renameSync(tmp, file);
}

export interface WanPlacement {
  netns: string;
  /** Where the server listens, inside its namespace. */
  address: string;
  /** What the spec advertises (the relay). */
  relayAddress: string;
  settings: WanState['serverSettings'];
}

/** Where each region's server runs in the WAN lab, when this state directory has one. */
export function wanPlacement(stateDir: string): Map<string, WanPlacement> {
  const s = readWanState(stateDir);
  const out = new Map<string, WanPlacement>();
  if (!s) return out;
  for (const n of s.layout.nodes) {
    if (n.kind !== 'region' || !n.netns || !n.relayAddress) continue;
    out.set(n.region!, {
      netns: n.netns,
      address: n.address,
      relayAddress: n.relayAddress,
      settings: s.serverSettings,
    });
  }
  return out;
}
