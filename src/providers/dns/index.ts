/** DNS providers: pick one by `dns.provider` in regions.yaml. */
import { RegionctlError } from '../../errors.js';
import type { RegionsSpec } from '../../spec/schema.js';
import { fileDnsFromSpec } from './file.js';
import type { DnsProvider } from './provider.js';
import { rfc2136FromSpec } from './rfc2136.js';
import { route53FromSpec } from './route53.js';

export { type FileDnsOptions, FileDnsProvider } from './file.js';
export { checkTarget, type DnsLookupResult, type DnsProvider, type DnsRecordTarget } from './provider.js';
export { METADATA_PREFIX, Rfc2136DnsProvider, type Rfc2136Options } from './rfc2136.js';
export { type Route53Api, Route53DnsProvider, type Route53Options, sdkRoute53Api } from './route53.js';

/**
 * The provider `spec.dns` asks for. Nothing is contacted and no secret is read here:
 * a missing TSIG secret or AWS credential surfaces at the first upsert/lookup.
 */
export function dnsProviderFor(spec: RegionsSpec, specDir: string): DnsProvider {
  const provider = spec.dns?.provider;
  switch (provider) {
    case 'file':
      return fileDnsFromSpec(spec, specDir);
    case 'rfc2136':
      return rfc2136FromSpec(spec, specDir);
    case 'route53':
      return route53FromSpec(spec);
    case undefined:
      throw new RegionctlError(
        'E_DNS_CONFIG',
        'regions.yaml has no dns: section, so there is no record to repoint',
        'add dns: with provider, zone, ttl and primaryRecord',
      );
    default: {
      const never: never = provider;
      throw new RegionctlError('E_DNS_CONFIG', `unknown dns.provider ${String(never)}`);
    }
  }
}
