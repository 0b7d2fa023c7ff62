/**
 * The fault suite's checker: judges a scenario from the independent workload's logs
 * (workload.ts) and the regions' final contents — never from regionctl's reports alone.
 * regionctl's lost-write report is an INPUT whose accuracy is checked, not a source of
 * truth. Pure functions over plain data, except loadLogs(); the result is plain JSON.
 *
 * Which region acknowledged a write is decided by the SERVER's identity as it gave it
 * (inet_server_addr/inet_server_port on that connection), looked up in the suite's
 * server map, and only if that address is not in the map by the address the client
 * dialed (a relay's, in setups where the suite only knows those). What the client
 * believed (its zone answer) is reported beside it but decides nothing.
 *
 * Invariants (each broken one is a line in `violations`, starting with its name):
 * - no split brain: no region acknowledges a write while another one is the primary
 *   clients should be writing to — for A→B, no ack from A after B's first ack
 *   (definition, and how it generalises to A→B→A, at splitBrain()).
 * - nothing silently lost: every acknowledged write is in the final primary or listed
 *   in the lost-write report.
 * - lost-write report accurate: the report lists only writes that are missing and were
 *   acknowledged, or whose outcome the clients never learnt (errors, in-flight).
 * - no needless failover / failover outcome: the final primary is the expected one, and
 *   when no failover was expected no other region accepted writes.
 * - server identity: every acknowledgement can be attributed to a region, consistently.
 */
import { readFileSync } from 'node:fs';
import type { AckLine, LogLine } from './workload.js';

/**
 * Server address → region. Keys are `host:port`: the address a server reports for the
 * connection (inet_server_addr():inet_server_port()), or the address a client dialed
 * (e.g. a relay's); `*:port` matches a server-reported port on any address.
 */
export type ServerMap = Record<string, string>;

export interface CheckInput {
  /** Every workload's log lines (loadLogs). Line types the checker does not know are ignored. */
  lines: LogLine[];
  servers: ServerMap;
  originalPrimary: string;
  /** The region the suite found to be primary at the end. */
  finalPrimary: string;
  /** What the scenario should end with; the original primary when no failover is warranted. */
  expectedFinalPrimary?: string;
  /** Ids present in the final primary's table. */
  finalIds: ReadonlySet<string>;
  /** Ids listed by regionctl's lost-write report (may be empty). */
  reportedLost: ReadonlySet<string>;
  /** When the fault was injected (ms since the epoch), for the RTO. */
  faultAt?: number;
}

/** A maximal stretch of one region acknowledging writes (see splitBrain()). */
export interface Term {
  region: string;
  /** First and last ack. */
  start: number;
  end: number;
  /** The final primary's last term: still going on when the logs end. */
  open: boolean;
  acks: number;
}

/** From `from` on, clients should be writing to `region` (see splitBrain()). */
export interface Reign {
  region: string;
  from: number;
}

/** Acks by one region while another reigned. */
export interface SplitBrainEpisode {
  /** The region that acknowledged writes it should not have. */
  region: string;
  /** The region reigning then, and since when. */
  reigning: string;
  reignFrom: number;
  acks: number;
  /** Of those, acks whose INSERT was even SENT after reignFrom: surely committed after the takeover. */
  definiteAcks: number;
  /** Where the window is measured from (see splitBrain()). */
  windowFrom: number;
  /** Last such ack − windowFrom. */
  windowMs: number;
  sampleIds: string[];
}

export interface SplitBrainResult {
  /** Split-brain acks. */
  acks: number;
  definiteAcks: number;
  /** Longest episode's window; 0 when none. */
  windowMs: number;
  terms: Term[];
  reigns: Reign[];
  episodes: SplitBrainEpisode[];
}

export interface LossResult {
  /** Acknowledged ids. */
  acked: number;
  /** Acknowledged and not in the final primary. */
  trueLost: number;
  /** Size of the lost-write report. */
  reportedLost: number;
  /** Acknowledged, missing, and not reported: must be 0. */
  silentlyLost: number;
  /** Reported but neither (acknowledged and missing) nor (unknown outcome and missing): must be 0. */
  falselyReported: number;
  /** Reported, missing, and the client never learnt the outcome (err or in flight): legitimate. */
  reportedUnknownOutcome: number;
  /** Writes whose outcome the clients never learnt. */
  unknownOutcome: number;
  /** Of those, how many are in the final primary (committed after all). */
  unknownOutcomePresent: number;
  samples: {
    trueLost: string[];
    silentlyLost: string[];
    falselyReported: string[];
    reportedUnknownOutcome: string[];
  };
}

