/**
 * `regionctl lab up --wan` and `regionctl lab net …`: the WAN lab's lifecycle and its
 * network faults. Regions become network hosts (src/lab/wan/plan.ts has the layout);
 * latency comes from the delay relay (src/lab/wan/relay.ts), partitions from iptables
 * rules inside the namespaces (src/lab/wan/netns.ts). Every fault command rewrites the
 * whole rule set from the recorded state, so each is idempotent and `heal` is exact.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';
import { RegionctlError } from '../../errors.js';
import type { RegionsSpec } from '../../spec/schema.js';
import {
  applyCuts,
  checkWanSupport,
  claimSubnet,
  createTopology,
  destroyTopology,
  namespacePids,
  releaseSubnet,
} from './netns.js';
import {
  CONTROL_NODE,
  type Cut,
  clientsNode,
  findNode,
  nodeNames,
  type RttConfig,
  rttMatrix,
  type WanLayout,
  type WanNode,
  wanLayout,
} from './plan.js';
import { readWanState, type WanState, wanDir, wanStatePath, writeWanState } from './state.js';

export interface WanUpOptions {
  specPath: string;
  specDir: string;
  stateDir: string;
  /** JSON file with an RttConfig (region round trips, in-region ms, control region). */
  rttFile?: string;
  /** `lab` keeps the lab's 5 s replication timeouts; default `production` (PostgreSQL's). */
  serverSettings?: WanState['serverSettings'];
  onProgress?: (message: string) => void;
}

export interface WanUpResult {
  specFile: string;
  subnet: string;
  endpoints: { region: string; host: string; port: number; netns: string; listen: string }[];
}

function relayFiles(stateDir: string) {
  const d = wanDir(stateDir);
  return { config: join(d, 'relay.json'), pid: join(d, 'relay.pid'), log: join(d, 'relay.log') };
}

/** The generated spec's path: beside regions.yaml, so every relative path in it still holds. */
export function wanSpecPath(specPath: string): string {
  const ext = extname(specPath);
  return join(dirname(specPath), `${basename(specPath, ext)}.wan${ext || '.yaml'}`);
}

function readRttFile(file: string | undefined): RttConfig {
  if (!file) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RttConfig;
  } catch (e) {
    throw new RegionctlError(
      'E_LAB_WAN_RTT_FILE',
      `cannot read the RTT file ${file}: ${(e as Error).message}`,
      'give a JSON object like {"regions":{"us-east-1":{"eu-west-1":70}},"inRegionMs":1,"controlRegion":"us-east-1"}',
    );
  }
}

export async function wanUp(spec: RegionsSpec, opts: WanUpOptions): Promise<WanUpResult> {
  checkWanSupport();
  const say = opts.onProgress ?? (() => {});
  const primary = spec.regions.find((r) => r.role === 'primary')?.name ?? spec.regions[0]!.name;
  let state = readWanState(opts.stateDir);
  const regions = spec.regions.map((r) => r.name);
  if (state && regions.some((r) => !findNode(state!.layout, r))) {
    throw new RegionctlError(
      'E_LAB_WAN_CHANGED',
      'the spec has regions the running WAN lab was not built with',
      'run `regionctl lab down` and `regionctl lab up --wan` again',
    );
  }
  if (!state) {
    const subnet = await claimSubnet(opts.stateDir, (owner, x) => readWanState(owner)?.layout.subnet === x);
    state = {
      version: 1,
      layout: wanLayout(`w${subnet}`, subnet, regions),
      primary,
      rtt: readRttFile(opts.rttFile),
      cuts: [],
      ports: Object.fromEntries(spec.regions.map((r) => [r.name, r.endpoint.port])),
      specFile: wanSpecPath(opts.specPath),
      serverSettings: opts.serverSettings ?? 'production',
      createdAt: new Date().toISOString(),
    };
    // Recorded before anything exists: `lab down` after a crash removes what was made.
    writeWanState(opts.stateDir, state);
  } else if (opts.rttFile) {
    state.rtt = { ...readRttFile(opts.rttFile), pairs: state.rtt.pairs ?? {} };
    writeWanState(opts.stateDir, state);
  }
  say(`WAN: namespaces and links in 198.18.${state.layout.subnet}.0/24 (id ${state.layout.id})`);
  await createTopology(state.layout);
  await applyCuts(state.layout, state.cuts, hostExtra(state));
  await startRelay(opts.stateDir, state);
  say('WAN: delay relay running');
  writeWanSpec(opts.specPath, state);
  say(`WAN: spec with relay endpoints written to ${state.specFile}`);
  return describe(state);
}

