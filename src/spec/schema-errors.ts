/**
 * Turns raw ajv errors into findings a person can act on: one finding per real problem,
 * a stable code, the allowed alternatives and a "did you mean". ajv reports a failed
 * `anyOf` as the errors of every branch plus the anyOf itself; those are collapsed into
 * one message, or narrowed to the branch the user evidently meant.
 */
import type { ErrorObject } from 'ajv';
import { type Finding, humanPath, pointer, pointerSegments } from './diagnostic.js';
import {
  IDENTIFIER_PATTERN,
  REGION_NAME_MAX_LENGTH,
  REGION_NAME_PATTERN,
  TABLE_NAME_PATTERN,
} from './patterns.js';
import { closest, didYouMean } from './suggest.js';

type Json = Record<string, unknown>;

function schemaAt(root: Json, schemaPath: string): unknown {
  let node: unknown = root;
  for (const seg of pointerSegments(schemaPath.replace(/^#/, ''))) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Json)[seg];
  }
  return node;
}

function dataAt(root: unknown, ptr: string): unknown {
  let node = root;
  for (const seg of pointerSegments(ptr)) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Json)[seg];
  }
  return node;
}

/** The schema object that holds the failing keyword. */
function keywordParent(root: Json, e: ErrorObject): Json {
  const parent = schemaAt(root, e.schemaPath.slice(0, e.schemaPath.lastIndexOf('/')));
  return parent && typeof parent === 'object' ? (parent as Json) : {};
}

function isSecretRefUnion(branches: Json[]): boolean {
  return branches.every((b) => {
    const keys = Object.keys((b.properties as Json | undefined) ?? {});
    return keys.length === 1 && (keys[0] === 'env' || keys[0] === 'file');
  });
}

/** `{ method: 'command', command, timeoutSeconds? }` from an object schema. */
function shapeOf(branch: Json): string {
  if ('const' in branch) return JSON.stringify(branch.const);
  if (branch.type !== 'object') return String(branch.type ?? 'value');
  const props = (branch.properties as Record<string, Json> | undefined) ?? {};
  const required = new Set((branch.required as string[] | undefined) ?? []);
  const fields = Object.entries(props).map(([k, v]) => {
    if ('const' in v) return `${k}: ${JSON.stringify(v.const)}`;
    if (k === 'env') return 'env: NAME';
    if (k === 'file') return 'file: PATH';
    return required.has(k) ? k : `${k}?`;
  });
  return `{ ${fields.join(', ')} }`;
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return 'a string';
  if (typeof v === 'number') return Number.isInteger(v) ? 'an integer' : 'a number';
  return `a ${typeof v}`;
}

const TYPE_WORDS: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
};

function typeHint(expected: string, value: unknown): string {
  if (typeof value === 'string') {
    if (
      (expected === 'integer' || expected === 'number') &&
      value.trim() !== '' &&
      !Number.isNaN(Number(value))
    )
      return ': remove the quotes';
    if (expected === 'boolean' && /^(yes|no|on|off|y|n|true|false)$/i.test(value))
      return ': write true or false (YAML 1.2 reads yes/no/on/off as strings)';
  }
  return '';
}

interface PatternMeaning {
  code: string;
  explain: (value: string) => string;
}

const PATTERNS: Record<string, PatternMeaning> = {
  [REGION_NAME_PATTERN]: {
    code: 'E_REGION_NAME',
    explain: (v) => {
      const why = /[A-Z]/.test(v)
        ? 'uppercase letters are not allowed'
        : v.includes('_')
          ? 'underscores are not allowed (dashes become underscores in replication object names, so they could collide)'
          : v.includes('--')
            ? "a double dash would become '__', the separator in replication object names"
            : /^[^a-z]/.test(v)
              ? 'it must start with a lowercase letter'
              : v.endsWith('-')
                ? 'it must not end with a dash'
                : 'only lowercase letters, digits and single dashes are allowed';
      return `region name '${v}' cannot be mapped to a safe SQL identifier: ${why}`;
    },
  },
  [TABLE_NAME_PATTERN]: {
    code: 'E_TABLE_NAME',
    explain: (v) => {
      const why = !v.includes('.')
        ? `qualify it with its schema, e.g. public.${v || 'orders'}`
        : /[A-Z]/.test(v)
          ? 'write it in lowercase (quoted mixed-case identifiers are not supported)'
          : 'use schema.table with lowercase identifiers of at most 63 characters';
      return `table name '${v}' is not a valid schema.table: ${why}`;
    },
  },
  [IDENTIFIER_PATTERN]: {
    code: 'E_IDENTIFIER',
    explain: (v) =>
      `'${v}' is not a valid unquoted PostgreSQL identifier: use lowercase letters, digits and '_' (at most 63, not starting with a digit)`,
  },
};

