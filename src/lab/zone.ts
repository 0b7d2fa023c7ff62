/**
 * The lab's DNS: with `dns.provider: file` the "zone" is a JSON file (path from
 * `dns.file.path`, relative to regions.yaml). Whoever repoints DNS (the file DNS
 * provider, during failover) writes it; clients such as the load generator read it to
 * find the primary, the way applications would resolve `dns.primaryRecord`.
 *
 * Format (version 1):
 *
 *   {
 *     "version": 1,
 *     "zone": "db.shop.internal",
 *     "serial": 7,                          // bumped on every change
 *     "updatedAt": "2026-01-01T00:00:00Z",
 *     "records": {
 *       "primary.db.shop.internal": { "region": "us-east-1", "host": "127.0.0.1", "port": 54431, "ttl": 5 },
 *       "read.eu-west-1.db.shop.internal": { "region": "eu-west-1", "host": "127.0.0.1", "port": 54432, "ttl": 5 }
 *     }
 *   }
 *
 * `region` is required; `host`/`port` default to that region's endpoint in the spec.
 * Write it atomically (writeZoneFile: temp file + rename) so readers never see half a file.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { RegionsSpec } from '../spec/schema.js';

export interface ZoneRecord {
  region: string;
  host?: string;
  port?: number;
  ttl?: number;
}

export interface ZoneFile {
  version: 1;
  zone: string;
  serial: number;
  updatedAt: string;
  records: Record<string, ZoneRecord>;
}

/** Absolute path of the zone file, when the spec uses the file provider. */
export function zoneFilePath(spec: RegionsSpec, specDir: string): string | undefined {
  const p = spec.dns?.provider === 'file' ? spec.dns.file?.path : undefined;
  if (!p) return undefined;
  return isAbsolute(p) ? p : resolve(specDir, p);
}

/** The zone, or undefined when there is none yet (no file, or unreadable mid-rewrite). */
export function readZoneFile(path: string): ZoneFile | undefined {
  try {
    const z = JSON.parse(readFileSync(path, 'utf8')) as ZoneFile;
    return z && typeof z === 'object' && z.records ? z : undefined;
  } catch {
    return undefined;
  }
}

export function writeZoneFile(path: string, zone: ZoneFile): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(zone, null, 2)}\n`);
  renameSync(tmp, path);
}

export interface PrimaryAddress {
  region: string;
  host: string;
  port: number;
  /** Where the answer came from. */
  source: 'dns-file' | 'spec';
}

/** Where application writes go now: the zone file's primary record if there is one, else the spec's primary. */
export function resolvePrimary(spec: RegionsSpec, specDir: string): PrimaryAddress {
  const path = zoneFilePath(spec, specDir);
  const rec = path && spec.dns ? readZoneFile(path)?.records[spec.dns.primaryRecord] : undefined;
  const region = spec.regions.find((r) => r.name === rec?.region);
  if (rec && region) {
    return {
      region: region.name,
      host: rec.host ?? region.endpoint.host,
      port: rec.port ?? region.endpoint.port,
      source: 'dns-file',
    };
  }
  const primary = spec.regions.find((r) => r.role === 'primary') ?? spec.regions[0];
  if (!primary) throw new Error('spec has no regions');
  return { region: primary.name, host: primary.endpoint.host, port: primary.endpoint.port, source: 'spec' };
}