function describe(state: WanState): WanUpResult {
  return {
    specFile: state.specFile,
    subnet: `198.18.${state.layout.subnet}.0/24`,
    endpoints: state.layout.nodes
      .filter((n) => n.kind === 'region')
      .map((n) => ({
        region: n.region!,
        host: n.relayAddress!,
        port: state.ports[n.region!]!,
        netns: n.netns!,
        listen: n.address,
      })),
  };
}

/** regions.yaml with each region's endpoint host set to its relay address; comments kept. */
function writeWanSpec(specPath: string, state: WanState): void {
  const doc = parseDocument(readFileSync(specPath, 'utf8'));
  const regions = doc.get('regions') as { items: unknown[] } | undefined;
  (regions?.items ?? []).forEach((_, i) => {
    const name = String(doc.getIn(['regions', i, 'name']));
    const node = findNode(state.layout, name);
    if (node?.relayAddress) doc.setIn(['regions', i, 'endpoint', 'host'], node.relayAddress);
  });
  // The authority: one etcd member per region, in the region's namespace (wanServicesUp).
  doc.set(
    'authority',
    doc.createNode({
      provider: 'etcd',
      endpoints: etcdMembersOf(state).map((m) => `http://${m.host}:${m.clientPort}`),
      leaseSeconds: 2,
    }),
  );
  const header = `# GENERATED by \`regionctl lab up --wan\` from ${basename(specPath)}: do not edit.\n# Region endpoints are the WAN lab's delay relays (198.18.${state.layout.subnet}.0/24).\n`;
  writeFileSync(state.specFile, header + doc.toString());
}

/** etcd's ports inside each region's namespace (its own network stack: no clash with anything). */
const ETCD_CLIENT_PORT = 2379;
const ETCD_PEER_PORT = 2380;

function etcdMembersOf(state: WanState) {
  return state.layout.nodes
    .filter((n) => n.kind === 'region')
    .map((n) => ({
      host: n.address,
      netns: n.netns!,
      clientPort: ETCD_CLIENT_PORT,
      peerPort: ETCD_PEER_PORT,
    }));
}

function agentFiles(stateDir: string, region: string) {
  const d = join(wanDir(stateDir), 'agents');
  return { dir: d, pid: join(d, `${region}.pid`), log: join(d, `${region}.log`) };
}

function cliMain(): string[] {
  const here = fileURLToPath(import.meta.url);
  const ts = here.endsWith('.ts');
  const file = join(dirname(here), '..', '..', 'cli', ts ? 'main.ts' : 'main.js');
  return ts ? ['--import', 'tsx', file] : [file];
}

/**
 * The WAN lab's safety services, after the servers are up: the authority (one etcd
 * member per region namespace, so a partition cuts it like anything else) and one
 * region agent per region, in the region's namespace beside its server. Idempotent.
 */
export async function wanServicesUp(stateDir: string, onProgress: (m: string) => void = () => {}) {
  const state = loaded(stateDir);
  const { etcdUp } = await import('../etcd.js');
  const cluster = await etcdUp({
    stateDir: join(wanDir(stateDir), 'etcd'),
    members: etcdMembersOf(state),
    onProgress,
  });
  onProgress(`WAN: authority (etcd) healthy on ${cluster.endpoints.join(', ')}`);
  for (const n of state.layout.nodes) {
    if (n.kind !== 'region') continue;
    const f = agentFiles(stateDir, n.region!);
    mkdirSync(f.dir, { recursive: true });
    if (pidAlive(f.pid)) continue;
    const log = openSync(f.log, 'a');
    try {
      const child = spawn(
        'ip',
        [
          'netns',
          'exec',
          n.netns!,
          process.execPath,
          ...cliMain(),
          'agent',
          '--region',
          n.region!,
          '--spec',
          state.specFile,
        ],
        // The caller's cwd: from sources, `--import tsx` resolves from there.
        { detached: true, stdio: ['ignore', log, log] },
      );
      writeFileSync(f.pid, `${child.pid}\n`);
      child.unref();
    } finally {
      closeSync(log);
    }
    onProgress(`WAN: agent of ${n.region} started (log ${f.log})`);
  }
  return { endpoints: cluster.endpoints };
}

