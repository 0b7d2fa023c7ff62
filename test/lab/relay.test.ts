/**
 * The WAN lab's delay relay on loopback: the whole of 127/8 is local on Linux, so distinct
 * 127.0.0.x addresses stand in for the namespaces' source and proxy addresses. Timing
 * assertions are lower bounds only (a loaded machine may be slow, never early).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import {
  parseRelayConfig,
  type Relay,
  type RelayConfig,
  type RelayErrorEvent,
  relayConfigProblems,
  rttBetween,
  startRelay,
} from '../../src/lab/wan/relay.js';

const RELAY_HOST = '127.0.0.5';
const UPSTREAM_HOST = '127.0.0.6';
const A = { name: 'a', address: '127.0.0.1', bindAddress: '127.0.0.3' };
const B = { name: 'b', address: '127.0.0.2', bindAddress: '127.0.0.4' };
const UNKNOWN_SOURCE = '127.0.0.9';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Upstream {
  port: number;
  /** Accepted sockets, in order. */
  sockets: net.Socket[];
  next(): Promise<net.Socket>;
}

/** An echo server (half-close aware: it ends its side when the peer ends). */
async function echoServer(mode: 'echo' | 'stalled' = 'echo'): Promise<Upstream> {
  const sockets: net.Socket[] = [];
  const waiting: ((s: net.Socket) => void)[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    if (mode === 'echo') s.pipe(s);
    else s.pause();
    sockets.push(s);
    waiting.shift()?.(s);
  });
  await new Promise<void>((resolve) => server.listen(0, UPSTREAM_HOST, resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    next: () => new Promise((resolve) => waiting.push(resolve)),
  };
}

function config(upstreamPort: number, rttMs: RelayConfig['rttMs'] = {}, extra: Partial<RelayConfig> = {}) {
  return {
    listeners: [
      {
        target: 'echo',
        listen: { host: RELAY_HOST, port: 0 },
        upstream: { host: UPSTREAM_HOST, port: upstreamPort },
      },
    ],
    sources: [A, B],
    rttMs,
    ...extra,
  } satisfies RelayConfig;
}

async function relayFor(c: RelayConfig, onError?: (e: RelayErrorEvent) => void): Promise<Relay> {
  const relay = await startRelay(c, onError ? { onError } : {});
  cleanups.push(() => relay.close());
  return relay;
}

function connect(relay: Relay, localAddress: string, allowHalfOpen = true): Promise<net.Socket> {
  const { host, port } = relay.addresses()[0]!;
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress, allowHalfOpen, noDelay: true }, () => resolve(s));
    s.once('error', reject);
    cleanups.push(() => {
      s.destroy();
    });
  });
}

/** Round trip of one byte through an echo, in ms. */
function ping(s: net.Socket): Promise<number> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    s.once('data', () => resolve(performance.now() - t0));
    s.write('x');
  });
}

async function pings(s: net.Socket, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await ping(s));
  return out;
}

