/**
 * Which servers a lab runs for a spec, and where each one lives on disk:
 * `<state>/<region>/data`, `<state>/<region>/postgres.log`; the control store lives in
 * `<state>/_control` (a region name must start with a letter, so it cannot collide).
 */
import { isAbsolute, join, resolve } from 'node:path';
import { RegionctlError } from '../errors.js';
import type { EndpointSpec, RegionsSpec } from '../spec/schema.js';
import { type WanPlacement, wanPlacement } from './wan/state.js';

export const DEFAULT_STATE_DIR = '.regionctl/lab';
/** Name by which CLI commands and `killRegion` address the control store. */
export const CONTROL_STORE = 'control';
const CONTROL_DIR = '_control';

export interface LabServer {
  /** Region name, or CONTROL_STORE. */
  name: string;
  /** For messages: `region us-east-1` or `control store`. */
  label: string;
  endpoint: EndpointSpec;
  /** Databases the lab creates on this server. */
  databases: string[];
  dir: string;
  dataDir: string;
  logFile: string;
  /** WAN lab only: the region's network namespace and address (the endpoint is the relay's). */
  wan?: WanPlacement;
}

export function resolveStateDir(specDir: string, stateDir?: string): string {
  const d = stateDir ?? DEFAULT_STATE_DIR;
  return isAbsolute(d) ? d : resolve(specDir, d);
}

export function secretsDir(stateDir: string): string {
  return join(stateDir, 'secrets');
}

export function labServers(spec: RegionsSpec, stateDir: string): LabServer[] {
  const { database, ...controlEndpoint } = spec.controlStore;
  const servers: LabServer[] = [
    ...spec.regions.map((r) =>
      server(stateDir, r.name, `region ${r.name}`, r.name, r.endpoint, [spec.database]),
    ),
    server(stateDir, CONTROL_STORE, 'control store', CONTROL_DIR, controlEndpoint, [database]),
  ];
  // In a WAN lab (`lab up --wan`) a region's server runs in its namespace, and the spec
  // advertises the relay's address in front of it.
  const wan = wanPlacement(stateDir);
  for (const s of servers) {
    const w = wan.get(s.name);
    if (w && s.name !== CONTROL_STORE && s.endpoint.host === w.relayAddress) s.wan = w;
    else assertLoopback(s);
  }
  assertDistinctAddresses(servers);
  return servers;
}

function server(
  stateDir: string,
  name: string,
  label: string,
  dirName: string,
  endpoint: EndpointSpec,
  databases: string[],
): LabServer {
  const dir = join(stateDir, dirName);
  return {
    name,
    label,
    endpoint,
    databases,
    dir,
    dataDir: join(dir, 'data'),
    logFile: join(dir, 'postgres.log'),
  };
}

/** Find one server by region name (or `control`), with a "did you mean" for typos. */
export function findServer(servers: LabServer[], name: string): LabServer {
  const s = servers.find((x) => x.name === name);
  if (s) return s;
  const names = servers.map((x) => x.name);
  const near = names
    .map((n) => ({ n, d: editDistance(n, name) }))
    .sort((a, b) => a.d - b.d)
    .find((x) => x.d <= Math.max(2, Math.floor(name.length / 3)));
  throw new RegionctlError(
    'E_USAGE_UNKNOWN_REGION',
    `unknown region '${name}'${near ? ` — did you mean '${near.n}'?` : ''}`,
    `the lab's servers are: ${names.join(', ')}`,
  );
}

export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The lab runs real servers with a generated superuser password: never on a reachable address. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '[::1]') return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function assertLoopback(s: LabServer): void {
  if (isLoopback(s.endpoint.host)) return;
  throw new RegionctlError(
    'E_LAB_NOT_LOOPBACK',
    `${s.label}: host '${s.endpoint.host}' is not a loopback address; the lab only runs servers on this machine's loopback interface`,
    'use host 127.0.0.1 (or another 127.x.y.z / ::1 / localhost) for lab regions (a WAN lab writes its own spec: `regionctl lab up --wan`, then use the spec it names); real hosts are managed with `regionctl apply`, not the lab',
  );
}

function assertDistinctAddresses(servers: LabServer[]): void {
  const seen = new Map<string, LabServer>();
  for (const s of servers) {
    const key = `${s.endpoint.port}`;
    const other = seen.get(key);
    if (other) {
      throw new RegionctlError(
        'E_LAB_PORT_CLASH',
        `${s.label} and ${other.label} both use port ${s.endpoint.port}`,
        'give every region and the control store its own port in regions.yaml',
      );
    }
    seen.set(key, s);
  }
}
