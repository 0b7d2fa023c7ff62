/** Points the primary record at the promoted region (after a confirmed or forced fence). */
import { dnsProviderFor } from '../providers/dns/index.js';
import type { RegionsSpec } from '../spec/schema.js';

export async function moveDns(
  spec: RegionsSpec,
  specDir: string,
  to: string,
): Promise<{ record: string | null; provider: string | null }> {
  if (!spec.dns) return { record: null, provider: null };
  const r = spec.regions.find((x) => x.name === to);
  if (!r) throw new Error(`unknown region ${to}`);
  const provider = dnsProviderFor(spec, specDir);
  await provider.upsert(
    spec.dns.primaryRecord,
    { region: to, host: r.endpoint.host, port: r.endpoint.port },
    spec.dns.ttl,
  );
  return { record: spec.dns.primaryRecord, provider: provider.name };
}
