/**
 * `pulumi up` entry point: stack configuration in, stack outputs out. Everything else is
 * in program.ts (tested with setMocks) and providers.ts.
 */
import { resolve } from 'node:path';
import * as pulumi from '@pulumi/pulumi';
import type { ControlStoreSpec } from '../src/spec/schema.js';
import { defineInfrastructure } from './program.js';

export default async function main() {
  const config = new pulumi.Config('regionctl');
  const controlStore = config.getObject<Partial<ControlStoreSpec>>('controlStore');
  const controlStorePassword = config.getSecret('controlStorePassword');
  // A stack secret is an Output; the guard needs it before any resource exists.
  const password = controlStorePassword
    ? await new Promise<string>((ok) => controlStorePassword.apply((v) => ok(v)))
    : undefined;
  const infra = await defineInfrastructure({
    specPath: resolve(config.require('spec')),
    ...(controlStore ? { controlStore } : {}),
    ...(password !== undefined ? { controlStorePassword: password } : {}),
  });
  return {
    topology: infra.name,
    primary: infra.primary,
    channels: infra.channels,
    publications: infra.publications.map((p) => p.appliedDefHash),
    subscriptions: infra.subscriptions.map((s) => s.state),
    primaryRecord: infra.dns?.primary.fqdn,
  };
}
