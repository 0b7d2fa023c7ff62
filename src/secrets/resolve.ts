/**
 * Secrets are only ever referenced from regions.yaml (env var or file). They are read
 * at the moment a connection is made and never stored in plans, logs or reports.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { RegionctlError } from '../errors.js';
import type { SecretRefSpec } from '../spec/schema.js';

export function resolveSecret(ref: SecretRefSpec, specDir: string, what: string): string {
  if ('env' in ref) {
    const value = process.env[ref.env];
    if (value === undefined || value === '') {
      throw new RegionctlError(
        'E_SECRET_MISSING',
        `${what}: environment variable ${ref.env} is not set`,
        `export ${ref.env}=... before running regionctl, or reference a file instead`,
      );
    }
    return value;
  }
  const path = isAbsolute(ref.file) ? ref.file : resolve(specDir, ref.file);
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new RegionctlError(
      'E_SECRET_MISSING',
      `${what}: cannot read secret file ${path} (${code ?? 'error'})`,
      code === 'ENOENT' && ref.file.includes('.regionctl/lab')
        ? 'this is a lab secret: run `regionctl lab up` first'
        : 'create the file or fix the path in regions.yaml (relative paths are relative to regions.yaml)',
    );
  }
}

/** Describes a secret reference without revealing it (for plans and logs). */
export function describeSecret(ref: SecretRefSpec): string {
  return 'env' in ref ? `env:${ref.env}` : `file:${ref.file}`;
}
