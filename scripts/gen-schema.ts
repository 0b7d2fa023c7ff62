/**
 * Writes schemas/regions.schema.json and the standalone validator
 * src/spec/schema-validator.generated.ts from src/spec/schema.ts (the single source of truth).
 */
import { writeFileSync } from 'node:fs';
import { schemaJsonText, validatorModuleText } from '../src/spec/codegen.js';

const outputs: Array<[URL, string]> = [
  [new URL('../schemas/regions.schema.json', import.meta.url), schemaJsonText()],
  [new URL('../src/spec/schema-validator.generated.ts', import.meta.url), validatorModuleText()],
];
for (const [url, text] of outputs) {
  writeFileSync(url, text);
  console.log(`wrote ${url.pathname}`);
}
