/**
 * The Pulumi program, as a function of the stack configuration so tests can run it under
 * `pulumi.runtime.setMocks`. It reads regions.yaml with the loader and validator of
 * `regionctl validate`, refuses to run when the control store says another region is the
 * primary (the topology guard of `regionctl apply`), and declares per channel a
 * Publication and a Subscription plus, for Route 53, the DNS records.
 */
import * as pulumi from '@pulumi/pulumi';
import { guardTopology } from '../src/apply/topology-guard.js';
import { desiredState } from '../src/model/desired.js';
import { resolveSecret } from '../src/secrets/resolve.js';
import { loadSpecOrThrow } from '../src/spec/load.js';
import type { ControlStoreSpec, RegionsSpec, SecretRefSpec } from '../src/spec/schema.js';
import { controlTarget } from '../src/sql/connect.js';
import { openStore } from '../src/store/store.js';
import { checkRoute53, route53Resources } from './dns.js';
import { DEFAULT_IMPL, Publication, Subscription } from './providers.js';

export interface InfraOptions {
  /** regions.yaml (stack config `regionctl:spec`). */
  specPath: string;
  /** Replaces spec.controlStore (stack config `regionctl:controlStore`). */
  controlStore?: Partial<ControlStoreSpec>;
  /** Password of the overriding control store (secret stack config `regionctl:controlStorePassword`). */
  controlStorePassword?: string;
  /** A dry run (`pulumi preview`) must not record the first topology row. */
  dryRun?: boolean;
  /** Defaults to the control store's topology guard; tests of the resources replace it. */
  guard?: (spec: RegionsSpec, specDir: string, primary: string) => Promise<void>;
  /** Defaults to the spec's secret references (env / file). */
  resolvePassword?: (ref: SecretRefSpec, what: string) => string;
  /** The compiled provider implementation (default dist/src/providers/pulumi/replication.js). */
  providerImpl?: string;
}

export interface InfraOutputs {
  name: string;
  primary: string;
  channels: { from: string; to: string; publication: string; subscription: string }[];
  publications: Publication[];
  subscriptions: Subscription[];
  dns: ReturnType<typeof route53Resources>;
}

/** The control store the guard reads: the spec's, or the stack's override of it. */
export function effectiveControlStore(spec: RegionsSpec, opts: InfraOptions): RegionsSpec {
  if (!opts.controlStore && opts.controlStorePassword === undefined) return spec;
  const cs: ControlStoreSpec = { ...spec.controlStore, ...opts.controlStore };
  if (opts.controlStorePassword !== undefined) {
    // The guard connects through secret references only; a stack secret becomes an env one.
    process.env.REGIONCTL_PULUMI_CONTROL_STORE_PASSWORD = opts.controlStorePassword;
    cs.password = { env: 'REGIONCTL_PULUMI_CONTROL_STORE_PASSWORD' };
  }
  return { ...spec, controlStore: cs };
}

async function storeGuard(spec: RegionsSpec, specDir: string, primary: string, dryRun: boolean) {
  const store = await openStore(controlTarget(spec, specDir));
  try {
    await guardTopology(store, primary, {
      who: dryRun ? 'pulumi preview' : 'pulumi up',
      record: !dryRun,
    });
  } finally {
    await store.close();
  }
}

export async function defineInfrastructure(opts: InfraOptions): Promise<InfraOutputs> {
  const { spec, dir } = await loadSpecOrThrow(opts.specPath);
  const desired = desiredState(spec);
  checkRoute53(spec);
  const guarded = effectiveControlStore(spec, opts);
  await (opts.guard ?? ((s, d, p) => storeGuard(s, d, p, opts.dryRun ?? pulumi.runtime.isDryRun())))(
    guarded,
    dir,
    desired.primary,
  );

  const resolve = opts.resolvePassword ?? ((ref, what) => resolveSecret(ref, dir, what));
  const regions = new Map(spec.regions.map((r) => [r.name, r]));
  const server = (name: string) => {
    const r = regions.get(name);
    if (!r) throw new Error(`unknown region ${name} (validate the spec first)`);
    const s: {
      region: string;
      host: string;
      port: number;
      user: string;
      sslmode?: typeof r.endpoint.sslmode;
    } = { region: name, host: r.endpoint.host, port: r.endpoint.port, user: r.endpoint.user };
    if (r.endpoint.sslmode) s.sslmode = r.endpoint.sslmode;
    const ref = r.endpoint.password;
    // Resolved here, once, and never handled as plain text again: the state keeps it encrypted.
    const password = ref ? pulumi.secret(resolve(ref, `region ${name} password`)) : undefined;
    return { server: s, password };
  };

  const impl = opts.providerImpl ?? DEFAULT_IMPL;
  const publications: Publication[] = [];
  const subscriptions: Subscription[] = [];
  for (const c of desired.channels) {
    const pub = server(c.from);
    const sub = server(c.to);
    const args = {
      database: spec.database,
      publisher: pub.server,
      subscriber: sub.server,
      ...(pub.password ? { publisherPassword: pub.password } : {}),
      ...(sub.password ? { subscriberPassword: sub.password } : {}),
      channel: c,
    };
    // Named after the subscribing region: after a failover the same name may publish
    // from another region, which the providers' diff turns into a replacement.
    const p = new Publication(`publication-${c.to}`, args, {}, impl);
    const s = new Subscription(`subscription-${c.to}`, args, { dependsOn: [p] }, impl);
    publications.push(p);
    subscriptions.push(s);
  }
  return {
    name: spec.name,
    primary: desired.primary,
    channels: desired.channels.map((c) => ({
      from: c.from,
      to: c.to,
      publication: c.publication.name,
      subscription: c.subscription.name,
    })),
    publications,
    subscriptions,
    dns: route53Resources(spec),
  };
}