/** Sends data, half-closes, and resolves with the hash of everything echoed back until the echo ends. */
function echoRoundTrip(s: net.Socket, data: Buffer): Promise<{ hash: string; length: number }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let length = 0;
    s.on('data', (c: Buffer) => {
      hash.update(c);
      length += c.length;
    });
    s.once('end', () => resolve({ hash: hash.digest('hex'), length }));
    s.once('error', reject);
    s.end(data);
  });
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function closed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed && s.closed) resolve();
    else s.once('close', () => resolve());
  });
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('delay relay', () => {
  it('carries 20 MB intact and in order at 0 ms and at a 20 ms round trip', async () => {
    const up = await echoServer();
    const data = randomBytes(20 * 1024 * 1024);
    for (const rtt of [0, 20]) {
      const relay = await relayFor(config(up.port, { a: { echo: rtt } }));
      const s = await connect(relay, A.address);
      const got = await echoRoundTrip(s, data);
      expect(got.length).toBe(data.length);
      expect(got.hash).toBe(sha256(data));
      // Both directions counted.
      expect(relay.stats().bytes).toBe(2 * data.length);
      await closed(s);
      await until(() => relay.stats().connections === 0, 'the relay to forget the connection');
      expect(relay.stats()).toMatchObject({ accepted: 1, queuedBytes: 0 });
    }
  });

  it('delays per source: a 100 ms source waits a round trip, a 0 ms source does not', async () => {
    const up = await echoServer();
    const relay = await relayFor(config(up.port, { a: { echo: 100 }, b: { echo: 0 } }));
    const sa = await connect(relay, A.address);
    const sb = await connect(relay, B.address);
    const ra = await pings(sa, 3);
    const rb = await pings(sb, 20);
    for (const r of ra) expect(r).toBeGreaterThanOrEqual(100);
    // Relative, not a wall-clock ceiling: even a slow machine answers 0 ms pings faster than 100 ms ones.
    expect(Math.min(...rb)).toBeLessThan(Math.min(...ra));
    expect(
      relay
        .connections()
        .map((c) => [c.source, c.oneWayDelayMs])
        .sort(),
    ).toEqual([
      ['a', 50],
      ['b', 0],
    ]);
  });

  it('binds the upstream leg to the source bindAddress; an unknown source gets the default delay and no bind', async () => {
    const up = await echoServer();
    const relay = await relayFor(config(up.port, { a: { echo: 0 } }, { defaultRttMs: 60 }));
    for (const [from, expected] of [
      [A.address, A.bindAddress],
      [B.address, B.bindAddress],
    ] as const) {
      const accepted = up.next();
      await connect(relay, from);
      expect((await accepted).remoteAddress).toBe(expected);
    }
    const accepted = up.next();
    const su = await connect(relay, UNKNOWN_SOURCE);
    expect([A.bindAddress, B.bindAddress]).not.toContain((await accepted).remoteAddress);
    const unknown = relay.connections().find((c) => c.remoteAddress === UNKNOWN_SOURCE);
    expect(unknown).toMatchObject({ source: undefined, bindAddress: undefined, oneWayDelayMs: 30 });
    expect(await ping(su)).toBeGreaterThanOrEqual(60);
    // b has no entry for echo: the default applies to a known source too.
    expect(relay.connections().find((c) => c.source === 'b')?.oneWayDelayMs).toBe(30);
  });

  it('reconfigure changes the delay of an open connection (one direction given counts for both)', async () => {
    const up = await echoServer();
    const relay = await relayFor(config(up.port));
    const s = await connect(relay, A.address);
    const before = await pings(s, 5);
    relay.reconfigure(config(up.port, { echo: { a: 200 } }));
    expect(relay.connections()[0]?.oneWayDelayMs).toBe(100);
    const during = await pings(s, 2);
    for (const r of during) expect(r).toBeGreaterThanOrEqual(200);
    expect(Math.min(...before)).toBeLessThan(Math.min(...during));
    relay.reconfigure(config(up.port));
    expect(relay.connections()[0]?.oneWayDelayMs).toBe(0);
    // Bytes still arrive in order after the delay dropped with chunks in flight.
    s.write('1');
    relay.reconfigure(config(up.port, { a: { echo: 100 } }));
    s.write('2');
    relay.reconfigure(config(up.port));
    s.write('3');
    let got = '';
    await new Promise<void>((resolve) =>
      s.on('data', (c: Buffer) => {
        got += c.toString();
        if (got.length === 3) resolve();
      }),
    );
    expect(got).toBe('123');
  });

  it('propagates a half-close from the client, after the delayed bytes', async () => {
    const up = await echoServer();
    const relay = await relayFor(config(up.port, { a: { echo: 40 } }));
    const s = await connect(relay, A.address);
    const upstream = await until(() => up.sockets.length === 1, 'upstream accept').then(() => up.sockets[0]!);
    let upstreamGot = '';
    upstream.on('data', (c: Buffer) => {
      upstreamGot += c.toString();
    });
    const upstreamEnded = new Promise<string>((resolve) => upstream.once('end', () => resolve(upstreamGot)));
    let clientGot = '';
    s.on('data', (c: Buffer) => {
      clientGot += c.toString();
    });
    const clientEnded = new Promise<string>((resolve) => s.once('end', () => resolve(clientGot)));
    s.end('bye');
    expect(await upstreamEnded).toBe('bye');
    // The echo ends its side in turn; the client gets the echoed bytes, then the end.
    expect(await clientEnded).toBe('bye');
    await Promise.all([closed(s), closed(upstream)]);
  });

  it('propagates a half-close from the upstream while the client keeps sending', async () => {
    const up = await echoServer('stalled');
    const relay = await relayFor(config(up.port));
    const s = await connect(relay, A.address);
    await until(() => up.sockets.length === 1, 'upstream accept');
    const upstream = up.sockets[0]!;
    upstream.resume();
    let upstreamGot = '';
    upstream.on('data', (c: Buffer) => {
      upstreamGot += c.toString();
    });
    const clientEnded = new Promise<void>((resolve) => s.once('end', () => resolve()));
    s.resume();
    upstream.end();
    await clientEnded;
    // Half-open: the other direction still flows.
    s.write('still here');
    await until(() => upstreamGot === 'still here', 'bytes after the upstream half-closed');
  });

  it('closes the upstream when the client goes away, and the client when the upstream does', async () => {
    const up = await echoServer();
    const relay = await relayFor(config(up.port, { a: { echo: 20 } }));

    // A closed socket sends a FIN: to the relay that is an end like any other, passed on after the delay.
    const s1 = await connect(relay, A.address, false);
    await until(() => up.sockets.length === 1, 'upstream accept');
    s1.destroy();
    await closed(up.sockets[0]!);

    const s2 = await connect(relay, A.address, false);
    s2.on('error', () => {});
    s2.resume();
    await until(() => up.sockets.length === 2, 'upstream accept');
    up.sockets[1]!.destroy();
    await closed(s2);

    await until(() => relay.stats().connections === 0, 'the relay to forget both connections');
  });

  it('passes an abort on as an abort, in both directions', async () => {
    const up = await echoServer();
    const relay = await relayFor(config(up.port, { a: { echo: 20 } }));

    const s1 = await connect(relay, A.address);
    await until(() => up.sockets.length === 1, 'upstream accept');
    const upstreamError = new Promise<Error>((resolve) => up.sockets[0]!.once('error', resolve));
    s1.resetAndDestroy();
    expect(await upstreamError).toMatchObject({ code: 'ECONNRESET' });

    const s2 = await connect(relay, A.address);
    const clientError = new Promise<Error>((resolve) => s2.once('error', resolve));
    await until(() => up.sockets.length === 2, 'upstream accept');
    up.sockets[1]!.resetAndDestroy();
    expect(await clientError).toMatchObject({ code: 'ECONNRESET' });
    await closed(s2);

    await until(() => relay.stats().connections === 0, 'the relay to forget both connections');
  });

  it('closes the client when the upstream refuses, and says so', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, UPSTREAM_HOST, resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const errors: RelayErrorEvent[] = [];
    const relay = await relayFor(config(port), (e) => errors.push(e));
    const s = await connect(relay, A.address);
    s.on('error', () => {});
    s.resume();
    await closed(s);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ kind: 'upstream-connect', target: 'echo', source: 'a' });
    expect(errors[0]?.message).toContain('ECONNREFUSED');
  });

  it('stops reading from a sender whose receiver does not read (bounded memory), then delivers everything', async () => {
    const total = 128 * 1024 * 1024;
    const data = randomBytes(total);
    for (const rtt of [0, 20]) {
      const up = await echoServer('stalled');
      const relay = await relayFor(
        config(up.port, { a: { echo: rtt } }, { queueLimitBytes: 4 * 1024 * 1024 }),
      );
      const s = await connect(relay, A.address);
      s.write(data);
      s.end();
      await until(() => up.sockets.length === 1, 'upstream accept');
      let last = -1;
      let stable = 0;
      while (stable < 5) {
        await new Promise((r) => setTimeout(r, 100));
        const now = relay.stats().bytes;
        stable = now === last ? stable + 1 : 0;
        last = now;
      }
      // What the relay took is bounded by kernel socket buffers plus its own limits, far below the 128 MB sent.
      expect(relay.stats().bytes).toBeLessThan(48 * 1024 * 1024);
      expect(relay.stats().queuedBytes).toBeLessThanOrEqual(4 * 1024 * 1024 + 64 * 1024);
      const upstream = up.sockets[0]!;
      const hash = createHash('sha256');
      let length = 0;
      upstream.on('data', (c: Buffer) => {
        hash.update(c);
        length += c.length;
      });
      await new Promise<void>((resolve) => {
        upstream.once('end', () => resolve());
        upstream.resume();
      });
      expect(length).toBe(total);
      expect(hash.digest('hex')).toBe(sha256(data));
    }
  });

  it('names the listener that cannot bind and leaves nothing bound', async () => {
    const up = await echoServer();
    const first = await relayFor(config(up.port));
    const taken = first.addresses()[0]!;
    const c: RelayConfig = {
      ...config(up.port),
      listeners: [
        {
          target: 'free',
          listen: { host: RELAY_HOST, port: 0 },
          upstream: { host: UPSTREAM_HOST, port: up.port },
        },
        {
          target: 'eu-west-1',
          listen: { host: taken.host, port: taken.port },
          upstream: { host: UPSTREAM_HOST, port: up.port },
        },
      ],
    };
    const err = await startRelay(c).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'E_RELAY_LISTEN' });
    expect((err as Error).message).toContain(`listener for eu-west-1 on ${taken.host}:${taken.port}`);
    expect((err as Error).message).toContain('EADDRINUSE');
  });

  it('checks a config and looks up round trips symmetrically', () => {
    expect(
      relayConfigProblems({ listeners: [{ target: '', listen: { host: 'x', port: 70000 } }], sources: 1 }),
    ).toEqual([
      'listeners[0].target must be a non-empty string',
      'listeners[0].listen.port must be an integer 0-65535',
      'listeners[0].upstream must be an object { host, port }',
      'sources must be an array',
      'rttMs must be an object { source: { target: ms } }',
    ]);
    expect(
      relayConfigProblems({
        listeners: [],
        sources: [
          { name: 'a', address: '::ffff:10.0.0.1' },
          { name: 'b', address: '10.0.0.1' },
        ],
        rttMs: { a: { r: -1 } },
      }),
    ).toEqual([
      "sources[1].address 10.0.0.1 is also a's: a source must be unambiguous",
      'rttMs.a.r must be a number of ms >= 0',
    ]);
    expect(() => parseRelayConfig('{', 'relay.json')).toThrow(/relay.json: not valid JSON/);
    const c: RelayConfig = {
      listeners: [],
      sources: [],
      rttMs: { a: { r: 10 }, r: { b: 20 } },
      defaultRttMs: 5,
    };
    expect(rttBetween(c, 'a', 'r')).toBe(10);
    expect(rttBetween(c, 'b', 'r')).toBe(20);
    expect(rttBetween(c, 'c', 'r')).toBe(5);
    expect(rttBetween(c, undefined, 'r')).toBe(5);
  });
});

