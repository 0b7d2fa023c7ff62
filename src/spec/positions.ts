/** Maps a JSON pointer into the parsed YAML document back to a line and column. */
import { type Document, isAlias, isMap, isScalar, isSeq, type LineCounter, type Node } from 'yaml';
import { pointerSegments } from './diagnostic.js';

export interface Position {
  line: number;
  col: number;
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return undefined;
}

/**
 * The start of the deepest node on the pointer's path that exists in the document:
 * a missing key is reported at its parent map, which is where it has to be added.
 */
export function locate(
  doc: Document,
  lines: LineCounter,
  ptr: string,
  at: 'key' | 'value' = 'value',
): Position {
  let node: unknown = doc.contents;
  let offset = (node as Node | null)?.range?.[0] ?? 0;
  const segments = pointerSegments(ptr);
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i] as string;
    const last = i === segments.length - 1;
    if (isAlias(node)) node = node.resolve(doc);
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === seg);
      if (!pair) break;
      const keyStart = (pair.key as Node | null)?.range?.[0];
      if ((last && at === 'key') || pair.value === null) {
        if (keyStart !== undefined) offset = keyStart;
        break;
      }
      next = pair.value;
    } else if (isSeq(node)) {
      next = /^\d+$/.test(seg) ? node.items[Number(seg)] : undefined;
    }
    const start = (next as Node | null | undefined)?.range?.[0];
    if (start === undefined) break;
    offset = start;
    node = next;
  }
  const { line, col } = lines.linePos(offset);
  return { line, col };
}