export function mapSchemaErrors(errors: readonly ErrorObject[], data: unknown, schema: Json): Finding[] {
  const pool = new Set(errors);
  const findings: Finding[] = [];
  const anyOfs = errors
    .filter((e) => e.keyword === 'anyOf')
    .sort((a, b) => a.schemaPath.length - b.schemaPath.length);
  for (const e of anyOfs) {
    if (!pool.has(e)) continue;
    pool.delete(e);
    const prefix = `${e.schemaPath}/`;
    const inner = [...pool].filter((x) => x.schemaPath.startsWith(prefix));
    const branches = (schemaAt(schema, e.schemaPath) as Json[] | undefined) ?? [];
    const value = dataAt(data, e.instancePath);
    const where = humanPath(e.instancePath);
    const drop = () => {
      for (const x of inner) pool.delete(x);
    };
    if (branches.every((b) => 'const' in b)) {
      drop();
      const allowed = branches.map((b) => String(b.const));
      findings.push({
        path: e.instancePath,
        severity: 'error',
        code: 'E_SCHEMA_ENUM',
        message: `${where} must be one of: ${allowed.join(', ')}${typeof value === 'string' ? didYouMean(value, allowed) : ''}`,
      });
      continue;
    }
    if (isSecretRefUnion(branches) && (value === null || typeof value !== 'object' || Array.isArray(value))) {
      drop();
      findings.push({
        path: e.instancePath,
        severity: 'error',
        code: typeof value === 'string' || typeof value === 'number' ? 'E_LITERAL_SECRET' : 'E_SCHEMA_TYPE',
        message:
          typeof value === 'string' || typeof value === 'number'
            ? `${where} is a literal secret: secrets never appear in regions.yaml; write { env: NAME } or { file: PATH } and remove the secret from the file (and from Git history)`
            : `${where} must be { env: NAME } or { file: PATH }, got ${typeName(value)}`,
      });
      continue;
    }
    // An object union: keep the errors of the branch the user evidently meant, so
    // `{ method: command }` without `command` says just that. A branch whose discriminator
    // (`const` property) matches wins; failing that, the one whose keys fit.
    const inBranch = (x: ErrorObject, i: number) => x.schemaPath.startsWith(`${prefix}${i}/`);
    const isChild = (x: ErrorObject) => x.instancePath.lastIndexOf('/') === e.instancePath.length;
    const hasConst = (i: number) =>
      Object.values((branches[i]?.properties as Record<string, Json> | undefined) ?? {}).some(
        (p) => 'const' in p,
      );
    const indexes = branches.map((_, i) => i);
    const byDiscriminator = indexes.filter(
      (i) => hasConst(i) && !inner.some((x) => inBranch(x, i) && x.keyword === 'const' && isChild(x)),
    );
    const structural = (x: ErrorObject) =>
      x.instancePath === e.instancePath &&
      (x.keyword === 'type' || x.keyword === 'additionalProperties' || x.keyword === 'required');
    const byShape = indexes.filter((i) => !inner.some((x) => inBranch(x, i) && structural(x)));
    const objectValue = value !== null && typeof value === 'object' && !Array.isArray(value);
    const fitting = objectValue && byDiscriminator.length === 1 ? byDiscriminator : byShape;
    const chosen = fitting[0];
    if (fitting.length === 1 && chosen !== undefined) {
      for (const x of inner) if (!inBranch(x, chosen)) pool.delete(x);
      continue;
    }
    drop();
    findings.push({
      path: e.instancePath,
      severity: 'error',
      code: 'E_SCHEMA_SHAPE',
      message: `${where} must be ${branches.map(shapeOf).join(' or ')}`,
    });
  }
  // `hots:` instead of `host:` yields an unknown key and a missing key; say it once.
  const misspelt = new Set<string>();
  for (const e of pool) {
    if (e.keyword !== 'additionalProperties') continue;
    const key = String((e.params as { additionalProperty: string }).additionalProperty);
    const allowed = Object.keys((keywordParent(schema, e).properties as Json | undefined) ?? {});
    const meant = closest(key, allowed);
    if (meant !== undefined) misspelt.add(`${e.instancePath}|${meant}`);
  }
  for (const e of pool) {
    if (e.keyword === 'required') {
      const missing = String((e.params as { missingProperty: string }).missingProperty);
      if (misspelt.has(`${e.instancePath}|${missing}`)) continue;
    }
    findings.push(mapOne(e, data, schema));
  }
  return dedupe(findings);
}

