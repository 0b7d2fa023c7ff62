/**
 * A user-space TCP delay relay for the WAN lab. This kernel has no `netem` qdisc, so one
 * relay process in the WAN namespace serves every region's advertised endpoint and holds
 * each chunk for half the round-trip time configured between the connection's source and
 * its target. Partitions are iptables' job: the relay adds no timeouts or keepalives of its
 * own, so a dropped link looks exactly as long-lived as it would on a real WAN.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { errorMessage, RegionctlError } from '../../errors.js';

export interface RelayEndpoint {
  host: string;
  port: number;
}

export interface RelayListener {
  /** Name the rtt table knows the upstream by (a region). */
  target: string;
  listen: RelayEndpoint;
  upstream: RelayEndpoint;
}

export interface RelaySource {
  name: string;
  /** Source address of connections from this source, as the relay sees it. */
  address: string;
  /**
   * Local address of the relay's upstream socket for connections from this source, so the
   * target sees a per-source peer address (and iptables in its namespace can tell sources apart).
   */
  bindAddress?: string;
}

export interface RelayConfig {
  listeners: RelayListener[];
  sources: RelaySource[];
  /** rttMs[source][target]; one direction given is taken for both. */
  rttMs: Record<string, Record<string, number>>;
  /** For unknown sources and pairs missing from rttMs; 0 when absent. */
  defaultRttMs?: number;
  /**
   * Bytes a direction may hold in its delay queue before the relay stops reading from the
   * sender (the queue holds rate × delay bytes, so this also caps single-connection
   * throughput at about queueLimitBytes / one-way delay). Default 32 MiB.
   */
  queueLimitBytes?: number;
}

export interface RelayStats {
  /** Connections open now. */
  connections: number;
  /** Connections accepted since start. */
  accepted: number;
  /** Bytes read from either side of any connection since start. */
  bytes: number;
  /** Bytes held in delay queues now (not counting socket buffers). */
  queuedBytes: number;
}

export interface RelayAddress {
  target: string;
  host: string;
  port: number;
}

export interface RelayConnectionInfo {
  target: string;
  remoteAddress: string;
  /** Undefined for an address no source declares. */
  source: string | undefined;
  bindAddress: string | undefined;
  oneWayDelayMs: number;
}

export interface RelayErrorEvent {
  kind: 'upstream-connect';
  target: string;
  source: string | undefined;
  remoteAddress: string;
  upstream: RelayEndpoint;
  bindAddress: string | undefined;
  message: string;
}

export interface RelayOptions {
  /** Failures worth an operator's attention (an unbindable bindAddress, a refused upstream). */
  onError?: (event: RelayErrorEvent) => void;
}

export interface Relay {
  /** New delays apply to chunks read from now on, on open and new connections; listeners stay as started. */
  reconfigure(config: RelayConfig): void;
  stats(): RelayStats;
  connections(): RelayConnectionInfo[];
  /** Bound addresses, in the order of config.listeners (port 0 resolved). */
  addresses(): RelayAddress[];
  close(): Promise<void>;
}

const DEFAULT_QUEUE_LIMIT = 32 * 1024 * 1024;

export function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/** Round-trip time between a source and a target, in ms. */
export function rttBetween(config: RelayConfig, source: string | undefined, target: string): number {
  if (source !== undefined) {
    const rtt = config.rttMs[source]?.[target] ?? config.rttMs[target]?.[source];
    if (rtt !== undefined) return rtt;
  }
  return config.defaultRttMs ?? 0;
}

function findSource(config: RelayConfig, remoteAddress: string): RelaySource | undefined {
  return config.sources.find((s) => normaliseAddress(s.address) === remoteAddress);
}

/** A FIN travels the link like data: it reaches the other side after the bytes before it. */
const END = null;

interface Entry {
  at: number;
  chunk: Buffer | typeof END;
}

/** One direction of a connection: a FIFO of chunks with release times and a single timer. */
class Pump {
  private queue: (Entry | undefined)[] = [];
  private head = 0;
  private lastAt = 0;
  private timer: NodeJS.Timeout | undefined;
  queuedBytes = 0;
  private waitingForDrain = false;
  private queueFull = false;
  private finished = false;

  constructor(
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    private readonly conn: Connection,
  ) {
    src.on('data', (chunk: Buffer) => this.onData(chunk));
    src.on('end', () => this.onEnd());
    dst.on('drain', () => {
      this.waitingForDrain = false;
      this.updateFlow();
    });
  }

