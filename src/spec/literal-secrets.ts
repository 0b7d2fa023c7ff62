/**
 * Secrets never appear in regions.yaml (invariant 7). The schema catches a string where a
 * secret reference is expected; this scan catches the rest, anywhere in the document:
 * credentials inside URLs and string values under secret-sounding keys. Messages never
 * echo the secret itself.
 */
import { type Finding, humanPath, pointer } from './diagnostic.js';

const URL_WITH_PASSWORD = /\b([a-z][a-z0-9+.-]*):\/\/([^\s/:@]*):([^\s/@]+)@/i;
const SECRET_KEY = /^(password|passwd|pwd|secret|token|api[-_]?key|private[-_]?key|key[-_]?secret|webhook)$/i;

export function literalSecretFindings(data: unknown): Finding[] {
  const out: Finding[] = [];
  const visit = (node: unknown, path: string, key: string | undefined) => {
    if (typeof node === 'string') {
      const m = URL_WITH_PASSWORD.exec(node);
      if (m) {
        out.push({
          path,
          severity: 'error',
          code: 'E_LITERAL_SECRET',
          message: `${humanPath(path)} contains a ${m[1]}:// URL with a password (${m[1]}://${m[2]}:***@...): give the endpoint as host/port/user and the password as { env: NAME } or { file: PATH }`,
        });
      } else if (key !== undefined && SECRET_KEY.test(key)) {
        out.push({
          path,
          severity: 'error',
          code: 'E_LITERAL_SECRET',
          message: `${humanPath(path)} looks like a literal secret: reference it as { env: NAME } or { file: PATH } instead`,
        });
      }
      return;
    }
    if (Array.isArray(node)) {
      node.forEach((item, i) => {
        visit(item, path + pointer(i), undefined);
      });
      return;
    }
    if (node !== null && typeof node === 'object') {
      for (const [k, v] of Object.entries(node)) visit(v, path + pointer(k), k);
    }
  };
  visit(data, '', undefined);
  return out;
}