function mapOne(e: ErrorObject, data: unknown, schema: Json): Finding {
  const where = humanPath(e.instancePath);
  const value = dataAt(data, e.instancePath);
  const parent = keywordParent(schema, e);
  const base = { path: e.instancePath, severity: 'error' as const };
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String((e.params as { additionalProperty: string }).additionalProperty);
      const allowed = Object.keys((parent.properties as Json | undefined) ?? {});
      const hint =
        key === '<<'
          ? ': YAML merge keys are not supported; repeat the keys or alias whole values (*anchor)'
          : `${didYouMean(key, allowed)}; allowed here: ${allowed.join(', ')}`;
      return {
        ...base,
        path: e.instancePath + pointer(key),
        at: 'key',
        code: 'E_SCHEMA_UNKNOWN_KEY',
        message: `unknown key '${key}' in ${where}${hint}`,
      };
    }
    case 'required': {
      const key = String((e.params as { missingProperty: string }).missingProperty);
      const props = (parent.properties as Record<string, Json> | undefined) ?? {};
      const what = props[key]?.description;
      return {
        ...base,
        code: 'E_SCHEMA_REQUIRED',
        message: `${where} is missing required key '${key}'${what ? ` (${String(what).replace(/\.$/, '')})` : ''}`,
      };
    }
    case 'type': {
      const expected = String((e.params as { type: string }).type);
      return {
        ...base,
        code: 'E_SCHEMA_TYPE',
        message: `${where} must be ${TYPE_WORDS[expected] ?? expected}, got ${typeName(value)}${typeHint(expected, value)}`,
      };
    }
    case 'const':
    case 'enum': {
      const allowed =
        e.keyword === 'const'
          ? [(e.params as { allowedValue: unknown }).allowedValue]
          : ((e.params as { allowedValues: unknown[] }).allowedValues ?? []);
      return {
        ...base,
        code: 'E_SCHEMA_ENUM',
        message: `${where} must be ${allowed.map((v) => JSON.stringify(v)).join(' or ')}`,
      };
    }
    case 'pattern': {
      const pattern = String((e.params as { pattern: string }).pattern);
      const meaning = PATTERNS[pattern];
      const v = String(value);
      if (meaning) return { ...base, code: meaning.code, message: meaning.explain(v) };
      return { ...base, code: 'E_SCHEMA_PATTERN', message: `${where} '${v}' must match ${pattern}` };
    }
    case 'minLength':
    case 'maxLength': {
      const limit = Number((e.params as { limit: number }).limit);
      if (parent.pattern === REGION_NAME_PATTERN && e.keyword === 'maxLength')
        return {
          ...base,
          code: 'E_REGION_NAME',
          message: `region name '${String(value)}' is longer than ${REGION_NAME_MAX_LENGTH} characters: replication object names are built from it`,
        };
      return {
        ...base,
        code: 'E_SCHEMA_RANGE',
        message:
          e.keyword === 'minLength' && limit === 1
            ? `${where} must not be empty`
            : `${where} must have ${e.keyword === 'minLength' ? 'at least' : 'at most'} ${limit} characters`,
      };
    }
    case 'minItems':
    case 'maxItems': {
      const limit = Number((e.params as { limit: number }).limit);
      return {
        ...base,
        code: 'E_SCHEMA_RANGE',
        message: `${where} must have ${e.keyword === 'minItems' ? 'at least' : 'at most'} ${limit} item${limit === 1 ? '' : 's'}`,
      };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum': {
      const { comparison, limit } = e.params as { comparison: string; limit: number };
      return {
        ...base,
        code: 'E_SCHEMA_RANGE',
        message: `${where} must be ${comparison} ${limit}, got ${JSON.stringify(value)}`,
      };
    }
    default:
      return { ...base, code: 'E_SCHEMA', message: `${where} ${e.message ?? 'is invalid'}` };
  }
}

function dedupe(findings: Finding[]): Finding[] {
  const seen = new Set<string>();
  return findings.filter((f) => {
    const k = `${f.path}|${f.code}|${f.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