export interface FailoverResult {
  originalPrimary: string;
  finalPrimary: string;
  expectedFinalPrimary: string | null;
  /** No failover was warranted, yet the primary moved or another region accepted writes. */
  needlessFailover: boolean;
  /** A failover was expected to end elsewhere than where it did. */
  wrongFinalPrimary: boolean;
  /** Regions that acknowledged at least one write, in order of their first ack. */
  regionsWithAcks: string[];
}

export interface Figures {
  acks: number;
  acksByRegion: Record<string, number>;
  /** INSERTs that failed (outcome unknown). */
  errors: number;
  /** Connection attempts that failed (nothing was sent). */
  connErrors: number;
  writers: number;
  /** Longest time without any acknowledgement across all dns-mode writers; null without two dns acks. */
  maxAckGapMs: number | null;
  maxAckGap: { from: number; to: number } | null;
  /** faultAt → first ack by a dns writer from a region other than the original primary. */
  rtoMs: number | null;
  /** Acks where the region the client believed (zone answer) is not the one that answered. */
  misbelievedAcks: number;
}

export interface CheckResult {
  ok: boolean;
  violations: string[];
  splitBrain: SplitBrainResult;
  loss: LossResult;
  failover: FailoverResult;
  figures: Figures;
  /** Acks that could not be attributed to a region, and acks whose server and dialed address disagree. */
  attribution: { unattributed: number; inconsistent: number; samples: string[] };
}

const SAMPLES = 10;

