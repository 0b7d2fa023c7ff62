/**
 * What the Pulumi dynamic providers of infra/ do, without Pulumi: create, diff, update,
 * read and delete of one channel's publication and subscription. There is no second
 * implementation here: each operation observes the two regions, asks the planner for
 * the channel's actions (`planChannel`, the same code `regionctl plan` runs) and runs
 * them with `executeAction` (the same code `regionctl apply` runs), so a channel
 * converges identically under `pulumi up` and under `regionctl apply`, and an object
 * that already matches (its marker says so) is adopted without a statement.
 *
 * This module is built into dist/ on purpose: a dynamic provider runs in the Pulumi
 * provider host, a separate Node process that loads the serialized provider and then
 * imports this file by its absolute URL (see infra/providers.ts).
 */
import { randomBytes } from 'node:crypto';
import { executeAction, openClients } from '../../apply/execute.js';
import { RegionctlError } from '../../errors.js';
import type { DesiredChannel } from '../../model/desired.js';
import { catalogHash, parseMarker } from '../../model/marker.js';
import { HEARTBEAT_TABLE } from '../../model/names.js';
import type { ReachableRegion } from '../../model/observed.js';
import { observeRegion } from '../../observe/observe.js';
import { type Action, actionKey, describeAction } from '../../plan/actions.js';
import { planChannel } from '../../plan/plan.js';
import type { RegionsSpec } from '../../spec/schema.js';
import { conninfo, regionTarget } from '../../sql/connect.js';
import { runStatements } from '../../sql/statement.js';
import { alterSubscriptionConnectionSql } from '../../sql/subscription.js';

/** Where one region's server is (no secret: passwords are separate, secret, properties). */
export interface ServerInput {
  region: string;
  host: string;
  port: number;
  user: string;
  sslmode?: 'disable' | 'prefer' | 'require' | 'verify-full';
}

/**
 * The inputs of both resources. Passwords are top-level properties so that the program
 * can mark exactly them as secret (inputs and `additionalSecretOutputs`).
 */
export interface ChannelInputs {
  database: string;
  publisher: ServerInput;
  subscriber: ServerInput;
  publisherPassword?: string;
  subscriberPassword?: string;
  channel: DesiredChannel;
}

export interface PublicationOutputs extends ChannelInputs {
  /** The marker's definition hash found on the server ('missing' / 'drifted' after a refresh that found so). */
  appliedDefHash: string;
  /** True when create found the publication already as desired and ran nothing. */
  adopted: boolean;
  /** Action keys the last create/update ran (empty: nothing needed). */
  applied: string[];
}

export type SubscriptionState = 'ok' | 'missing' | 'disabled' | 'wrong-source';

export interface SubscriptionOutputs extends ChannelInputs {
  state: SubscriptionState;
  adopted: boolean;
  applied: string[];
}

export interface DiffResult {
  changes: boolean;
  replaces: string[];
  deleteBeforeReplace: boolean;
}

type Log = (line: string) => void;

// ---- context ----------------------------------------------------------------------

/**
 * executeAction and observeRegion resolve passwords from secret *references* (the spec
 * never holds literal secrets). The provider receives the passwords as Pulumi secrets,
 * so it hands them over as references to environment variables of its own process that
 * live only for the duration of one operation (unique names: Pulumi runs operations
 * concurrently in one provider process).
 */
async function withChannel<T>(
  inputs: ChannelInputs,
  log: Log,
  fn: (ctx: {
    spec: RegionsSpec;
    specDir: string;
    client: (region: string) => Promise<import('pg').Client>;
    log: Log;
  }) => Promise<T>,
): Promise<T> {
  const names: string[] = [];
  const ref = (password: string | undefined) => {
    if (password === undefined || password === '') return undefined;
    const name = `REGIONCTL_PULUMI_SECRET_${randomBytes(8).toString('hex')}`;
    process.env[name] = password;
    names.push(name);
    return { env: name };
  };
  const region = (s: ServerInput, password: string | undefined) => {
    const endpoint: RegionsSpec['regions'][number]['endpoint'] = { host: s.host, port: s.port, user: s.user };
    const pw = ref(password);
    if (pw) endpoint.password = pw;
    if (s.sslmode) endpoint.sslmode = s.sslmode;
    return { name: s.region, role: 'secondary' as const, location: { lat: 0, lon: 0 }, endpoint };
  };
  // Only `database` and `regions[].endpoint` are read by the code this context reaches
  // (regionTarget, openClients, executeAction for channel actions).
  const spec = {
    database: inputs.database,
    regions: [
      region(inputs.publisher, inputs.publisherPassword),
      region(inputs.subscriber, inputs.subscriberPassword),
    ],
  } as unknown as RegionsSpec;
  const specDir = process.cwd();
  const clients = await openClients(spec, specDir);
  try {
    return await fn({ spec, specDir, client: clients.client, log });
  } finally {
    await clients.close();
    for (const n of names) delete process.env[n];
  }
}

