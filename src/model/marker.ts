/**
 * regionctl records, in COMMENT ON PUBLICATION, the definition it applied and a
 * fingerprint of what the server then reported. The server deparses row filters into
 * its own text, so the spec's text cannot be compared with the catalog directly: a spec
 * change shows as a different `defHash`, a hand edit as a different `catalogHash`.
 */
import type { PublishedTable } from './desired.js';
import { hashDefinition } from './desired.js';
import type { ObservedPublishedTable } from './observed.js';

export interface PublicationMarker {
  managedBy: 'regionctl';
  defHash: string;
  tables: PublishedTable[];
  catalogHash: string | null;
}

export function catalogHash(tables: ObservedPublishedTable[]): string {
  const norm = [...tables]
    .map((t) => ({
      table: t.table,
      rowFilter: t.rowFilter,
      columns: t.columns ? [...t.columns].sort() : null,
    }))
    .sort((a, b) => a.table.localeCompare(b.table));
  return hashDefinition(norm);
}

export function formatMarker(m: PublicationMarker): string {
  return JSON.stringify(m);
}

export function parseMarker(comment: string | null): PublicationMarker | null {
  if (!comment) return null;
  try {
    const v = JSON.parse(comment) as Partial<PublicationMarker>;
    if (v.managedBy !== 'regionctl' || typeof v.defHash !== 'string' || !Array.isArray(v.tables)) return null;
    return {
      managedBy: 'regionctl',
      defHash: v.defHash,
      tables: v.tables,
      catalogHash: typeof v.catalogHash === 'string' ? v.catalogHash : null,
    };
  } catch {
    return null;
  }
}
