/**
 * A private BIND name server for a test: its own directory, a generated TSIG key, one
 * dynamic zone, a free loopback port; `stop()` ends it and removes the directory.
 * Runs named in the foreground (-g), as whoever runs the tests (root works; no -u,
 * because the bind user could not read the temp directory).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exchange } from '../../src/providers/dns/transport.js';
import { decodeMessage, encodeMessage, Opcode, RRClass, RRType } from '../../src/providers/dns/wire.js';

export interface BindKey {
  name: string;
  algorithm: string;
  /** base64 */
  secret: string;
}

export interface BindServer {
  port: number;
  dir: string;
  zone: string;
  /** Full update rights on the zone. */
  key: BindKey;
  /** May only update `limited.<zone>`. */
  limitedKey: BindKey;
  log(): string;
  stop(): Promise<void>;
}

/** A port free for both TCP and UDP on 127.0.0.1 (named listens on both). */
async function freePort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
      });
    });
    const udpFree = await new Promise<boolean>((resolve) => {
      const s = createSocket('udp4');
      s.once('error', () => resolve(false));
      s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (port && udpFree) return port;
  }
  throw new Error('no free loopback port for named');
}

function newKey(name: string): BindKey {
  return { name, algorithm: 'hmac-sha256', secret: randomBytes(32).toString('base64') };
}

export async function startBind(namedPath: string, zone = 'db.shop.internal'): Promise<BindServer> {
  let lastError: unknown;
  // A port can be taken between freePort() and named's bind; try again on another.
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(namedPath, zone, await freePort());
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}

async function startOnce(namedPath: string, zone: string, port: number): Promise<BindServer> {
  const dir = mkdtempSync(join(tmpdir(), 'regionctl-bind-'));
  const key = newKey('regionctl-test');
  const limitedKey = newKey('regionctl-limited');
  const conf = join(dir, 'named.conf');
  writeFileSync(
    conf,
    `key "${key.name}" { algorithm ${key.algorithm}; secret "${key.secret}"; };
key "${limitedKey.name}" { algorithm ${limitedKey.algorithm}; secret "${limitedKey.secret}"; };
options {
  directory "${dir}";
  pid-file "${dir}/named.pid";
  session-keyfile "${dir}/session.key";
  managed-keys-directory "${dir}";
  listen-on port ${port} { 127.0.0.1; };
  listen-on-v6 { none; };
  recursion no;
  dnssec-validation no;
  notify no;
  allow-transfer { none; };
};
controls { };
zone "${zone}" {
  type primary;
  file "${dir}/zone.db";
  update-policy {
    grant ${key.name} zonesub ANY;
    grant ${limitedKey.name} name limited.${zone} ANY;
  };
};
`,
  );
  writeFileSync(
    join(dir, 'zone.db'),
    `$TTL 60
@ IN SOA ns.${zone}. admin.${zone}. 1 60 60 600 60
@ IN NS ns.${zone}.
ns IN A 127.0.0.1
`,
  );
  let output = '';
  const child: ChildProcess = spawn(namedPath, ['-g', '-c', conf, '-p', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`named did not start within 15 s:\n${output}`)), 15_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      if (/\brunning\b/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`named exited with ${code} before it was running:\n${output}`));
    });
  }).catch((e) => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    throw e;
  });
  // "running" is logged a moment before the zone answers (early queries get SERVFAIL).
  const deadline = Date.now() + 10_000;
  for (let id = 1; ; id++) {
    const q = encodeMessage(
      { id, opcode: Opcode.QUERY },
      [{ name: zone, type: RRType.SOA, class: RRClass.IN }],
      [],
      [],
    );
    const ok = await exchange(q, { server: '127.0.0.1', port, transport: 'udp', timeoutMs: 300, attempts: 1 })
      .then((raw) => decodeMessage(raw).header.rcode === 0)
      .catch(() => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`named did not serve ${zone} within 10 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    dir,
    zone,
    key,
    limitedKey,
    log: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
