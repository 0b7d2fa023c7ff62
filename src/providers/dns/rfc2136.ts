/**
 * RFC 2136 dynamic DNS UPDATE, TSIG-signed, against the zone's primary name server
 * (BIND, Knot, PowerDNS, Windows DNS with TSIG...).
 *
 * What one upsert writes, in ONE update message (the server applies it atomically, so a
 * resolver never sees the name without an address or with two):
 *   <record>            A (IPv4 host) | AAAA (IPv6 host) | CNAME (host name)   — what clients resolve
 *   _regionctl.<record> TXT "region=<region>" "port=<port>"                    — for regionctl itself
 * Any earlier A, AAAA and CNAME at <record> is deleted first, so a move from a host name
 * to an address (or back) works. The port and region live on a separate name because a
 * CNAME may not share its name with other data, and because SRV targets must be host
 * names, not addresses. The key therefore needs update rights on both names (BIND:
 * `update-policy { grant KEY zonesub ANY; };`, or `name` grants for the two names).
 *
 * `lookup` asks the same server, unsigned and non-recursive: it is the authoritative
 * answer, not a cached one.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { RegionctlError } from '../../errors.js';
import { resolveSecret } from '../../secrets/resolve.js';
import type { RegionsSpec } from '../../spec/schema.js';
import { checkTarget, type DnsLookupResult, type DnsProvider, type DnsRecordTarget } from './provider.js';
import { type DnsTransport, exchange } from './transport.js';
import {
  type DecodedMessage,
  decodeMessage,
  encodeMessage,
  encodeName,
  hmacFor,
  newId,
  normalizeName,
  Opcode,
  type ResourceRecord,
  RRClass,
  RRType,
  rcodeName,
  rdataA,
  rdataAAAA,
  rdataTXT,
  readA,
  readAAAA,
  readNameRdata,
  readTXT,
  signMessage,
  type TsigKey,
  tsigError,
  verifyResponse,
} from './wire.js';

export const METADATA_PREFIX = '_regionctl.';

export interface Rfc2136Options {
  zone: string;
  server: string;
  /** Default 53. */
  port?: number;
  /** Called per update, so a rotated secret file is picked up and the secret is not kept. */
  key: () => TsigKey;
  /** Default udp (falls back to tcp for truncated answers). */
  transport?: DnsTransport;
  /** Per attempt; default 2000. */
  timeoutMs?: number;
  /** UDP attempts; default 3. */
  attempts?: number;
}

const TSIG_HINTS: Record<number, string> = {
  16: "the TSIG secret differs from the server's secret for this key name: check dns.rfc2136.keySecret (base64, as in the server's key statement)",
  17: "the server does not know this key name/algorithm: check dns.rfc2136.keyName and keyAlgorithm against the server's key statement",
  18: 'the clocks of this host and the name server differ by more than 5 minutes: fix NTP',
  22: 'the server rejected a truncated MAC',
};

const RCODE_HINTS: Record<number, string> = {
  5: 'the server refuses this update: grant the key update rights on the record and on its _regionctl. name (BIND: update-policy { grant KEY zonesub ANY; })',
  9: "the server is not authoritative for the zone (or rejected the signature): check dns.zone and that dns.rfc2136.server is the zone's primary",
  10: 'the record is not inside the zone: check dns.zone and the record names',
  2: 'the name server failed to apply the update: see its log',
};

export class Rfc2136DnsProvider implements DnsProvider {
  readonly name = 'rfc2136' as const;
  private readonly zone: string;
  private readonly port: number;

  constructor(private readonly opts: Rfc2136Options) {
    this.zone = normalizeName(opts.zone);
    this.port = opts.port ?? 53;
  }

  private where(): string {
    return `${this.opts.server}:${this.port}`;
  }

  private checkInZone(record: string): string {
    const r = normalizeName(record);
    if (r !== this.zone && !r.endsWith(`.${this.zone}`)) {
      throw new RegionctlError(
        'E_DNS_RECORD_OUTSIDE_ZONE',
        `DNS record ${record} is not inside zone ${this.opts.zone}`,
        'every record in dns: must end with dns.zone',
      );
    }
    encodeName(r);
    return r;
  }