async function observeServer(spec: RegionsSpec, specDir: string, region: string): Promise<ReachableRegion> {
  const o = await observeRegion(regionTarget(spec, region, specDir), region, {
    applicationRoles: [],
    applicationTables: [],
  });
  if (!o.reachable) {
    throw new RegionctlError(
      'E_REGION_UNREACHABLE',
      `region ${region} could not be reached: ${o.reason}`,
      'run `pulumi up` again when it is back',
    );
  }
  if (!o.databaseExists) {
    throw new RegionctlError(
      'E_DATABASE_MISSING',
      `database ${spec.database} does not exist in region ${region}`,
      'create the database and its schema there first (DDL is not replicated)',
    );
  }
  return o;
}

async function run(
  ctx: Parameters<Parameters<typeof withChannel>[2]>[0],
  actions: Action[],
): Promise<string[]> {
  for (const a of actions) {
    ctx.log(`${a.region}: ${describeAction(a)}`);
    await executeAction(ctx, a);
  }
  return actions.map(actionKey);
}

function blocked(problems: ReturnType<typeof planChannel>['problems']): void {
  const errors = problems.filter((p) => p.severity === 'error');
  if (errors.length === 0) return;
  throw new RegionctlError(
    'E_PLAN_BLOCKED',
    `the channel cannot be provisioned:\n${errors.map((p) => `  ${p.code} ${p.message}`).join('\n')}`,
    errors[0]?.hint ?? 'run `regionctl plan` to see each problem and its fix',
  );
}

/** The heartbeat table rides every publication; the server refuses a publication of a missing table. */
async function ensureHeartbeat(
  ctx: Parameters<Parameters<typeof withChannel>[2]>[0],
  o: ReachableRegion,
): Promise<string[]> {
  if (o.heartbeatInstalled) return [];
  const a: Action = {
    kind: 'install-heartbeat',
    region: o.region,
    risk: 'create',
    reason: 'the heartbeat table rides every channel',
  };
  return run(ctx, [a]);
}

// ---- publication ------------------------------------------------------------------

function publicationState(c: DesiredChannel, pub: ReachableRegion): string {
  const p = pub.publications.find((x) => x.name === c.publication.name);
  if (!p) return 'missing';
  const m = parseMarker(p.comment);
  if (!m || m.catalogHash !== catalogHash(p.tables)) return 'drifted';
  return m.defHash;
}

async function convergePublication(inputs: ChannelInputs, log: Log): Promise<PublicationOutputs> {
  return withChannel(inputs, log, async (ctx) => {
    const c = inputs.channel;
    let pub = await observeServer(ctx.spec, ctx.specDir, inputs.publisher.region);
    const applied = await ensureHeartbeat(ctx, pub);
    if (applied.length > 0) pub = await observeServer(ctx.spec, ctx.specDir, inputs.publisher.region);
    const existed = pub.publications.some((p) => p.name === c.publication.name);
    // The subscriber only matters for the resync a filter change needs; unreachable, the
    // publication is still altered (as `regionctl apply` does) and the resync waits.
    const subObs = await observeRegion(
      regionTarget(ctx.spec, inputs.subscriber.region, ctx.specDir),
      inputs.subscriber.region,
      { applicationRoles: [], applicationTables: [] },
    );
    const sub = subObs.reachable && subObs.databaseExists ? subObs : null;
    const plan = planChannel(c, pub, sub, HEARTBEAT_TABLE);
    blocked(plan.problems);
    applied.push(...(await run(ctx, plan.publication)));
    const after = await observeServer(ctx.spec, ctx.specDir, inputs.publisher.region);
    return {
      ...inputs,
      appliedDefHash: publicationState(c, after),
      adopted: existed && plan.publication.length === 0,
      applied,
    };
  });
}

export async function publicationCreate(
  inputs: ChannelInputs,
  log: Log = () => {},
): Promise<{ id: string; outs: PublicationOutputs }> {
  const outs = await convergePublication(inputs, log);
  return { id: publicationId(inputs), outs };
}

