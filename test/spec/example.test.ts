import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isRegionctlError } from '../../src/errors.js';
import {
  formatDiagnostic,
  loadSpec,
  loadSpecFromString,
  loadSpecOrThrow,
  MAX_SPEC_BYTES,
} from '../../src/spec/load.js';

const example = new URL('../../regions.yaml', import.meta.url);
const base = new URL('./fixtures/valid-base.yaml', import.meta.url);

describe('valid specs', () => {
  it('the example regions.yaml validates clean: no errors, no warnings', async () => {
    const result = await loadSpec(example.pathname);
    expect(result.diagnostics.map(formatDiagnostic)).toEqual([]);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.spec.regions.map((r) => r.name)).toEqual(['us-east-1', 'eu-west-1', 'ap-southeast-1']);
    expect(result.dir).toBe(new URL('../..', import.meta.url).pathname.replace(/\/$/, ''));
  });

  it('the corpus base validates clean', () => {
    const result = loadSpecFromString(readFileSync(base, 'utf8'), 'base.yaml');
    expect(result.diagnostics.map(formatDiagnostic)).toEqual([]);
  });

  it('formats diagnostics in compiler style', () => {
    const text = readFileSync(base, 'utf8').replace('to: eu-west-1', 'to: eu-west-2');
    const result = loadSpecFromString(text, 'regions.yaml');
    expect(result.diagnostics.map(formatDiagnostic)).toContain(
      "regions.yaml:42:9 error E_UNKNOWN_REGION channel target 'eu-west-2' is not a declared region (did you mean 'eu-west-1'?)",
    );
    expect(result.diagnostics[0]?.path).toBe('/channels/0/to');
  });
});

describe('reading the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'regionctl-spec-'));

  it('a missing file is E_SPEC_NOT_FOUND, without a position', async () => {
    const result = await loadSpec(join(dir, 'nope.yaml'));
    expect(result.ok).toBe(false);
    expect(result.diagnostics).toMatchObject([{ code: 'E_SPEC_NOT_FOUND', line: 0, col: 0 }]);
    expect(formatDiagnostic(result.diagnostics[0]!)).toMatch(/^\S+nope\.yaml error E_SPEC_NOT_FOUND /);
  });

  it('a directory is E_SPEC_UNREADABLE', async () => {
    const result = await loadSpec(dir);
    expect(result.diagnostics[0]?.code).toBe('E_SPEC_UNREADABLE');
  });

  it('a file over the size cap is refused before parsing', async () => {
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `# ${'x'.repeat(MAX_SPEC_BYTES)}\n`);
    const result = await loadSpec(big);
    expect(result.diagnostics[0]?.code).toBe('E_SPEC_TOO_LARGE');
  });

  it('bytes that are not UTF-8 are E_SPEC_ENCODING', async () => {
    const bad = join(dir, 'latin1.yaml');
    writeFileSync(bad, Buffer.from([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xe9, 0xff, 0x0a]));
    const result = await loadSpec(bad);
    expect(result.diagnostics[0]?.code).toBe('E_SPEC_ENCODING');
  });

  it('loadSpecOrThrow throws E_SPEC_INVALID listing every error', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      readFileSync(base, 'utf8')
        .replace('version: 1', 'version: 2')
        .replace('to: eu-west-1', 'to: eu-west-2'),
    );
    const err = await loadSpecOrThrow(bad).catch((e: unknown) => e);
    expect(isRegionctlError(err)).toBe(true);
    if (!isRegionctlError(err)) return;
    expect(err.code).toBe('E_SPEC_INVALID');
    expect(err.message).toContain('E_SCHEMA_ENUM');
    expect(err.message).toContain('E_UNKNOWN_REGION');
    expect(err.hint).toContain('regionctl validate');
  });

  it('loadSpecOrThrow returns the spec and its directory', async () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, readFileSync(base, 'utf8'));
    const { spec, dir: specDir } = await loadSpecOrThrow(good);
    expect(spec.name).toBe('shop');
    expect(specDir).toBe(dir);
  });
});

describe('secrets', () => {
  it('diagnostics never repeat a literal secret', () => {
    const text = readFileSync(base, 'utf8')
      .replace('password: { file: secrets/control.password }', 'password: hunter2')
      .replace('name: shop', 'name: postgres://app:s3cretpw@db.example.com/shop');
    const result = loadSpecFromString(text, 'regions.yaml');
    const codes = result.diagnostics.map((d) => d.code);
    expect(codes.filter((c) => c === 'E_LITERAL_SECRET')).toHaveLength(2);
    const output = JSON.stringify(result.diagnostics);
    expect(output).not.toContain('hunter2');
    expect(output).not.toContain('s3cretpw');
  });
});
