/**
 * The route53 provider without AWS. Two levels:
 *  - a fake Route53Api records the inputs the provider builds (change batch, polling);
 *  - the real SDK client with a capturing request handler shows that those inputs
 *    serialize to the Route 53 REST/XML request, SigV4-signed, and that answers parse.
 * Neither proves that Route 53 accepts the batch (e.g. its rules on CNAME conflicts,
 * IAM permissions, real propagation times): that needs an AWS account.
 */

import { Readable } from 'node:stream';
import type {
  ChangeResourceRecordSetsCommandInput,
  ListResourceRecordSetsCommandInput,
  ResourceRecordSet,
} from '@aws-sdk/client-route-53';
import { Route53Client } from '@aws-sdk/client-route-53';
import { describe, expect, it } from 'vitest';
import { dnsProviderFor } from '../../src/providers/dns/index.js';
import { type Route53Api, Route53DnsProvider, sdkRoute53Api } from '../../src/providers/dns/route53.js';
import type { RegionsSpec } from '../../src/spec/schema.js';

const ZONE = 'db.shop.internal';
const PRIMARY = `primary.${ZONE}`;

/** An in-memory hosted zone that applies batches the way the provider expects Route 53 to. */
function fakeZone(initial: ResourceRecordSet[] = []) {
  const sets = [...initial];
  const changes: ChangeResourceRecordSetsCommandInput[] = [];
  const lists: ListResourceRecordSetsCommandInput[] = [];
  let polls = 0;
  const api: Route53Api = {
    async changeResourceRecordSets(input) {
      changes.push(structuredClone(input));
      for (const c of input.ChangeBatch?.Changes ?? []) {
        const rs = c.ResourceRecordSet!;
        const i = sets.findIndex((s) => s.Name === rs.Name && s.Type === rs.Type);
        if (c.Action === 'DELETE') {
          if (i < 0 || JSON.stringify(sets[i]) !== JSON.stringify(rs))
            throw Object.assign(new Error('not found'), { name: 'InvalidChangeBatch' });
          sets.splice(i, 1);
        } else {
          if (rs.Type === 'CNAME' && sets.some((s) => s.Name === rs.Name && s.Type !== 'CNAME')) {
            throw Object.assign(new Error('conflicts with other records'), { name: 'InvalidChangeBatch' });
          }
          if (i >= 0) sets[i] = rs;
          else sets.push(rs);
        }
      }
      return { ChangeInfo: { Id: '/change/C1', Status: 'PENDING', SubmittedAt: new Date() }, $metadata: {} };
    },
    async listResourceRecordSets(input) {
      lists.push(input);
      return {
        ResourceRecordSets: sets.filter((s) => s.Name! >= input.StartRecordName!),
        IsTruncated: false,
        MaxItems: 10,
        $metadata: {},
      };
    },
    async getChange(input) {
      polls++;
      return {
        ChangeInfo: { Id: input.Id, Status: polls >= 2 ? 'INSYNC' : 'PENDING', SubmittedAt: new Date() },
        $metadata: {},
      };
    },
  };
  return { api, sets, changes, lists, polls: () => polls };
}

