/** Typed face of the generated standalone validator (see codegen.ts for why it is generated). */
import type { ErrorObject } from 'ajv';
import * as generated from './schema-validator.generated.js';

interface GeneratedValidator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

const validator = generated.validate as GeneratedValidator;

export const schemaDocument = generated.schemaDocument as Record<string, unknown>;
export const generatedSchemaHash = generated.schemaHash as string;

/** ajv errors for `data` (all of them), or [] when it conforms to the schema. */
export function schemaErrors(data: unknown): ErrorObject[] {
  return validator(data) ? [] : [...(validator.errors ?? [])];
}