  private get empty(): boolean {
    return this.head === this.queue.length;
  }

  private onData(chunk: Buffer): void {
    this.conn.relay.bytes += chunk.length;
    const delay = this.conn.oneWayDelayMs;
    if (delay <= 0 && this.empty) {
      this.write(chunk);
      return;
    }
    this.enqueue(chunk, delay);
    this.queuedBytes += chunk.length;
    this.conn.relay.queuedBytes += chunk.length;
    if (this.queuedBytes >= this.conn.relay.queueLimit) {
      this.queueFull = true;
      this.updateFlow();
    }
  }

  private onEnd(): void {
    const delay = this.conn.oneWayDelayMs;
    if (delay <= 0 && this.empty) this.finish();
    else this.enqueue(END, delay);
  }

  private enqueue(chunk: Buffer | typeof END, delay: number): void {
    // Release times never go backwards, so a delay lowered by reconfigure cannot reorder bytes.
    const at = Math.max(performance.now() + delay, this.lastAt);
    this.lastAt = at;
    this.queue.push({ at, chunk });
    this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined || this.empty) return;
    const next = this.queue[this.head]!;
    // Timers fire on the loop's cached clock and may come early by a fraction of a ms; flush()
    // re-checks against performance.now(), so a chunk is never released before its time.
    this.timer = setTimeout(() => this.flush(), Math.max(0, Math.ceil(next.at - performance.now())));
  }

  private flush(): void {
    this.timer = undefined;
    if (this.finished) return;
    const now = performance.now();
    let released = 0;
    let ended = false;
    // Corked so that many small due chunks (PostgreSQL messages) leave in one writev.
    this.dst.cork();
    while (!this.empty) {
      const entry = this.queue[this.head]!;
      if (entry.at > now) break;
      this.queue[this.head] = undefined;
      this.head++;
      if (entry.chunk === END) {
        ended = true;
        break;
      }
      released += entry.chunk.length;
      // Ignoring write()'s verdict here is safe: these bytes were already counted against the
      // queue limit, and waitingForDrain stops reading from the source until dst drains.
      if (!this.writable()) continue;
      if (!this.dst.write(entry.chunk)) this.waitingForDrain = true;
    }
    this.dst.uncork();
    this.queuedBytes -= released;
    this.conn.relay.queuedBytes -= released;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (ended) {
      this.finish();
      return;
    }
    if (this.queueFull && this.queuedBytes < this.conn.relay.queueLimit / 2) this.queueFull = false;
    this.updateFlow();
    this.schedule();
  }

  private writable(): boolean {
    return !this.dst.destroyed && this.dst.writable;
  }

  private write(chunk: Buffer): void {
    if (!this.writable()) return;
    if (!this.dst.write(chunk)) {
      this.waitingForDrain = true;
      this.updateFlow();
    }
  }

  private finish(): void {
    this.finished = true;
    if (this.writable()) this.dst.end();
  }

  private updateFlow(): void {
    if (this.src.destroyed || this.src.readableEnded) return;
    if (this.waitingForDrain || this.queueFull) this.src.pause();
    else this.src.resume();
  }

  /** Drops whatever is queued: the connection is being torn down. */
  stop(): void {
    this.finished = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.conn.relay.queuedBytes -= this.queuedBytes;
    this.queuedBytes = 0;
    this.queue = [];
    this.head = 0;
  }
}

interface RelayState {
  config: RelayConfig;
  queueLimit: number;
  bytes: number;
  queuedBytes: number;
  accepted: number;
  connections: Set<Connection>;
  options: RelayOptions;
}

class Connection {
  oneWayDelayMs = 0;
  source: RelaySource | undefined;
  readonly bindAddress: string | undefined;
  private readonly upstream: net.Socket;
  private readonly pumps: Pump[];
  private upstreamConnected = false;
  private clientEnded = false;
  private upstreamEnded = false;
  private closedSockets = 0;

