/**
 * The DNS edge of a failover: repoint a record (the primary record, or a region's read
 * record) at a region's server. Failover calls `upsert` only after the fence is
 * confirmed (or the operator forced it); `lookup` lets apply verify the cutover and
 * lets observe report which region the name really points at.
 */
import { RegionctlError } from '../../errors.js';

export interface DnsRecordTarget {
  region: string;
  host: string;
  port: number;
}

export interface DnsLookupResult {
  host: string;
  port?: number;
  region?: string;
}

export interface DnsProvider {
  readonly name: 'file' | 'rfc2136' | 'route53';
  /** Point `record` at `target` (UPSERT). Idempotent. */
  upsert(record: string, target: DnsRecordTarget, ttl: number): Promise<void>;
  /** What `record` points at now, or null. */
  lookup(record: string): Promise<DnsLookupResult | null>;
}

/** Programmer errors in a target: caught before anything is sent or written. */
export function checkTarget(target: DnsRecordTarget, ttl: number): void {
  if (!target.host || !target.region) {
    throw new RegionctlError('E_DNS_TARGET_INVALID', 'DNS target needs a region and a host');
  }
  if (!Number.isInteger(target.port) || target.port < 1 || target.port > 65535) {
    throw new RegionctlError('E_DNS_TARGET_INVALID', `DNS target port ${target.port} is not a TCP port`);
  }
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 2147483647) {
    throw new RegionctlError('E_DNS_TARGET_INVALID', `DNS TTL ${ttl} is not a valid TTL`);
  }
}
