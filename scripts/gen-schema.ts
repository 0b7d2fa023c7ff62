/**
 * Writes schemas/regions.schema.json, the standalone validator
 * src/spec/schema-validator.generated.ts and the configuration reference in README.md
 * from src/spec/schema.ts (the single source of truth).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { schemaJsonText, validatorModuleText } from '../src/spec/codegen.js';
import { specReferenceMarkdown, withReference } from '../src/spec/reference.js';
import { jsonSchemaDocument } from '../src/spec/schema.js';

const readme = new URL('../README.md', import.meta.url);

const outputs: Array<[URL, string]> = [
  [new URL('../schemas/regions.schema.json', import.meta.url), schemaJsonText()],
  [new URL('../src/spec/schema-validator.generated.ts', import.meta.url), validatorModuleText()],
  [readme, withReference(readFileSync(readme, 'utf8'), specReferenceMarkdown(jsonSchemaDocument()))],
];
for (const [url, text] of outputs) {
  writeFileSync(url, text);
  console.log(`wrote ${url.pathname}`);
}
