/**
 * The two dynamic resources of a channel. The provider objects are serialized by Pulumi
 * (closure serialization) and run in the provider host, a separate Node process. So
 * each method captures nothing but the URL of the compiled implementation
 * (dist/src/providers/pulumi/replication.js, from `npm run build`) and imports it there:
 * no module graph is serialized, and the code that runs is the code `regionctl apply`
 * runs (the planner's channel actions, executeAction, the SQL builders).
 */
import * as pulumi from '@pulumi/pulumi';
import type { DesiredChannel } from '../src/model/desired.js';
import type * as Impl from '../src/providers/pulumi/replication.js';

/** The compiled implementation the provider host imports. */
/*
 * Each method loads it with `new Function('u', 'return import(u)')` rather than
 * `import(u)`: tools that compile this file (tsx, esbuild, vitest) may rewrite an
 * `import()` expression into a call of their own helper, which the serializer would
 * then have to capture; inside a string it stays Node's own dynamic import.
 */
export const DEFAULT_IMPL = new URL('../dist/src/providers/pulumi/replication.js', import.meta.url).href;

export type ResourceKind = keyof typeof Impl.operations;

export function channelProvider(
  kind: ResourceKind,
  impl: string = DEFAULT_IMPL,
): pulumi.dynamic.ResourceProvider {
  const implUrl = impl;
  const k = kind;
  return {
    async create(inputs) {
      const m: typeof Impl = await new Function('u', 'return import(u)')(implUrl);
      return m.operations[k].create(inputs);
    },
    async diff(_id, olds, news) {
      const m: typeof Impl = await new Function('u', 'return import(u)')(implUrl);
      return m.operations[k].diff(olds, news);
    },
    async update(id, olds, news) {
      const m: typeof Impl = await new Function('u', 'return import(u)')(implUrl);
      return { outs: await m.operations[k].update(id, olds, news) };
    },
    async read(id, props) {
      const m: typeof Impl = await new Function('u', 'return import(u)')(implUrl);
      return m.operations[k].read(id, props);
    },
    async delete(id, props) {
      const m: typeof Impl = await new Function('u', 'return import(u)')(implUrl);
      await m.operations[k].delete(id, props);
    },
  };
}

export interface ChannelResourceArgs {
  database: pulumi.Input<string>;
  publisher: pulumi.Input<Impl.ServerInput>;
  subscriber: pulumi.Input<Impl.ServerInput>;
  /** Pass as pulumi.secret(...): it ends up in the state, encrypted. */
  publisherPassword?: pulumi.Input<string>;
  subscriberPassword?: pulumi.Input<string>;
  channel: pulumi.Input<DesiredChannel>;
}

/** Passwords are outputs too (delete needs them to connect); the engine must keep them secret. */
const SECRET_OUTPUTS = ['publisherPassword', 'subscriberPassword'];

export class Publication extends pulumi.dynamic.Resource {
  declare readonly appliedDefHash: pulumi.Output<string>;
  declare readonly adopted: pulumi.Output<boolean>;
  declare readonly applied: pulumi.Output<string[]>;
  constructor(
    name: string,
    args: ChannelResourceArgs,
    opts: pulumi.CustomResourceOptions = {},
    impl: string = DEFAULT_IMPL,
  ) {
    super(
      channelProvider('publication', impl),
      name,
      { ...args, appliedDefHash: undefined, adopted: undefined, applied: undefined },
      { ...opts, additionalSecretOutputs: [...(opts.additionalSecretOutputs ?? []), ...SECRET_OUTPUTS] },
      'regionctl',
      'Publication',
    );
  }
}

export class Subscription extends pulumi.dynamic.Resource {
  declare readonly state: pulumi.Output<Impl.SubscriptionState>;
  declare readonly adopted: pulumi.Output<boolean>;
  declare readonly applied: pulumi.Output<string[]>;
  constructor(
    name: string,
    args: ChannelResourceArgs,
    opts: pulumi.CustomResourceOptions = {},
    impl: string = DEFAULT_IMPL,
  ) {
    super(
      channelProvider('subscription', impl),
      name,
      { ...args, state: undefined, adopted: undefined, applied: undefined },
      { ...opts, additionalSecretOutputs: [...(opts.additionalSecretOutputs ?? []), ...SECRET_OUTPUTS] },
      'regionctl',
      'Subscription',
    );
  }
}
