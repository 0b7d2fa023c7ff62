/** Diagnostics in compiler style: every problem has a place, a stable code and a fix. */

export type Severity = 'error' | 'warning';

export interface Diagnostic {
  file: string;
  /** 1-based; 0 when the problem concerns the file as a whole (missing, unreadable). */
  line: number;
  col: number;
  severity: Severity;
  code: string;
  message: string;
  /** JSON pointer of the offending node, e.g. /channels/0/to ('' for the document). */
  path: string;
}

/**
 * A problem found in the data, located by JSON pointer only: the schema and semantic
 * checks know nothing about YAML; the loader turns findings into positioned diagnostics.
 */
export interface Finding {
  path: string;
  /** Point at the key of the map entry rather than its value (unknown keys). */
  at?: 'key' | 'value';
  severity: Severity;
  code: string;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = d.line > 0 ? `${d.file}:${d.line}:${d.col}` : d.file;
  return `${where} ${d.severity} ${d.code} ${d.message}`;
}

export function compareDiagnostics(a: Diagnostic, b: Diagnostic): number {
  return (
    a.line - b.line ||
    a.col - b.col ||
    (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1) ||
    a.code.localeCompare(b.code) ||
    a.message.localeCompare(b.message)
  );
}

export function summarize(file: string, diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.length - errors;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (errors === 0 && warnings === 0) return `${file}: valid`;
  return `${file}: ${plural(errors, 'error')}, ${plural(warnings, 'warning')}`;
}

/** JSON pointer segments (RFC 6901). */
export function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
}

export function pointer(...segments: Array<string | number>): string {
  return segments.map((s) => `/${String(s).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');
}

/** `/regions/0/endpoint/port` → `regions[0].endpoint.port`, for messages. */
export function humanPath(ptr: string): string {
  let out = '';
  for (const s of pointerSegments(ptr)) {
    if (/^\d+$/.test(s)) out += `[${s}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out === '' ? 'the document' : out;
}
