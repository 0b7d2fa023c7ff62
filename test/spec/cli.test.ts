/** `regionctl validate` end to end: exit codes and output formats, through the real entry point. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

function withoutSpecEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.REGIONCTL_SPEC;
  return env;
}

function regionctl(...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: withoutSpecEnv(),
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('regionctl validate', () => {
  it('exits 0 on the example and says so', () => {
    const r = regionctl('validate');
    expect(r.stdout).toBe('regions.yaml: valid\n');
    expect(r.code).toBe(0);
  });

  it('exits 1 on an invalid spec, compiler-style lines and a summary', () => {
    const r = regionctl('validate', '--spec', 'test/spec/corpus/52-many-errors.yaml');
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toBe('test/spec/corpus/52-many-errors.yaml:2:10 error E_SCHEMA_ENUM version must be 1');
    expect(lines).toContain(
      "test/spec/corpus/52-many-errors.yaml:42:9 error E_UNKNOWN_REGION channel target 'eu-west-2' is not a declared region (did you mean 'eu-west-1'?)",
    );
    expect(lines.at(-1)).toBe('test/spec/corpus/52-many-errors.yaml: 4 errors, 1 warning');
  });

  it('--format json gives errors and warnings apart', () => {
    const r = regionctl(
      'validate',
      '--spec',
      'test/spec/corpus/48-dns-provider-settings.yaml',
      '--format',
      'json',
    );
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as {
      file: string;
      valid: boolean;
      errors: unknown[];
      warnings: unknown[];
    };
    expect(out.valid).toBe(false);
    expect(out.errors).toMatchObject([{ code: 'E_DNS_PROVIDER_SETTINGS', line: 76, path: '/dns/provider' }]);
    expect(out.warnings).toMatchObject([{ code: 'W_DNS_UNUSED_SETTINGS' }]);
  });

  it('exits 1 with E_SPEC_NOT_FOUND when the file is missing', () => {
    const r = regionctl('validate', '--spec', 'no/such/regions.yaml');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^no\/such\/regions\.yaml error E_SPEC_NOT_FOUND /);
  });

  it('exits 2 on usage errors', () => {
    expect(regionctl('validate', '--bogus').code).toBe(2);
    expect(regionctl('validate', '--format', 'xml').code).toBe(2);
    expect(regionctl('validate', '--spec', '').code).toBe(2);
  });

  it('has help with an example', () => {
    const r = regionctl('validate', '--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--spec <path>');
    expect(r.stdout).toContain('$ regionctl validate');
  });
});
