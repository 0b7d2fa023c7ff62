/**
 * WAN lab delay relay (figures only, no assertions), the relay running as its own process
 * (dist/src/lab/wan/relay-main.js, as the lab runs it) on loopback:
 *  1. added latency at 0 ms configured: p50/p99 of a 1-byte ping-pong through the relay
 *     against the same echo server directly;
 *  2. throughput of one connection streaming 512 MiB one way at 0 ms, and at 35 ms one-way
 *     delay (70 ms round trip, set by SIGHUP reload), against direct (target >= 100 MB/s).
 * Run: npm run build && node dist/bench/relay.js
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { RelayAddress, RelayConfig } from '../src/lab/wan/relay.js';
import { percentile } from './stats.js';

const RELAY_MAIN = fileURLToPath(new URL('../src/lab/wan/relay-main.js', import.meta.url));
const HOST = '127.0.0.1';
const RELAY_HOST = '127.0.0.5';
const UPSTREAM_HOST = '127.0.0.6';
const PINGS = 5000;
const WARMUP = 500;
const STREAM_BYTES = 512 * 1024 * 1024;
const CHUNK = 1024 * 1024;
const ONE_WAY_MS = 35;
const TARGET_MBPS = 100;

async function listen(onConnection: (s: net.Socket) => void): Promise<number> {
  const server = net.createServer({ noDelay: true }, (s) => {
    s.on('error', () => {});
    onConnection(s);
  });
  await new Promise<void>((resolve) => server.listen(0, UPSTREAM_HOST, resolve));
  server.unref();
  return (server.address() as net.AddressInfo).port;
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port, localAddress: HOST, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

async function pingPong(host: string, port: number, n: number, warmup = WARMUP): Promise<number[]> {
  const s = await connect(host, port);
  const out: number[] = [];
  const one = () =>
    new Promise<number>((resolve) => {
      const t0 = performance.now();
      s.once('data', () => resolve(performance.now() - t0));
      s.write('x');
    });
  for (let i = 0; i < warmup; i++) await one();
  for (let i = 0; i < n; i++) out.push(await one());
  s.destroy();
  return out;
}

/** MB/s (10^6 bytes) of one connection writing STREAM_BYTES until the sink has them all. */
async function stream(
  host: string,
  port: number,
  sink: { received: number; done?: () => void },
): Promise<number> {
  const s = await connect(host, port);
  const chunk = Buffer.alloc(CHUNK, 0x5a);
  sink.received = 0;
  const arrived = new Promise<void>((resolve) => {
    sink.done = resolve;
  });
  const t0 = performance.now();
  let sent = 0;
  while (sent < STREAM_BYTES) {
    sent += CHUNK;
    if (!s.write(chunk)) await new Promise((r) => s.once('drain', r));
  }
  await arrived;
  const seconds = (performance.now() - t0) / 1000;
  s.destroy();
  return STREAM_BYTES / 1e6 / seconds;
}

interface RelayProcess {
  child: ChildProcess;
  addresses: RelayAddress[];
  /** Resolves with the next stderr event of that name. */
  next(event: string): Promise<Record<string, unknown>>;
}

async function startRelayProcess(configFile: string, pidFile: string): Promise<RelayProcess> {
  const child = spawn(process.execPath, [RELAY_MAIN, '--config', configFile, '--pid-file', pidFile], {
    stdio: ['ignore', 'inherit', 'pipe'],
  });
  const waiting = new Map<string, ((e: Record<string, unknown>) => void)[]>();
  createInterface({ input: child.stderr! }).on('line', (line) => {
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line) as Record<string, unknown>;
    } catch {
      process.stderr.write(`relay: ${line}\n`);
      return;
    }
    if (e.event === 'error') process.stderr.write(`relay: ${line}\n`);
    const w = waiting.get(String(e.event));
    w?.shift()?.(e);
  });
  const next = (event: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      waiting.set(event, [...(waiting.get(event) ?? []), resolve]);
      child.once('exit', (code) => reject(new Error(`relay exited (${code}) before '${event}'`)));
    });
  const start = await next('start');
  return { child, addresses: start.listeners as RelayAddress[], next };
}

function peakRssMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

function fmt(samples: number[]): string {
  return `p50 ${(percentile(samples, 50) * 1000).toFixed(0).padStart(5)} µs  p99 ${(percentile(samples, 99) * 1000).toFixed(0).padStart(5)} µs`;
}

async function main(): Promise<void> {
  const echoPort = await listen((s) => s.pipe(s));
  const sink: { received: number; done?: () => void } = { received: 0 };
  const sinkPort = await listen((s) =>
    s.on('data', (c: Buffer) => {
      sink.received += c.length;
      if (sink.received >= STREAM_BYTES) sink.done?.();
    }),
  );

  const dir = mkdtempSync(join(tmpdir(), 'regionctl-bench-relay-'));
  const configFile = join(dir, 'relay.json');
  const pidFile = join(dir, 'relay.pid');
  const config = (rtt: number): RelayConfig => ({
    listeners: [
      {
        target: 'echo',
        listen: { host: RELAY_HOST, port: 0 },
        upstream: { host: UPSTREAM_HOST, port: echoPort },
      },
      {
        target: 'sink',
        listen: { host: RELAY_HOST, port: 0 },
        upstream: { host: UPSTREAM_HOST, port: sinkPort },
      },
    ],
    sources: [{ name: 'bench', address: HOST, bindAddress: '127.0.0.3' }],
    rttMs: { bench: { echo: rtt, sink: rtt } },
  });
  writeFileSync(configFile, JSON.stringify(config(0)));
  const relay = await startRelayProcess(configFile, pidFile);
  const at = (target: string) => relay.addresses.find((a) => a.target === target)!;
  try {
    const direct = await pingPong(UPSTREAM_HOST, echoPort, PINGS);
    const relayed = await pingPong(RELAY_HOST, at('echo').port, PINGS);
    console.log(`1-byte ping-pong round trip, n=${PINGS} each (after ${WARMUP} warm-up):`);
    console.log(`  direct                     ${fmt(direct)}`);
    console.log(`  through relay, 0 ms        ${fmt(relayed)}`);
    const added = (p: number) => ((percentile(relayed, p) - percentile(direct, p)) * 1000).toFixed(0);
    console.log(
      `  added by the relay         p50 ${added(50).padStart(5)} µs  p99 ${added(99).padStart(5)} µs`,
    );

    const mb = (x: number) => `${x.toFixed(0).padStart(5)} MB/s`;
    const verdict = (x: number) => (x >= TARGET_MBPS ? 'OK' : 'UNDER TARGET');
    console.log(
      `\nthroughput, one connection, ${STREAM_BYTES / 1024 / 1024} MiB one way (target >= ${TARGET_MBPS} MB/s):`,
    );
    const tDirect = await stream(UPSTREAM_HOST, sinkPort, sink);
    console.log(`  direct                     ${mb(tDirect)}`);
    const t0 = await stream(RELAY_HOST, at('sink').port, sink);
    console.log(`  through relay, 0 ms        ${mb(t0)}  (${verdict(t0)})`);

    writeFileSync(configFile, JSON.stringify(config(2 * ONE_WAY_MS)));
    const reloaded = relay.next('reload');
    relay.child.kill('SIGHUP');
    await reloaded;
    const delayedPing = await pingPong(RELAY_HOST, at('echo').port, 5, 0).catch(() => [Number.NaN]);
    const tDelayed = await stream(RELAY_HOST, at('sink').port, sink);
    console.log(
      `  through relay, ${ONE_WAY_MS} ms one way ${mb(tDelayed)}  (${verdict(tDelayed)}; a ping then took ${percentile(delayedPing, 50).toFixed(1)} ms round trip; default 32 MiB queue limit per direction)`,
    );
    console.log(`\nrelay process peak RSS: ${peakRssMb(relay.child.pid!).toFixed(0)} MB`);
  } finally {
    const exited = new Promise<number | null>((resolve) => relay.child.once('exit', (code) => resolve(code)));
    relay.child.kill('SIGTERM');
    const code = await exited;
    console.log(`relay exit on SIGTERM: ${code}`);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