  async upsert(record: string, target: DnsRecordTarget, ttl: number): Promise<void> {
    const name = this.checkInZone(record);
    checkTarget(target, ttl);
    const meta = `${METADATA_PREFIX}${name}`;
    const del = (n: string, type: number): ResourceRecord => ({
      name: n,
      type,
      class: RRClass.ANY,
      ttl: 0,
      rdata: new Uint8Array(0),
    });
    const host = target.host.replace(/\.$/, '');
    const address: ResourceRecord = isIPv4(host)
      ? { name, type: RRType.A, class: RRClass.IN, ttl, rdata: rdataA(host) }
      : isIPv6(host)
        ? { name, type: RRType.AAAA, class: RRClass.IN, ttl, rdata: rdataAAAA(host) }
        : { name, type: RRType.CNAME, class: RRClass.IN, ttl, rdata: encodeName(host) };
    const updates: ResourceRecord[] = [
      del(name, RRType.A),
      del(name, RRType.AAAA),
      del(name, RRType.CNAME),
      address,
      del(meta, RRType.TXT),
      {
        name: meta,
        type: RRType.TXT,
        class: RRClass.IN,
        ttl,
        rdata: rdataTXT([`region=${target.region}`, `port=${target.port}`]),
      },
    ];
    const key = this.opts.key();
    const id = newId();
    const unsigned = encodeMessage(
      { id, opcode: Opcode.UPDATE },
      [{ name: this.zone, type: RRType.SOA, class: RRClass.IN }],
      [],
      updates,
    );
    const signed = signMessage(unsigned, key);
    const res = await this.send(signed.bytes, id, Opcode.UPDATE);
    const what = `DNS update of ${name} at ${this.where()} (key ${key.name})`;

    const terr = tsigError(res);
    if (terr !== 0) {
      throw new RegionctlError(
        'E_DNS_TSIG_REFUSED',
        `${what} refused: TSIG ${rcodeName(terr)} (rcode ${rcodeName(res.header.rcode)})`,
        TSIG_HINTS[terr],
      );
    }
    if (res.header.rcode !== 0) {
      throw new RegionctlError(
        res.header.rcode === 5 ? 'E_DNS_UPDATE_REFUSED' : 'E_DNS_UPDATE_FAILED',
        `${what} failed: ${rcodeName(res.header.rcode)}`,
        RCODE_HINTS[res.header.rcode],
      );
    }
    // NOERROR alone could be forged by anyone on the path; only a valid server MAC proves it.
    const check = verifyResponse(res, key, signed.mac);
    if (!check.ok) {
      throw new RegionctlError(
        'E_DNS_TSIG_RESPONSE',
        `${what}: the server's answer ${check.reason === 'unsigned' ? 'is not signed' : `failed TSIG verification (${check.reason})`}; the update may or may not have been applied`,
        'check that dns.rfc2136.server is the real name server and the key matches; run the failover again (the update is idempotent)',
      );
    }
  }

  async lookup(record: string): Promise<DnsLookupResult | null> {
    const name = this.checkInZone(record);
    const [a, aaaa, txt] = await Promise.all([
      this.query(name, RRType.A),
      this.query(name, RRType.AAAA),
      this.query(`${METADATA_PREFIX}${name}`, RRType.TXT),
    ]);
    let host: string | undefined;
    for (const m of [a, aaaa]) {
      const cname = m.answers.find((rr) => rr.name === name && rr.type === RRType.CNAME);
      if (cname) host ??= readNameRdata(m, cname);
    }
    host ??= a.answers.filter((rr) => rr.name === name && rr.type === RRType.A).map(readA)[0];
    host ??= aaaa.answers.filter((rr) => rr.name === name && rr.type === RRType.AAAA).map(readAAAA)[0];
    if (host === undefined) return null;
    const result: DnsLookupResult = { host };
    const strings = txt.answers.filter((rr) => rr.type === RRType.TXT).flatMap(readTXT);
    for (const s of strings) {
      const [k, v] = s.split('=', 2);
      if (k === 'region' && v) result.region = v;
      if (k === 'port' && v && /^\d+$/.test(v)) result.port = Number(v);
    }
    return result;
  }

  private async query(name: string, type: number): Promise<DecodedMessage> {
    const id = newId();
    const req = encodeMessage({ id, opcode: Opcode.QUERY }, [{ name, type, class: RRClass.IN }], [], []);
    const res = await this.send(req, id, Opcode.QUERY);
    if (res.header.rcode !== 0 && res.header.rcode !== 3) {
      throw new RegionctlError(
        'E_DNS_QUERY_FAILED',
        `DNS query for ${name} at ${this.where()} failed: ${rcodeName(res.header.rcode)}`,
        res.header.rcode === 5
          ? 'the server refuses queries from this host (allow-query) or is not authoritative for the zone'
          : undefined,
      );
    }
    return res;
  }

  private async send(bytes: Buffer, id: number, opcode: number): Promise<DecodedMessage> {
    const raw = await exchange(bytes, {
      server: this.opts.server,
      port: this.port,
      transport: this.opts.transport ?? 'udp',
      timeoutMs: this.opts.timeoutMs ?? 2000,
      attempts: this.opts.attempts ?? 3,
    });
    const res = decodeMessage(raw);
    if (!res.header.qr || res.header.id !== id || res.header.opcode !== opcode) {
      throw new RegionctlError(
        'E_DNS_MALFORMED',
        `the answer from ${this.where()} does not match the request (id/opcode)`,
        'is the configured server/port really a DNS server?',
      );
    }
    return res;
  }
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** The rfc2136 provider from `dns.rfc2136`; the key secret is read at each update. */
export function rfc2136FromSpec(spec: RegionsSpec, specDir: string): Rfc2136DnsProvider {
  const dns = spec.dns;
  const cfg = dns?.rfc2136;
  if (!dns || !cfg) {
    throw new RegionctlError(
      'E_DNS_CONFIG',
      'dns.provider is rfc2136 but dns.rfc2136 is missing',
      'add dns.rfc2136 with server, keyName and keySecret',
    );
  }
  const algorithm = cfg.keyAlgorithm ?? 'hmac-sha256';
  hmacFor(algorithm);
  return new Rfc2136DnsProvider({
    zone: dns.zone,
    server: cfg.server,
    ...(cfg.port !== undefined ? { port: cfg.port } : {}),
    key: () => {
      const raw = resolveSecret(cfg.keySecret, specDir, `TSIG key ${cfg.keyName}`).replace(/\s+/g, '');
      if (!BASE64.test(raw)) {
        throw new RegionctlError(
          'E_DNS_TSIG_SECRET',
          `TSIG key ${cfg.keyName}: the secret is not base64`,
          "give the base64 secret exactly as in the server's key statement (tsig-keygen prints it)",
        );
      }
      return { name: cfg.keyName, algorithm, secret: Buffer.from(raw, 'base64') };
    },
  });
}
