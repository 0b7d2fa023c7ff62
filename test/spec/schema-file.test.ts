/** The generated artifacts cannot drift from src/spec/schema.ts. Regenerate: npm run gen:schema */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { schemaHash } from '../../src/spec/codegen.js';
import { jsonSchemaDocument } from '../../src/spec/schema.js';
import { generatedSchemaHash, schemaDocument } from '../../src/spec/schema-validate.js';

const schemaFile = new URL('../../schemas/regions.schema.json', import.meta.url);

/** Every schema a user can write a value for: properties, record values, list items, union branches. */
function* described(node: unknown, path: string): Generator<[string, Record<string, unknown>]> {
  if (node === null || typeof node !== 'object') return;
  const s = node as Record<string, unknown>;
  for (const [k, v] of Object.entries((s.properties as Record<string, unknown> | undefined) ?? {})) {
    yield [`${path}/${k}`, v as Record<string, unknown>];
    yield* described(v, `${path}/${k}`);
  }
  for (const [k, v] of Object.entries((s.patternProperties as Record<string, unknown> | undefined) ?? {})) {
    yield [`${path}/{${k}}`, v as Record<string, unknown>];
    yield* described(v, `${path}/{${k}}`);
  }
  if (s.items) {
    yield [`${path}[]`, s.items as Record<string, unknown>];
    yield* described(s.items, `${path}[]`);
  }
  for (const [i, branch] of ((s.anyOf as unknown[] | undefined) ?? []).entries())
    yield* described(branch, `${path}|${i}`);
}

describe('schemas/regions.schema.json', () => {
  it('equals the document generated from src/spec/schema.ts', () => {
    const onDisk = JSON.parse(readFileSync(schemaFile, 'utf8')) as unknown;
    expect(onDisk).toEqual(jsonSchemaDocument());
  });

  it('matches the generated standalone validator', () => {
    expect(generatedSchemaHash).toBe(schemaHash());
    expect(schemaDocument).toEqual(jsonSchemaDocument());
  });

  it('is JSON Schema 2020-12 and rejects unknown keys at the top level', () => {
    const doc = jsonSchemaDocument();
    expect(doc.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(doc.additionalProperties).toBe(false);
  });

  it('describes every property', () => {
    const missing = [...described(jsonSchemaDocument(), '')]
      .filter(([, s]) => typeof s.description !== 'string' || s.description.length < 5)
      .map(([p]) => p);
    expect(missing).toEqual([]);
  });

  it('rejects unknown keys in every object', () => {
    const open: string[] = [];
    const walk = (node: unknown, path: string) => {
      if (node === null || typeof node !== 'object') return;
      const s = node as Record<string, unknown>;
      if (s.type === 'object' && s.properties && s.additionalProperties !== false) open.push(path);
      for (const [k, v] of Object.entries(s)) walk(v, `${path}/${k}`);
    };
    walk(jsonSchemaDocument(), '');
    expect(open).toEqual([]);
  });
});
