/**
 * Just enough of the DNS wire format (RFC 1035), dynamic UPDATE (RFC 2136) and TSIG
 * (RFC 8945) for the rfc2136 provider: build an UPDATE or a query, sign it, decode the
 * answer and verify the server's signature. Written here rather than pulled from npm
 * because no small pure-JS package does TSIG, and signing needs the exact bytes.
 */
import { createHmac, randomInt, timingSafeEqual } from 'node:crypto';
import { RegionctlError } from '../../errors.js';

export const RRType = { A: 1, NS: 2, CNAME: 5, SOA: 6, TXT: 16, AAAA: 28, TSIG: 250, ANY: 255 } as const;
export const RRClass = { IN: 1, NONE: 254, ANY: 255 } as const;
export const Opcode = { QUERY: 0, UPDATE: 5 } as const;

export const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  6: 'YXDOMAIN',
  7: 'YXRRSET',
  8: 'NXRRSET',
  9: 'NOTAUTH',
  10: 'NOTZONE',
  16: 'BADSIG',
  17: 'BADKEY',
  18: 'BADTIME',
  22: 'BADTRUNC',
};

export function rcodeName(code: number): string {
  return RCODE_NAMES[code] ?? `RCODE${code}`;
}

export interface ResourceRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  rdata: Uint8Array;
}

