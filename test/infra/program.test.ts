/**
 * The Pulumi program under `pulumi.runtime.setMocks`, on the example regions.yaml: which
 * resources it declares, with which inputs, which of them are secret, and what a spec
 * change does to them (run through the providers' own diff). No Pulumi engine and no
 * AWS run here: this proves the program's declarations, not their deployment.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import { specialSecretSig, specialSigKey } from '@pulumi/pulumi/runtime/rpc.js';
import { beforeEach, describe, expect, it } from 'vitest';
import { defineInfrastructure, type InfraOptions } from '../../infra/program.js';
import {
  type ChannelInputs,
  type PublicationOutputs,
  publicationDiff,
  subscriptionDiff,
} from '../../src/providers/pulumi/replication.js';
import type { SecretRefSpec } from '../../src/spec/schema.js';

const EXAMPLE = resolve(import.meta.dirname, '../../regions.yaml');

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
}

let registered: Registered[] = [];

beforeEach(async () => {
  registered = [];
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs });
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call(args) {
        return args.inputs;
      },
    },
    'regionctl',
    'test',
    false,
  );
});

const password = (ref: SecretRefSpec) => `pw-${'env' in ref ? ref.env : ref.file}-s3cr3t`;

/** Copies the example spec with `edit` applied to its text (same directory semantics). */
function exampleVariant(edit: (text: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'regionctl-infra-'));
  const path = join(dir, 'regions.yaml');
  writeFileSync(path, edit(readFileSync(EXAMPLE, 'utf8')));
  return path;
}

