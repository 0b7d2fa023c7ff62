/**
 * The rfc2136 provider against a real BIND (Debian bind9), started per file on a
 * loopback port with generated TSIG keys. Answers are checked with dig (BIND's own
 * resolver code, independent of ours) and with the provider's lookup (a real query).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegionctlError } from '../../src/errors.js';
import { dnsProviderFor } from '../../src/providers/dns/index.js';
import { Rfc2136DnsProvider } from '../../src/providers/dns/rfc2136.js';
import type { RegionsSpec } from '../../src/spec/schema.js';
import { type BindKey, type BindServer, startBind } from '../support/bind.js';
import { requirePeer } from '../support/peers.js';

const named = requirePeer('named', 'apt-get install bind9');
const dig = requirePeer('dig', 'apt-get install bind9-dnsutils');
const ZONE = 'db.shop.internal';
const PRIMARY = `primary.${ZONE}`;

async function refusal(p: Promise<unknown>): Promise<RegionctlError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(RegionctlError);
  return e as RegionctlError;
}

describe.skipIf(!named)('rfc2136 DNS provider against BIND', () => {
  let bind: BindServer;
  const provider = (
    key: BindKey = bind.key,
    extra: Partial<ConstructorParameters<typeof Rfc2136DnsProvider>[0]> = {},
  ) =>
    new Rfc2136DnsProvider({
      zone: ZONE,
      server: '127.0.0.1',
      port: bind.port,
      key: () => ({ name: key.name, algorithm: key.algorithm, secret: Buffer.from(key.secret, 'base64') }),
      timeoutMs: 2000,
      ...extra,
    });
  const digShort = (type: string, name: string): string[] =>
    dig
      ? execFileSync(dig, ['@127.0.0.1', '-p', String(bind.port), '+short', '+norecurse', type, name], {
          encoding: 'utf8',
        })
          .trim()
          .split('\n')
          .filter(Boolean)
      : [];
  const serial = (): number => Number(digShort('SOA', ZONE)[0]?.split(' ')[2]);

  beforeAll(async () => {
    bind = await startBind(named!, ZONE);
  }, 60_000);
  afterAll(async () => {
    await bind?.stop();
  });

  it('points the primary record at a region: A record plus region/port metadata', async () => {
    const dns = provider();
    expect(await dns.lookup(PRIMARY)).toBeNull();
    await dns.upsert(PRIMARY, { region: 'us-east-1', host: '127.0.0.1', port: 54431 }, 5);
    expect(await dns.lookup(PRIMARY)).toEqual({ host: '127.0.0.1', port: 54431, region: 'us-east-1' });
    if (dig) {
      expect(digShort('A', PRIMARY)).toEqual(['127.0.0.1']);
      expect(digShort('TXT', `_regionctl.${PRIMARY}`)).toEqual(['"region=us-east-1" "port=54431"']);
    }
  });

  it('repoints it (failover): exactly one address afterwards, and repeating it changes nothing', async () => {
    const dns = provider();
    await dns.upsert(PRIMARY, { region: 'eu-west-1', host: '127.0.0.2', port: 54432 }, 5);
    expect(await dns.lookup(PRIMARY)).toEqual({ host: '127.0.0.2', port: 54432, region: 'eu-west-1' });
    if (dig) {
      expect(digShort('A', PRIMARY)).toEqual(['127.0.0.2']);
      const before = serial();
      await dns.upsert(PRIMARY, { region: 'eu-west-1', host: '127.0.0.2', port: 54432 }, 5);
      // BIND only bumps the serial when an update changed the zone.
      expect(serial()).toBe(before);
    }
  });

  it('uses a CNAME for a host name, AAAA for IPv6, and switches between them', async () => {
    const dns = provider();
    await dns.upsert(PRIMARY, { region: 'eu-west-1', host: 'pg.eu-west-1.example.net', port: 5432 }, 5);
    expect(await dns.lookup(PRIMARY)).toEqual({
      host: 'pg.eu-west-1.example.net',
      port: 5432,
      region: 'eu-west-1',
    });
    if (dig) {
      expect(digShort('CNAME', PRIMARY)).toEqual(['pg.eu-west-1.example.net.']);
      expect(digShort('A', PRIMARY)).toEqual(['pg.eu-west-1.example.net.']);
    }
    await dns.upsert(PRIMARY, { region: 'us-east-1', host: '::1', port: 54431 }, 5);
    expect(await dns.lookup(PRIMARY)).toEqual({ host: '0:0:0:0:0:0:0:1', port: 54431, region: 'us-east-1' });
    if (dig) {
      expect(digShort('CNAME', PRIMARY)).toEqual([]);
      expect(digShort('AAAA', PRIMARY)).toEqual(['::1']);
    }
    await dns.upsert(PRIMARY, { region: 'us-east-1', host: '127.0.0.1', port: 54431 }, 5);
    if (dig) {
      expect(digShort('AAAA', PRIMARY)).toEqual([]);
      expect(digShort('A', PRIMARY)).toEqual(['127.0.0.1']);
    }
    expect(await dns.lookup(PRIMARY)).toEqual({ host: '127.0.0.1', port: 54431, region: 'us-east-1' });
  });

  it('works over TCP, and concurrent updates of different records all land', async () => {
    const dns = provider(bind.key, { transport: 'tcp' });
    const regions = ['us-east-1', 'eu-west-1', 'ap-southeast-1'];
    await Promise.all(
      regions.map((r, i) =>
        dns.upsert(`read.${r}.${ZONE}`, { region: r, host: `127.0.0.${i + 1}`, port: 54431 + i }, 5),
      ),
    );
    for (const [i, r] of regions.entries()) {
      expect(await dns.lookup(`read.${r}.${ZONE}`)).toEqual({
        host: `127.0.0.${i + 1}`,
        port: 54431 + i,
        region: r,
      });
    }
  });

  it('a wrong TSIG secret is refused (BADSIG) and the record keeps its target', async () => {
    const wrong = { ...bind.key, secret: Buffer.alloc(32, 7).toString('base64') };
    const e = await refusal(
      provider(wrong).upsert(PRIMARY, { region: 'ap-southeast-1', host: '127.0.0.3', port: 1 }, 5),
    );
    expect(e.code).toBe('E_DNS_TSIG_REFUSED');
    expect(e.message).toContain('BADSIG');
    expect(e.message).toContain(`key ${bind.key.name}`);
    expect(e.hint).toMatch(/keySecret/);
    expect(await provider().lookup(PRIMARY)).toEqual({ host: '127.0.0.1', port: 54431, region: 'us-east-1' });
  });

  it('an unknown key name is refused (BADKEY)', async () => {
    const unknown = { ...bind.key, name: 'nobody' };
    const e = await refusal(
      provider(unknown).upsert(PRIMARY, { region: 'eu-west-1', host: '127.0.0.2', port: 1 }, 5),
    );
    expect(e.code).toBe('E_DNS_TSIG_REFUSED');
    expect(e.message).toContain('BADKEY');
    expect(e.hint).toMatch(/keyName/);
  });

  it('a valid key without rights on the record is REFUSED by the update policy', async () => {
    const dns = provider(bind.limitedKey);
    const e = await refusal(dns.upsert(PRIMARY, { region: 'eu-west-1', host: '127.0.0.2', port: 1 }, 5));
    expect(e.code).toBe('E_DNS_UPDATE_REFUSED');
    expect(e.message).toContain('REFUSED');
    expect(e.hint).toMatch(/update-policy/);
  });

  it('a record outside the zone is rejected before anything is sent', async () => {
    const e = await refusal(
      provider().upsert('primary.other.internal', { region: 'x', host: '127.0.0.1', port: 1 }, 5),
    );
    expect(e.code).toBe('E_DNS_RECORD_OUTSIDE_ZONE');
  });

  it('dnsProviderFor builds it from regions.yaml settings with a file secret', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'regionctl-dns-spec-'));
    try {
      writeFileSync(join(dir, 'tsig.key'), `${bind.key.secret}\n`);
      const spec = {
        dns: {
          provider: 'rfc2136',
          zone: ZONE,
          ttl: 5,
          primaryRecord: PRIMARY,
          rfc2136: {
            server: '127.0.0.1',
            port: bind.port,
            keyName: bind.key.name,
            keySecret: { file: 'tsig.key' },
          },
        },
      } as unknown as RegionsSpec;
      const dns = dnsProviderFor(spec, dir);
      expect(dns.name).toBe('rfc2136');
      await dns.upsert(PRIMARY, { region: 'ap-southeast-1', host: '127.0.0.3', port: 54433 }, 5);
      expect(await dns.lookup(PRIMARY)).toEqual({ host: '127.0.0.3', port: 54433, region: 'ap-southeast-1' });
      if (dig) expect(digShort('A', PRIMARY)).toEqual(['127.0.0.3']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('rfc2136 DNS provider without a server', () => {
  it('an unreachable name server is a precise error, not a hang', async () => {
    const dns = new Rfc2136DnsProvider({
      zone: ZONE,
      server: '127.0.0.1',
      port: 9, // discard: nothing answers DNS there
      key: () => ({ name: 'k', algorithm: 'hmac-sha256', secret: Buffer.alloc(32) }),
      timeoutMs: 200,
      attempts: 2,
    });
    const started = Date.now();
    const e = await refusal(dns.upsert(PRIMARY, { region: 'x', host: '127.0.0.1', port: 1 }, 5));
    expect(e.code).toBe('E_DNS_UNREACHABLE');
    expect(e.message).toContain('127.0.0.1:9');
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('a secret that is not base64 is a precise error naming the key', async () => {
    process.env.REGIONCTL_TEST_TSIG = 'not base64!';
    const spec = {
      dns: {
        provider: 'rfc2136',
        zone: ZONE,
        ttl: 5,
        primaryRecord: PRIMARY,
        rfc2136: { server: '127.0.0.1', port: 9, keyName: 'k1', keySecret: { env: 'REGIONCTL_TEST_TSIG' } },
      },
    } as unknown as RegionsSpec;
    const e = await refusal(
      dnsProviderFor(spec, '/').upsert(PRIMARY, { region: 'x', host: '127.0.0.1', port: 1 }, 5),
    );
    expect(e.code).toBe('E_DNS_TSIG_SECRET');
    expect(e.message).toContain('k1');
    delete process.env.REGIONCTL_TEST_TSIG;
  });
});
