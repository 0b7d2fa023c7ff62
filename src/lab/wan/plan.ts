/**
 * The WAN lab's layout, as data (pure: no I/O). Every region is a network host: its
 * PostgreSQL runs in a namespace of its own, its application clients in another, and the
 * host's own namespace is the control plane (CLI, reconciler, control store). They meet
 * in a WAN namespace holding one bridge and the delay relay, which serves every region's
 * advertised endpoint.
 *
 * Addresses come from one /24 of the benchmarking range 198.18.0.0/15 (RFC 2544) and
 * exist only on the lab's own veth interfaces and bridge; no namespace has a route
 * beyond that /24, so nothing can leave it. Per node N:
 *   - home address A(N): on N's veth, the source of everything N sends;
 *   - proxy address P(N): on the WAN bridge; the relay binds its upstream leg to it for
 *     connections from N, so a region's server sees P(N) as the peer and iptables rules
 *     inside that region's namespace can tell sources apart;
 *   - for regions, relay address V(R): on the WAN bridge, the endpoint the spec advertises.
 *
 * A connection from N to region R is therefore two TCP legs: A(N) → V(R) (relay) and
 * P(N) → A(R). A partition drops packets in the OUTPUT chain of the sending namespace on
 * BOTH legs (N's packets to V(R) and to P(R); R's packets to P(N) and V(N)), so each
 * endpoint's kernel sees exactly what a real partition shows it: unanswered segments,
 * retransmissions, keepalive failures. The relay only ever adds delay.
 */

export const WAN_RANGE = '198.18.0.0/15';
export const MAX_WAN_REGIONS = 20;

/** The control plane (host namespace). */
export const CONTROL_NODE = 'control';

export type NodeKind = 'control' | 'region' | 'clients';

export interface WanNode {
  /** `control`, a region name, or `<region>:clients`. */
  name: string;
  kind: NodeKind;
  region?: string;
  /** Network namespace; absent for the control plane (the host's own namespace). */
  netns?: string;
  address: string;
  proxyAddress: string;
  /** Regions only: the relay's listening address (what the spec advertises). */
  relayAddress?: string;
}

export interface WanLayout {
  /** Short id that prefixes every name the lab creates (namespaces, interfaces, chains). */
  id: string;
  /** Third octet of 198.18.<subnet>.0/24. */
  subnet: number;
  wanNetns: string;
  /** Host end of the host ↔ WAN veth pair. */
  hostVeth: string;
  /** iptables chain in the host namespace (the only thing the lab adds to the host's tables). */
  hostChain: string;
  /** iptables chain inside each namespace the lab owns. */
  chain: string;
  nodes: WanNode[];
}

export function clientsNode(region: string): string {
  return `${region}:clients`;
}

export function wanLayout(id: string, subnet: number, regions: string[]): WanLayout {
  if (!/^[a-z0-9]{2,6}$/.test(id)) throw new Error(`bad WAN lab id '${id}'`);
  if (!Number.isInteger(subnet) || subnet < 0 || subnet > 255) throw new Error(`bad subnet ${subnet}`);
  if (regions.length > MAX_WAN_REGIONS) {
    throw new Error(`the WAN lab supports at most ${MAX_WAN_REGIONS} regions (got ${regions.length})`);
  }
  const a = (host: number) => `198.18.${subnet}.${host}`;
  const nodes: WanNode[] = [{ name: CONTROL_NODE, kind: 'control', address: a(1), proxyAddress: a(2) }];
  regions.forEach((r, i) => {
    nodes.push({
      name: r,
      kind: 'region',
      region: r,
      netns: `rc${id}-r${i}`,
      address: a(10 + i),
      relayAddress: a(50 + i),
      proxyAddress: a(70 + i),
    });
    nodes.push({
      name: clientsNode(r),
      kind: 'clients',
      region: r,
      netns: `rc${id}-c${i}`,
      address: a(30 + i),
      proxyAddress: a(90 + i),
    });
  });
  return {
    id,
    subnet,
    wanNetns: `rc${id}-wan`,
    hostVeth: `rc${id}h`,
    hostChain: `RCLAB-${id}`,
    chain: 'RCLAB',
    nodes,
  };
}

export function findNode(layout: WanLayout, name: string): WanNode | undefined {
  return layout.nodes.find((n) => n.name === name);
}

// ---- latency ---------------------------------------------------------------------

/**
 * Round trips between regions, from public inter-region measurements (AWS's published
 * latency figures and cloudping.co medians, rounded). Unknown pairs get DEFAULT_RTT_MS.
 */
