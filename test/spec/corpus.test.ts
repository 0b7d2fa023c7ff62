/**
 * Table-driven corpus of bad specs. Each file in corpus/ marks the line of every error it
 * must produce with a trailing `# <- CODE` comment; the test asserts that the errors are
 * exactly those (code and line), so a case cannot pass by producing some other error.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatDiagnostic, loadSpecFromString } from '../../src/spec/load.js';

const dir = new URL('./corpus/', import.meta.url);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.yaml'))
  .sort();

function expectedErrors(text: string): string[] {
  return text
    .split('\n')
    .flatMap((line, i) => [...line.matchAll(/# <- ([A-Z][A-Z0-9_]+)/g)].map((m) => `${m[1]} @ line ${i + 1}`))
    .sort();
}

const base = readFileSync(new URL('./fixtures/valid-base.yaml', import.meta.url), 'utf8');

/** Cases that are not well-formed YAML live here: as files they would trip the repository's linters. */
const inline: Record<string, string> = {
  'inline: unclosed flow mapping (reported where the parser gives up)': base.replace(
    '    location: { lat: 38.9, lon: -77.4 }\n    endpoint:\n',
    '    location: { lat: 38.9, lon: -77.4\n    endpoint: # <- E_YAML\n',
  ),
  'inline: bad indentation': base.replace(
    '  port: 5432\n  database: regionctl',
    '  port: 5432\n database: regionctl # <- E_YAML',
  ),
  'inline: tab indentation': base.replace('  provider: file\n', '\tprovider: file # <- E_YAML\n'),
  'inline: two documents': `${base}--- # <- E_YAML\nversion: 1\n`,
  'inline: undefined alias': base.replace(
    'applicationRoles: [app]',
    'applicationRoles: *roles # <- E_YAML_ALIAS',
  ),
};

const cases = [...files, ...Object.keys(inline)];

describe('corpus of invalid specs', () => {
  it('has at least 30 cases', () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
  });

  it.each(cases)('%s', (file) => {
    const text = inline[file] ?? readFileSync(new URL(file, dir), 'utf8');
    expect(text, 'the inline case applies to the base').not.toBe(base);
    const expected = expectedErrors(text);
    expect(expected.length, 'the case marks its expected errors').toBeGreaterThan(0);
    const result = loadSpecFromString(text, file);
    expect(result.ok).toBe(false);
    const errors = result.diagnostics.filter((d) => d.severity === 'error');
    const actual = errors.map((d) => `${d.code} @ line ${d.line}`).sort();
    expect(actual, errors.map(formatDiagnostic).join('\n')).toEqual(expected);
    for (const d of result.diagnostics) {
      expect(d.file).toBe(file);
      expect(d.col).toBeGreaterThanOrEqual(1);
      expect(d.message.length).toBeGreaterThan(10);
    }
  });

  it('sorts diagnostics by line and column', () => {
    const text = readFileSync(new URL('52-many-errors.yaml', dir), 'utf8');
    const { diagnostics } = loadSpecFromString(text, 'many.yaml');
    const positions = diagnostics.map((d) => d.line * 1000 + d.col);
    expect(positions).toEqual([...positions].sort((a, b) => a - b));
    expect(diagnostics.filter((d) => d.severity === 'error').length).toBe(4);
  });
});
