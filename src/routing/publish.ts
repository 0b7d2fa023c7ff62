/**
 * Publishing the routing table after a reconcile pass (the I/O edge of src/routing):
 * the JSON document the client library reads, the hysteresis state in the control
 * store, and the per-region read DNS records, moved only when a region's choice changes.
 * Only the leading reconciler publishes (one writer of DNS and of the document).
 */

import { subscriptionName } from '../model/names.js';
import type { DnsProvider } from '../providers/dns/provider.js';
import type { ReconcileResult } from '../reconcile/reconcile.js';
import type { RegionsSpec } from '../spec/schema.js';
import type { Store } from '../store/store.js';
import { routingDocumentPath, writeRoutingDocument } from './document.js';
import {
  computeRouting,
  DEFAULT_CLASS,
  type RoutingDocument,
  type RoutingState,
  routingPolicy,
} from './table.js';

export interface RecordMove {
  record: string;
  region: string;
  from: string | null;
  to: string;
}

export interface RoutingPublication {
  document: RoutingDocument;
  path: string;
  moved: RecordMove[];
  errors: string[];
}

export interface PublisherOptions {
  spec: RegionsSpec;
  specDir: string;
  /** Null: no control store (state lives in memory only). */
  store: Store | null;
  /** Tests: a provider other than the spec's. */
  dns?: DnsProvider | null;
}

export async function loadRoutingState(store: Store): Promise<RoutingState | null> {
  const r = await store.client.query<{ state: RoutingState }>('SELECT state FROM regionctl.read_routing');
  return r.rows[0]?.state ?? null;
}

export async function loadPublishedDocument(store: Store): Promise<RoutingDocument | null> {
  const r = await store.client.query<{ document: RoutingDocument | null }>(
    'SELECT document FROM regionctl.read_routing',
  );
  return r.rows[0]?.document ?? null;
}

async function saveRouting(store: Store, state: RoutingState, doc: RoutingDocument): Promise<void> {
  await store.client.query(
    `INSERT INTO regionctl.read_routing (id, state, document, updated_at) VALUES (true, $1, $2, now())
     ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, document = EXCLUDED.document, updated_at = now()`,
    [JSON.stringify(state), JSON.stringify(doc)],
  );
}

/**
 * Keeps the hysteresis state in memory across passes (a `reconcile --watch` process) and
 * in the control store (a new leader picks it up), and what each read record points at.
 */
export class RoutingPublisher {
  private state: RoutingState | null = null;
  private readonly pointed = new Map<string, string>();
  private dns: DnsProvider | null | undefined;
  readonly path: string;

  constructor(private readonly o: PublisherOptions) {
    this.path = routingDocumentPath(o.spec, o.specDir);
    this.dns = o.dns;
  }

  private async provider(): Promise<DnsProvider | null> {
    if (this.dns !== undefined) return this.dns;
    if (!this.o.spec.dns?.readRecords) {
      this.dns = null;
      return null;
    }
    const { dnsProviderFor } = await import('../providers/dns/index.js');
    this.dns = dnsProviderFor(this.o.spec, this.o.specDir);
    return this.dns;
  }

  /** The table for this pass, without publishing it or advancing the state. */
  async preview(r: ReconcileResult): Promise<RoutingDocument> {
    return computeRouting(this.o.spec, r, await this.previous(), routingPolicy(this.o.spec), subscriptionName)
      .document;
  }

  private async previous(): Promise<RoutingState> {
    if (this.state === null && this.o.store)
      this.state = await loadRoutingState(this.o.store).catch(() => null);
    return this.state ?? {};
  }

  /** Null when a failover moved the epoch since `r` was observed: the next pass publishes. */
  async publish(r: ReconcileResult): Promise<RoutingPublication | null> {
    const topology = this.o.store ? await this.o.store.getTopology() : null;
    if (topology && topology.epoch !== r.epoch) return null;
    const policy = routingPolicy(this.o.spec);
    const { document, state } = computeRouting(
      this.o.spec,
      r,
      await this.previous(),
      policy,
      subscriptionName,
    );
    this.state = state;
    const errors: string[] = [];
    // The document first: clients reading it get the new choice no later than DNS.
    writeRoutingDocument(this.path, document);
    if (this.o.store) {
      await saveRouting(this.o.store, state, document).catch((e: Error) => {
        errors.push(`control store: ${e.message}`);
      });
    }
    const moved = await this.moveRecords(document, errors);
    return { document, path: this.path, moved, errors };
  }

  private async moveRecords(doc: RoutingDocument, errors: string[]): Promise<RecordMove[]> {
    const records = this.o.spec.dns?.readRecords ?? {};
    const dns =
      Object.keys(records).length > 0
        ? await this.provider().catch((e: Error) => {
            errors.push(`dns: ${e.message}`);
            return null;
          })
        : null;
    if (!dns || !this.o.spec.dns) return [];
    const moved: RecordMove[] = [];
    for (const [region, record] of Object.entries(records).sort()) {
      const choice = doc.routes[region]?.[DEFAULT_CLASS];
      const target = choice && this.o.spec.regions.find((x) => x.name === choice.region);
      if (!choice || !target) continue;
      try {
        let current = this.pointed.get(record);
        if (current === undefined) current = (await dns.lookup(record))?.region;
        if (current === choice.region) {
          this.pointed.set(record, current);
          continue;
        }
        await dns.upsert(
          record,
          { region: target.name, host: target.endpoint.host, port: target.endpoint.port },
          this.o.spec.dns.ttl,
        );
        this.pointed.set(record, choice.region);
        moved.push({ record, region, from: current ?? null, to: choice.region });
      } catch (e) {
        // Unknown now: ask the provider again next pass instead of trusting memory.
        this.pointed.delete(record);
        errors.push(`dns ${record}: ${(e as Error).message}`);
      }
    }
    return moved;
  }
}
