/**
 * The topology after a promotion, as a spec: the promoted region is the primary, every
 * channel starts from it, and the channel that fed it now feeds the old primary (which
 * stays out — `excluded` — until it has rejoined). Pure. The control store's topology
 * overrides regions.yaml until the write-back pull request is merged.
 */
import type { RegionsSpec } from '../spec/schema.js';

export function promotedSpec(spec: RegionsSpec, newPrimary: string): RegionsSpec {
  const oldPrimary = spec.regions.find((r) => r.role === 'primary')?.name;
  if (!oldPrimary || oldPrimary === newPrimary) return spec;
  const out = structuredClone(spec);
  for (const r of out.regions) r.role = r.name === newPrimary ? 'primary' : 'secondary';
  out.channels = out.channels.map((c) => {
    const to = c.to === newPrimary ? oldPrimary : c.to;
    return { ...c, from: newPrimary, to };
  });
  return out;
}

/** The spec without the channels to regions that are fenced or rebuilding. */
export function withoutRegions(spec: RegionsSpec, excluded: readonly string[]): RegionsSpec {
  if (excluded.length === 0) return spec;
  return { ...spec, channels: spec.channels.filter((c) => !excluded.includes(c.to)) };
}

/** What regionctl acts on: the spec, bent to what the control store knows. */
export function effectiveSpec(
  spec: RegionsSpec,
  topology: { primaryRegion: string } | null,
  excluded: readonly string[],
): RegionsSpec {
  const promoted = topology ? promotedSpec(spec, topology.primaryRegion) : spec;
  return withoutRegions(promoted, excluded);
}