  constructor(
    readonly relay: RelayState,
    readonly listener: RelayListener,
    private readonly client: net.Socket,
    readonly remoteAddress: string,
  ) {
    this.updateDelay(relay.config);
    this.bindAddress = this.source?.bindAddress;
    client.setNoDelay(true);
    this.upstream = net.connect({
      host: listener.upstream.host,
      port: listener.upstream.port,
      ...(this.bindAddress !== undefined ? { localAddress: this.bindAddress } : {}),
      allowHalfOpen: true,
      noDelay: true,
    });
    this.upstream.setNoDelay(true);
    this.pumps = [new Pump(client, this.upstream, this), new Pump(this.upstream, client, this)];
    this.upstream.once('connect', () => {
      this.upstreamConnected = true;
    });
    client.on('end', () => {
      this.clientEnded = true;
    });
    this.upstream.on('end', () => {
      this.upstreamEnded = true;
    });
    client.on('error', () => this.abort(this.upstream));
    this.upstream.on('error', (e) => {
      if (!this.upstreamConnected)
        relay.options.onError?.({
          kind: 'upstream-connect',
          target: listener.target,
          source: this.source?.name,
          remoteAddress,
          upstream: listener.upstream,
          bindAddress: this.bindAddress,
          message: errorMessage(e),
        });
      this.abort(client);
    });
    // A side that closes without having sent its FIN went away abruptly: its peer must not wait.
    client.on('close', () => {
      if (!this.clientEnded) this.abort(this.upstream);
      this.onSocketClosed();
    });
    this.upstream.on('close', () => {
      if (!this.upstreamEnded) this.abort(client);
      this.onSocketClosed();
    });
  }

  updateDelay(config: RelayConfig): void {
    this.source = findSource(config, this.remoteAddress);
    this.oneWayDelayMs = Math.max(0, rttBetween(config, this.source?.name, this.listener.target) / 2);
  }

  info(): RelayConnectionInfo {
    return {
      target: this.listener.target,
      remoteAddress: this.remoteAddress,
      source: this.source?.name,
      bindAddress: this.bindAddress,
      oneWayDelayMs: this.oneWayDelayMs,
    };
  }

  /**
   * Tears both sides down. The peer gets a reset rather than a FIN, so that it cannot take an
   * abort for an orderly end of the stream (a response without a length would look complete).
   */
  abort(peer: net.Socket): void {
    for (const p of this.pumps) p.stop();
    const connected = peer === this.client || this.upstreamConnected;
    if (!peer.destroyed) {
      if (connected) peer.resetAndDestroy();
      else peer.destroy();
    }
    const other = peer === this.client ? this.upstream : this.client;
    if (!other.destroyed) other.destroy();
  }

  destroy(): void {
    for (const p of this.pumps) p.stop();
    this.client.destroy();
    this.upstream.destroy();
  }

  private onSocketClosed(): void {
    this.closedSockets++;
    if (this.closedSockets === 2) {
      for (const p of this.pumps) p.stop();
      this.relay.connections.delete(this);
    }
  }
}

function describeListener(l: RelayListener): string {
  return `listener for ${l.target} on ${l.listen.host}:${l.listen.port} (upstream ${l.upstream.host}:${l.upstream.port})`;
}

function listen(server: net.Server, l: RelayListener): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => {
      reject(new RegionctlError('E_RELAY_LISTEN', `${describeListener(l)} failed: ${errorMessage(e)}`));
    };
    server.once('error', onError);
    server.listen({ host: l.listen.host, port: l.listen.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) resolve();
    else server.close(() => resolve());
  });
}

/** Starts one listener per config.listeners entry; rejects (closing those already bound) if any fails. */
export async function startRelay(config: RelayConfig, options: RelayOptions = {}): Promise<Relay> {
  const problems = relayConfigProblems(config);
  if (problems.length > 0) throw new RegionctlError('E_RELAY_CONFIG', problems.join('; '));
  const state: RelayState = {
    config,
    queueLimit: config.queueLimitBytes ?? DEFAULT_QUEUE_LIMIT,
    bytes: 0,
    queuedBytes: 0,
    accepted: 0,
    connections: new Set(),
    options,
  };
  const servers: net.Server[] = [];
  try {
    for (const l of config.listeners) {
      const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
        state.accepted++;
        // Gone before we saw it (reset right after the handshake): nothing to relay.
        if (socket.remoteAddress === undefined) {
          socket.destroy();
          return;
        }
        state.connections.add(new Connection(state, l, socket, normaliseAddress(socket.remoteAddress)));
      });
      // After listen() succeeded, a server error (EMFILE on accept) must not crash the relay.
      server.on('error', () => {});
      servers.push(server);
      await listen(server, l);
    }
  } catch (e) {
    await Promise.all(servers.map(closeServer));
    throw e;
  }
  const listeners = config.listeners;
  return {
    reconfigure(next: RelayConfig): void {
      const problems = relayConfigProblems(next);
      if (problems.length > 0) throw new RegionctlError('E_RELAY_CONFIG', problems.join('; '));
      state.config = next;
      state.queueLimit = next.queueLimitBytes ?? DEFAULT_QUEUE_LIMIT;
      for (const c of state.connections) c.updateDelay(next);
    },
    stats: () => ({
      connections: state.connections.size,
      accepted: state.accepted,
      bytes: state.bytes,
      queuedBytes: state.queuedBytes,
    }),
    connections: () => [...state.connections].map((c) => c.info()),
    addresses: () =>
      servers.map((s, i) => {
        const a = s.address();
        const l = listeners[i]!;
        return typeof a === 'object' && a !== null
          ? { target: l.target, host: a.address, port: a.port }
          : { target: l.target, host: l.listen.host, port: l.listen.port };
      }),
    async close(): Promise<void> {
      const closed = Promise.all(servers.map(closeServer));
      for (const c of state.connections) c.destroy();
      state.connections.clear();
      await closed;
    },
  };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function endpointProblems(v: unknown, at: string): string[] {
  if (!isObject(v)) return [`${at} must be an object { host, port }`];
  const out: string[] = [];
  if (typeof v.host !== 'string' || v.host === '') out.push(`${at}.host must be a non-empty string`);
  if (typeof v.port !== 'number' || !Number.isInteger(v.port) || v.port < 0 || v.port > 65535)
    out.push(`${at}.port must be an integer 0-65535`);
  return out;
}

