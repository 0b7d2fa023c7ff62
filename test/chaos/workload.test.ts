/**
 * The independent workload against real servers (the shared test lab): dns writers
 * follow a zone file change, sticky ones stay where they started, and the checker run on
 * the logs and the regions' contents sees every ack where it was made. Nothing here is
 * fenced, so the sticky writers' acks on us-east-1 after eu-west-1's first ack are a
 * genuine split brain by the checker's definition — it must say so.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndpointSpec } from '../../src/spec/schema.js';
import { type TestTopology, testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';
import { check, loadLogs } from './checker.js';
import {
  type AckLine,
  chaosSchemaSql,
  type LogLine,
  startWorkload,
  type WorkloadConfig,
} from './workload.js';

const TABLE = 'chaos.acks_target';
const US = 'us-east-1';
const EU = 'eu-west-1';

function endpoint(topo: TestTopology, region: string): EndpointSpec {
  const r = topo.spec.regions.find((x) => x.name === region);
  if (!r) throw new Error(`no region ${region}`);
  return r.endpoint;
}

function writeZone(path: string, serial: number, region: string, ep: EndpointSpec): void {
  // Atomic like the lab's writer: readers never see half a file.
  const zone = {
    version: 1,
    zone: 'db.shop.internal',
    serial,
    updatedAt: new Date().toISOString(),
    records: { 'primary.db.shop.internal': { region, host: ep.host, port: ep.port, ttl: 1 } },
  };
  writeFileSync(`${path}.tmp`, JSON.stringify(zone));
  renameSync(`${path}.tmp`, path);
}

describe('chaos workload on real servers', () => {
  let topo: TestTopology;
  let dir: string;
  beforeAll(async () => {
    topo = await testTopology('chaos_workload');
    dir = mkdtempSync(join(tmpdir(), 'chaos-workload-'));
    for (const region of [US, EU]) await (await topo.client(region)).query(chaosSchemaSql(TABLE));
  });
  afterAll(async () => {
    await topo?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('dns writers follow the zone, sticky writers stay; the checker sees every ack where it was made', async () => {
    const us = endpoint(topo, US);
    const eu = endpoint(topo, EU);
    const pw = us.password;
    if (!pw || !('file' in pw)) throw new Error('the test lab gives passwords as files');
    const zoneFile = join(dir, 'zone.json');
    writeZone(zoneFile, 1, US, us);
    const cfg: WorkloadConfig = {
      id: 'test-clients',
      writers: 4,
      mode: { dns: 2, sticky: 2 },
      zoneFile,
      primaryRecord: 'primary.db.shop.internal',
      fallback: { host: us.host, port: us.port, region: US },
      database: topo.spec.database,
      user: us.user,
      passwordFile: pw.file,
      table: TABLE,
      logFile: join(dir, 'workload.jsonl'),
      intervalMs: 20,
      connectTimeoutMs: 2000,
      queryTimeoutMs: 2000,
    };
    const seen: LogLine[] = [];
    const acksOn = (mode: 'dns' | 'sticky', port: number) =>
      seen.filter((l): l is AckLine => l.t === 'ack' && l.mode === mode && l.server.port === port);
    const writersOn = (mode: 'dns' | 'sticky', port: number) =>
      new Set(acksOn(mode, port).map((a) => a.writer));

    const workload = startWorkload(cfg, { onLine: (l) => seen.push(l) });
    let repointedAt = 0;
    try {
      await waitFor(() => writersOn('dns', us.port).size === 2 && writersOn('sticky', us.port).size === 2, {
        what: 'all four writers acknowledged on us-east-1',
        timeoutMs: 5000,
      });
      await new Promise((r) => setTimeout(r, 1500));
      repointedAt = Date.now();
      writeZone(zoneFile, 2, EU, eu);
      // ttl 1 s: each dns writer re-resolves within a second or so.
      await waitFor(() => writersOn('dns', eu.port).size === 2, {
        what: 'both dns writers acknowledged on eu-west-1',
        timeoutMs: 5000,
      });
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      await workload.stop();
    }

    const { lines, malformed } = loadLogs([cfg.logFile]);
    expect(malformed).toBe(0);
    // The file holds exactly what the writers logged, in order.
    expect(lines).toEqual(seen);
    const acks = lines.filter((l): l is AckLine => l.t === 'ack');
    expect(lines.filter((l) => l.t === 'err')).toEqual([]);

    // Server identity comes from the server; the lab's servers all answer on 127.0.0.1.
    for (const a of acks) {
      expect(a.server.port).toBe(a.dialed.port);
      expect(a.server.addr).toBe(us.host);
      expect(a.server.sysid).toMatch(/^\d+$/);
      expect(a.server.started).not.toBeNull();
    }
    // dns writers moved (their epoch with them), sticky writers never did.
    expect(writersOn('sticky', eu.port).size).toBe(0);
    for (const w of writersOn('dns', us.port)) {
      const mine = acks.filter((a) => a.writer === w);
      const firstEu = mine.findIndex((a) => a.server.port === eu.port);
      expect(firstEu).toBeGreaterThan(0);
      expect(
        mine.slice(firstEu).every((a) => a.server.port === eu.port && a.epoch === 2 && a.region === EU),
      ).toBe(true);
      expect(mine.slice(0, firstEu).every((a) => a.server.port === us.port && a.epoch === 1)).toBe(true);
      expect(mine[firstEu]?.at).toBeGreaterThan(repointedAt);
    }
    const resolves = lines.filter((l) => l.t === 'resolve');
    expect(resolves.filter((l) => l.mode === 'sticky').map((l) => l.serial)).toEqual([1, 1]);
    expect(resolves.filter((l) => l.mode === 'dns' && l.serial === 2)).toHaveLength(2);

    // What each region holds: every ack is in the region whose server acknowledged it.
    const ids = async (region: string) =>
      new Set(
        (await (await topo.client(region)).query<{ id: string }>(`SELECT id FROM ${TABLE}`)).rows.map(
          (r) => r.id,
        ),
      );
    const held: Record<string, Set<string>> = { [us.port]: await ids(US), [eu.port]: await ids(EU) };
    for (const a of acks)
      expect(held[String(a.server.port)]?.has(a.id), `${a.id} on port ${a.server.port}`).toBe(true);

    const result = check({
      lines,
      servers: { [`${us.host}:${us.port}`]: US, [`${eu.host}:${eu.port}`]: EU },
      originalPrimary: US,
      finalPrimary: EU,
      expectedFinalPrimary: EU,
      finalIds: new Set([...(held[us.port] ?? []), ...(held[eu.port] ?? [])]),
      reportedLost: new Set(),
      faultAt: repointedAt,
    });
    expect(result.loss).toMatchObject({
      acked: acks.length,
      trueLost: 0,
      silentlyLost: 0,
      falselyReported: 0,
    });
    expect(result.attribution).toMatchObject({ unattributed: 0, inconsistent: 0 });
    expect(result.figures.acksByRegion[EU]).toBe(acksOn('dns', eu.port).length);
    expect(result.figures.rtoMs).toBeGreaterThan(0);
    expect(result.figures.rtoMs).toBeLessThan(3000);
    // Unfenced us-east-1 kept taking the sticky writers' inserts after eu-west-1's first ack.
    expect(result.splitBrain.acks).toBeGreaterThan(0);
    expect(result.splitBrain.episodes.map((e) => [e.region, e.reigning])).toEqual([[US, EU]]);
    expect(result.violations).toHaveLength(1);
    expect(result.violations[0]).toMatch(/^no split brain: /);
  });

  it('workload-main: a process that stops on SIGTERM with exit 0, every attempt resolved in its log', async () => {
    const us = endpoint(topo, US);
    const pw = us.password;
    if (!pw || !('file' in pw)) throw new Error('the test lab gives passwords as files');
    const sub = join(dir, 'main');
    mkdirSync(sub);
    writeZone(join(sub, 'zone.json'), 5, US, us);
    // Relative paths: taken from the config file's directory, whatever the cwd.
    const config = {
      id: 'main-clients',
      writers: 2,
      mode: 'sticky',
      zoneFile: 'zone.json',
      primaryRecord: 'primary.db.shop.internal',
      fallback: { host: us.host, port: us.port },
      database: topo.spec.database,
      user: us.user,
      passwordFile: pw.file,
      table: TABLE,
      logFile: 'log.jsonl',
      intervalMs: 10,
      connectTimeoutMs: 2000,
      queryTimeoutMs: 2000,
    };
    writeFileSync(join(sub, 'config.json'), JSON.stringify(config));
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        join(import.meta.dirname, 'workload-main.ts'),
        '--config',
        join(sub, 'config.json'),
      ],
      // `--import tsx` resolves tsx from the cwd: the repository, as the suite runs it.
      { cwd: join(import.meta.dirname, '../..'), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const logFile = join(sub, 'log.jsonl');
    try {
      await waitFor(
        () => existsSync(logFile) && loadLogs([logFile]).lines.filter((l) => l.t === 'ack').length >= 20,
        { what: 'the workload process acknowledged 20 writes', timeoutMs: 10_000 },
      );
    } catch (e) {
      child.kill('SIGKILL');
      throw new Error(`${(e as Error).message}; workload stderr: ${stderr}`);
    }
    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(0);
    expect(stderr).toMatch(/main-clients: stopped; \d+ acks, 0 errors/);

    const { lines, malformed } = loadLogs([logFile]);
    expect(malformed).toBe(0);
    expect(lines.filter((l) => l.t === 'stop')).toHaveLength(2);
    const sent = lines.filter((l) => l.t === 'send').map((l) => l.id);
    const answered = lines.filter((l) => l.t === 'ack' || l.t === 'err').map((l) => l.id);
    expect(answered.sort()).toEqual(sent.sort());
    expect(new Set(sent).size).toBe(sent.length);
    expect(lines.find((l) => l.t === 'resolve')).toMatchObject({ region: US, port: us.port, serial: 5 });
  });
});
