/**
 * Synthetic topologies and a "converged" observation of them, for planner tests and
 * benchmarks: observing what apply would have left behind, without any server.
 */
import type { DesiredState } from '../src/model/desired.js';
import { catalogHash, formatMarker } from '../src/model/marker.js';
import type { Observed, ObservedPublishedTable, ReachableRegion } from '../src/model/observed.js';
import type { RegionsSpec } from '../src/spec/schema.js';

export function syntheticSpec(regionCount: number, tableCount: number): RegionsSpec {
  const names = Array.from({ length: regionCount }, (_, i) => `region-${String(i).padStart(3, '0')}`);
  const tables = Array.from({ length: tableCount }, (_, i) => `public.t${String(i).padStart(4, '0')}`);
  return {
    version: 1,
    name: 'synthetic',
    database: 'synth',
    applicationRoles: ['app'],
    regions: names.map((name, i) => ({
      name,
      role: i === 0 ? 'primary' : 'secondary',
      location: { lat: (i % 180) - 89, lon: ((i * 7) % 360) - 179 },
      endpoint: { host: '127.0.0.1', port: 20000 + i, user: 'postgres', password: { env: 'PGPASSWORD' } },
      failover: { candidate: i < 3, priority: i + 1 },
    })),
    controlStore: { host: '127.0.0.1', port: 19999, user: 'postgres', database: 'regionctl' },
    channels: names.slice(1).map((to, i) => ({
      from: names[0] ?? '',
      to,
      rpo: { alertSeconds: 10, failoverMaxLagSeconds: 60 },
      ...(i % 5 === 0 ? { filters: { rows: [{ table: tables[0] ?? '', where: `id % 2 = ${i % 2}` }] } } : {}),
    })),
    replication: { tables },
    failover: {
      mode: 'automatic',
      probe: { intervalSeconds: 1, failureThreshold: 3, timeoutMs: 1000 },
      fencing: [{ method: 'sql' }],
    },
  };
}

function deparse(filter: string): string {
  return `(${filter})`;
}

/** The observation of a topology on which `apply` has run to completion. */
export function convergedObservation(desired: DesiredState): Observed {
  const allTables = [...new Set([...desired.applicationTables, desired.heartbeatTable])];
  return {
    regions: desired.regions.map((region): ReachableRegion => {
      const pubs = desired.channels.filter((c) => c.from === region);
      const subs = desired.channels.filter((c) => c.to === region);
      const primary = region === desired.primary;
      return {
        region,
        reachable: true,
        observedAt: '2026-01-01T00:00:00.000Z',
        serverVersionNum: 180000,
        settings: {
          walLevel: 'logical',
          maxReplicationSlots: 200,
          maxWalSenders: 200,
          maxLogicalReplicationWorkers: 100,
          maxWorkerProcesses: 200,
        },
        inRecovery: false,
        currentLsn: '0/1000000',
        serverTime: '2026-01-01T00:00:00.000Z',
        databaseExists: true,
        publications: pubs.map((c) => {
          const tables: ObservedPublishedTable[] = c.publication.tables.map((t) => ({
            table: t.table,
            rowFilter: t.rowFilter ? deparse(t.rowFilter) : null,
            columns: t.columns ? [...t.columns].sort() : null,
          }));
          return {
            name: c.publication.name,
            tables,
            comment: formatMarker({
              managedBy: 'regionctl',
              defHash: c.publication.defHash,
              tables: c.publication.tables,
              catalogHash: catalogHash(tables),
            }),
          };
        }),
        subscriptions: subs.map((c) => ({
          name: c.subscription.name,
          enabled: true,
          publications: [c.subscription.publication],
          slotName: c.subscription.slotName,
          host: c.subscription.source.host,
          port: c.subscription.source.port,
          dbname: c.subscription.source.database,
          comment: null,
          workerPid: 100,
          appliedLsn: '0/1000000',
          latestEndLsn: '0/1000000',
          conflicts: {},
          lastMsgReceiptTime: '2026-01-01T00:00:00.000Z',
          applyErrorCount: 0,
          syncErrorCount: 0,
          tablesNotReady: [],
        })),
        slots: [],
        tables: allTables.map((table) => ({
          table,
          replicaIdentity: 'f',
          hasPrimaryKey: true,
          columnsSignature: 'id:bigint:nn',
        })),
        heartbeatInstalled: true,
        heartbeats: [],
        sequences: [],
        guards: [
          {
            role: 'app',
            exists: true,
            writableTables: primary ? desired.applicationTables : [],
            defaultReadOnly: !primary,
            canLogin: true,
            sessions: 0,
          },
        ],
      };
    }),
  };
}