function isDelay(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

/** Everything wrong with a (possibly hand-written) relay config, each naming where. */
export function relayConfigProblems(v: unknown): string[] {
  if (!isObject(v)) return ['the relay config must be a JSON object'];
  const out: string[] = [];
  if (!Array.isArray(v.listeners)) out.push('listeners must be an array');
  else
    v.listeners.forEach((l: unknown, i) => {
      const at = `listeners[${i}]`;
      if (!isObject(l)) {
        out.push(`${at} must be an object { target, listen, upstream }`);
        return;
      }
      if (typeof l.target !== 'string' || l.target === '')
        out.push(`${at}.target must be a non-empty string`);
      out.push(
        ...endpointProblems(l.listen, `${at}.listen`),
        ...endpointProblems(l.upstream, `${at}.upstream`),
      );
    });
  if (!Array.isArray(v.sources)) out.push('sources must be an array');
  else {
    const seen = new Map<string, string>();
    v.sources.forEach((s: unknown, i) => {
      const at = `sources[${i}]`;
      if (!isObject(s)) {
        out.push(`${at} must be an object { name, address, bindAddress? }`);
        return;
      }
      if (typeof s.name !== 'string' || s.name === '') out.push(`${at}.name must be a non-empty string`);
      if (typeof s.address !== 'string' || net.isIP(normaliseAddress(s.address)) === 0)
        out.push(`${at}.address must be an IP address`);
      else {
        const addr = normaliseAddress(s.address);
        const other = seen.get(addr);
        if (other !== undefined)
          out.push(`${at}.address ${addr} is also ${other}'s: a source must be unambiguous`);
        seen.set(addr, String(s.name));
      }
      if (s.bindAddress !== undefined && (typeof s.bindAddress !== 'string' || net.isIP(s.bindAddress) === 0))
        out.push(`${at}.bindAddress must be an IP address`);
    });
  }
  if (!isObject(v.rttMs)) out.push('rttMs must be an object { source: { target: ms } }');
  else
    for (const [source, row] of Object.entries(v.rttMs)) {
      if (!isObject(row)) out.push(`rttMs.${source} must be an object { target: ms }`);
      else
        for (const [target, ms] of Object.entries(row))
          if (!isDelay(ms)) out.push(`rttMs.${source}.${target} must be a number of ms >= 0`);
    }
  if (v.defaultRttMs !== undefined && !isDelay(v.defaultRttMs))
    out.push('defaultRttMs must be a number of ms >= 0');
  if (
    v.queueLimitBytes !== undefined &&
    (typeof v.queueLimitBytes !== 'number' || !Number.isInteger(v.queueLimitBytes) || v.queueLimitBytes < 1)
  )
    out.push('queueLimitBytes must be a positive integer');
  return out;
}

/** Parses and checks a relay config file's text. */
export function parseRelayConfig(text: string, file: string): RelayConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new RegionctlError('E_RELAY_CONFIG', `${file}: not valid JSON: ${errorMessage(e)}`);
  }
  const problems = relayConfigProblems(json);
  if (problems.length > 0) throw new RegionctlError('E_RELAY_CONFIG', `${file}: ${problems.join('; ')}`);
  return json as RelayConfig;
}