export const PUBLIC_RTT_MS: Record<string, Record<string, number>> = {
  'us-east-1': { 'eu-west-1': 70, 'ap-southeast-1': 220, 'us-west-2': 65, 'eu-central-1': 90 },
  'eu-west-1': { 'ap-southeast-1': 160, 'us-west-2': 125, 'eu-central-1': 25 },
  'ap-southeast-1': { 'us-west-2': 165, 'eu-central-1': 150 },
};
export const DEFAULT_RTT_MS = 100;
/** Application clients in the same region as the server. */
export const IN_REGION_RTT_MS = 1;

export interface RttConfig {
  /** Region-to-region round trips (symmetric; either direction may be given). */
  regions?: Record<string, Record<string, number>>;
  /** Round trip between a region's clients and its own server. */
  inRegionMs?: number;
  /** Region the control plane sits in (default: the spec's primary). */
  controlRegion?: string;
  /** Explicit node-pair overrides (`lab net delay`), symmetric; keys are node names. */
  pairs?: Record<string, Record<string, number>>;
}

function lookup(m: Record<string, Record<string, number>> | undefined, a: string, b: string) {
  return m?.[a]?.[b] ?? m?.[b]?.[a];
}

/** Where a node is, for latency: the region it belongs to (control: its configured region). */
function nodeRegion(n: WanNode, cfg: RttConfig, fallbackControl: string): string {
  if (n.kind === 'control') return cfg.controlRegion ?? fallbackControl;
  return n.region!;
}

export function regionRtt(cfg: RttConfig, a: string, b: string): number {
  if (a === b) return cfg.inRegionMs ?? IN_REGION_RTT_MS;
  return lookup(cfg.regions, a, b) ?? lookup(PUBLIC_RTT_MS, a, b) ?? DEFAULT_RTT_MS;
}

/** The round trip between two nodes, as the relay applies it. */
export function nodeRtt(
  layout: WanLayout,
  cfg: RttConfig,
  from: string,
  to: string,
  primary: string,
): number {
  const override = lookup(cfg.pairs, from, to);
  if (override !== undefined) return override;
  const a = findNode(layout, from);
  const b = findNode(layout, to);
  if (!a || !b) return DEFAULT_RTT_MS;
  return regionRtt(cfg, nodeRegion(a, cfg, primary), nodeRegion(b, cfg, primary));
}

/** rttMs[source][target] for the relay: every node towards every region. */
export function rttMatrix(layout: WanLayout, cfg: RttConfig, primary: string) {
  const out: Record<string, Record<string, number>> = {};
  for (const s of layout.nodes) {
    const row: Record<string, number> = {};
    for (const t of layout.nodes)
      if (t.kind === 'region') row[t.name] = nodeRtt(layout, cfg, s.name, t.name, primary);
    out[s.name] = row;
  }
  return out;
}

// ---- partitions --------------------------------------------------------------------

/** `from`'s packets to `to` are dropped; both directions unless oneWay. */
export interface Cut {
  from: string;
  to: string;
  oneWay: boolean;
}

/** Both directions of a cut as one-way drops, deduplicated. */
export function drops(cuts: Cut[]): { from: string; to: string }[] {
  const seen = new Set<string>();
  const out: { from: string; to: string }[] = [];
  const add = (from: string, to: string) => {
    const k = `${from}\0${to}`;
    if (seen.has(k) || from === to) return;
    seen.add(k);
    out.push({ from, to });
  };
  for (const c of cuts) {
    add(c.from, c.to);
    if (!c.oneWay) add(c.to, c.from);
  }
  return out;
}

/**
 * iptables rules per namespace (`undefined` key: the host, in hostChain) that realise
 * the cuts. A drop from X to Y blocks everything X sends that belongs to a conversation
 * with Y: X's own connections to Y (to V(Y)) and X's side of Y's connections to X
 * (to P(Y), the address Y's connections arrive from), and anything sent to Y's home
 * address directly.
 */
export function rulesFor(layout: WanLayout, cuts: Cut[]): Map<string | undefined, string[]> {
  const rules = new Map<string | undefined, string[]>();
  for (const n of layout.nodes) rules.set(n.netns, []);
  for (const d of drops(cuts)) {
    const from = findNode(layout, d.from);
    const to = findNode(layout, d.to);
    if (!from || !to) continue;
    const list = rules.get(from.netns)!;
    if (to.relayAddress) list.push(`-d ${to.relayAddress}/32 -j DROP`);
    list.push(`-d ${to.proxyAddress}/32 -j DROP`);
    // Services that are not relayed (the authority's etcd members, region agents) are
    // reached at home addresses directly; a partition cuts them too.
    list.push(`-d ${to.address}/32 -j DROP`);
  }
  return rules;
}

/** Nodes a fault command may name, with what each means, for errors and --help. */
export function nodeNames(layout: WanLayout): string[] {
  return layout.nodes.map((n) => n.name);
}