export function check(input: CheckInput): CheckResult {
  const acks = input.lines.filter((l): l is AckLine => l.t === 'ack');
  const attr = attributeAcks(acks, input.servers);
  const violations: string[] = [];

  const sb = splitBrain(input.lines, attr.regionOf, input.finalPrimary);
  if (sb.acks > 0) {
    const detail = sb.episodes
      .map(
        (e) =>
          `${e.acks} by ${e.region} while ${e.reigning} was primary (its first ack ${iso(e.reignFrom)}; ` +
          `${e.definiteAcks} sent after that; window ${e.windowMs} ms; e.g. ${e.sampleIds.slice(0, 3).join(', ')})`,
      )
      .join('; ');
    violations.push(
      `no split brain: ${sb.acks} writes acknowledged by a region that was not primary: ${detail}`,
    );
  }

  const loss = lossCheck(input, acks);
  if (loss.silentlyLost > 0) {
    violations.push(
      `nothing silently lost: ${loss.silentlyLost} acknowledged writes are missing from the final primary ` +
        `${input.finalPrimary} and not in the lost-write report (e.g. ${loss.samples.silentlyLost.join(', ')})`,
    );
  }
  if (loss.falselyReported > 0) {
    violations.push(
      `lost-write report accurate: ${loss.falselyReported} reported ids were never acknowledged or attempted, ` +
        `or are present in the final primary (e.g. ${loss.samples.falselyReported.join(', ')})`,
    );
  }

  const regionsWithAcks: string[] = [];
  for (const a of [...acks].sort(byAt)) {
    const r = attr.regionOf.get(a);
    if (r !== undefined && !regionsWithAcks.includes(r)) regionsWithAcks.push(r);
  }
  const expected = input.expectedFinalPrimary;
  const strangers = regionsWithAcks.filter((r) => r !== input.originalPrimary);
  const needlessFailover =
    expected === input.originalPrimary &&
    (input.finalPrimary !== input.originalPrimary || strangers.length > 0);
  const wrongFinalPrimary = expected !== undefined && !needlessFailover && input.finalPrimary !== expected;
  if (needlessFailover) {
    violations.push(
      `no needless failover: ${input.originalPrimary} should have stayed primary, but the final primary is ` +
        `${input.finalPrimary}${strangers.length ? ` and ${strangers.join(', ')} acknowledged writes` : ''}`,
    );
  }
  if (wrongFinalPrimary) {
    violations.push(`failover outcome: expected final primary ${expected}, found ${input.finalPrimary}`);
  }
  if (attr.unattributed.length > 0) {
    violations.push(
      `server identity: ${attr.unattributed.length} acknowledgements came from servers not in the server map ` +
        `(e.g. ${attr.unattributed.slice(0, 3).map(describeAck).join('; ')}): their region is unknown`,
    );
  }
  if (attr.inconsistent.length > 0) {
    violations.push(
      `server identity: ${attr.inconsistent.length} acknowledgements came from a server of another region than ` +
        `the address dialed (e.g. ${attr.inconsistent.slice(0, 3).map(describeAck).join('; ')})`,
    );
  }

  const acksByRegion: Record<string, number> = {};
  let misbelievedAcks = 0;
  for (const a of acks) {
    const r = attr.regionOf.get(a);
    if (r === undefined) continue;
    acksByRegion[r] = (acksByRegion[r] ?? 0) + 1;
    if (a.region !== r) misbelievedAcks++;
  }
  const dnsAcks = acks.filter((a) => a.mode === 'dns').sort(byAt);
  let maxAckGap: { from: number; to: number } | null = null;
  for (let i = 1; i < dnsAcks.length; i++) {
    const from = dnsAcks[i - 1]?.at ?? 0;
    const to = dnsAcks[i]?.at ?? 0;
    if (!maxAckGap || to - from > maxAckGap.to - maxAckGap.from) maxAckGap = { from, to };
  }
  let rtoMs: number | null = null;
  if (input.faultAt !== undefined) {
    const faultAt = input.faultAt;
    const first = dnsAcks.find((a) => {
      const r = attr.regionOf.get(a);
      return a.at >= faultAt && r !== undefined && r !== input.originalPrimary;
    });
    if (first) rtoMs = first.at - faultAt;
  }

  return {
    ok: violations.length === 0,
    violations,
    splitBrain: sb,
    loss,
    failover: {
      originalPrimary: input.originalPrimary,
      finalPrimary: input.finalPrimary,
      expectedFinalPrimary: expected ?? null,
      needlessFailover,
      wrongFinalPrimary,
      regionsWithAcks,
    },
    figures: {
      acks: acks.length,
      acksByRegion,
      errors: input.lines.filter((l) => l.t === 'err').length,
      connErrors: input.lines.filter((l) => l.t === 'conn-err').length,
      writers: new Set(input.lines.map((l) => l.writer)).size,
      maxAckGapMs: maxAckGap ? maxAckGap.to - maxAckGap.from : null,
      maxAckGap,
      rtoMs,
      misbelievedAcks,
    },
    attribution: {
      unattributed: attr.unattributed.length,
      inconsistent: attr.inconsistent.length,
      samples: [...attr.unattributed, ...attr.inconsistent].slice(0, SAMPLES).map(describeAck),
    },
  };
}

export interface Attribution {
  /** The region of each attributable ack. */
  regionOf: Map<AckLine, string>;
  unattributed: AckLine[];
  /** Server-reported and dialed addresses both in the map, naming different regions. */
  inconsistent: AckLine[];
}

/** Which region each ack came from: the server's own address first, then the dialed one. */
export function attributeAcks(acks: AckLine[], servers: ServerMap): Attribution {
  const regionOf = new Map<AckLine, string>();
  const unattributed: AckLine[] = [];
  const inconsistent: AckLine[] = [];
  for (const a of acks) {
    const s = a.server;
    const byServer =
      s?.port != null ? (servers[`${s.addr ?? ''}:${s.port}`] ?? servers[`*:${s.port}`]) : undefined;
    const byDialed = a.dialed ? servers[`${a.dialed.host}:${a.dialed.port}`] : undefined;
    const region = byServer ?? byDialed;
    if (region === undefined) {
      unattributed.push(a);
      continue;
    }
    if (byServer !== undefined && byDialed !== undefined && byServer !== byDialed) inconsistent.push(a);
    regionOf.set(a, region);
  }
  return { regionOf, unattributed, inconsistent };
}

