/**
 * The dynamic providers' create/diff/update/read/delete against real PostgreSQL (the
 * shared test lab): channels provisioned from nothing replicate by the spec's filters,
 * a second create adopts what is there without a statement, objects made by
 * `regionctl apply` are adopted, a spec change updates in place (with the resync the
 * planner prescribes), a hand edit found by read is repaired by update, delete is
 * idempotent. Last, the provider is serialized as Pulumi does and run in a separate
 * plain Node process, the way the provider host runs it.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyPlan } from '../../src/apply/apply.js';
import { desiredState } from '../../src/model/desired.js';
import { observe } from '../../src/observe/observe.js';
import { planSteadyState } from '../../src/plan/plan.js';
import {
  type ChannelInputs,
  type PublicationOutputs,
  publicationCreate,
  publicationDelete,
  publicationDiff,
  publicationRead,
  publicationUpdate,
  type SubscriptionOutputs,
  subscriptionCreate,
  subscriptionDelete,
  subscriptionDiff,
  subscriptionRead,
  subscriptionUpdate,
} from '../../src/providers/pulumi/replication.js';
import { resolveSecret } from '../../src/secrets/resolve.js';
import type { RegionsSpec } from '../../src/spec/schema.js';
import { controlTarget } from '../../src/sql/connect.js';
import { storeJournal } from '../../src/store/journal.js';
import { openStore } from '../../src/store/store.js';
import { type TestTopology, testTopology } from '../support/topology.js';
import { waitFor } from '../support/wait.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');

/** The inputs infra/program.ts gives both resources of the channel to `to`. */
function inputsFor(spec: RegionsSpec, specDir: string, to: string): ChannelInputs {
  const c = desiredState(spec).channels.find((x) => x.to === to);
  if (!c) throw new Error(`no channel to ${to}`);
  const server = (name: string) => {
    const r = spec.regions.find((x) => x.name === name)!;
    return { region: name, host: r.endpoint.host, port: r.endpoint.port, user: r.endpoint.user };
  };
  const pw = (name: string) => {
    const ref = spec.regions.find((x) => x.name === name)!.endpoint.password;
    return ref ? resolveSecret(ref, specDir, name) : undefined;
  };
  const out: ChannelInputs = {
    database: spec.database,
    publisher: server(c.from),
    subscriber: server(c.to),
    channel: c,
  };
  const pp = pw(c.from);
  const sp = pw(c.to);
  if (pp) out.publisherPassword = pp;
  if (sp) out.subscriberPassword = sp;
  return out;
}

async function one(topo: TestTopology, region: string, sql: string): Promise<unknown> {
  const c = await topo.client(region);
  return Object.values((await c.query(sql)).rows[0] ?? {})[0];
}

