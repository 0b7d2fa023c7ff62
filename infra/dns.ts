/**
 * Route 53 for `dns.provider: route53`: the primary record, one latency-routed read
 * record per region (set identifier = region, latency region = the region's AWS name,
 * a TCP health check so an unhealthy region stops answering reads), and those checks.
 * Regions of the same read name form one latency set; distinct names are sets of one.
 */
import { isIP } from 'node:net';
import * as aws from '@pulumi/aws';
import type * as pulumi from '@pulumi/pulumi';
import { RegionctlError } from '../src/errors.js';
import type { RegionsSpec } from '../src/spec/schema.js';

const AWS_REGION = /^(?:us|eu|ap|sa|ca|me|af|il|mx|cn|us-gov)-[a-z]+-\d+$/;

/** Latency routing takes an AWS region name; regionctl region names are used as such. */
export function awsRegionOf(region: string): string {
  if (!AWS_REGION.test(region)) {
    throw new RegionctlError(
      'E_DNS_AWS_REGION',
      `region '${region}' is not an AWS region name, and Route 53 latency routing needs one`,
      'name the regions after their AWS regions (e.g. eu-west-1), or use another dns.provider',
    );
  }
  return region;
}

function recordType(host: string): 'A' | 'AAAA' | 'CNAME' {
  const v = isIP(host);
  return v === 4 ? 'A' : v === 6 ? 'AAAA' : 'CNAME';
}

/** Route 53 accepts 10 or 30 seconds only. */
function requestInterval(probeSeconds: number): number {
  return probeSeconds < 30 ? 10 : 30;
}

export interface DnsResources {
  primary: aws.route53.Record;
  reads: Record<string, aws.route53.Record>;
  healthChecks: Record<string, aws.route53.HealthCheck>;
}

/** Throws before anything is declared, so a refused program leaves no half-declared stack. */
export function checkRoute53(spec: RegionsSpec): void {
  if (spec.dns?.provider !== 'route53') return;
  for (const region of Object.keys(spec.dns.readRecords ?? {})) awsRegionOf(region);
}

export function route53Resources(
  spec: RegionsSpec,
  opts: pulumi.CustomResourceOptions = {},
): DnsResources | null {
  const dns = spec.dns;
  if (dns?.provider !== 'route53' || !dns.route53) return null;
  checkRoute53(spec);
  const zoneId = dns.route53.hostedZoneId;
  const byName = new Map(spec.regions.map((r) => [r.name, r]));
  const primary = spec.regions.find((r) => r.role === 'primary');
  if (!primary) throw new Error('spec has no primary (validate it first)');

  const healthChecks: Record<string, aws.route53.HealthCheck> = {};
  const reads: Record<string, aws.route53.Record> = {};
  for (const [region, name] of Object.entries(dns.readRecords ?? {}).sort(([a], [b]) => a.localeCompare(b))) {
    const r = byName.get(region);
    if (!r) continue; // the validator rejects read records of unknown regions
    const host = r.endpoint.host;
    const hc = new aws.route53.HealthCheck(
      `health-${region}`,
      {
        type: 'TCP',
        port: r.endpoint.port,
        ...(isIP(host) ? { ipAddress: host } : { fqdn: host }),
        failureThreshold: Math.min(10, spec.failover.probe.failureThreshold),
        requestInterval: requestInterval(spec.failover.probe.intervalSeconds),
        tags: { Name: `regionctl ${spec.name} ${region}`, 'regionctl:region': region },
      },
      opts,
    );
    healthChecks[region] = hc;
    reads[region] = new aws.route53.Record(
      `read-${region}`,
      {
        zoneId,
        name,
        type: recordType(host),
        ttl: dns.ttl,
        records: [host],
        setIdentifier: region,
        latencyRoutingPolicies: [{ region: awsRegionOf(region) }],
        healthCheckId: hc.id,
      },
      opts,
    );
  }
  // Failover repoints this record (src/providers/dns); the topology guard keeps a stale
  // `pulumi up` from pointing it back.
  const primaryRecord = new aws.route53.Record(
    'primary',
    {
      zoneId,
      name: dns.primaryRecord,
      type: recordType(primary.endpoint.host),
      ttl: dns.ttl,
      records: [primary.endpoint.host],
    },
    opts,
  );
  return { primary: primaryRecord, reads, healthChecks };
}
