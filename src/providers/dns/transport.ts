/**
 * One DNS request/response exchange over UDP (with TCP fallback when the answer is
 * truncated) or TCP. Retransmission over UDP is safe for our UPDATEs because each one
 * is a complete "delete these RRsets, add these records" and so idempotent.
 */
import { createSocket } from 'node:dgram';
import { isIPv6, Socket } from 'node:net';
import { RegionctlError } from '../../errors.js';

export type DnsTransport = 'udp' | 'tcp';

export interface ExchangeOptions {
  server: string;
  port: number;
  transport: DnsTransport;
  /** Per attempt. */
  timeoutMs: number;
  /** UDP attempts before giving up. */
  attempts: number;
}

function unreachable(opts: ExchangeOptions, detail: string): RegionctlError {
  return new RegionctlError(
    'E_DNS_UNREACHABLE',
    `name server ${opts.server}:${opts.port} (${opts.transport}) did not answer: ${detail}`,
    'check dns.rfc2136.server and port, and that the server listens there and a firewall lets DNS through',
  );
}

function udpOnce(req: Buffer, opts: ExchangeOptions): Promise<Buffer | undefined> {
  const id = req.readUInt16BE(0);
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIPv6(opts.server) ? 'udp6' : 'udp4');
    const done = (err: Error | undefined, value?: Buffer) => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => done(undefined, undefined), opts.timeoutMs);
    sock.on('error', (e) => done(e));
    sock.on('message', (msg) => {
      // Ignore stray datagrams; only our id is an answer (a spoofed one still fails TSIG).
      if (msg.length >= 2 && msg.readUInt16BE(0) === id) done(undefined, msg);
    });
    sock.send(req, opts.port, opts.server, (e) => {
      if (e) done(e);
    });
  });
}

async function udp(req: Buffer, opts: ExchangeOptions): Promise<Buffer> {
  let last = 'timeout';
  for (let i = 0; i < Math.max(1, opts.attempts); i++) {
    try {
      const res = await udpOnce(req, opts);
      if (res) return res;
      last = `no answer within ${opts.timeoutMs} ms, ${i + 1} attempt(s)`;
    } catch (e) {
      last = (e as Error).message;
    }
  }
  throw unreachable(opts, last);
}

function tcp(req: Buffer, opts: ExchangeOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(unreachable(opts, `no answer within ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    const fail = (detail: string) => {
      clearTimeout(timer);
      sock.destroy();
      reject(unreachable(opts, detail));
    };
    sock.on('error', (e) => fail(e.message));
    sock.on('data', (d) => {
      chunks.push(d);
      size += d.length;
      const all = Buffer.concat(chunks, size);
      if (all.length >= 2 && all.length >= 2 + all.readUInt16BE(0)) {
        clearTimeout(timer);
        sock.end();
        resolve(all.subarray(2, 2 + all.readUInt16BE(0)));
      }
    });
    sock.on('end', () => fail('connection closed before a full answer'));
    sock.connect(opts.port, opts.server, () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(req.length);
      sock.write(Buffer.concat([len, req]));
    });
  });
}

/** Sends `req`, returns the raw answer. `isTruncated` decides the TCP retry for UDP answers. */
export async function exchange(req: Buffer, opts: ExchangeOptions): Promise<Buffer> {
  if (opts.transport === 'tcp' || req.length > 512) return tcp(req, { ...opts, transport: 'tcp' });
  const res = await udp(req, opts);
  const truncated = res.length >= 4 && (res.readUInt16BE(2) & 0x0200) !== 0;
  return truncated ? tcp(req, { ...opts, transport: 'tcp' }) : res;
}