describe('dynamic providers on the lab', () => {
  let topo: TestTopology;
  const pubs: Record<string, PublicationOutputs> = {};
  const subs: Record<string, SubscriptionOutputs> = {};
  beforeAll(async () => {
    topo = await testTopology('infra_providers');
  });
  afterAll(async () => {
    await topo?.close();
  });

  it('refuses a channel the planner blocks, before creating anything', async () => {
    const other = await testTopology('infra_blocked');
    try {
      // The filtered customers table without REPLICA IDENTITY FULL: E_FILTER_NEEDS_IDENTITY_FULL.
      await (await other.client('us-east-1')).query('ALTER TABLE public.customers REPLICA IDENTITY DEFAULT');
      const i = inputsFor(other.spec, other.specDir, 'ap-southeast-1');
      await expect(publicationCreate(i)).rejects.toMatchObject({ code: 'E_PLAN_BLOCKED' });
      expect(await one(other, 'us-east-1', 'SELECT count(*)::int FROM pg_publication')).toBe(0);
    } finally {
      await other.close();
    }
  });

  it('create provisions each channel; data flows by the filters', async () => {
    for (const to of ['ap-southeast-1', 'eu-west-1']) {
      const i = inputsFor(topo.spec, topo.specDir, to);
      const p = await publicationCreate(i);
      expect(p.outs.adopted).toBe(false);
      expect(p.outs.applied.some((k) => k.startsWith('create-publication:'))).toBe(true);
      expect(p.outs.appliedDefHash).toBe(i.channel.publication.defHash);
      pubs[to] = p.outs;
      const s = await subscriptionCreate(i);
      expect(s.outs.state).toBe('ok');
      expect(s.outs.applied.some((k) => k.startsWith('create-subscription:'))).toBe(true);
      subs[to] = s.outs;
    }
    const us = await topo.client('us-east-1');
    await us.query(
      "INSERT INTO public.customers (name, email, residency) VALUES ('a', 'a@x', 'eu'), ('b', 'b@x', 'us')",
    );
    await waitFor(
      async () => (await one(topo, 'eu-west-1', 'SELECT count(*)::int FROM public.customers')) === 2,
      {
        what: 'both customers on eu-west-1',
      },
    );
    await waitFor(
      async () => (await one(topo, 'ap-southeast-1', 'SELECT count(*)::int FROM public.customers')) === 1,
      { what: 'the non-EU customer on ap-southeast-1' },
    );
    expect(
      await one(topo, 'ap-southeast-1', "SELECT count(*)::int FROM public.customers WHERE residency = 'eu'"),
    ).toBe(0);
    // What the providers made is exactly what `regionctl apply` wants: its plan is empty but for
    // what the program does not manage (the guards of application roles).
    const plan = planSteadyState(desiredState(topo.spec), await observe(topo.spec, topo.specDir));
    expect(plan.actions.filter((a) => a.kind !== 'set-guard')).toEqual([]);
  });

  it('is idempotent: create again adopts without a statement, diff of the same inputs is no change', async () => {
    const i = inputsFor(topo.spec, topo.specDir, 'eu-west-1');
    const p = await publicationCreate(i);
    expect(p.outs).toMatchObject({ adopted: true, applied: [] });
    const s = await subscriptionCreate(i);
    expect(s.outs).toMatchObject({ adopted: true, applied: [], state: 'ok' });
    expect(publicationDiff(p.outs, i).changes).toBe(false);
    expect(subscriptionDiff(s.outs, i).changes).toBe(false);
  });

  it('a spec change updates in place: ap-southeast-1 stops receiving products, and its copy is emptied', async () => {
    await (await topo.client('us-east-1')).query(
      "INSERT INTO public.products (sku, name, price_cents) VALUES ('p1', 'P', 100)",
    );
    await waitFor(
      async () => (await one(topo, 'ap-southeast-1', 'SELECT count(*)::int FROM public.products')) === 1,
      {
        what: 'product on ap-southeast-1',
      },
    );
    const changed = structuredClone(topo.spec);
    const ch = changed.channels.find((c) => c.to === 'ap-southeast-1')!;
    ch.filters = { ...ch.filters, withhold: ['public.products'] };
    const i = inputsFor(changed, topo.specDir, 'ap-southeast-1');
    const d = publicationDiff(pubs['ap-southeast-1']!, i);
    expect(d).toMatchObject({ changes: true, replaces: [] });
    const outs = await publicationUpdate('id', pubs['ap-southeast-1']!, i);
    expect(outs.applied.map((k) => k.split(':')[0])).toEqual([
      'alter-publication',
      'refresh-subscription',
      'truncate-tables',
    ]);
    expect(outs.appliedDefHash).toBe(i.channel.publication.defHash);
    pubs['ap-southeast-1'] = outs;
    expect(await one(topo, 'ap-southeast-1', 'SELECT count(*)::int FROM public.products')).toBe(0);
    const s = await subscriptionUpdate('id', subs['ap-southeast-1']!, i);
    expect(s).toMatchObject({ state: 'ok', applied: [] });
    subs['ap-southeast-1'] = s;
    // Later product rows stay on the primary.
    await (await topo.client('us-east-1')).query(
      "INSERT INTO public.products (sku, name, price_cents) VALUES ('p2', 'Q', 1)",
    );
    await (await topo.client('us-east-1')).query(
      "INSERT INTO public.customers (name, email, residency) VALUES ('c', 'c@x', 'us')",
    );
    await waitFor(
      async () => (await one(topo, 'ap-southeast-1', 'SELECT count(*)::int FROM public.customers')) === 2,
      { what: 'the channel still flows' },
    );
    expect(await one(topo, 'ap-southeast-1', 'SELECT count(*)::int FROM public.products')).toBe(0);
  });

  it('read finds a hand-edited publication; update repairs it', async () => {
    await (await topo.client('us-east-1')).query(
      'ALTER PUBLICATION rc_pub_eu_west_1 DROP TABLE public.orders',
    );
    const i = inputsFor(topo.spec, topo.specDir, 'eu-west-1');
    const pr = await publicationRead('id', pubs['eu-west-1']!);
    expect(pr.props.appliedDefHash).toBe('drifted');
    expect(publicationDiff(pr.props, i)).toMatchObject({ changes: true, replaces: [] });
    const p = await publicationUpdate('id', pr.props, i);
    expect(p.appliedDefHash).toBe(i.channel.publication.defHash);
    expect((await publicationRead('id', p)).props.appliedDefHash).toBe(i.channel.publication.defHash);
    pubs['eu-west-1'] = p;
  });

  it('read finds a disabled subscription; update enables it', async () => {
    // Separately from the hand edit above: with both at once the planner's resync would
    // REFRESH a disabled subscription, which PostgreSQL refuses (same under `regionctl apply`).
    await (await topo.client('eu-west-1')).query('ALTER SUBSCRIPTION rc_sub_us_east_1__eu_west_1 DISABLE');
    const i = inputsFor(topo.spec, topo.specDir, 'eu-west-1');
    const sr = await subscriptionRead('id', subs['eu-west-1']!);
    expect(sr.props.state).toBe('disabled');
    expect(subscriptionDiff(sr.props, i)).toMatchObject({ changes: true, replaces: [] });
    const s = await subscriptionUpdate('id', sr.props, i);
    expect(s.state).toBe('ok');
    expect(s.applied.map((k) => k.split(':')[0])).toEqual(['enable-subscription']);
    subs['eu-west-1'] = s;
  });

  it('delete drops subscription (and its slot) and publication; deleting again is a no-op', async () => {
    await subscriptionDelete('id', subs['eu-west-1']!);
    await publicationDelete('id', pubs['eu-west-1']!);
    const slot = subs['eu-west-1']!.channel.subscription.slotName;
    expect(
      await one(
        topo,
        'eu-west-1',
        // pg_subscription is shared by every database of the server: other test files on the
        // shared lab have a subscription of this name in their own database.
        "SELECT count(*)::int FROM pg_subscription WHERE subname = 'rc_sub_us_east_1__eu_west_1' AND subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())",
      ),
    ).toBe(0);
    expect(
      await one(
        topo,
        'us-east-1',
        "SELECT count(*)::int FROM pg_publication WHERE pubname = 'rc_pub_eu_west_1'",
      ),
    ).toBe(0);
    await waitFor(
      async () =>
        (await one(
          topo,
          'us-east-1',
          `SELECT count(*)::int FROM pg_replication_slots WHERE slot_name = '${slot}'`,
        )) === 0,
      { what: 'slot dropped' },
    );
    await subscriptionDelete('id', subs['eu-west-1']!);
    await publicationDelete('id', pubs['eu-west-1']!);
  });

  it('runs serialized, in a separate plain Node process, as the Pulumi provider host does', async () => {
    const impl = join(ROOT, 'dist/src/providers/pulumi/replication.js');
    expect(existsSync(impl), 'the provider host imports the build: run `npm run build` first').toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'regionctl-provider-'));
    const host = async (kind: 'publication' | 'subscription', op: string, args: unknown[]) => {
      const file = join(dir, `${kind}.js`);
      if (!existsSync(file)) {
        const { stdout } = await run('node', ['--import', 'tsx', 'test/infra/serialize-provider.ts', kind], {
          cwd: ROOT,
        });
        writeFileSync(file, stdout);
      }
      const child = execFile('node', ['test/infra/provider-host.cjs', file, op], { cwd: ROOT });
      const out = new Promise<string>((ok, fail) => {
        let stdout = '';
        let stderr = '';
        child.stdout?.on('data', (d) => {
          stdout += d;
        });
        child.stderr?.on('data', (d) => {
          stderr += d;
        });
        child.on('exit', (code) => (code === 0 ? ok(stdout) : fail(new Error(`${op} failed: ${stderr}`))));
      });
      child.stdin?.end(JSON.stringify(args));
      return JSON.parse(await out);
    };
    const i = inputsFor(topo.spec, topo.specDir, 'eu-west-1');
    const p = await host('publication', 'create', [i]);
    expect(p.id).toContain('rc_pub_eu_west_1');
    expect(p.outs.applied[0]).toMatch(/^create-publication:/);
    const s = await host('subscription', 'create', [i]);
    expect(s.outs.state).toBe('ok');
    expect(await host('publication', 'diff', [p.id, p.outs, i])).toMatchObject({ changes: false });
    await (await topo.client('us-east-1')).query(
      "INSERT INTO public.customers (name, email, residency) VALUES ('d', 'd@x', 'eu')",
    );
    await waitFor(
      async () => (await one(topo, 'eu-west-1', 'SELECT count(*)::int FROM public.customers')) === 4,
      {
        what: 'every customer on eu-west-1 again',
      },
    );
    await host('subscription', 'delete', [s.id, s.outs]);
    await host('publication', 'delete', [p.id, p.outs]);
    expect(
      await one(
        topo,
        'us-east-1',
        "SELECT count(*)::int FROM pg_publication WHERE pubname = 'rc_pub_eu_west_1'",
      ),
    ).toBe(0);
  });
});

describe('adopting what `regionctl apply` made', () => {
  let topo: TestTopology;
  beforeAll(async () => {
    topo = await testTopology('infra_adopt');
    const store = await openStore(controlTarget(topo.spec, topo.specDir));
    try {
      const plan = planSteadyState(desiredState(topo.spec), await observe(topo.spec, topo.specDir));
      await applyPlan(plan, {
        spec: topo.spec,
        specDir: topo.specDir,
        journal: storeJournal(store),
        specCommit: null,
        actor: 'test',
        log: () => {},
      });
    } finally {
      await store.close();
    }
  });
  afterAll(async () => {
    await topo?.close();
  });

  it('create finds the marked publication and the matching subscription and runs nothing', async () => {
    for (const to of ['ap-southeast-1', 'eu-west-1']) {
      const i = inputsFor(topo.spec, topo.specDir, to);
      const p = await publicationCreate(i);
      expect(p.outs, to).toMatchObject({
        adopted: true,
        applied: [],
        appliedDefHash: i.channel.publication.defHash,
      });
      const s = await subscriptionCreate(i);
      expect(s.outs, to).toMatchObject({ adopted: true, applied: [], state: 'ok' });
    }
  });
});
