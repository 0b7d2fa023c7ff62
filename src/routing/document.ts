/** Where the routing document lives, and writing it so readers never see half a file. */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { RegionctlError } from '../errors.js';
import { zoneFilePath } from '../lab/zone.js';
import type { RegionsSpec } from '../spec/schema.js';
import { parseRoutingDocument, type RoutingDocument } from './table.js';

export function routingDocumentPath(spec: RegionsSpec, specDir: string): string {
  const explicit = spec.readRouting?.document;
  if (explicit) return isAbsolute(explicit) ? explicit : resolve(specDir, explicit);
  const zone = zoneFilePath(spec, specDir);
  // Beside the zone file and named after it: two topologies sharing a directory (the
  // test lab) never share a routing document.
  if (zone) return zone.endsWith('.json') ? `${zone.slice(0, -5)}.routing.json` : `${zone}.routing.json`;
  return resolve(specDir, '.regionctl', 'routing.json');
}

export function writeRoutingDocument(path: string, doc: RoutingDocument): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    try {
      writeSync(fd, `${JSON.stringify(doc, null, 2)}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new RegionctlError(
      'E_ROUTING_DOCUMENT',
      `cannot write routing document ${path}: ${(e as Error).message}`,
      'check readRouting.document and that its directory is writable',
    );
  }
}

/** The document, or null when there is none yet. */
export function readRoutingDocument(path: string): RoutingDocument | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new RegionctlError(
      'E_ROUTING_DOCUMENT',
      `cannot read routing document ${path}: ${(e as Error).message}`,
      'check its permissions',
    );
  }
  return parseRoutingDocument(text, path);
}
