/**
 * Route 53 through the AWS SDK v3. Credentials come from the SDK's default chain (env,
 * profile, SSO, instance/task role) — never from regions.yaml.
 *
 * One upsert is ONE ChangeResourceRecordSets batch (Route 53 applies a batch atomically):
 *   UPSERT <record>            A | AAAA | CNAME  (as the rfc2136 provider: address or host name)
 *   UPSERT _regionctl.<record> TXT "region=<region>" "port=<port>"
 *   DELETE any other of A/AAAA/CNAME at <record>, exactly as listed (Route 53 refuses an
 *          UPSERT of a CNAME next to an A, and a DELETE must repeat the current values).
 * It then waits until the change is INSYNC (all Route 53 name servers serve it), because
 * failover reports DNS as repointed only when it is.
 *
 * Not handled: weighted/latency/failover routing policies (SetIdentifier) and alias
 * records at the managed names — regionctl owns plain records there.
 */

import { isIPv4, isIPv6 } from 'node:net';
import {
  type Change,
  ChangeResourceRecordSetsCommand,
  type ChangeResourceRecordSetsCommandInput,
  type ChangeResourceRecordSetsCommandOutput,
  GetChangeCommand,
  type GetChangeCommandInput,
  type GetChangeCommandOutput,
  ListResourceRecordSetsCommand,
  type ListResourceRecordSetsCommandInput,
  type ListResourceRecordSetsCommandOutput,
  type ResourceRecordSet,
  Route53Client,
} from '@aws-sdk/client-route-53';
import { RegionctlError } from '../../errors.js';
import type { RegionsSpec } from '../../spec/schema.js';
import { checkTarget, type DnsLookupResult, type DnsProvider, type DnsRecordTarget } from './provider.js';
import { METADATA_PREFIX } from './rfc2136.js';
import { normalizeName } from './wire.js';

/** The three calls the provider makes; tests inject a fake, production wraps Route53Client. */
export interface Route53Api {
  changeResourceRecordSets(
    input: ChangeResourceRecordSetsCommandInput,
  ): Promise<ChangeResourceRecordSetsCommandOutput>;
  listResourceRecordSets(
    input: ListResourceRecordSetsCommandInput,
  ): Promise<ListResourceRecordSetsCommandOutput>;
  getChange(input: GetChangeCommandInput): Promise<GetChangeCommandOutput>;
}

export function sdkRoute53Api(
  client: Route53Client = new Route53Client({ region: 'us-east-1' }),
): Route53Api {
  return {
    changeResourceRecordSets: (input) => client.send(new ChangeResourceRecordSetsCommand(input)),
    listResourceRecordSets: (input) => client.send(new ListResourceRecordSetsCommand(input)),
    getChange: (input) => client.send(new GetChangeCommand(input)),
  };
}

export interface Route53Options {
  hostedZoneId: string;
  zone: string;
  api?: Route53Api;
  /** Wait for INSYNC after a change (default true). */
  waitInSync?: boolean;
  /** Default 60000: Route 53 normally syncs in well under a minute. */
  syncTimeoutMs?: number;
  /** Default 1000. */
  pollMs?: number;
}

const ADDRESS_TYPES = ['A', 'AAAA', 'CNAME'] as const;

function fqdn(name: string): string {
  return `${normalizeName(name)}.`;
}

export class Route53DnsProvider implements DnsProvider {
  readonly name = 'route53' as const;
  private readonly api: Route53Api;

  constructor(private readonly opts: Route53Options) {
    this.api = opts.api ?? sdkRoute53Api();
  }

  private checkInZone(record: string): string {
    const r = normalizeName(record);
    const zone = normalizeName(this.opts.zone);
    if (r !== zone && !r.endsWith(`.${zone}`)) {
      throw new RegionctlError(
        'E_DNS_RECORD_OUTSIDE_ZONE',
        `DNS record ${record} is not inside zone ${this.opts.zone}`,
        'every record in dns: must end with dns.zone',
      );
    }
    return r;
  }