export function publicationId(i: ChannelInputs): string {
  return `${i.publisher.host}:${i.publisher.port}/${i.database}/${i.channel.publication.name}`;
}

function serverKey(s: ServerInput): string {
  return `${s.host}:${s.port}`;
}

export function publicationDiff(olds: PublicationOutputs, news: ChannelInputs): DiffResult {
  const replaces: string[] = [];
  if (olds.database !== news.database) replaces.push('database');
  if (
    olds.publisher.region !== news.publisher.region ||
    serverKey(olds.publisher) !== serverKey(news.publisher)
  )
    replaces.push('publisher');
  if (olds.channel.publication.name !== news.channel.publication.name) replaces.push('channel');
  const changes =
    replaces.length > 0 ||
    olds.appliedDefHash !== news.channel.publication.defHash ||
    JSON.stringify(olds.channel) !== JSON.stringify(news.channel) ||
    JSON.stringify(olds.subscriber) !== JSON.stringify(news.subscriber) ||
    olds.publisher.user !== news.publisher.user ||
    (olds.publisherPassword ?? '') !== (news.publisherPassword ?? '') ||
    (olds.subscriberPassword ?? '') !== (news.subscriberPassword ?? '');
  // Another server or name: the new publication can exist beside the old one.
  return { changes, replaces, deleteBeforeReplace: false };
}

export async function publicationUpdate(
  _id: string,
  _olds: PublicationOutputs,
  news: ChannelInputs,
  log: Log = () => {},
): Promise<PublicationOutputs> {
  const outs = await convergePublication(news, log);
  return { ...outs, adopted: false };
}

/** For `pulumi refresh`: what the server really has, as `appliedDefHash`. */
export async function publicationRead(
  id: string,
  props: PublicationOutputs,
): Promise<{ id: string; props: PublicationOutputs }> {
  return withChannel(
    props,
    () => {},
    async (ctx) => {
      const pub = await observeServer(ctx.spec, ctx.specDir, props.publisher.region);
      return { id, props: { ...props, appliedDefHash: publicationState(props.channel, pub) } };
    },
  );
}

export async function publicationDelete(_id: string, props: PublicationOutputs, log: Log = () => {}) {
  await withChannel(props, log, async (ctx) => {
    await run(ctx, [
      {
        kind: 'drop-publication',
        region: props.publisher.region,
        risk: 'drop',
        reason: 'the channel was removed from the Pulumi program',
        name: props.channel.publication.name,
      },
    ]);
  });
}

// ---- subscription -----------------------------------------------------------------

function subscriptionState(c: DesiredChannel, sub: ReachableRegion): SubscriptionState {
  const s = sub.subscriptions.find((x) => x.name === c.subscription.name);
  if (!s) return 'missing';
  const src = c.subscription.source;
  // The planner's test, word for word: what it would re-create is 'wrong-source'.
  if (
    !s.publications.includes(c.subscription.publication) ||
    s.slotName !== c.subscription.slotName ||
    (s.host !== null && s.host !== src.host) ||
    (s.port !== null && s.port !== src.port) ||
    (s.dbname !== null && s.dbname !== src.database)
  )
    return 'wrong-source';
  return s.enabled ? 'ok' : 'disabled';
}

async function convergeSubscription(
  inputs: ChannelInputs,
  log: Log,
  rotatePassword: boolean,
): Promise<SubscriptionOutputs> {
  return withChannel(inputs, log, async (ctx) => {
    const c = inputs.channel;
    const pub = await observeServer(ctx.spec, ctx.specDir, inputs.publisher.region);
    let sub = await observeServer(ctx.spec, ctx.specDir, inputs.subscriber.region);
    // The initial copy writes the heartbeat row into the subscriber's table.
    const applied = await ensureHeartbeat(ctx, sub);
    if (applied.length > 0) sub = await observeServer(ctx.spec, ctx.specDir, inputs.subscriber.region);
    const before = subscriptionState(c, sub);
    const plan = planChannel(c, pub, sub, HEARTBEAT_TABLE);
    blocked(plan.problems);
    if (plan.publication.length > 0) {
      throw new RegionctlError(
        'E_PUBLICATION_NOT_READY',
        `publication ${c.publication.name} in ${inputs.publisher.region} is not yet as the spec says; the subscription follows it`,
        'the Publication resource must be applied first (the program makes the subscription depend on it)',
      );
    }
    applied.push(...(await run(ctx, plan.subscription)));
    if (
      rotatePassword &&
      before !== 'missing' &&
      !plan.subscription.some((a) => a.kind === 'create-subscription')
    ) {
      // A re-created subscription already has the new conninfo; an existing one is re-pointed.
      const info = conninfo(regionTarget(ctx.spec, inputs.publisher.region, ctx.specDir));
      await runStatements(
        await ctx.client(inputs.subscriber.region),
        alterSubscriptionConnectionSql(c.subscription.name, info),
      );
      applied.push(`alter-subscription-connection:${inputs.subscriber.region}:${c.subscription.name}`);
    }
    const after = await observeServer(ctx.spec, ctx.specDir, inputs.subscriber.region);
    return {
      ...inputs,
      state: subscriptionState(c, after),
      adopted: before === 'ok' && plan.subscription.length === 0,
      applied,
    };
  });
}

