/** The control store: a typed query API over one connection. */
import type pg from 'pg';
import { RegionctlError } from '../errors.js';
import { connect, type Target } from '../sql/connect.js';
import { migrate } from './migrate.js';

export interface Store {
  client: pg.Client;
  close(): Promise<void>;
}

export async function openStore(target: Target): Promise<Store> {
  let client: pg.Client;
  try {
    client = await connect(target, { applicationName: 'regionctl', statementTimeoutMs: 30_000 });
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new RegionctlError(
      'E_CONTROL_STORE_UNREACHABLE',
      `cannot reach the control store at ${target.endpoint.host}:${target.endpoint.port}/${target.database}: ${(e as Error).message}`,
      code === '3D000'
        ? `create the database ${target.database} on that server`
        : 'check controlStore in regions.yaml (in the lab: `regionctl lab up`)',
    );
  }
  await migrate(client);
  return {
    client,
    close: () => client.end().catch(() => {}),
  };
}

export async function audit(
  s: Store,
  e: { actor: string; action: string; specCommit: string | null; detail: unknown },
): Promise<void> {
  await s.client.query(
    'INSERT INTO regionctl.audit_log (actor, action, spec_commit, detail) VALUES ($1, $2, $3, $4)',
    [e.actor, e.action, e.specCommit, JSON.stringify(e.detail)],
  );
}