function pidAlive(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** Stop one region's agent (a dead agent cannot self-fence: a fault of its own). */
export function stopAgent(stateDir: string, region: string, signal: NodeJS.Signals = 'SIGTERM'): boolean {
  const pid = pidAlive(agentFiles(stateDir, region).pid);
  if (!pid) return false;
  process.kill(pid, signal);
  return true;
}

function relayConfig(state: WanState) {
  const nodes = state.layout.nodes;
  return {
    listeners: nodes
      .filter((n) => n.kind === 'region')
      .map((n) => ({
        target: n.name,
        listen: { host: n.relayAddress!, port: state.ports[n.region!]! },
        upstream: { host: n.address, port: state.ports[n.region!]! },
      })),
    sources: nodes.map((n) => ({ name: n.name, address: n.address, bindAddress: n.proxyAddress })),
    rttMs: rttMatrix(state.layout, state.rtt, state.primary),
    defaultRttMs: 0,
  };
}

function relayMain(): string[] {
  const here = fileURLToPath(import.meta.url);
  const ts = here.endsWith('.ts');
  const file = join(dirname(here), ts ? 'relay-main.ts' : 'relay-main.js');
  return ts ? ['--import', 'tsx', file] : [file];
}

function relayPid(stateDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(relayFiles(stateDir).pid, 'utf8').trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function startRelay(stateDir: string, state: WanState): Promise<void> {
  const f = relayFiles(stateDir);
  writeFileSync(f.config, `${JSON.stringify(relayConfig(state), null, 2)}\n`);
  const running = relayPid(stateDir);
  if (running && (await namespacePids(state.layout.wanNetns)).includes(running)) {
    process.kill(running, 'SIGHUP');
    return;
  }
  rmSync(f.pid, { force: true });
  const log = openSync(f.log, 'a');
  try {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        state.layout.wanNetns,
        process.execPath,
        ...relayMain(),
        '--config',
        f.config,
        '--pid-file',
        f.pid,
      ],
      { detached: true, stdio: ['ignore', log, log] },
    );
    child.unref();
    const deadline = Date.now() + 15_000;
    while (!existsSync(f.pid)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new RegionctlError(
          'E_LAB_WAN_RELAY',
          `the delay relay did not start: ${tailText(f.log)}`,
          `see ${f.log}; then \`regionctl lab down\` and \`regionctl lab up --wan\``,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    closeSync(log);
  }
}

function tailText(file: string): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-3).join(' | ');
  } catch {
    return '(no log)';
  }
}

/** Remove every namespace, link and rule the WAN lab made (servers must be stopped first). */
export async function wanDown(stateDir: string): Promise<boolean> {
  const state = readWanState(stateDir);
  if (!state) return false;
  const pid = relayPid(stateDir);
  if (pid) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // Gone already.
    }
  }
  for (const n of state.layout.nodes) if (n.kind === 'region') stopAgent(stateDir, n.region!, 'SIGKILL');
  const { etcdDown } = await import('../etcd.js');
  await etcdDown({ stateDir: join(wanDir(stateDir), 'etcd') }).catch(() => {});
  await destroyTopology(state.layout);
  releaseSubnet(stateDir, state.layout.subnet);
  rmSync(wanStatePath(stateDir), { force: true });
  rmSync(state.specFile, { force: true });
  return true;
}

// ---- faults ------------------------------------------------------------------------

function loaded(stateDir: string): WanState {
  const s = readWanState(stateDir);
  if (!s) {
    throw new RegionctlError(
      'E_LAB_NOT_WAN',
      `no WAN lab in ${stateDir}`,
      'start one with `regionctl lab up --wan` (network faults need regions in namespaces)',
    );
  }
  return s;
}

function node(state: WanState, name: string): WanNode {
  const n = findNode(state.layout, name);
  if (n) return n;
  throw new RegionctlError(
    'E_USAGE_UNKNOWN_NODE',
    `unknown node '${name}'`,
    `name a region, '${CONTROL_NODE}' (the control plane) or '<region>:clients'; this lab has: ${nodeNames(state.layout).join(', ')}`,
  );
}