const route53 = (text: string) =>
  text
    .replace(/provider: file #.*\n/, 'provider: route53\n')
    .replace(/ {2}file:\n {4}path: .*\n/, '  route53:\n    hostedZoneId: Z0123456789ABC\n');

async function run(specPath: string, extra: Partial<InfraOptions> = {}) {
  registered = [];
  const guarded: string[] = [];
  const infra = await defineInfrastructure({
    specPath,
    guard: async (_spec, _dir, primary) => {
      guarded.push(primary);
    },
    resolvePassword: password,
    ...extra,
  });
  // Registration is asynchronous: wait until every resource has its URN.
  const all: pulumi.Resource[] = [...infra.publications, ...infra.subscriptions];
  if (infra.dns) all.push(infra.dns.primary, ...Object.values(infra.dns.reads));
  await new Promise<void>((ok) => pulumi.all(all.map((r) => r.urn)).apply(() => ok()));
  await new Promise((ok) => setTimeout(ok, 50));
  return { infra, guarded, resources: [...registered] };
}

function isSecret(v: unknown): boolean {
  return (
    typeof v === 'object' && v !== null && (v as Record<string, unknown>)[specialSigKey] === specialSecretSig
  );
}

function reveal(v: unknown): unknown {
  return isSecret(v) ? (v as { value: unknown }).value : v;
}

function channelInputs(r: Registered): ChannelInputs {
  const i = r.inputs;
  return {
    database: i.database as string,
    publisher: i.publisher as ChannelInputs['publisher'],
    subscriber: i.subscriber as ChannelInputs['subscriber'],
    publisherPassword: reveal(i.publisherPassword) as string,
    subscriberPassword: reveal(i.subscriberPassword) as string,
    channel: i.channel as ChannelInputs['channel'],
  };
}

function byName(rs: Registered[], name: string): Registered {
  const r = rs.find((x) => x.name === name);
  if (!r) throw new Error(`no resource ${name}: ${rs.map((x) => x.name).join(', ')}`);
  return r;
}

describe('Pulumi program on the example regions.yaml (mocks)', () => {
  it('declares a publication and a subscription per channel, guarded by the spec primary', async () => {
    const { resources, guarded, infra } = await run(EXAMPLE);
    expect(guarded).toEqual(['us-east-1']);
    expect(resources.map((r) => `${r.type} ${r.name}`).sort()).toEqual([
      'pulumi-nodejs:dynamic/regionctl:Publication publication-ap-southeast-1',
      'pulumi-nodejs:dynamic/regionctl:Publication publication-eu-west-1',
      'pulumi-nodejs:dynamic/regionctl:Subscription subscription-ap-southeast-1',
      'pulumi-nodejs:dynamic/regionctl:Subscription subscription-eu-west-1',
    ]);
    expect(infra.dns).toBeNull(); // the example uses the lab's file provider

    const ap = channelInputs(byName(resources, 'publication-ap-southeast-1'));
    expect(ap.database).toBe('shop');
    expect(ap.publisher).toEqual({ region: 'us-east-1', host: '127.0.0.1', port: 54431, user: 'postgres' });
    expect(ap.subscriber).toEqual({
      region: 'ap-southeast-1',
      host: '127.0.0.1',
      port: 54433,
      user: 'postgres',
    });
    expect(ap.channel.publication.name).toBe('rc_pub_ap_southeast_1');
    // The residency rule keeps EU customers out of ap-southeast-1, and only there.
    const customers = ap.channel.publication.tables.find((t) => t.table === 'public.customers');
    expect(customers?.rowFilter).toBe("NOT coalesce((residency = 'eu'), false)");
    const eu = channelInputs(byName(resources, 'publication-eu-west-1'));
    expect(
      eu.channel.publication.tables.find((t) => t.table === 'public.customers')?.rowFilter,
    ).toBeUndefined();
    expect(eu.channel.subscription).toMatchObject({
      name: 'rc_sub_us_east_1__eu_west_1',
      publication: 'rc_pub_eu_west_1',
      slotName: 'rc_shop__us_east_1__eu_west_1',
      source: { host: '127.0.0.1', port: 54431, database: 'shop' },
    });
    // Publication and subscription of a channel get identical inputs: one description, two objects.
    expect(channelInputs(byName(resources, 'subscription-eu-west-1'))).toEqual(eu);
  });

  it('marks every password secret, and no password appears anywhere else', async () => {
    const { resources } = await run(EXAMPLE);
    for (const r of resources) {
      expect(isSecret(r.inputs.publisherPassword), `${r.name} publisherPassword`).toBe(true);
      expect(isSecret(r.inputs.subscriberPassword), `${r.name} subscriberPassword`).toBe(true);
      const { publisherPassword: _p, subscriberPassword: _s, ...rest } = r.inputs;
      // __provider is the serialized provider code that goes into the state as well.
      expect(JSON.stringify(rest)).not.toContain('s3cr3t');
    }
    const pw = reveal(byName(resources, 'subscription-eu-west-1').inputs.publisherPassword);
    expect(pw).toBe('pw-.regionctl/lab/secrets/postgres.password-s3cr3t');
  });

  it('serializes providers that capture only the implementation URL', async () => {
    const { resources } = await run(EXAMPLE);
    const provider = byName(resources, 'publication-eu-west-1').inputs.__provider;
    expect(typeof provider).toBe('string');
    expect(provider as string).toContain('dist/src/providers/pulumi/replication.js');
    expect(provider as string).not.toContain('pg');
  });

  it('with Route 53: a primary record, latency-routed read records per region with health checks', async () => {
    const { resources } = await run(exampleVariant(route53));
    const records = resources.filter((r) => r.type === 'aws:route53/record:Record');
    const checks = resources.filter((r) => r.type === 'aws:route53/healthCheck:HealthCheck');
    expect(records.map((r) => r.name).sort()).toEqual([
      'primary',
      'read-ap-southeast-1',
      'read-eu-west-1',
      'read-us-east-1',
    ]);
    expect(byName(resources, 'primary').inputs).toMatchObject({
      zoneId: 'Z0123456789ABC',
      name: 'primary.db.shop.internal',
      type: 'A',
      ttl: 5,
      records: ['127.0.0.1'],
    });
    expect(byName(resources, 'primary').inputs.setIdentifier).toBeUndefined();
    const read = byName(resources, 'read-eu-west-1').inputs;
    expect(read).toMatchObject({
      name: 'read.eu-west-1.db.shop.internal',
      setIdentifier: 'eu-west-1',
      latencyRoutingPolicies: [{ region: 'eu-west-1' }],
      healthCheckId: 'health-eu-west-1-id',
      records: ['127.0.0.1'],
    });
    expect(checks.map((r) => r.name).sort()).toEqual([
      'health-ap-southeast-1',
      'health-eu-west-1',
      'health-us-east-1',
    ]);
    expect(byName(resources, 'health-eu-west-1').inputs).toMatchObject({
      type: 'TCP',
      port: 54432,
      ipAddress: '127.0.0.1',
      failureThreshold: 3,
      requestInterval: 10,
    });
  });

  it('refuses a region name Route 53 latency routing cannot take', async () => {
    const path = exampleVariant((t) => route53(t).replaceAll('ap-southeast-1', 'lab-east-1'));
    await expect(run(path)).rejects.toMatchObject({ code: 'E_DNS_AWS_REGION' });
  });

  it('stops before declaring anything when the guard refuses', async () => {
    const refusal = Object.assign(new Error('primary differs'), { code: 'E_TOPOLOGY_MISMATCH' });
    await expect(
      run(EXAMPLE, {
        guard: async () => {
          throw refusal;
        },
      }),
    ).rejects.toBe(refusal);
    expect(registered).toEqual([]);
  });

  it('a spec change gives exactly the expected resource changes', async () => {
    const before = (await run(EXAMPLE)).resources;
    // 1. ap-southeast-1 stops receiving products: its publication is updated in place.
    const withheld = exampleVariant((t) =>
      t.replace(
        '      alertSeconds: 30\n      failoverMaxLagSeconds: 300\n',
        '      alertSeconds: 30\n      failoverMaxLagSeconds: 300\n    filters:\n      withhold: [public.products]\n',
      ),
    );
    const after = (await run(withheld)).resources;
    expect(after.map((r) => r.name).sort()).toEqual(before.map((r) => r.name).sort());
    const diffs = Object.fromEntries(
      after.map((r) => {
        const olds = { ...channelInputs(byName(before, r.name)) };
        const news = channelInputs(r);
        const d = r.name.startsWith('publication')
          ? publicationDiff(
              { ...olds, appliedDefHash: olds.channel.publication.defHash, adopted: false, applied: [] },
              news,
            )
          : subscriptionDiff({ ...olds, state: 'ok', adopted: false, applied: [] }, news);
        return [
          r.name,
          d.changes ? (d.replaces.length ? `replace(${d.replaces.join(',')})` : 'update') : '-',
        ];
      }),
    );
    expect(diffs).toEqual({
      'publication-ap-southeast-1': 'update',
      // Its inputs carry the channel too (the subscription outputs mirror it), but no SQL changes.
      'subscription-ap-southeast-1': 'update',
      'publication-eu-west-1': '-',
      'subscription-eu-west-1': '-',
    });
    const apTables = channelInputs(byName(after, 'publication-ap-southeast-1')).channel.publication.tables;
    expect(apTables.map((t) => t.table)).not.toContain('public.products');

    // 2. A merged failover write-back (eu-west-1 primary): every channel moves.
    const failedOver = exampleVariant((t) =>
      t
        .replace('  - name: us-east-1\n    role: primary', '  - name: us-east-1\n    role: secondary')
        .replace('  - name: eu-west-1\n    role: secondary', '  - name: eu-west-1\n    role: primary')
        .replace('  - from: us-east-1\n    to: eu-west-1', '  - from: eu-west-1\n    to: us-east-1')
        .replace(
          '  - from: us-east-1\n    to: ap-southeast-1',
          '  - from: eu-west-1\n    to: ap-southeast-1',
        ),
    );
    const moved = await run(failedOver);
    expect(moved.guarded).toEqual(['eu-west-1']);
    expect(moved.resources.map((r) => r.name).sort()).toEqual([
      'publication-ap-southeast-1',
      'publication-us-east-1',
      'subscription-ap-southeast-1',
      'subscription-us-east-1',
    ]);
    const ap = channelInputs(byName(moved.resources, 'subscription-ap-southeast-1'));
    const apOld = channelInputs(byName(before, 'subscription-ap-southeast-1'));
    const d = subscriptionDiff({ ...apOld, state: 'ok', adopted: false, applied: [] }, ap);
    expect(d.replaces.sort()).toEqual(['channel', 'publisher']);
    expect(d.deleteBeforeReplace).toBe(true);
    const p = publicationDiff(
      {
        ...apOld,
        appliedDefHash: apOld.channel.publication.defHash,
        adopted: false,
        applied: [],
      } as PublicationOutputs,
      ap,
    );
    expect(p.replaces).toEqual(['publisher']);
    expect(p.deleteBeforeReplace).toBe(false);
  });
});
