/**
 * Runs one action against the regions. Every step is idempotent: it looks at what is
 * there first, so re-running a step that was interrupted half-way is safe.
 */

import type pg from 'pg';
import { catalogHash, formatMarker } from '../model/marker.js';
import { observeRegion } from '../observe/observe.js';
import type { Action } from '../plan/actions.js';
import { assertNever } from '../plan/actions.js';
import type { RegionsSpec } from '../spec/schema.js';
import { SUBSCRIPTION_EXISTS_SQL } from '../sql/catalog.js';
import { connect, conninfo, regionTarget, type Target } from '../sql/connect.js';
import { emptyTables } from '../sql/empty-tables.js';
import { guardSql } from '../sql/guard.js';
import { heartbeatDdl } from '../sql/heartbeat.js';
import { alterPublicationSql, createPublicationSql, dropPublicationSql } from '../sql/publication.js';
import { ident, literal } from '../sql/quote.js';
import { dropIdleSlots } from '../sql/slots.js';
import { runStatements } from '../sql/statement.js';
import {
  createSubscriptionSql,
  dropSubscriptionSql,
  enableSubscriptionSql,
  refreshSubscriptionSql,
} from '../sql/subscription.js';

export interface ExecContext {
  spec: RegionsSpec;
  specDir: string;
  /** One connection per region for the duration of an apply. */
  client(region: string): Promise<pg.Client>;
  log(line: string): void;
}

async function exists(c: pg.Client, sql: string, params: unknown[]): Promise<boolean> {
  return (await c.query(sql, params)).rowCount !== 0;
}

const PUB_EXISTS = 'SELECT 1 FROM pg_publication WHERE pubname = $1';

/** Records the applied definition and the catalog's fingerprint of it on the publication. */
async function markPublication(
  ctx: ExecContext,
  a: Action & { kind: 'create-publication' | 'alter-publication' },
) {
  const c = await ctx.client(a.region);
  const target = regionTarget(ctx.spec, a.region, ctx.specDir);
  const o = await observeRegion(target, a.region, { applicationRoles: [], applicationTables: [] });
  if (!o.reachable) throw new Error(`region ${a.region} became unreachable: ${o.reason}`);
  const pub = o.publications.find((p) => p.name === a.publication.name);
  if (!pub) throw new Error(`publication ${a.publication.name} vanished right after it was written`);
  const marker = formatMarker({
    managedBy: 'regionctl',
    defHash: a.publication.defHash,
    tables: a.publication.tables,
    catalogHash: catalogHash(pub.tables),
  });
  await c.query(`COMMENT ON PUBLICATION ${ident(a.publication.name)} IS ${literal(marker)}`);
}

function sourceTarget(ctx: ExecContext, region: string): Target {
  return regionTarget(ctx.spec, region, ctx.specDir);
}

export async function executeAction(ctx: ExecContext, a: Action): Promise<void> {
  const c = await ctx.client(a.region);
  switch (a.kind) {
    case 'install-heartbeat':
      await runStatements(c, heartbeatDdl());
      return;
    case 'set-guard':
      await runStatements(c, guardSql(a.guard, a.tables, ctx.spec.database));
      return;
    case 'create-publication': {
      const already = await exists(c, PUB_EXISTS, [a.publication.name]);
      await runStatements(
        c,
        already ? alterPublicationSql(a.publication) : createPublicationSql(a.publication),
      );
      await markPublication(ctx, a);
      return;
    }
    case 'alter-publication': {
      const already = await exists(c, PUB_EXISTS, [a.publication.name]);
      await runStatements(
        c,
        already ? alterPublicationSql(a.publication) : createPublicationSql(a.publication),
      );
      await markPublication(ctx, a);
      return;
    }
    case 'drop-publication':
      await runStatements(c, dropPublicationSql(a.name));
      return;
    case 'create-subscription': {
      if (await exists(c, SUBSCRIPTION_EXISTS_SQL, [a.subscription.name])) return;
      // A crash between the remote slot's creation and the local commit leaves the slot
      // behind; it is ours by name and would make CREATE SUBSCRIPTION fail.
      const pub = await ctx.client(a.subscription.fromRegion);
      await dropIdleSlots(pub, [a.subscription.slotName]);
      const info = conninfo(sourceTarget(ctx, a.subscription.fromRegion));
      await runStatements(
        c,
        createSubscriptionSql(a.subscription, info, { copyData: true, createSlot: true, enabled: true }),
      );
      return;
    }
    case 'enable-subscription':
      await runStatements(c, enableSubscriptionSql(a.name));
      return;
    case 'refresh-subscription':
      await runStatements(c, refreshSubscriptionSql(a.name, true));
      return;
    case 'drop-subscription': {
      if (!(await exists(c, SUBSCRIPTION_EXISTS_SQL, [a.name]))) return;
      try {
        await runStatements(c, dropSubscriptionSql(a.name, { keepSlot: false }));
      } catch (e) {
        // The publisher is unreachable: detach locally and say the slot is left there.
        ctx.log(
          `drop subscription ${a.name}: publisher unreachable (${(e as Error).message}); detaching locally`,
        );
        await runStatements(c, dropSubscriptionSql(a.name, { keepSlot: true }));
      }
      return;
    }
    case 'truncate-tables': {
      await emptyTables(c, a.tables);
      return;
    }
    default:
      assertNever(a);
  }
}

export async function openClients(spec: RegionsSpec, specDir: string) {
  const clients = new Map<string, Promise<pg.Client>>();
  return {
    client(region: string): Promise<pg.Client> {
      let p = clients.get(region);
      if (!p) {
        p = connect(regionTarget(spec, region, specDir), {
          applicationName: 'regionctl-apply',
          statementTimeoutMs: 0,
        });
        clients.set(region, p);
        p.catch(() => clients.delete(region));
      }
      return p;
    },
    async close() {
      for (const p of clients.values()) await p.then((c) => c.end()).catch(() => {});
      clients.clear();
    },
  };
}