/**
 * Split brain, from the clients' side: two regions accepting writes at the same time.
 *
 * Terms. Each writer's log, in time order, is cut into runs: a run is a sequence of
 * consecutive acks from one region, ended by an INSERT error, a failed connect, an
 * unattributable ack or an ack from another region. A fenced or dead old primary makes
 * its writers' runs end (errors); a dns writer's run ends when it moves. A region's
 * TERM is the union of its runs that overlap in time, across all writers: a stretch in
 * which some client could continuously write to it. A→B→A with a clean fence at each
 * step gives three terms A, B, A that do not overlap; an unfenced A that its sticky
 * clients keep writing to through B's term gives one long A term around B's.
 *
 * Reigns. Who should be taking writes at each instant: the newest term wins — each
 * term takes over when it starts (its first ack) — except that nothing takes over from
 * the final primary's last term: the suite found that region primary at the end, so a
 * region whose term starts inside it is an old primary coming back (or one that never
 * stopped), not a new primary.
 *
 * Split-brain ack: an ack from a region other than the reigning one, strictly after
 * the reign began. For A→B this is exactly "old-primary acks after the first ack from
 * the new primary", whether the old primary never stopped or came back later. Acks are
 * grouped into episodes by (region, reign). An episode's window runs from the takeover
 * when the region had acknowledged writes before it (an old primary still, or again,
 * accepting writes: "last old-primary ack − the new one's first ack"), otherwise from
 * the region's first ack in the episode (a region accepting writes beside the reigning
 * one, e.g. B while an unfenced A that ends as primary never stopped).
 *
 * Blind spot: the newest-wins rule can pick the wrong side when an unfenced old
 * primary's clients all hit an error right after the new primary's first ack and then
 * go on writing to it (its new term starts later, so it "reigns"). The split brain is
 * still reported, charged to the other region.
 */
export function splitBrain(
  lines: LogLine[],
  regionOf: Map<AckLine, string>,
  finalPrimary?: string,
): SplitBrainResult {
  type Run = { region: string; start: number; end: number; acks: AckLine[]; open: boolean };
  const byWriter = new Map<string, LogLine[]>();
  for (const l of lines) {
    if (l.t !== 'ack' && l.t !== 'err' && l.t !== 'conn-err') continue;
    const list = byWriter.get(l.writer) ?? [];
    list.push(l);
    byWriter.set(l.writer, list);
  }
  const runs: Run[] = [];
  for (const events of byWriter.values()) {
    let run: Run | undefined;
    for (const e of events.sort(byAt)) {
      const region = e.t === 'ack' ? regionOf.get(e) : undefined;
      if (e.t !== 'ack' || region === undefined || (run && run.region !== region)) {
        if (run) runs.push(run);
        run = undefined;
      }
      if (e.t === 'ack' && region !== undefined) {
        if (!run) run = { region, start: e.at, end: e.at, acks: [], open: false };
        run.end = e.at;
        run.acks.push(e);
      }
    }
    if (run) runs.push(run);
  }

  // Union of overlapping runs, per region.
  const terms: Run[] = [];
  const regions = [...new Set(runs.map((r) => r.region))].sort();
  for (const region of regions) {
    const mine: Run[] = [];
    for (const r of runs.filter((x) => x.region === region).sort((a, b) => a.start - b.start)) {
      const cur = mine.at(-1);
      if (cur && r.start <= cur.end) {
        cur.end = Math.max(cur.end, r.end);
        cur.acks.push(...r.acks);
      } else {
        mine.push({ ...r, acks: [...r.acks] });
      }
    }
    const last = mine.at(-1);
    if (last && region === finalPrimary) last.open = true;
    terms.push(...mine);
  }
  terms.sort((a, b) => a.start - b.start || a.region.localeCompare(b.region));

  const reigns: (Reign & { final: boolean })[] = [];
  for (const t of terms) {
    const cur = reigns.at(-1);
    if (cur && (cur.region === t.region || cur.final)) continue;
    reigns.push({ region: t.region, from: t.start, final: t.open });
  }

  const acks = [...regionOf.keys()].sort(byAt);
  const firstAck = new Map<string, number>();
  for (const a of acks) {
    const r = regionOf.get(a);
    if (r !== undefined && !firstAck.has(r)) firstAck.set(r, a.at);
  }
  const episodes = new Map<string, { ep: SplitBrainEpisode; ids: string[] }>();
  let reign = -1;
  for (const a of acks) {
    while (reign + 1 < reigns.length && (reigns[reign + 1]?.from ?? Infinity) <= a.at) reign++;
    const r = regionOf.get(a);
    const rg = reigns[reign];
    if (!rg || r === undefined || r === rg.region || a.at <= rg.from) continue;
    const key = `${r}\n${reign}`;
    let e = episodes.get(key);
    if (!e) {
      const before = (firstAck.get(r) ?? Infinity) < rg.from;
      const windowFrom = before ? rg.from : a.at;
      e = {
        ep: {
          region: r,
          reigning: rg.region,
          reignFrom: rg.from,
          acks: 0,
          definiteAcks: 0,
          windowFrom,
          windowMs: 0,
          sampleIds: [],
        },
        ids: [],
      };
      episodes.set(key, e);
    }
    e.ep.acks++;
    if (a.sent > rg.from) e.ep.definiteAcks++;
    e.ep.windowMs = a.at - e.ep.windowFrom;
    if (e.ep.sampleIds.length < SAMPLES) e.ep.sampleIds.push(a.id);
  }
  const list = [...episodes.values()].map((e) => e.ep);
  return {
    acks: list.reduce((n, e) => n + e.acks, 0),
    definiteAcks: list.reduce((n, e) => n + e.definiteAcks, 0),
    windowMs: list.reduce((m, e) => Math.max(m, e.windowMs), 0),
    terms: terms.map((t) => ({
      region: t.region,
      start: t.start,
      end: t.end,
      open: t.open,
      acks: t.acks.length,
    })),
    reigns: reigns.map(({ region, from }) => ({ region, from })),
    episodes: list,
  };
}