  async upsert(record: string, target: DnsRecordTarget, ttl: number): Promise<void> {
    const name = this.checkInZone(record);
    checkTarget(target, ttl);
    const host = target.host.replace(/\.$/, '');
    const type = isIPv4(host) ? 'A' : isIPv6(host) ? 'AAAA' : 'CNAME';
    const existing = await this.recordSets(name);
    const changes: Change[] = [
      ...existing
        .filter((rs) => rs.Type !== type && (ADDRESS_TYPES as readonly string[]).includes(rs.Type ?? ''))
        .map((rs): Change => ({ Action: 'DELETE', ResourceRecordSet: rs })),
      {
        Action: 'UPSERT',
        ResourceRecordSet: { Name: fqdn(name), Type: type, TTL: ttl, ResourceRecords: [{ Value: host }] },
      },
      {
        Action: 'UPSERT',
        ResourceRecordSet: {
          Name: fqdn(`${METADATA_PREFIX}${name}`),
          Type: 'TXT',
          TTL: ttl,
          ResourceRecords: [{ Value: `"region=${target.region}" "port=${target.port}"` }],
        },
      },
    ];
    const out = await this.call(`UPSERT of ${name}`, () =>
      this.api.changeResourceRecordSets({
        HostedZoneId: this.opts.hostedZoneId,
        ChangeBatch: { Comment: `regionctl: ${name} -> ${target.region}`, Changes: changes },
      }),
    );
    if (this.opts.waitInSync === false) return;
    let info = out.ChangeInfo;
    const deadline = Date.now() + (this.opts.syncTimeoutMs ?? 60_000);
    while (info?.Status !== 'INSYNC') {
      if (!info?.Id) return; // nothing to wait on (a fake or an odd answer): the change was accepted
      if (Date.now() > deadline) {
        throw new RegionctlError(
          'E_DNS_ROUTE53_SYNC',
          `Route 53 accepted the change of ${name} (${info.Id}) but it was not INSYNC after ${this.opts.syncTimeoutMs ?? 60_000} ms`,
          'the change will still apply; check `aws route53 get-change --id ...` and re-run (the upsert is idempotent)',
        );
      }
      await new Promise((r) => setTimeout(r, this.opts.pollMs ?? 1000));
      const id = info.Id;
      info = (await this.call(`GetChange ${id}`, () => this.api.getChange({ Id: id }))).ChangeInfo;
    }
  }

  async lookup(record: string): Promise<DnsLookupResult | null> {
    const name = this.checkInZone(record);
    const [sets, meta] = await Promise.all([
      this.recordSets(name),
      this.recordSets(`${METADATA_PREFIX}${name}`),
    ]);
    const address =
      sets.find((rs) => rs.Type === 'CNAME') ??
      sets.find((rs) => rs.Type === 'A') ??
      sets.find((rs) => rs.Type === 'AAAA');
    const host = address?.ResourceRecords?.[0]?.Value;
    if (!host) return null;
    const result: DnsLookupResult = { host: host.replace(/\.$/, '') };
    const txt = meta.find((rs) => rs.Type === 'TXT')?.ResourceRecords?.[0]?.Value ?? '';
    for (const m of txt.matchAll(/"([a-z]+)=([^"]*)"/g)) {
      if (m[1] === 'region' && m[2]) result.region = m[2];
      if (m[1] === 'port' && m[2] && /^\d+$/.test(m[2])) result.port = Number(m[2]);
    }
    return result;
  }

  /** The plain record sets named exactly `name` (Route 53 lists from a start name onwards). */
  private async recordSets(name: string): Promise<ResourceRecordSet[]> {
    const out = await this.call(`listing ${name}`, () =>
      this.api.listResourceRecordSets({
        HostedZoneId: this.opts.hostedZoneId,
        StartRecordName: fqdn(name),
        MaxItems: 10,
      }),
    );
    return (out.ResourceRecordSets ?? []).filter(
      (rs) => rs.Name !== undefined && fqdn(rs.Name) === fqdn(name),
    );
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const err = e as { name?: string; message?: string };
      const kind = err.name ?? 'Error';
      const hint =
        kind === 'NoSuchHostedZone'
          ? 'check dns.route53.hostedZoneId'
          : kind === 'AccessDenied' || kind === 'AccessDeniedException'
            ? 'the AWS identity needs route53:ChangeResourceRecordSets, ListResourceRecordSets and GetChange on the zone'
            : kind === 'CredentialsProviderError'
              ? 'no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with a role'
              : kind === 'InvalidChangeBatch'
                ? 'Route 53 rejected the batch; a routing-policy or alias record may already use this name'
                : kind === 'Throttling' || kind === 'PriorRequestNotComplete'
                  ? 'Route 53 is throttling; retry (the upsert is idempotent)'
                  : undefined;
      throw new RegionctlError(
        'E_DNS_ROUTE53',
        `Route 53 ${what} in zone ${this.opts.hostedZoneId} failed: ${kind}: ${err.message ?? String(e)}`,
        hint,
      );
    }
  }
}

export function route53FromSpec(spec: RegionsSpec, api?: Route53Api): Route53DnsProvider {
  const dns = spec.dns;
  if (!dns?.route53) {
    throw new RegionctlError(
      'E_DNS_CONFIG',
      'dns.provider is route53 but dns.route53 is missing',
      'add dns.route53.hostedZoneId',
    );
  }
  return new Route53DnsProvider({
    hostedZoneId: dns.route53.hostedZoneId,
    zone: dns.zone,
    ...(api ? { api } : {}),
  });
}