export function subscriptionId(i: ChannelInputs): string {
  return `${i.subscriber.host}:${i.subscriber.port}/${i.database}/${i.channel.subscription.name}`;
}

export async function subscriptionCreate(
  inputs: ChannelInputs,
  log: Log = () => {},
): Promise<{ id: string; outs: SubscriptionOutputs }> {
  return { id: subscriptionId(inputs), outs: await convergeSubscription(inputs, log, false) };
}

export function subscriptionDiff(olds: SubscriptionOutputs, news: ChannelInputs): DiffResult {
  const replaces: string[] = [];
  if (olds.database !== news.database) replaces.push('database');
  if (
    olds.subscriber.region !== news.subscriber.region ||
    serverKey(olds.subscriber) !== serverKey(news.subscriber)
  )
    replaces.push('subscriber');
  if (
    olds.publisher.region !== news.publisher.region ||
    serverKey(olds.publisher) !== serverKey(news.publisher)
  )
    replaces.push('publisher');
  const o = olds.channel.subscription;
  const n = news.channel.subscription;
  if (
    o.name !== n.name ||
    o.publication !== n.publication ||
    o.slotName !== n.slotName ||
    JSON.stringify(o.source) !== JSON.stringify(n.source)
  )
    replaces.push('channel');
  const changes =
    replaces.length > 0 ||
    olds.state !== 'ok' ||
    JSON.stringify(olds.channel) !== JSON.stringify(news.channel) ||
    olds.publisher.user !== news.publisher.user ||
    olds.subscriber.user !== news.subscriber.user ||
    (olds.publisherPassword ?? '') !== (news.publisherPassword ?? '') ||
    (olds.subscriberPassword ?? '') !== (news.subscriberPassword ?? '');
  // Same name or same slot on the publisher: the old subscription must go first.
  return { changes, replaces, deleteBeforeReplace: true };
}

export async function subscriptionUpdate(
  _id: string,
  olds: SubscriptionOutputs,
  news: ChannelInputs,
  log: Log = () => {},
): Promise<SubscriptionOutputs> {
  const rotate =
    (olds.publisherPassword ?? '') !== (news.publisherPassword ?? '') ||
    olds.publisher.user !== news.publisher.user;
  const outs = await convergeSubscription(news, log, rotate);
  return { ...outs, adopted: false };
}

export async function subscriptionRead(
  id: string,
  props: SubscriptionOutputs,
): Promise<{ id: string; props: SubscriptionOutputs }> {
  return withChannel(
    props,
    () => {},
    async (ctx) => {
      const sub = await observeServer(ctx.spec, ctx.specDir, props.subscriber.region);
      return { id, props: { ...props, state: subscriptionState(props.channel, sub) } };
    },
  );
}

export async function subscriptionDelete(_id: string, props: SubscriptionOutputs, log: Log = () => {}) {
  await withChannel(props, log, async (ctx) => {
    await run(ctx, [
      {
        kind: 'drop-subscription',
        region: props.subscriber.region,
        risk: 'drop',
        reason: 'the channel was removed from the Pulumi program',
        name: props.channel.subscription.name,
      },
    ]);
  });
}

/** Both resources' operations under one shape, for the one provider factory in infra/providers.ts. */
export const operations = {
  publication: {
    create: publicationCreate,
    diff: publicationDiff,
    update: publicationUpdate,
    read: publicationRead,
    delete: publicationDelete,
  },
  subscription: {
    create: subscriptionCreate,
    diff: subscriptionDiff,
    update: subscriptionUpdate,
    read: subscriptionRead,
    delete: subscriptionDelete,
  },
} as const;
