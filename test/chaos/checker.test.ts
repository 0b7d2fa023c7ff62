/**
 * The checker on synthetic workload logs (no servers): each case builds the logs a
 * scenario would leave and states which invariants must hold or break. Times are ms
 * from 0; writers dw* are dns-mode, sw* sticky.
 */
import { describe, expect, it } from 'vitest';
import { type CheckInput, type CheckResult, check } from './checker.js';
import type { Address, LogLine, ServerIdentity, WriterMode } from './workload.js';

const REGIONS = {
  'us-east-1': { host: '127.0.0.1', port: 5001 },
  'eu-west-1': { host: '127.0.0.1', port: 5002 },
} satisfies Record<string, Address>;
type Region = keyof typeof REGIONS;
const US: Region = 'us-east-1';
const EU: Region = 'eu-west-1';
const SERVERS = { '127.0.0.1:5001': US, '127.0.0.1:5002': EU };

/** Builds one scenario's log lines; every ack's id is also "replicated" to `present` unless told otherwise. */
class Scenario {
  readonly lines: LogLine[] = [];
  /** What the final primary holds. */
  readonly present = new Set<string>();
  private seq = 0;

  private mode(writer: string): WriterMode {
    return writer.startsWith('dw') ? 'dns' : 'sticky';
  }

  /** One ack at `at` from `region`'s server; the INSERT was sent `latency` ms before. */
  ack(writer: string, at: number, region: Region, o: { latency?: number; lost?: boolean; id?: string } = {}) {
    const id = o.id ?? `${writer}-${this.seq++}`;
    const sent = at - (o.latency ?? 2);
    const ep = REGIONS[region];
    const server: ServerIdentity = { sysid: '1', addr: ep.host, port: ep.port, cluster: '', started: null };
    const mode = this.mode(writer);
    this.lines.push({ t: 'send', id, writer, mode, at: sent });
    this.lines.push({ t: 'ack', id, writer, mode, at, sent, server, dialed: ep, epoch: 1, region });
    if (!o.lost) this.present.add(id);
    return id;
  }

  /** Acks every `step` ms in [from, to]. */
  acks(writer: string, from: number, to: number, region: Region, step = 100): string[] {
    const ids: string[] = [];
    for (let at = from; at <= to; at += step) ids.push(this.ack(writer, at, region));
    return ids;
  }

  /** An INSERT that failed: outcome unknown. */
  err(writer: string, at: number, region: Region, id = `${writer}-${this.seq++}`): string {
    const mode = this.mode(writer);
    this.lines.push({ t: 'send', id, writer, mode, at: at - 2 });
    this.lines.push({
      t: 'err',
      id,
      writer,
      mode,
      at,
      sent: at - 2,
      code: '57P01',
      message: 'terminating connection due to administrator command',
      dialed: REGIONS[region],
    });
    return id;
  }

  errs(writer: string, from: number, to: number, region: Region, step = 100): void {
    for (let at = from; at <= to; at += step) this.err(writer, at, region);
  }

  /** An INSERT sent and never answered (the process was killed). */
  inFlight(writer: string, at: number): string {
    const id = `${writer}-${this.seq++}`;
    this.lines.push({ t: 'send', id, writer, mode: this.mode(writer), at });
    return id;
  }
}

/** us-east-1 → eu-west-1 at 1000 ms, old primary fenced: two dns writers move, a sticky one only errs. */
function cleanFailover(s = new Scenario()): Scenario {
  for (const w of ['dw0', 'dw1']) {
    s.acks(w, 0, 1000, US);
    s.errs(w, 1050, 1450, US);
    s.acks(w, 1600, 3000, EU);
  }
  s.acks('sw0', 0, 1000, US);
  s.errs('sw0', 1050, 3000, US);
  return s;
}

function input(s: Scenario, over: Partial<CheckInput> = {}): CheckInput {
  return {
    lines: s.lines,
    servers: SERVERS,
    originalPrimary: US,
    finalPrimary: EU,
    expectedFinalPrimary: EU,
    finalIds: s.present,
    reportedLost: new Set(),
    faultAt: 1000,
    ...over,
  };
}

