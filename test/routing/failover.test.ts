/**
 * Session tokens across a failover: a token minted under epoch 0 routes to the new
 * primary once the reconciler has failed over and published the epoch-1 routing
 * document, and sees its write there; tokens of the new epoch read from replicas again.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ReadEvent, RegionctlClient } from '../../src/client/index.js';
import { parseToken } from '../../src/client/token.js';
import { appRolePasswordFile } from '../../src/lab/demo-schema.js';
import { readRoutingDocument } from '../../src/routing/document.js';
import { RoutingPublisher } from '../../src/routing/publish.js';
import { controlTarget } from '../../src/sql/connect.js';
import { openStore, type Store } from '../../src/store/store.js';
import { applySpec, fastFailover, labFenceHook, startWatch } from '../support/failover.js';
import { type PrivateLab, privateLab } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

describe('tokens across a failover', () => {
  let lab: PrivateLab;
  let store: Store;
  beforeAll(async () => {
    lab = await privateLab('route_fo', (s) => {
      fastFailover(s);
      s.readRouting = { stalenessBudgetSeconds: 5, recoveryPasses: 2 };
    });
    labFenceHook(lab);
    store = await openStore(controlTarget(lab.spec, lab.specDir));
    await applySpec(lab, store);
  });
  afterAll(async () => {
    await store?.close();
    await lab?.close();
  });

  it('a token minted before a failover reads from the new primary after it', async () => {
    const publisher = new RoutingPublisher({ spec: lab.spec, specDir: lab.specDir, store });
    const w = startWatch(lab, store, {
      onLeaderPass: async (r) => {
        await publisher.publish(r);
      },
    });
    const role = lab.spec.applicationRoles[0] ?? '';
    const events: ReadEvent[] = [];
    const client = new RegionctlClient({
      routing: publisher.path,
      region: 'ap-southeast-1',
      connection: {
        user: role,
        password: readFileSync(appRolePasswordFile(lab.stateDir, role), 'utf8').trim(),
      },
      refreshMs: 200,
      maxWaitMs: 3000,
      onRead: (e) => events.push(e),
    });
    const read = async (sku: string, token: string) => {
      const r = await client.read<{ n: number }>(
        'SELECT count(*)::int AS n FROM public.products WHERE sku = $1',
        {
          params: [sku],
          token,
        },
      );
      return { n: r.rows[0]?.n, via: events.at(-1) };
    };
    try {
      await waitFor(
        async () =>
          readRoutingDocument(publisher.path)?.routes['ap-southeast-1']?.default?.kind === 'replica',
        {
          what: 'ap-southeast-1 serving reads',
          timeoutMs: 30_000,
          intervalMs: 200,
        },
      );
      const before = await client.write((c) =>
        c.query("INSERT INTO public.products (sku, name, price_cents) VALUES ('before', 'before', 1)"),
      );
      expect(parseToken(before.token).epoch).toBe(0);
      expect(await read('before', before.token)).toMatchObject({
        n: 1,
        via: { region: 'ap-southeast-1', reason: 'replica' },
      });
      const eu = await lab.client('eu-west-1');
      await waitFor(
        async () => (await eu.query("SELECT 1 FROM public.products WHERE sku = 'before'")).rowCount === 1,
        {
          what: 'the write on eu-west-1',
        },
      );

      await lab.kill('us-east-1');
      await waitFor(
        async () => {
          const d = readRoutingDocument(publisher.path);
          return d?.epoch === 1 && d.primary === 'eu-west-1';
        },
        { what: 'the epoch-1 routing document', timeoutMs: 45_000, intervalMs: 200 },
      );
      // Right after the failover: the new primary (ap-southeast-1 may still be re-forming).
      expect(await read('before', before.token)).toMatchObject({
        n: 1,
        via: { region: 'eu-west-1', kind: 'primary' },
      });
      await waitFor(
        async () => {
          const d = readRoutingDocument(publisher.path);
          return d?.epoch === 1 && d.routes['ap-southeast-1']?.default?.kind === 'replica';
        },
        { what: 'ap-southeast-1 serving reads again under epoch 1', timeoutMs: 45_000, intervalMs: 200 },
      );
      // Even with a replica to read from: the old token's LSN is in the dead primary's WAL,
      // meaningless to the new primary's replicas, so it reads from the new primary.
      await client.document(true);
      expect(await read('before', before.token)).toMatchObject({
        n: 1,
        via: { region: 'eu-west-1', kind: 'primary', reason: 'token-epoch' },
      });
      // A token of the new epoch reads from the replica again, and sees its write.
      const after = await client.write((c) =>
        c.query("INSERT INTO public.products (sku, name, price_cents) VALUES ('after', 'after', 1)"),
      );
      expect(parseToken(after.token).epoch).toBe(1);
      const r = await read('after', after.token);
      expect(r).toMatchObject({ n: 1, via: { region: 'ap-southeast-1', reason: 'replica' } });
      console.info(`epoch-1 token read on ap-southeast-1 waited ${r.via?.waitedMs.toFixed(1)} ms`);
    } finally {
      await client.end();
      await w.stop();
    }
  });
});
