/**
 * Loads regions.yaml: read (bounded), parse with positions (duplicate keys and alias
 * bombs rejected), validate against the schema, run the semantic checks, and report every
 * problem at once as positioned diagnostics sorted by line and column.
 */
import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type Document, LineCounter, parseDocument, visit, type YAMLError } from 'yaml';
import { RegionctlError } from '../errors.js';
import {
  compareDiagnostics,
  type Diagnostic,
  type Finding,
  formatDiagnostic,
  pointerSegments,
} from './diagnostic.js';
import { literalSecretFindings } from './literal-secrets.js';
import { locate } from './positions.js';
import type { RegionsSpec } from './schema.js';
import { mapSchemaErrors } from './schema-errors.js';
import { schemaDocument, schemaErrors } from './schema-validate.js';
import { semanticFindings } from './semantic.js';

export type { Diagnostic } from './diagnostic.js';
export { formatDiagnostic, summarize } from './diagnostic.js';

/** A spec is a page or two; anything much larger is a mistake or an attack. */
export const MAX_SPEC_BYTES = 1024 * 1024;
/** Anchors are handy for shared values; thousands of alias expansions are an attack. */
export const MAX_ALIAS_COUNT = 100;

export type LoadResult =
  | { ok: true; spec: RegionsSpec; file: string; dir: string; diagnostics: Diagnostic[] }
  | { ok: false; file: string; diagnostics: Diagnostic[] };

function fileProblem(file: string, code: string, message: string): LoadResult {
  return {
    ok: false,
    file,
    diagnostics: [{ file, line: 0, col: 0, severity: 'error', code, message, path: '' }],
  };
}

