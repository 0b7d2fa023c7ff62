/**
 * The authority (DESIGN.md, "Safety architecture"): leader lease, topology epoch,
 * agent leases, in-flight transition and pause flag, in etcd.
 */
import type { RegionsSpec } from '../spec/schema.js';
import { type AuthorityConfig, authorityConfig } from './config.js';
import { EtcdAuthority } from './etcd.js';
import type { Authority } from './types.js';

export * from './config.js';
export { EtcdAuthority } from './etcd.js';
export type * from './types.js';

/** Connect lazily to the authority described by `config` (no call is made until one is needed). */
export function openAuthority(config: AuthorityConfig): Authority {
  return new EtcdAuthority(config);
}

/** The spec's authority, or undefined when regions.yaml has no `authority` section. */
export function openAuthorityFromSpec(
  spec: Pick<RegionsSpec, 'name' | 'authority'>,
  specDir: string,
  overrides?: Partial<Pick<AuthorityConfig, 'callTimeoutMs'>>,
): Authority | undefined {
  const config = authorityConfig(spec, specDir, overrides);
  return config ? new EtcdAuthority(config) : undefined;
}
