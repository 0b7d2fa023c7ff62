/** Writes schemas/regions.schema.json from src/spec/schema.ts (the single source of truth). */
import { writeFileSync } from 'node:fs';
import { jsonSchemaDocument } from '../src/spec/schema.js';

const out = new URL('../schemas/regions.schema.json', import.meta.url);
writeFileSync(out, `${JSON.stringify(jsonSchemaDocument(), null, 2)}\n`);
console.log(`wrote ${out.pathname}`);
