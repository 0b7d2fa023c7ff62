/** The lab's file DNS provider: format compatibility with src/lab/zone.ts, atomicity, concurrent writers. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { RegionctlError } from '../../src/errors.js';
import { readZoneFile, resolvePrimary, type ZoneFile } from '../../src/lab/zone.js';
import { dnsProviderFor, FileDnsProvider } from '../../src/providers/dns/index.js';
import type { RegionsSpec } from '../../src/spec/schema.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const spec = parse(readFileSync(join(ROOT, 'regions.yaml'), 'utf8')) as RegionsSpec;
const ZONE = spec.dns!.zone;
const PRIMARY = spec.dns!.primaryRecord;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'regionctl-dnsfile-'));
  dirs.push(d);
  return d;
}

describe('file DNS provider', () => {
  it('writes the zone format the lab reads; resolvePrimary follows the record', async () => {
    const specDir = tempDir();
    const dns = dnsProviderFor(spec, specDir);
    expect(dns.name).toBe('file');
    expect(await dns.lookup(PRIMARY)).toBeNull();
    expect(resolvePrimary(spec, specDir)).toMatchObject({ region: 'us-east-1', source: 'spec' });

    await dns.upsert(PRIMARY, { region: 'eu-west-1', host: '127.0.0.1', port: 54432 }, spec.dns!.ttl);
    const path = join(specDir, spec.dns!.file!.path);
    const z = readZoneFile(path) as ZoneFile;
    expect(z).toMatchObject({
      version: 1,
      zone: ZONE,
      serial: 1,
      records: { [PRIMARY]: { region: 'eu-west-1', host: '127.0.0.1', port: 54432, ttl: 5 } },
    });
    expect(Number.isNaN(Date.parse(z.updatedAt))).toBe(false);
    // The load generator's resolver now sends writes to eu-west-1.
    expect(resolvePrimary(spec, specDir)).toEqual({
      region: 'eu-west-1',
      host: '127.0.0.1',
      port: 54432,
      source: 'dns-file',
    });
    expect(await dns.lookup(PRIMARY)).toEqual({ region: 'eu-west-1', host: '127.0.0.1', port: 54432 });
  });

  it('is idempotent (no serial bump), keeps other records, bumps the serial on change', async () => {
    const path = join(tempDir(), 'zone.json');
    const dns = new FileDnsProvider({ path, zone: ZONE });
    await dns.upsert(PRIMARY, { region: 'us-east-1', host: '127.0.0.1', port: 54431 }, 5);
    await dns.upsert(`read.eu-west-1.${ZONE}`, { region: 'eu-west-1', host: '127.0.0.1', port: 54432 }, 5);
    const before = readFileSync(path, 'utf8');
    await dns.upsert(PRIMARY, { region: 'us-east-1', host: '127.0.0.1', port: 54431 }, 5);
    expect(readFileSync(path, 'utf8')).toBe(before);
    await dns.upsert(`${PRIMARY.toUpperCase()}.`, { region: 'eu-west-1', host: '127.0.0.1', port: 54432 }, 5);
    const z = readZoneFile(path)!;
    expect(z.serial).toBe(3);
    // Same name in another spelling replaces the record rather than adding a second one.
    expect(Object.keys(z.records).sort()).toEqual([`${PRIMARY.toUpperCase()}.`, `read.eu-west-1.${ZONE}`]);
    expect(await dns.lookup(PRIMARY)).toMatchObject({ region: 'eu-west-1' });
    // No temp files or lock left behind.
    expect(readdirSync(dirname(path)).sort()).toEqual(['zone.json']);
  });

  it('fills host/port from the spec for records that name only a region', async () => {
    const specDir = tempDir();
    const path = join(specDir, spec.dns!.file!.path);
    const dns = dnsProviderFor(spec, specDir);
    await dns.upsert(`read.eu-west-1.${ZONE}`, { region: 'eu-west-1', host: '127.0.0.1', port: 54432 }, 5);
    const z = readZoneFile(path)!;
    z.records[PRIMARY] = { region: 'ap-southeast-1' };
    writeFileSync(path, JSON.stringify(z));
    expect(await dns.lookup(PRIMARY)).toEqual({ region: 'ap-southeast-1', host: '127.0.0.1', port: 54433 });
  });

  it('refuses to overwrite a file that is not a zone, or a zone of another name', async () => {
    const path = join(tempDir(), 'zone.json');
    writeFileSync(path, '{ "not": "a zone"');
    const dns = new FileDnsProvider({ path, zone: ZONE });
    const target = { region: 'us-east-1', host: '127.0.0.1', port: 54431 };
    await expect(dns.upsert(PRIMARY, target, 5)).rejects.toMatchObject({ code: 'E_DNS_ZONE_FILE' });
    expect(readFileSync(path, 'utf8')).toBe('{ "not": "a zone"');
    writeFileSync(
      path,
      JSON.stringify({ version: 1, zone: 'other.zone', serial: 1, updatedAt: '', records: {} }),
    );
    const e = await dns.upsert(PRIMARY, target, 5).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RegionctlError);
    expect((e as RegionctlError).message).toContain('other.zone');
  });

  it('a lock held by a dead process is broken; one held by a live process times out precisely', async () => {
    const path = join(tempDir(), 'zone.json');
    const target = { region: 'us-east-1', host: '127.0.0.1', port: 54431 };
    const { hostname } = await import('node:os');
    writeFileSync(`${path}.lock`, `${hostname()} 999999999 dead`);
    await new FileDnsProvider({ path, zone: ZONE }).upsert(PRIMARY, target, 5);
    expect(existsSync(`${path}.lock`)).toBe(false);

    writeFileSync(`${path}.lock`, `${hostname()} ${process.pid} live`);
    const e = await new FileDnsProvider({ path, zone: ZONE, lockTimeoutMs: 200 })
      .upsert(PRIMARY, { ...target, port: 1 }, 5)
      .catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'E_DNS_ZONE_LOCKED' });
    expect((e as RegionctlError).hint).toContain('.lock');
  });

  it('concurrent writers in 6 processes lose no record, and readers never see a partial file', async () => {
    const path = join(tempDir(), 'zone.json');
    const workers = 6;
    const perWorker = 25;
    let reads = 0;
    let torn = 0;
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        if (existsSync(path)) {
          reads++;
          try {
            JSON.parse(readFileSync(path, 'utf8'));
          } catch {
            torn++;
          }
        }
        await new Promise((r) => setImmediate(r));
      }
    })();
    const runs = Array.from(
      { length: workers },
      (_, w) =>
        new Promise<void>((res, rej) => {
          const child = spawn(
            process.execPath,
            [
              '--import',
              'tsx',
              join(ROOT, 'test/providers/zone-writer.ts'),
              path,
              ZONE,
              String(w),
              String(perWorker),
            ],
            { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] },
          );
          let err = '';
          child.stderr.on('data', (d) => {
            err += d;
          });
          child.on('exit', (code) =>
            code === 0 ? res() : rej(new Error(`writer ${w} exited ${code}: ${err}`)),
          );
        }),
    );
    await Promise.all(runs);
    stop = true;
    await reader;
    const z = readZoneFile(path)!;
    expect(Object.keys(z.records)).toHaveLength(workers * perWorker);
    expect(z.serial).toBe(workers * perWorker);
    expect(torn).toBe(0);
    expect(reads).toBeGreaterThan(0);
    expect(readdirSync(dirname(path)).sort()).toEqual(['zone.json']);
  }, 120_000);
});
