/** Whatever the input, the loader answers with diagnostics; it never throws. */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, it } from 'vitest';
import { stringify } from 'yaml';
import { type LoadResult, loadSpecFromString } from '../../src/spec/load.js';

const example = readFileSync(new URL('../../regions.yaml', import.meta.url), 'utf8');
const exampleLines = example.split('\n');

function wellFormed(result: LoadResult): boolean {
  if (result.ok) return result.diagnostics.every((d) => d.severity === 'warning');
  return (
    result.diagnostics.some((d) => d.severity === 'error') &&
    result.diagnostics.every(
      (d) =>
        Number.isInteger(d.line) && d.line >= 0 && d.col >= 0 && d.code.length > 0 && d.message.length > 0,
    )
  );
}

const json = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constantFrom(null, true, false, 0, 1, -1, 1.5, '', 'primary', 'us-east-1', 'public.orders'),
    fc.string(),
    fc.integer(),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.oneof(fc.string(), fc.constantFrom('regions', 'channels', 'name', 'role', 'from', 'to', 'password')),
      tie('value'),
      { maxKeys: 4 },
    ),
  ),
})).value;

describe('loader robustness (property)', () => {
  it('arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 400 }), (text) =>
        wellFormed(loadSpecFromString(text, 'x.yaml')),
      ),
      { numRuns: 400 },
    );
  });

  it('arbitrary bytes read as latin1', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) =>
        wellFormed(loadSpecFromString(Buffer.from(bytes).toString('latin1'), 'x.yaml')),
      ),
      { numRuns: 300 },
    );
  });

  it('arbitrary JSON-ish YAML documents', () => {
    fc.assert(
      fc.property(json, (value) => wellFormed(loadSpecFromString(stringify(value), 'x.yaml'))),
      { numRuns: 400 },
    );
  });

  it('the example with values replaced by arbitrary JSON-ish values', () => {
    fc.assert(
      fc.property(json, fc.nat({ max: 200 }), (value, n) => {
        // Replace the value of the n-th `key: value` line with the arbitrary value (flow style).
        const lines = [...exampleLines];
        const keyed = lines.map((l, i) => [l, i] as const).filter(([l]) => /^\s*[\w-]+: \S/.test(l));
        const target = keyed[n % keyed.length];
        if (!target) return true;
        const [line, i] = target;
        lines[i] = line.replace(
          /: .*$/,
          `: ${stringify(value, { collectionStyle: 'flow' }).trim().replaceAll('\n', ' ')}`,
        );
        return wellFormed(loadSpecFromString(lines.join('\n'), 'r.yaml'));
      }),
      { numRuns: 300 },
    );
  });

  it('the example with arbitrary lines deleted', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.nat({ max: exampleLines.length - 1 }), { maxLength: 6 }), (drop) => {
        const text = exampleLines.filter((_, i) => !drop.includes(i)).join('\n');
        return wellFormed(loadSpecFromString(text, 'r.yaml'));
      }),
      { numRuns: 300 },
    );
  });
});