describe('route53 DNS provider (fake client)', () => {
  it('UPSERTs an A record plus the TXT metadata in one batch, then waits for INSYNC', async () => {
    const z = fakeZone();
    const dns = new Route53DnsProvider({ hostedZoneId: 'Z0HOSTED', zone: ZONE, api: z.api, pollMs: 1 });
    await dns.upsert(PRIMARY, { region: 'eu-west-1', host: '10.1.2.3', port: 5432 }, 5);
    expect(z.changes).toEqual([
      {
        HostedZoneId: 'Z0HOSTED',
        ChangeBatch: {
          Comment: `regionctl: ${PRIMARY} -> eu-west-1`,
          Changes: [
            {
              Action: 'UPSERT',
              ResourceRecordSet: {
                Name: `${PRIMARY}.`,
                Type: 'A',
                TTL: 5,
                ResourceRecords: [{ Value: '10.1.2.3' }],
              },
            },
            {
              Action: 'UPSERT',
              ResourceRecordSet: {
                Name: `_regionctl.${PRIMARY}.`,
                Type: 'TXT',
                TTL: 5,
                ResourceRecords: [{ Value: '"region=eu-west-1" "port=5432"' }],
              },
            },
          ],
        },
      },
    ]);
    expect(z.polls()).toBe(2);
    expect(await dns.lookup(PRIMARY)).toEqual({ host: '10.1.2.3', region: 'eu-west-1', port: 5432 });
  });

  it('moving from an address to a host name DELETEs the A exactly as listed, in the same batch', async () => {
    const a: ResourceRecordSet = {
      Name: `${PRIMARY}.`,
      Type: 'A',
      TTL: 5,
      ResourceRecords: [{ Value: '10.1.2.3' }],
    };
    const z = fakeZone([a]);
    const dns = new Route53DnsProvider({
      hostedZoneId: 'Z0HOSTED',
      zone: ZONE,
      api: z.api,
      waitInSync: false,
    });
    await dns.upsert(
      `${PRIMARY}.`,
      { region: 'us-east-1', host: 'pg.us-east-1.example.net.', port: 5432 },
      5,
    );
    const batch = z.changes[0]!.ChangeBatch!.Changes!;
    expect(batch[0]).toEqual({ Action: 'DELETE', ResourceRecordSet: a });
    expect(batch[1]!.ResourceRecordSet).toMatchObject({
      Type: 'CNAME',
      ResourceRecords: [{ Value: 'pg.us-east-1.example.net' }],
    });
    expect(z.polls()).toBe(0);
    expect(await dns.lookup(PRIMARY)).toEqual({
      host: 'pg.us-east-1.example.net',
      region: 'us-east-1',
      port: 5432,
    });
    // Repeating it deletes nothing more (idempotent).
    await dns.upsert(PRIMARY, { region: 'us-east-1', host: 'pg.us-east-1.example.net', port: 5432 }, 5);
    expect(z.changes[1]!.ChangeBatch!.Changes!.map((c) => c.Action)).toEqual(['UPSERT', 'UPSERT']);
  });

  it('AWS errors become RegionctlErrors with a hint; lookup of a missing record is null', async () => {
    const api: Route53Api = {
      changeResourceRecordSets: async () => {
        throw Object.assign(new Error('No hosted zone found with ID: Z0NOPE'), { name: 'NoSuchHostedZone' });
      },
      listResourceRecordSets: async () => ({
        ResourceRecordSets: [],
        IsTruncated: false,
        MaxItems: 10,
        $metadata: {},
      }),
      getChange: async () => ({
        ChangeInfo: { Id: 'C', Status: 'INSYNC', SubmittedAt: new Date() },
        $metadata: {},
      }),
    };
    const dns = new Route53DnsProvider({ hostedZoneId: 'Z0NOPE', zone: ZONE, api });
    expect(await dns.lookup(PRIMARY)).toBeNull();
    await expect(dns.upsert(PRIMARY, { region: 'x', host: '10.0.0.1', port: 1 }, 5)).rejects.toMatchObject({
      code: 'E_DNS_ROUTE53',
      hint: 'check dns.route53.hostedZoneId',
    });
  });

  it('dnsProviderFor picks route53 without contacting AWS', () => {
    const spec = {
      dns: {
        provider: 'route53',
        zone: ZONE,
        ttl: 5,
        primaryRecord: PRIMARY,
        route53: { hostedZoneId: 'Z1' },
      },
    };
    expect(dnsProviderFor(spec as unknown as RegionsSpec, '/').name).toBe('route53');
  });
});

describe('route53 DNS provider (real SDK, captured HTTP)', () => {
  it('serializes to a signed Route 53 REST request and parses the answers', async () => {
    const requests: Array<{
      method: string;
      hostname: string;
      path: string;
      query: unknown;
      auth: string;
      body: string;
    }> = [];
    const listXml = `<?xml version="1.0"?><ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ResourceRecordSets><ResourceRecordSet><Name>${PRIMARY}.</Name><Type>A</Type><TTL>5</TTL><ResourceRecords><ResourceRecord><Value>10.0.0.1</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></ResourceRecordSets><IsTruncated>false</IsTruncated><MaxItems>10</MaxItems></ListResourceRecordSetsResponse>`;
    const changeXml = `<?xml version="1.0"?><ChangeResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeInfo><Id>/change/C9</Id><Status>INSYNC</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>`;
    const client = new Route53Client({
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'not-a-secret' },
      requestHandler: {
        handle: async (req: {
          method: string;
          hostname: string;
          path: string;
          query: unknown;
          headers: Record<string, string>;
          body?: unknown;
        }) => {
          requests.push({
            method: req.method,
            hostname: req.hostname,
            path: req.path,
            query: req.query,
            auth: req.headers.authorization ?? '',
            body: typeof req.body === 'string' ? req.body : '',
          });
          const xml = req.method === 'GET' ? listXml : changeXml;
          return {
            response: {
              statusCode: 200,
              headers: { 'content-type': 'text/xml' },
              body: Readable.from([Buffer.from(xml)]),
            },
          };
        },
      } as unknown as Route53Client['config']['requestHandler'],
    });
    const dns = new Route53DnsProvider({ hostedZoneId: 'Z123', zone: ZONE, api: sdkRoute53Api(client) });
    await dns.upsert(PRIMARY, { region: 'eu-west-1', host: 'pg.example.net', port: 5432 }, 5);
    const post = requests.find((r) => r.method === 'POST')!;
    expect(post.hostname).toBe('route53.amazonaws.com');
    expect(post.path).toBe('/2013-04-01/hostedzone/Z123/rrset');
    expect(post.auth).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/route53\/aws4_request/,
    );
    expect(post.body).toContain(
      '<Action>DELETE</Action><ResourceRecordSet><Name>primary.db.shop.internal.</Name><Type>A</Type>',
    );
    expect(post.body).toContain(
      '<Action>UPSERT</Action><ResourceRecordSet><Name>primary.db.shop.internal.</Name><Type>CNAME</Type><TTL>5</TTL><ResourceRecords><ResourceRecord><Value>pg.example.net</Value>',
    );
    expect(post.body).toContain('<Value>&quot;region=eu-west-1&quot; &quot;port=5432&quot;</Value>');
    const get = requests.find((r) => r.method === 'GET')!;
    expect(get.query).toMatchObject({ name: `${PRIMARY}.`, maxitems: '10' });
    expect(await dns.lookup(PRIMARY)).toEqual({ host: '10.0.0.1' });
  });
});
