/**
 * How regionctl reaches its authority: the `authority` section of regions.yaml with
 * defaults applied and secrets resolved. Resolved at connect time only; the result holds
 * secrets and is never logged.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { RegionctlError } from '../errors.js';
import { resolveSecret } from '../secrets/resolve.js';
import { DEFAULT_LEASE_SECONDS, PROMOTION_MARGIN_SECONDS } from '../spec/authority-defaults.js';
import type { AuthoritySpec, RegionsSpec } from '../spec/schema.js';

export { DEFAULT_LEASE_SECONDS, PROMOTION_MARGIN_SECONDS };

/**
 * Deadline of one etcd call. etcd answers in milliseconds when it has a quorum and
 * never when it has none (writes and linearizable reads queue until a leader exists),
 * so the deadline only decides how long a caller waits to learn that. 2 s covers an
 * etcd leader election (≤ election timeout, 1 s by default) plus a cross-region round
 * trip or two, and is below the 5 s failover budget.
 */
export const DEFAULT_CALL_TIMEOUT_MS = 2000;

export interface AuthorityConfig {
  endpoints: string[];
  /** Key prefix without a trailing slash, e.g. /regionctl/shop. */
  prefix: string;
  leaseSeconds: number;
  callTimeoutMs: number;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  auth?: { username: string; password: string };
}

export function defaultPrefix(specName: string): string {
  // etcd keys are bytes; keep the default readable and free of separators.
  return `/regionctl/${specName.replace(/[^A-Za-z0-9._-]/g, '_')}`;
}

/** The spec's authority, or undefined when it has none. */
export function authorityConfig(
  spec: Pick<RegionsSpec, 'name' | 'authority'>,
  specDir: string,
  overrides: Partial<Pick<AuthorityConfig, 'callTimeoutMs'>> = {},
): AuthorityConfig | undefined {
  const a: AuthoritySpec | undefined = spec.authority;
  if (!a) return undefined;
  const config: AuthorityConfig = {
    endpoints: [...a.endpoints],
    prefix: a.prefix ?? defaultPrefix(spec.name),
    leaseSeconds: a.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
    callTimeoutMs: overrides.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS,
  };
  if (a.tls) {
    const tls: NonNullable<AuthorityConfig['tls']> = {};
    if (a.tls.ca) tls.ca = readPem(a.tls.ca.file, specDir, 'authority.tls.ca');
    if (a.tls.cert) tls.cert = readPem(a.tls.cert.file, specDir, 'authority.tls.cert');
    if (a.tls.key) tls.key = Buffer.from(resolveSecret(a.tls.key, specDir, 'authority.tls.key'));
    config.tls = tls;
  }
  if (a.username !== undefined && a.password !== undefined) {
    config.auth = {
      username: a.username,
      password: resolveSecret(a.password, specDir, 'authority.password'),
    };
  }
  return config;
}

function readPem(file: string, specDir: string, what: string): Buffer {
  const path = isAbsolute(file) ? file : resolve(specDir, file);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new RegionctlError(
      'E_AUTHORITY_CONFIG',
      `${what}: cannot read ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      'fix the path in regions.yaml (relative paths are relative to regions.yaml)',
    );
  }
}