export async function loadSpec(path: string): Promise<LoadResult> {
  let bytes: Buffer;
  try {
    const info = await stat(path);
    if (info.isDirectory())
      return fileProblem(path, 'E_SPEC_UNREADABLE', `${path} is a directory, not a regions.yaml file`);
    if (info.size > MAX_SPEC_BYTES)
      return fileProblem(
        path,
        'E_SPEC_TOO_LARGE',
        `${path} is ${info.size} bytes; a spec may be at most ${MAX_SPEC_BYTES} bytes`,
      );
    bytes = await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      return fileProblem(
        path,
        'E_SPEC_NOT_FOUND',
        `${path} does not exist: pass --spec PATH (or set REGIONCTL_SPEC), or run from the directory holding regions.yaml`,
      );
    return fileProblem(path, 'E_SPEC_UNREADABLE', `cannot read ${path} (${code ?? String(e)})`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return fileProblem(path, 'E_SPEC_ENCODING', `${path} is not valid UTF-8 text`);
  }
  const result = loadSpecFromString(text, path);
  return result.ok ? { ...result, dir: dirname(resolve(path)) } : result;
}

export async function loadSpecOrThrow(
  path: string,
): Promise<{ spec: RegionsSpec; file: string; dir: string }> {
  const result = await loadSpec(path);
  if (!result.ok) {
    const errors = result.diagnostics.filter((d) => d.severity === 'error');
    throw new RegionctlError(
      'E_SPEC_INVALID',
      `${path} is invalid (${errors.length} error${errors.length === 1 ? '' : 's'}):\n${errors.map((d) => `  ${formatDiagnostic(d)}`).join('\n')}`,
      `fix the errors above; \`regionctl validate --spec ${path}\` checks the file on its own`,
    );
  }
  return { spec: result.spec, file: result.file, dir: result.dir };
}

function yamlDiagnostic(file: string, e: YAMLError, severity: 'error' | 'warning'): Diagnostic {
  const pos = e.linePos?.[0];
  const code =
    e.code === 'DUPLICATE_KEY'
      ? 'E_YAML_DUPLICATE_KEY'
      : e.code === 'BAD_ALIAS'
        ? 'E_YAML_ALIAS'
        : severity === 'error'
          ? 'E_YAML'
          : 'W_YAML';
  // yaml's own message repeats the position and a source excerpt after the first line.
  const first = (e.message.split('\n')[0] ?? e.message).replace(/ at line \d+, column \d+:?$/, '');
  const message = /multiple documents/.test(first)
    ? "the file must hold exactly one YAML document: remove this '---' and what follows, or merge it into the first"
    : first;
  return { file, line: pos?.line ?? 1, col: pos?.col ?? 1, severity, code, message, path: '' };
}

/** Pure: parse and validate `text` as if read from `file` (used by loadSpec, tests and bench). */
export function loadSpecFromString(text: string, file: string): LoadResult {
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_SPEC_BYTES)
    return fileProblem(
      file,
      'E_SPEC_TOO_LARGE',
      `${file} is ${bytes} bytes; a spec may be at most ${MAX_SPEC_BYTES} bytes`,
    );
  const lines = new LineCounter();
  const doc = parseDocument(text.replace(/^\uFEFF/, ''), {
    lineCounter: lines,
    prettyErrors: true,
    uniqueKeys: true,
    strict: true,
    version: '1.2',
    merge: false,
  });
  // After a syntax error the parser's view of the rest of the file is unreliable and
  // every following line tends to fail too: report the first one only. Duplicate keys
  // do not cascade, so all of them are reported.
  const syntax = doc.errors.find((e) => e.code !== 'DUPLICATE_KEY');
  const yamlErrors = syntax ? [syntax] : doc.errors;
  const diagnostics: Diagnostic[] = [
    ...yamlErrors.map((e) => yamlDiagnostic(file, e, 'error')),
    ...doc.warnings.map((e) => yamlDiagnostic(file, e, 'warning')),
  ];
  diagnostics.push(...unresolvedAliases(file, doc, lines));
  if (diagnostics.some((d) => d.severity === 'error')) return finish(file, diagnostics, undefined);
  if (doc.contents === null)
    return finish(
      file,
      [
        ...diagnostics,
        {
          file,
          line: 1,
          col: 1,
          severity: 'error',
          code: 'E_SPEC_EMPTY',
          message: `${file} is empty: start from the example regions.yaml`,
          path: '',
        },
      ],
      undefined,
    );

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const code = /alias/i.test(message) ? 'E_YAML_ALIAS' : 'E_YAML';
    return finish(
      file,
      [
        ...diagnostics,
        {
          file,
          line: 1,
          col: 1,
          severity: 'error',
          code,
          message: `${message} (at most ${MAX_ALIAS_COUNT} alias expansions)`,
          path: '',
        },
      ],
      undefined,
    );
  }

  const errors = schemaErrors(data);
  const findings: Finding[] = [
    ...mapSchemaErrors(errors, data, schemaDocument),
    ...literalSecretFindings(data),
  ];
  if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
    findings.push(...semanticFindings(data as RegionsSpec, invalidSections(errors)));
  }
  const seen = new Set<string>();
  for (const f of findings) {
    // Schema and scan may both flag one literal secret; one report is enough.
    const key = `${f.path}|${f.code}`;
    if (f.code === 'E_LITERAL_SECRET' && seen.has(key)) continue;
    seen.add(key);
    diagnostics.push(position(file, doc, lines, f));
  }
  return finish(file, diagnostics, data as RegionsSpec);
}

function unresolvedAliases(file: string, doc: Document, lines: LineCounter): Diagnostic[] {
  const out: Diagnostic[] = [];
  visit(doc, {
    Alias(_, node) {
      if (node.resolve(doc) !== undefined) return;
      const { line, col } = lines.linePos(node.range?.[0] ?? 0);
      out.push({
        file,
        line,
        col,
        severity: 'error',
        code: 'E_YAML_ALIAS',
        message: `alias *${node.source} has no anchor &${node.source} before it`,
        path: '',
      });
    },
  });
  return out;
}

/** Top-level sections with schema errors: semantic checks that read them are skipped. */
function invalidSections(errors: ReturnType<typeof schemaErrors>): Set<string> {
  const out = new Set<string>();
  for (const e of errors) {
    const first = pointerSegments(e.instancePath)[0];
    if (first !== undefined) out.add(first);
    else if (e.keyword === 'required')
      out.add(String((e.params as { missingProperty: string }).missingProperty));
  }
  return out;
}

function position(file: string, doc: Document, lines: LineCounter, f: Finding): Diagnostic {
  const { line, col } = locate(doc, lines, f.path, f.at);
  return { file, line, col, severity: f.severity, code: f.code, message: f.message, path: f.path };
}

function finish(file: string, diagnostics: Diagnostic[], spec: RegionsSpec | undefined): LoadResult {
  diagnostics.sort(compareDiagnostics);
  if (spec === undefined || diagnostics.some((d) => d.severity === 'error'))
    return { ok: false, file, diagnostics };
  return { ok: true, spec, file, dir: '.', diagnostics };
}
