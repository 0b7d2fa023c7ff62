/** README's configuration reference is generated from the schema and lists every code the validator emits. */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { referenceIn, specReferenceMarkdown } from '../../src/spec/reference.js';
import { jsonSchemaDocument } from '../../src/spec/schema.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const specDir = new URL('../../src/spec/', import.meta.url);

describe('README configuration reference', () => {
  it('the keys table is the one generated from the schema (npm run gen:schema)', () => {
    expect(referenceIn(readme)).toBe(specReferenceMarkdown(jsonSchemaDocument()));
  });

  it('documents every diagnostic code the validator can emit', () => {
    const codes = new Set<string>();
    for (const f of readdirSync(specDir).filter((n) => n.endsWith('.ts') && !n.includes('generated'))) {
      const text = readFileSync(new URL(f, specDir), 'utf8');
      for (const m of text.matchAll(/'([EW]_[A-Z0-9_]+)'/g)) if (m[1]) codes.add(m[1]);
    }
    const section = readme.slice(readme.indexOf('### Rules and error codes'));
    const missing = [...codes].filter((c) => !section.includes(`\`${c}\``));
    expect(codes.size).toBeGreaterThan(30);
    expect(missing).toEqual([]);
  });
});