describe('relay-main', () => {
  function run(args: string[]): {
    child: ChildProcess;
    events: Record<string, unknown>[];
    exit: Promise<number | null>;
  } {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/lab/wan/relay-main.ts', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const events: Record<string, unknown>[] = [];
    createInterface({ input: child.stderr! }).on('line', (l) => events.push(JSON.parse(l)));
    const exit = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    cleanups.push(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    return { child, events, exit };
  }

  it('writes its pid file once listening, reloads on SIGHUP, stops on SIGTERM', async () => {
    const up = await echoServer();
    const dir = mkdtempSync(join(tmpdir(), 'regionctl-relay-test-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const configFile = join(dir, 'relay.json');
    const pidFile = join(dir, 'relay.pid');
    writeFileSync(configFile, JSON.stringify(config(up.port)));
    const { child, events, exit } = run(['--config', configFile, '--pid-file', pidFile]);
    await until(() => existsSync(pidFile), 'the pid file', 30_000);
    expect(readFileSync(pidFile, 'utf8').trim()).toBe(String(child.pid));
    await until(() => events.some((e) => e.event === 'start'), 'the start event');
    const start = events.find((e) => e.event === 'start')!;
    expect(start.ts).toEqual(expect.any(String));
    const [listener] = start.listeners as { target: string; host: string; port: number }[];
    expect(listener).toMatchObject({ target: 'echo', host: RELAY_HOST });

    const s = await new Promise<net.Socket>((resolve) => {
      const c = net.connect({ host: listener!.host, port: listener!.port, localAddress: A.address }, () =>
        resolve(c),
      );
      cleanups.push(() => {
        c.destroy();
      });
    });
    await ping(s);
    writeFileSync(configFile, JSON.stringify(config(up.port, { a: { echo: 150 } })));
    child.kill('SIGHUP');
    await until(() => events.some((e) => e.event === 'reload'), 'the reload event');
    expect(await ping(s)).toBeGreaterThanOrEqual(150);

    writeFileSync(configFile, '{');
    child.kill('SIGHUP');
    await until(() => events.some((e) => e.event === 'error'), 'the reload error');
    expect(String(events.find((e) => e.event === 'error')?.message)).toMatch(
      /not valid JSON.*previous config stays/,
    );
    expect(await ping(s)).toBeGreaterThanOrEqual(150);

    child.kill('SIGTERM');
    expect(await exit).toBe(0);
    expect(existsSync(pidFile)).toBe(false);
  });

  it('exits non-zero naming the listener that cannot bind, without a pid file', async () => {
    const up = await echoServer();
    const first = await relayFor(config(up.port));
    const taken = first.addresses()[0]!;
    const dir = mkdtempSync(join(tmpdir(), 'regionctl-relay-test-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const configFile = join(dir, 'relay.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        ...config(up.port),
        listeners: [
          {
            target: 'eu-west-1',
            listen: { host: taken.host, port: taken.port },
            upstream: { host: UPSTREAM_HOST, port: up.port },
          },
        ],
      }),
    );
    const { events, exit } = run(['--config', configFile, '--pid-file', join(dir, 'relay.pid')]);
    expect(await exit).toBe(1);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ event: 'error', phase: 'start' });
    expect(String(events[0]?.message)).toContain(`listener for eu-west-1 on ${taken.host}:${taken.port}`);
    expect(existsSync(join(dir, 'relay.pid'))).toBe(false);
  });
});
