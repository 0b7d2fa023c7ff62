/**
 * The WAN lab's layout and fault rules as pure data: every address in the benchmarking
 * range, names within the kernel's limits, the public RTT defaults, and the iptables
 * rules a cut turns into (both legs of every relayed conversation, both directions).
 */
import { describe, expect, it } from 'vitest';
import {
  CONTROL_NODE,
  clientsNode,
  drops,
  nodeRtt,
  rttMatrix,
  rulesFor,
  wanLayout,
} from '../../src/lab/wan/plan.js';

const REGIONS = ['us-east-1', 'eu-west-1', 'ap-southeast-1'];

describe('WAN layout', () => {
  const l = wanLayout('w7', 7, REGIONS);

  it('puts every address in 198.18.7.0/24, each once, and names fit the kernel (15 chars)', () => {
    const addrs = l.nodes.flatMap((n) => [
      n.address,
      n.proxyAddress,
      ...(n.relayAddress ? [n.relayAddress] : []),
    ]);
    expect(new Set(addrs).size).toBe(addrs.length);
    for (const a of addrs) expect(a).toMatch(/^198\.18\.7\.\d{1,3}$/);
    expect(l.hostVeth.length).toBeLessThanOrEqual(15);
    expect(l.nodes.map((n) => n.name)).toEqual([
      CONTROL_NODE,
      'us-east-1',
      clientsNode('us-east-1'),
      'eu-west-1',
      clientsNode('eu-west-1'),
      'ap-southeast-1',
      clientsNode('ap-southeast-1'),
    ]);
    expect(l.nodes.find((n) => n.name === CONTROL_NODE)?.netns).toBeUndefined();
  });

  it('refuses ids that would make bad interface names and more regions than addresses', () => {
    expect(() => wanLayout('Bad-Id', 1, REGIONS)).toThrow();
    expect(() =>
      wanLayout(
        'w1',
        1,
        Array.from({ length: 21 }, (_, i) => `r${i}`),
      ),
    ).toThrow(/at most 20/);
  });

  it('defaults to public inter-region round trips, 1 ms in region, control in the primary region', () => {
    expect(nodeRtt(l, {}, 'us-east-1', 'eu-west-1', 'us-east-1')).toBe(70);
    expect(nodeRtt(l, {}, 'eu-west-1', 'us-east-1', 'us-east-1')).toBe(70);
    expect(nodeRtt(l, {}, 'us-east-1', 'ap-southeast-1', 'us-east-1')).toBe(220);
    expect(nodeRtt(l, {}, 'eu-west-1', 'ap-southeast-1', 'us-east-1')).toBe(160);
    expect(nodeRtt(l, {}, clientsNode('eu-west-1'), 'eu-west-1', 'us-east-1')).toBe(1);
    expect(nodeRtt(l, {}, CONTROL_NODE, 'us-east-1', 'us-east-1')).toBe(1);
    expect(nodeRtt(l, {}, CONTROL_NODE, 'ap-southeast-1', 'us-east-1')).toBe(220);
    expect(nodeRtt(l, { controlRegion: 'eu-west-1' }, CONTROL_NODE, 'us-east-1', 'us-east-1')).toBe(70);
  });

  it('applies a file matrix and pair overrides, symmetric', () => {
    const cfg = {
      regions: { 'eu-west-1': { 'us-east-1': 90 } },
      pairs: { 'us-east-1': { 'eu-west-1': 300 } },
    };
    expect(nodeRtt(l, { regions: cfg.regions }, 'us-east-1', 'eu-west-1', 'us-east-1')).toBe(90);
    expect(nodeRtt(l, cfg, 'eu-west-1', 'us-east-1', 'us-east-1')).toBe(300);
    // The override names nodes, so the clients keep the matrix figure.
    expect(nodeRtt(l, cfg, clientsNode('eu-west-1'), 'us-east-1', 'us-east-1')).toBe(90);
    const m = rttMatrix(l, cfg, 'us-east-1');
    expect(Object.keys(m[CONTROL_NODE]!)).toEqual(REGIONS);
  });
});

describe('cuts → iptables rules', () => {
  const l = wanLayout('w7', 7, REGIONS);
  const node = (n: string) => l.nodes.find((x) => x.name === n)!;

  it('a symmetric cut drops both directions, each in the sender namespace', () => {
    expect(drops([{ from: 'us-east-1', to: 'eu-west-1', oneWay: false }])).toEqual([
      { from: 'us-east-1', to: 'eu-west-1' },
      { from: 'eu-west-1', to: 'us-east-1' },
    ]);
    const r = rulesFor(l, [{ from: 'us-east-1', to: 'eu-west-1', oneWay: false }]);
    const us = node('us-east-1');
    const eu = node('eu-west-1');
    expect(r.get(us.netns)).toEqual([
      `-d ${eu.relayAddress}/32 -j DROP`,
      `-d ${eu.proxyAddress}/32 -j DROP`,
      `-d ${eu.address}/32 -j DROP`,
    ]);
    expect(r.get(eu.netns)).toContain(`-d ${us.proxyAddress}/32 -j DROP`);
    expect(r.get(node('ap-southeast-1').netns)).toEqual([]);
    expect(r.get(undefined)).toEqual([]);
  });

  it('a one-way cut drops only the sender side; the control plane lands in the host chain', () => {
    const r = rulesFor(l, [{ from: CONTROL_NODE, to: 'us-east-1', oneWay: true }]);
    expect(r.get(undefined)).toContain(`-d ${node('us-east-1').relayAddress}/32 -j DROP`);
    expect(r.get(node('us-east-1').netns)).toEqual([]);
  });

  it('repeated cuts produce each rule once', () => {
    const c = { from: 'us-east-1', to: 'eu-west-1', oneWay: false };
    expect(rulesFor(l, [c, c, { ...c, from: c.to, to: c.from }]).get(node('us-east-1').netns)).toHaveLength(
      3,
    );
  });
});
