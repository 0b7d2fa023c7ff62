import { describe, expect, inject, it } from 'vitest';
import { RegionctlError } from '../../src/errors.js';
import { labUp } from '../../src/lab/lab.js';
import { findServer, isLoopback, labServers } from '../../src/lab/servers.js';
import type { TestLabContext } from '../support/lab-context.js';

describe('lab refuses what it must not run', () => {
  const base = (): TestLabContext['spec'] => structuredClone(inject('regionctlLab').spec);

  it('refuses a non-loopback host, naming the region', async () => {
    const spec = base();
    spec.regions[1]!.endpoint.host = '10.0.1.5';
    const err = await labUp(spec, { specDir: '/tmp', stateDir: '/tmp/regionctl-never-created' }).catch(
      (e) => e,
    );
    expect(err).toBeInstanceOf(RegionctlError);
    expect(err.code).toBe('E_LAB_NOT_LOOPBACK');
    expect(err.message).toContain(`region ${spec.regions[1]!.name}`);
    expect(err.message).toContain('10.0.1.5');
    expect(err.hint).toMatch(/loopback|127\.0\.0\.1/);
  });

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1']) expect(isLoopback(h)).toBe(true);
    for (const h of ['10.0.0.1', '0.0.0.0', 'db.example.com', '128.0.0.1']) expect(isLoopback(h)).toBe(false);
  });

  it('refuses two servers on one port', () => {
    const spec = base();
    spec.regions[2]!.endpoint.port = spec.regions[0]!.endpoint.port;
    expect(() => labServers(spec, '/tmp/x')).toThrow(/both use port/);
  });

  it('suggests the closest region name for a typo', () => {
    const servers = labServers(base(), '/tmp/x');
    expect(() => findServer(servers, 'eu-west-2')).toThrow(/did you mean 'eu-west-1'/);
  });
});