async function commit(stateDir: string, state: WanState, relay = false): Promise<WanState> {
  // Deduplicated, so repeating a command changes nothing.
  const seen = new Set<string>();
  state.cuts = state.cuts.filter((c) => {
    const k = `${c.from}\0${c.to}\0${c.oneWay}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
  writeWanState(stateDir, state);
  await applyCuts(state.layout, state.cuts, hostExtra(state));
  if (relay) await startRelay(stateDir, state);
  return state;
}

function hostExtra(state: WanState): string[] {
  return (state.blockedLocalPorts ?? []).map((p) => `-o lo -p tcp -d 127.0.0.0/8 --dport ${p} -j DROP`);
}

/** The control plane loses (or, with cut=false, regains) a loopback port: the control store. */
export async function netCutLocalPort(stateDir: string, port: number, cut = true) {
  const s = loaded(stateDir);
  const set = new Set(s.blockedLocalPorts ?? []);
  if (cut) set.add(port);
  else set.delete(port);
  s.blockedLocalPorts = [...set].sort((a, b) => a - b);
  return commit(stateDir, s);
}

export async function netPartition(stateDir: string, a: string, b: string, oneWay = false) {
  const s = loaded(stateDir);
  node(s, a);
  node(s, b);
  if (a === b)
    throw new RegionctlError('E_USAGE', `cannot partition ${a} from itself`, 'name two different nodes');
  s.cuts.push({ from: a, to: b, oneWay });
  return commit(stateDir, s);
}

/** Cut a region from every other node (and from its own clients unless exceptClients). */
export async function netIsolate(stateDir: string, region: string, exceptClients = false) {
  const s = loaded(stateDir);
  const r = node(s, region);
  if (r.kind !== 'region')
    throw new RegionctlError('E_USAGE', `${region} is not a region`, 'isolate a region by name');
  for (const n of s.layout.nodes) {
    if (n.name === region || (exceptClients && n.name === clientsNode(region))) continue;
    s.cuts.push({ from: region, to: n.name, oneWay: false });
  }
  return commit(stateDir, s);
}

/** Only the control plane (CLI, reconciler, control store's clients) loses the region. */
export async function netCutControl(stateDir: string, region: string) {
  return netPartition(stateDir, CONTROL_NODE, region);
}

export async function netDelay(stateDir: string, a: string, b: string, rttMs: number) {
  const s = loaded(stateDir);
  node(s, a);
  node(s, b);
  if (!Number.isFinite(rttMs) || rttMs < 0 || rttMs > 60_000) {
    throw new RegionctlError(
      'E_USAGE',
      `bad delay ${rttMs} ms`,
      'give a round trip such as 300ms (0 to 60000)',
    );
  }
  s.rtt.pairs ??= {};
  s.rtt.pairs[a] = { ...(s.rtt.pairs[a] ?? {}), [b]: rttMs };
  if (s.rtt.pairs[b]) delete s.rtt.pairs[b][a];
  return commit(stateDir, s, true);
}

/**
 * Remove cuts: all of them, those touching `a`, or those between `a` and `b`.
 * `all` also resets delays to the configured matrix.
 */
export async function netHeal(stateDir: string, opts: { a?: string; b?: string; all?: boolean } = {}) {
  const s = loaded(stateDir);
  if (opts.a) node(s, opts.a);
  if (opts.b) node(s, opts.b);
  const touches = (c: Cut) =>
    opts.b
      ? (c.from === opts.a && c.to === opts.b) || (c.from === opts.b && c.to === opts.a)
      : c.from === opts.a || c.to === opts.a;
  s.cuts = opts.a ? s.cuts.filter((c) => !touches(c)) : [];
  if (!opts.a) delete s.blockedLocalPorts;
  const relay = opts.all === true && s.rtt.pairs !== undefined;
  if (opts.all) delete s.rtt.pairs;
  return commit(stateDir, s, relay);
}

export interface NetShow {
  subnet: string;
  nodes: { name: string; kind: string; netns: string | null; address: string; relay: string | null }[];
  rttMs: Record<string, Record<string, number>>;
  cuts: Cut[];
  /** Loopback ports the control plane cannot reach (the control store). */
  blockedLocalPorts: number[];
}

export function netShow(stateDir: string): NetShow {
  const s = loaded(stateDir);
  return {
    subnet: `198.18.${s.layout.subnet}.0/24`,
    nodes: s.layout.nodes.map((n) => ({
      name: n.name,
      kind: n.kind,
      netns: n.netns ?? null,
      address: n.address,
      relay: n.relayAddress ?? null,
    })),
    rttMs: rttMatrix(s.layout, s.rtt, s.primary),
    cuts: s.cuts,
    blockedLocalPorts: s.blockedLocalPorts ?? [],
  };
}

export function renderNetShow(v: NetShow): string {
  const targets = v.nodes.filter((n) => n.kind === 'region').map((n) => n.name);
  const w = Math.max(...v.nodes.map((n) => n.name.length), 8) + 2;
  const lines = [`WAN lab ${v.subnet}: round trip (ms) from each node to each region`];
  lines.push(`${''.padEnd(w)}${targets.map((t) => t.padStart(16)).join('')}`);
  for (const n of v.nodes) {
    lines.push(
      `${n.name.padEnd(w)}${targets.map((t) => String(v.rttMs[n.name]?.[t] ?? '-').padStart(16)).join('')}`,
    );
  }
  lines.push('');
  if (v.cuts.length === 0) lines.push('cuts: none');
  else {
    lines.push('cuts:');
    for (const c of v.cuts) lines.push(`  ${c.from} ${c.oneWay ? '-x->' : '<-x->'} ${c.to}`);
  }
  for (const p of v.blockedLocalPorts) lines.push(`  control <-x-> 127.0.0.1:${p} (control store)`);
  return `${lines.join('\n')}\n`;
}

export type { WanLayout };