function lossCheck(input: CheckInput, acks: AckLine[]): LossResult {
  const acked = new Set(acks.map((a) => a.id));
  // Tried but never acknowledged: an error (maybe committed, maybe not) or still in
  // flight when the process died (a send line and nothing after it).
  const unknown = new Set<string>();
  for (const l of input.lines) {
    if ((l.t === 'send' || l.t === 'err') && !acked.has(l.id)) unknown.add(l.id);
  }
  const missing = [...acked].filter((id) => !input.finalIds.has(id));
  const silentlyLost = missing.filter((id) => !input.reportedLost.has(id));
  const missingSet = new Set(missing);
  const reportedUnknownOutcome: string[] = [];
  const falselyReported: string[] = [];
  for (const id of input.reportedLost) {
    if (missingSet.has(id)) continue;
    if (unknown.has(id) && !input.finalIds.has(id)) reportedUnknownOutcome.push(id);
    else falselyReported.push(id);
  }
  const sample = (ids: string[]) => [...ids].sort().slice(0, SAMPLES);
  return {
    acked: acked.size,
    trueLost: missing.length,
    reportedLost: input.reportedLost.size,
    silentlyLost: silentlyLost.length,
    falselyReported: falselyReported.length,
    reportedUnknownOutcome: reportedUnknownOutcome.length,
    unknownOutcome: unknown.size,
    unknownOutcomePresent: [...unknown].filter((id) => input.finalIds.has(id)).length,
    samples: {
      trueLost: sample(missing),
      silentlyLost: sample(silentlyLost),
      falselyReported: sample(falselyReported),
      reportedUnknownOutcome: sample(reportedUnknownOutcome),
    },
  };
}

/**
 * Reads workload logs. A line that does not parse (the last line of a process killed
 * mid-write; workload.ts writes whole lines, so only that one) is counted, not fatal.
 */
export function loadLogs(paths: string[]): { lines: LogLine[]; malformed: number } {
  const lines: LogLine[] = [];
  let malformed = 0;
  for (const p of paths) {
    for (const text of readFileSync(p, 'utf8').split('\n')) {
      if (text.trim() === '') continue;
      try {
        const l = JSON.parse(text) as LogLine;
        if (l && typeof l === 'object' && typeof l.t === 'string') lines.push(l);
        else malformed++;
      } catch {
        malformed++;
      }
    }
  }
  return { lines, malformed };
}

function byAt(a: { at: number }, b: { at: number }): number {
  return a.at - b.at;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function describeAck(a: AckLine): string {
  const s = a.server;
  const dialed = a.dialed ? `${a.dialed.host}:${a.dialed.port}` : '?';
  return `${a.id} from server ${s?.addr ?? '?'}:${s?.port ?? '?'} dialed ${dialed}`;
}