interface Case {
  name: string;
  input: () => CheckInput;
  ok: boolean;
  /** Each must match one violation (by its invariant's name); no others allowed. */
  violations?: RegExp[];
  expect?: (r: CheckResult) => void;
}

const cases: Case[] = [
  {
    name: 'clean failover: no violations, figures from the dns writers',
    input: () => input(cleanFailover()),
    ok: true,
    expect: (r) => {
      expect(r.splitBrain.acks).toBe(0);
      expect(r.splitBrain.terms.map((t) => t.region)).toEqual([US, EU]);
      expect(r.figures.acks).toBe(2 * 11 + 2 * 15 + 11);
      expect(r.figures.acksByRegion).toEqual({ [US]: 33, [EU]: 30 });
      expect(r.figures.errors).toBe(2 * 5 + 20);
      expect(r.figures.maxAckGapMs).toBe(600);
      expect(r.figures.maxAckGap).toEqual({ from: 1000, to: 1600 });
      expect(r.figures.rtoMs).toBe(600);
      expect(r.loss).toMatchObject({ acked: 63, trueLost: 0, silentlyLost: 0, falselyReported: 0 });
      expect(r.failover).toMatchObject({ needlessFailover: false, regionsWithAcks: [US, EU] });
      // Serialisable as is.
      expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    },
  },
  {
    name: 'split brain: the unfenced old primary acks after the new one\u2019s first ack',
    input: () => {
      const s = cleanFailover();
      // The sticky writer's old primary was never fenced: it keeps acknowledging until 2000.
      s.lines.splice(0, s.lines.length, ...s.lines.filter((l) => l.writer !== 'sw0'));
      s.acks('sw0', 0, 1500, US);
      s.ack('sw0', 1603, US, { latency: 20 }); // sent at 1583, before eu's first ack at 1600: in flight
      s.acks('sw0', 1700, 2000, US); // 4 more, all sent after 1600
      return input(s);
    },
    ok: false,
    violations: [/^no split brain: 5 writes .* by us-east-1 while eu-west-1 was primary/],
    expect: (r) => {
      expect(r.splitBrain.acks).toBe(5);
      expect(r.splitBrain.definiteAcks).toBe(4);
      expect(r.splitBrain.windowMs).toBe(400);
      expect(r.splitBrain.terms.map((t) => [t.region, t.start, t.end, t.open])).toEqual([
        [US, 0, 2000, false],
        [EU, 1600, 3000, true],
      ]);
      expect(r.splitBrain.episodes).toEqual([
        expect.objectContaining({ region: US, reigning: EU, reignFrom: 1600, windowFrom: 1600, acks: 5 }),
      ]);
    },
  },
  {
    name: 'split brain: the fenced old primary comes back inside the final primary\u2019s term',
    input: () => {
      const s = cleanFailover();
      // After erring since 1050, the sticky writer's old primary acknowledges again (its
      // fence was lost), after eu's writers stopped: still inside eu's (open) term.
      s.ack('sw0', 3500, US);
      return input(s);
    },
    ok: false,
    violations: [/^no split brain: 1 writes/],
    expect: (r) => {
      expect(r.splitBrain.reigns).toEqual([
        { region: US, from: 0 },
        { region: EU, from: 1600 },
      ]);
      // Measured from the takeover, as for an old primary that never stopped.
      expect(r.splitBrain.windowMs).toBe(1900);
    },
  },
  {
    name: 'acknowledged writes lost and reported exactly: ok',
    input: () => {
      const s = cleanFailover();
      const a = s.ack('dw0', 1010, US, { lost: true });
      const b = s.ack('sw0', 1020, US, { lost: true });
      return input(s, { reportedLost: new Set([a, b]) });
    },
    ok: true,
    expect: (r) =>
      expect(r.loss).toMatchObject({ trueLost: 2, reportedLost: 2, silentlyLost: 0, falselyReported: 0 }),
  },
  {
    name: 'one lost acknowledged write missing from the report: silently lost',
    input: () => {
      const s = cleanFailover();
      const a = s.ack('dw0', 1010, US, { lost: true });
      s.ack('sw0', 1020, US, { lost: true, id: 'the-unreported-one' });
      return input(s, { reportedLost: new Set([a]) });
    },
    ok: false,
    violations: [/^nothing silently lost: 1 acknowledged .*the-unreported-one/],
    expect: (r) => {
      expect(r.loss).toMatchObject({ trueLost: 2, silentlyLost: 1, falselyReported: 0 });
      expect(r.loss.samples.silentlyLost).toEqual(['the-unreported-one']);
    },
  },
  {
    name: 'a reported id never acknowledged nor attempted, and one present: falsely reported',
    input: () => {
      const s = cleanFailover();
      const present = s.ack('dw1', 2000, EU);
      return input(s, { reportedLost: new Set(['never-written', present]) });
    },
    ok: false,
    violations: [/^lost-write report accurate: 2 reported ids/],
    expect: (r) => {
      expect(r.loss).toMatchObject({ falselyReported: 2, silentlyLost: 0, reportedUnknownOutcome: 0 });
      expect(r.loss.samples.falselyReported).toContain('never-written');
    },
  },
  {
    name: 'errored and in-flight writes (unknown outcome) missing and reported: ok, counted apart',
    input: () => {
      const s = cleanFailover();
      const errored = s.err('dw0', 1020, US);
      const inFlight = s.inFlight('sw0', 1030);
      const committedAnyway = s.err('dw1', 1040, US);
      s.present.add(committedAnyway);
      return input(s, { reportedLost: new Set([errored, inFlight]) });
    },
    ok: true,
    expect: (r) =>
      expect(r.loss).toMatchObject({
        reportedUnknownOutcome: 2,
        falselyReported: 0,
        trueLost: 0,
        unknownOutcomePresent: 1,
      }),
  },
  {
    name: 'needless failover: no failover was warranted, yet the primary moved',
    input: () => input(cleanFailover(), { expectedFinalPrimary: US }),
    ok: false,
    violations: [/^no needless failover: us-east-1 should have stayed .* final primary is eu-west-1/],
    expect: (r) => expect(r.failover).toMatchObject({ needlessFailover: true, wrongFinalPrimary: false }),
  },
  {
    name: 'needless failover even when it failed back: another region accepted writes',
    input: () => {
      const s = cleanFailover();
      s.acks('dw0', 3200, 3500, US);
      return input(s, { finalPrimary: US, expectedFinalPrimary: US });
    },
    ok: false,
    violations: [/^no needless failover: .* eu-west-1 acknowledged writes/],
  },
  {
    name: 'no failover where one was expected',
    input: () => {
      const s = new Scenario();
      s.acks('dw0', 0, 3000, US);
      s.acks('sw0', 0, 3000, US);
      return input(s, { finalPrimary: US, expectedFinalPrimary: EU });
    },
    ok: false,
    violations: [/^failover outcome: expected final primary eu-west-1, found us-east-1/],
  },
  {
    name: 'A→B→A, each step fenced: three terms, no split brain',
    input: () => {
      const s = new Scenario();
      for (const w of ['dw0', 'dw1']) {
        s.acks(w, 0, 1000, US);
        s.errs(w, 1100, 1400, US);
        s.acks(w, 1500, 2500, EU);
        s.errs(w, 2600, 2900, EU);
        s.acks(w, 3000, 4000, US);
      }
      s.acks('sw0', 0, 1000, US);
      s.errs('sw0', 1100, 2900, US); // fenced during eu's term
      s.acks('sw0', 3000, 4000, US); // and writable again after the failback
      return input(s, { finalPrimary: US, expectedFinalPrimary: US, faultAt: 1000 });
    },
    ok: false, // a failover happened although the scenario expected none: only that is wrong
    violations: [/^no needless failover/],
    expect: (r) => {
      expect(r.splitBrain.acks).toBe(0);
      expect(r.splitBrain.terms.map((t) => [t.region, t.start, t.end, t.open])).toEqual([
        [US, 0, 1000, false],
        [EU, 1500, 2500, false],
        [US, 3000, 4000, true],
      ]);
      expect(r.figures.rtoMs).toBe(500);
      expect(r.failover.regionsWithAcks).toEqual([US, EU]);
    },
  },
  {
    name: 'A→B→A with A never fenced: B\u2019s acks beside the A that never stopped are split brain',
    input: () => {
      const s = new Scenario();
      s.acks('dw0', 0, 1000, US);
      s.acks('dw0', 1500, 2500, EU);
      s.acks('dw0', 3000, 4000, US);
      s.acks('sw0', 0, 4000, US); // one unbroken A term
      return input(s, { finalPrimary: US, expectedFinalPrimary: undefined });
    },
    ok: false,
    violations: [/^no split brain: 11 writes .* by eu-west-1 while us-east-1 was primary/],
    expect: (r) => {
      // us-east-1 (final primary) took writes throughout: one open term, and it reigns
      // throughout; eu-west-1's acks 1500..2500 were accepted beside it.
      expect(r.splitBrain.terms.map((t) => [t.region, t.start, t.end, t.open])).toEqual([
        [US, 0, 4000, true],
        [EU, 1500, 2500, false],
      ]);
      expect(r.splitBrain.acks).toBe(11);
      expect(r.splitBrain.windowMs).toBe(1000);
    },
  },
  {
    name: 'A→B→A with B not fenced at the failback: B\u2019s acks after A\u2019s return',
    input: () => {
      const s = new Scenario();
      s.acks('dw0', 0, 1000, US);
      s.errs('dw0', 1100, 1400, US);
      s.acks('dw0', 1500, 2500, EU);
      s.acks('dw0', 3000, 4000, US); // dns moved back at 3000 ...
      s.acks('sw1', 1500, 3500, EU); // ... but eu-west-1 kept taking a sticky client's writes
      return input(s, { finalPrimary: US, expectedFinalPrimary: undefined });
    },
    ok: false,
    violations: [/^no split brain: 5 writes .* by eu-west-1 while us-east-1 was primary/],
    expect: (r) => {
      expect(r.splitBrain.reigns.map((g) => [g.region, g.from])).toEqual([
        [US, 0],
        [EU, 1500],
        [US, 3000],
      ]);
      expect(r.splitBrain.windowMs).toBe(500);
    },
  },
  {
    name: 'acks from a server the map does not know: a violation, not a silent skip',
    input: () => {
      const s = cleanFailover();
      s.lines.push({
        t: 'ack',
        id: 'stranger',
        writer: 'dw0',
        mode: 'dns',
        at: 2000,
        sent: 1998,
        server: { sysid: '1', addr: '10.9.9.9', port: 9, cluster: '', started: null },
        dialed: { host: '10.9.9.9', port: 9 },
        epoch: 3,
        region: EU,
      });
      s.present.add('stranger');
      return input(s);
    },
    ok: false,
    violations: [/^server identity: 1 acknowledgements came from servers not in the server map/],
  },
  {
    name: 'relay setups: a dialed address in the map attributes the ack',
    input: () => {
      const s = cleanFailover();
      // The server reports an address the suite does not map; the client dialed the eu relay.
      s.lines.push({
        t: 'ack',
        id: 'via-relay',
        writer: 'dw1',
        mode: 'dns',
        at: 2050,
        sent: 2048,
        server: { sysid: '1', addr: '10.0.0.2', port: 5432, cluster: '', started: null },
        dialed: { host: '198.18.0.52', port: 54432 },
        epoch: 2,
        region: EU,
      });
      s.present.add('via-relay');
      return input(s, { servers: { ...SERVERS, '198.18.0.52:54432': EU } });
    },
    ok: true,
    expect: (r) => expect(r.figures.acksByRegion[EU]).toBe(31),
  },
];

describe('chaos checker', () => {
  it.each(cases)('$name', (c) => {
    const r = check(c.input());
    const expected = c.violations ?? [];
    for (const re of expected)
      expect(
        r.violations.some((v) => re.test(v)),
        `${re} in ${r.violations}`,
      ).toBe(true);
    expect(r.violations).toHaveLength(expected.length);
    expect(r.ok).toBe(c.ok);
    c.expect?.(r);
  });
});
