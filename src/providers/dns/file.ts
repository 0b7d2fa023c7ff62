/**
 * The lab's DNS: the JSON zone file of src/lab/zone.ts, which the load generator (and
 * any lab client) re-reads to find the primary.
 *
 * Two guarantees: readers never see a partial file (each write goes to a unique temp
 * file, is fsynced and renamed over the zone — rename is atomic on one filesystem), and
 * concurrent writers (two reconcilers, or apply repointing several read records at
 * once) never lose each other's records: the read-modify-write runs under a lock file
 * created with O_EXCL. A lock whose holder process is gone is broken; a live holder is
 * waited for, up to `lockTimeoutMs`.
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { RegionctlError } from '../../errors.js';
import { type ZoneFile, type ZoneRecord, zoneFilePath } from '../../lab/zone.js';
import type { RegionsSpec } from '../../spec/schema.js';
import { checkTarget, type DnsLookupResult, type DnsProvider, type DnsRecordTarget } from './provider.js';
import { normalizeName } from './wire.js';

export interface FileDnsOptions {
  path: string;
  zone: string;
  /** Fills in host/port of records that name only a region (the format allows that). */
  regions?: ReadonlyArray<{ name: string; endpoint: { host: string; port: number } }>;
  /** Default 5000. */
  lockTimeoutMs?: number;
}

export class FileDnsProvider implements DnsProvider {
  readonly name = 'file' as const;
  readonly path: string;

  constructor(private readonly opts: FileDnsOptions) {
    this.path = opts.path;
  }

  async upsert(record: string, target: DnsRecordTarget, ttl: number): Promise<void> {
    checkTarget(target, ttl);
    const name = normalizeName(record);
    mkdirSync(dirname(this.path), { recursive: true });
    await this.withLock(() => {
      const current = this.read();
      const next: ZoneRecord = { region: target.region, host: target.host, port: target.port, ttl };
      // Keyed by the name exactly as given: the lab's readers index records by dns.primaryRecord verbatim.
      const records = Object.fromEntries(
        Object.entries(current?.records ?? {}).filter(([k]) => k === record || normalizeName(k) !== name),
      );
      const old = records[record];
      if (
        old &&
        old.region === next.region &&
        old.host === next.host &&
        old.port === next.port &&
        old.ttl === next.ttl
      ) {
        return; // idempotent: no rewrite, no serial bump
      }
      const zone: ZoneFile = {
        version: 1,
        zone: this.opts.zone,
        serial: (current?.serial ?? 0) + 1,
        updatedAt: new Date().toISOString(),
        records: { ...records, [record]: next },
      };
      this.writeAtomic(zone);
    });
  }

  async lookup(record: string): Promise<DnsLookupResult | null> {
    const records = this.read()?.records ?? {};
    const rec =
      records[record] ??
      Object.entries(records).find(([k]) => normalizeName(k) === normalizeName(record))?.[1];
    if (!rec) return null;
    const endpoint = this.opts.regions?.find((r) => r.name === rec.region)?.endpoint;
    const host = rec.host ?? endpoint?.host;
    if (host === undefined) return null;
    const port = rec.port ?? endpoint?.port;
    return { host, region: rec.region, ...(port !== undefined ? { port } : {}) };
  }

  /** The zone, undefined when there is no file yet. A file that is not a zone is an error, not "empty". */
  private read(): ZoneFile | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new RegionctlError(
        'E_DNS_ZONE_FILE',
        `cannot read DNS zone file ${this.path}: ${(e as Error).message}`,
        'check dns.file.path and its permissions',
      );
    }
    let zone: unknown;
    try {
      zone = JSON.parse(text);
    } catch {
      zone = undefined;
    }
    const z = zone as Partial<ZoneFile> | undefined;
    if (
      !z ||
      typeof z !== 'object' ||
      z.version !== 1 ||
      typeof z.records !== 'object' ||
      z.records === null
    ) {
      // Overwriting it would drop whatever records it holds; let a person look first.
      throw new RegionctlError(
        'E_DNS_ZONE_FILE',
        `DNS zone file ${this.path} is not a version 1 zone file`,
        'fix or delete it (regionctl rewrites the records it manages on the next apply)',
      );
    }
    if (typeof z.zone === 'string' && normalizeName(z.zone) !== normalizeName(this.opts.zone)) {
      throw new RegionctlError(
        'E_DNS_ZONE_FILE',
        `DNS zone file ${this.path} holds zone ${z.zone}, but dns.zone is ${this.opts.zone}`,
        'point dns.file.path at a file of its own for this zone',
      );
    }
    return z as ZoneFile;
  }

  private writeAtomic(zone: ZoneFile): void {
    // Unique per write: two writers must never share (and so interleave in) one temp file.
    const tmp = `${this.path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const fd = openSync(tmp, 'wx', 0o644);
      try {
        writeSync(fd, `${JSON.stringify(zone, null, 2)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.path);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new RegionctlError(
        'E_DNS_ZONE_FILE',
        `cannot write DNS zone file ${this.path}: ${(e as Error).message}`,
        'check dns.file.path and that its directory is writable',
      );
    }
  }

  private async withLock(fn: () => void): Promise<void> {
    const lock = `${this.path}.lock`;
    const owner = `${hostname()} ${process.pid} ${randomBytes(4).toString('hex')}`;
    const deadline = Date.now() + (this.opts.lockTimeoutMs ?? 5000);
    for (;;) {
      try {
        const fd = openSync(lock, 'wx', 0o644);
        writeSync(fd, owner);
        closeSync(fd);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new RegionctlError(
            'E_DNS_ZONE_FILE',
            `cannot create lock ${lock}: ${(e as Error).message}`,
            'check that the directory of dns.file.path is writable',
          );
        }
        if (breakIfOrphaned(lock)) continue;
        if (Date.now() > deadline) {
          throw new RegionctlError(
            'E_DNS_ZONE_LOCKED',
            `DNS zone file ${this.path} is locked by another writer (${readHolder(lock) ?? 'unknown'})`,
            `if that process is gone, delete ${lock}`,
          );
        }
        await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
      }
    }
    try {
      fn();
    } finally {
      // Only remove our own lock (a stale-lock breaker may have replaced it).
      if (readHolder(lock) === owner) unlinkSync(lock);
    }
  }
}

function readHolder(lock: string): string | undefined {
  try {
    return readFileSync(lock, 'utf8');
  } catch {
    return undefined;
  }
}

/** Removes the lock if its holder is a process on this host that no longer exists. */
function breakIfOrphaned(lock: string): boolean {
  const holder = readHolder(lock);
  if (holder === undefined) return true; // released meanwhile: retry at once
  const [host, pid] = holder.split(' ');
  // Empty: the holder created the file but has not written its name yet.
  if (!pid || host !== hostname()) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') return false;
  }
  if (readHolder(lock) !== holder) return true;
  try {
    unlinkSync(lock);
  } catch {
    // someone else broke it first
  }
  return true;
}

export function fileDnsFromSpec(spec: RegionsSpec, specDir: string): FileDnsProvider {
  const path = zoneFilePath(spec, specDir);
  if (!spec.dns || !path) {
    throw new RegionctlError(
      'E_DNS_CONFIG',
      'dns.provider is file but dns.file.path is missing',
      'add dns.file.path (e.g. .regionctl/lab/dns/zone.json)',
    );
  }
  return new FileDnsProvider({ path, zone: spec.dns.zone, regions: spec.regions });
}