/** Lower-case, no trailing dot: the form names are compared in. */
export function normalizeName(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

const LABEL = /^[A-Za-z0-9_*-]{1,63}$/;

/** Uncompressed wire form; lower-cased, which is also TSIG's canonical form. */
export function encodeName(name: string): Buffer {
  const n = normalizeName(name);
  if (n === '') return Buffer.from([0]);
  const parts: Buffer[] = [];
  for (const label of n.split('.')) {
    if (!LABEL.test(label)) {
      throw new RegionctlError(
        'E_DNS_NAME_INVALID',
        `DNS name ${JSON.stringify(name)} has an invalid label ${JSON.stringify(label)}`,
        'use letters, digits, "-" and "_" only, at most 63 characters per label',
      );
    }
    parts.push(Buffer.from([label.length]), Buffer.from(label, 'ascii'));
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > 255) {
    throw new RegionctlError('E_DNS_NAME_INVALID', `DNS name ${name} is longer than 255 octets`);
  }
  return out;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function u48(n: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUIntBE(n, 0, 6);
  return b;
}

export function encodeRR(rr: ResourceRecord): Buffer {
  return Buffer.concat([
    encodeName(rr.name),
    u16(rr.type),
    u16(rr.class),
    u32(rr.ttl),
    u16(rr.rdata.length),
    Buffer.from(rr.rdata),
  ]);
}

export function rdataA(ip: string): Buffer {
  const parts = ip.split('.').map(Number);
  return Buffer.from(parts);
}

export function rdataAAAA(ip: string): Buffer {
  // Expand "::" so every group is present, then 8 groups of 16 bits.
  const [head = '', tail] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return Buffer.concat(groups.map((g) => u16(Number.parseInt(g, 16))));
}

/** TXT rdata: each string is length-prefixed (at most 255 octets). */
export function rdataTXT(strings: string[]): Buffer {
  return Buffer.concat(
    strings.map((s) => {
      const b = Buffer.from(s, 'utf8');
      if (b.length > 255) throw new RegionctlError('E_DNS_TXT_TOO_LONG', `TXT string longer than 255 octets`);
      return Buffer.concat([Buffer.from([b.length]), b]);
    }),
  );
}

export interface Header {
  id: number;
  qr: boolean;
  opcode: number;
  aa: boolean;
  tc: boolean;
  rd: boolean;
  rcode: number;
}

export interface Question {
  name: string;
  type: number;
  class: number;
}

/**
 * Builds a message. For UPDATE the four sections are zone, prerequisite, update and
 * additional (RFC 2136 §2); the layout is the same as question/answer/authority/additional.
 */
export function encodeMessage(
  h: { id: number; opcode: number; rd?: boolean },
  questions: Question[],
  answers: ResourceRecord[],
  authority: ResourceRecord[],
  additional: ResourceRecord[] = [],
): Buffer {
  const flags = ((h.opcode & 0xf) << 11) | (h.rd ? 0x0100 : 0);
  const header = Buffer.concat([
    u16(h.id),
    u16(flags),
    u16(questions.length),
    u16(answers.length),
    u16(authority.length),
    u16(additional.length),
  ]);
  return Buffer.concat([
    header,
    ...questions.map((q) => Buffer.concat([encodeName(q.name), u16(q.type), u16(q.class)])),
    ...answers.map(encodeRR),
    ...authority.map(encodeRR),
    ...additional.map(encodeRR),
  ]);
}

export interface DecodedRR extends ResourceRecord {
  /** Offset of the record in the message (TSIG verification needs the bytes before it). */
  offset: number;
  /** Offset of rdata in the message, to follow compression pointers inside it. */
  rdataOffset: number;
}

export interface DecodedMessage {
  header: Header;
  questions: Question[];
  answers: DecodedRR[];
  authority: DecodedRR[];
  additional: DecodedRR[];
  raw: Buffer;
}

function malformed(what: string): RegionctlError {
  return new RegionctlError(
    'E_DNS_MALFORMED',
    `malformed DNS message from the name server: ${what}`,
    'is the configured server/port really a DNS server?',
  );
}

/** Reads a possibly compressed name at `offset`; returns it and the offset after it. */
export function decodeName(buf: Buffer, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = offset;
  let next = -1;
  let jumps = 0;
  for (;;) {
    if (pos >= buf.length) throw malformed('name runs past the end');
    const len = buf[pos]!;
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) throw malformed('truncated compression pointer');
      if (++jumps > 64) throw malformed('compression loop');
      if (next < 0) next = pos + 2;
      pos = ((len & 0x3f) << 8) | buf[pos + 1]!;
      continue;
    }
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if (pos + 1 + len > buf.length) throw malformed('label runs past the end');
    labels.push(buf.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  return { name: labels.join('.').toLowerCase(), next };
}

export function decodeMessage(buf: Buffer): DecodedMessage {
  if (buf.length < 12) throw malformed('shorter than a header');
  const flags = buf.readUInt16BE(2);
  const header: Header = {
    id: buf.readUInt16BE(0),
    qr: (flags & 0x8000) !== 0,
    opcode: (flags >> 11) & 0xf,
    aa: (flags & 0x0400) !== 0,
    tc: (flags & 0x0200) !== 0,
    rd: (flags & 0x0100) !== 0,
    rcode: flags & 0xf,
  };
  const counts = [buf.readUInt16BE(4), buf.readUInt16BE(6), buf.readUInt16BE(8), buf.readUInt16BE(10)];
  let pos = 12;
  const questions: Question[] = [];
  for (let i = 0; i < counts[0]!; i++) {
    const { name, next } = decodeName(buf, pos);
    if (next + 4 > buf.length) throw malformed('truncated question');
    questions.push({ name, type: buf.readUInt16BE(next), class: buf.readUInt16BE(next + 2) });
    pos = next + 4;
  }
  const sections: DecodedRR[][] = [[], [], []];
  for (let s = 0; s < 3; s++) {
    for (let i = 0; i < counts[s + 1]!; i++) {
      const offset = pos;
      const { name, next } = decodeName(buf, pos);
      if (next + 10 > buf.length) throw malformed('truncated record header');
      const rdlen = buf.readUInt16BE(next + 8);
      const rdataOffset = next + 10;
      if (rdataOffset + rdlen > buf.length) throw malformed('truncated rdata');
      sections[s]!.push({
        name,
        type: buf.readUInt16BE(next),
        class: buf.readUInt16BE(next + 2),
        ttl: buf.readUInt32BE(next + 4),
        rdata: buf.subarray(rdataOffset, rdataOffset + rdlen),
        offset,
        rdataOffset,
      });
      pos = rdataOffset + rdlen;
    }
  }
  return {
    header,
    questions,
    answers: sections[0]!,
    authority: sections[1]!,
    additional: sections[2]!,
    raw: buf,
  };
}

export function readA(rr: DecodedRR): string {
  return Array.from(rr.rdata).join('.');
}

export function readAAAA(rr: DecodedRR): string {
  const groups: string[] = [];
  for (let i = 0; i + 1 < rr.rdata.length; i += 2)
    groups.push(((rr.rdata[i]! << 8) | rr.rdata[i + 1]!).toString(16));
  return groups.join(':');
}

export function readNameRdata(msg: DecodedMessage, rr: DecodedRR): string {
  return decodeName(msg.raw, rr.rdataOffset).name;
}

export function readTXT(rr: DecodedRR): string[] {
  const out: string[] = [];
  const d = Buffer.from(rr.rdata);
  let pos = 0;
  while (pos < d.length) {
    const len = d[pos]!;
    out.push(d.toString('utf8', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  return out;
}

// --- TSIG (RFC 8945) ---------------------------------------------------------------

export interface TsigKey {
  name: string;
  /** e.g. hmac-sha256 */
  algorithm: string;
  secret: Buffer;
}

const HMAC_ALGORITHMS: Record<string, string> = {
  'hmac-sha1': 'sha1',
  'hmac-sha224': 'sha224',
  'hmac-sha256': 'sha256',
  'hmac-sha384': 'sha384',
  'hmac-sha512': 'sha512',
};

export function hmacFor(algorithm: string): string {
  const h = HMAC_ALGORITHMS[normalizeName(algorithm)];
  if (!h) {
    throw new RegionctlError(
      'E_DNS_TSIG_ALGORITHM',
      `TSIG algorithm ${algorithm} is not supported`,
      `use one of ${Object.keys(HMAC_ALGORITHMS).join(', ')} (hmac-sha256 is the default and recommended)`,
    );
  }
  return h;
}

const FUDGE_SECONDS = 300;

function tsigVariables(
  key: TsigKey,
  timeSigned: number,
  fudge: number,
  error: number,
  other: Buffer,
): Buffer {
  return Buffer.concat([
    encodeName(key.name),
    u16(RRClass.ANY),
    u32(0),
    encodeName(key.algorithm),
    u48(timeSigned),
    u16(fudge),
    u16(error),
    u16(other.length),
    other,
  ]);
}

function withArcount(msg: Buffer, arcount: number, id?: number): Buffer {
  const copy = Buffer.from(msg);
  copy.writeUInt16BE(arcount, 10);
  if (id !== undefined) copy.writeUInt16BE(id, 0);
  return copy;
}

export interface SignedMessage {
  bytes: Buffer;
  /** The request MAC: the response's MAC covers it. */
  mac: Buffer;
}

/** Appends a TSIG record to a finished message (the TSIG record is always last). */
export function signMessage(msg: Buffer, key: TsigKey, now = Date.now()): SignedMessage {
  const timeSigned = Math.floor(now / 1000);
  const id = msg.readUInt16BE(0);
  const mac = createHmac(hmacFor(key.algorithm), key.secret)
    .update(msg)
    .update(tsigVariables(key, timeSigned, FUDGE_SECONDS, 0, Buffer.alloc(0)))
    .digest();
  const rdata = Buffer.concat([
    encodeName(key.algorithm),
    u48(timeSigned),
    u16(FUDGE_SECONDS),
    u16(mac.length),
    mac,
    u16(id),
    u16(0),
    u16(0),
  ]);
  const tsig = encodeRR({ name: key.name, type: RRType.TSIG, class: RRClass.ANY, ttl: 0, rdata });
  const bytes = Buffer.concat([withArcount(msg, msg.readUInt16BE(10) + 1), tsig]);
  return { bytes, mac };
}

export interface TsigRdata {
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
}

export function decodeTsig(msg: DecodedMessage, rr: DecodedRR): TsigRdata {
  const { name: algorithm, next } = decodeName(msg.raw, rr.rdataOffset);
  const b = msg.raw;
  const end = rr.rdataOffset + rr.rdata.length;
  if (next + 10 > end) throw malformed('truncated TSIG');
  const timeSigned = b.readUIntBE(next, 6);
  const fudge = b.readUInt16BE(next + 6);
  const macLen = b.readUInt16BE(next + 8);
  let p = next + 10;
  if (p + macLen + 6 > end) throw malformed('truncated TSIG MAC');
  const mac = Buffer.from(b.subarray(p, p + macLen));
  p += macLen;
  const originalId = b.readUInt16BE(p);
  const error = b.readUInt16BE(p + 2);
  const otherLen = b.readUInt16BE(p + 4);
  const other = Buffer.from(b.subarray(p + 6, p + 6 + otherLen));
  return { algorithm, timeSigned, fudge, mac, originalId, error, other };
}

export type TsigCheck =
  | { ok: true }
  | { ok: false; reason: 'unsigned' | 'bad-mac' | 'bad-time' | 'wrong-key'; error?: number };

/** Verifies a response's TSIG against the request MAC (RFC 8945 §5.3). */
export function verifyResponse(
  msg: DecodedMessage,
  key: TsigKey,
  requestMac: Buffer,
  now = Date.now(),
): TsigCheck {
  const last = msg.additional[msg.additional.length - 1];
  if (!last || last.type !== RRType.TSIG) return { ok: false, reason: 'unsigned' };
  const t = decodeTsig(msg, last);
  if (last.name !== normalizeName(key.name) || t.algorithm !== normalizeName(key.algorithm)) {
    return { ok: false, reason: 'wrong-key', error: t.error };
  }
  if (t.mac.length === 0) return { ok: false, reason: 'bad-mac', error: t.error };
  const body = withArcount(msg.raw.subarray(0, last.offset), msg.additional.length - 1, t.originalId);
  const expected = createHmac(hmacFor(key.algorithm), key.secret)
    .update(u16(requestMac.length))
    .update(requestMac)
    .update(body)
    .update(tsigVariables(key, t.timeSigned, t.fudge, t.error, t.other))
    .digest();
  if (expected.length !== t.mac.length || !timingSafeEqual(expected, t.mac)) {
    return { ok: false, reason: 'bad-mac', error: t.error };
  }
  if (Math.abs(Math.floor(now / 1000) - t.timeSigned) > t.fudge) {
    return { ok: false, reason: 'bad-time', error: t.error };
  }
  return { ok: true };
}

/** A TSIG-error code carried inside the response's TSIG record, if any (BADSIG, BADKEY, BADTIME). */
export function tsigError(msg: DecodedMessage): number {
  const last = msg.additional[msg.additional.length - 1];
  if (!last || last.type !== RRType.TSIG) return 0;
  return decodeTsig(msg, last).error;
}

export function newId(): number {
  return randomInt(0, 0x10000);
}
