/**
 * The webhook sink against a real local HTTP server: the event arrives as JSON, a failing
 * receiver gets exactly one retry, a hung one is cut off by the timeout, 4xx is not
 * retried, credentials in the URL become Basic auth, and no error ever quotes the URL.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { AlertEvent } from '../../src/alerts/sink.js';
import { webhookSink } from '../../src/alerts/webhook.js';

interface Received {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

let server: Server | null = null;

async function receiver(
  respond: (n: number, res: ServerResponse) => void,
): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
      respond(received.length, res);
    });
  });
  await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/hooks/T0/SECRET-TOKEN-123`, received };
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

const event: AlertEvent = {
  key: 'channel:us-east-1->eu-west-1',
  state: 'raised',
  severity: 'critical',
  channel: 'us-east-1->eu-west-1',
  message: 'channel us-east-1 → eu-west-1 is failed: subscription disabled',
  at: '2025-01-01T00:00:00.000Z',
  detail: { status: 'failed', lagBytes: 1234, lagSeconds: null },
};

describe('webhook alert sink', () => {
  it('POSTs the event as JSON', async () => {
    const { url, received } = await receiver((_, res) => res.writeHead(204).end());
    await webhookSink(url, { timeoutMs: 2000 }).send(event);
    expect(received).toHaveLength(1);
    const r = received[0];
    expect(r?.method).toBe('POST');
    expect(r?.path).toBe('/hooks/T0/SECRET-TOKEN-123');
    expect(r?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(r?.body ?? '')).toEqual(event);
  });

  it('retries a 5xx exactly once, then succeeds', async () => {
    const { url, received } = await receiver((n, res) => res.writeHead(n === 1 ? 503 : 200).end());
    await webhookSink(url, { timeoutMs: 2000, retryDelayMs: 10 }).send(event);
    expect(received).toHaveLength(2);
  });

  it('gives up after one retry, with an error that does not quote the URL', async () => {
    const { url, received } = await receiver((_, res) => res.writeHead(500).end());
    const err = await webhookSink(url, { timeoutMs: 2000, retryDelayMs: 10 })
      .send(event)
      .catch((e: Error & { code?: string; hint?: string }) => e);
    expect(received).toHaveLength(2);
    expect(err).toMatchObject({ code: 'E_ALERT_WEBHOOK' });
    const text = `${(err as Error).message} ${(err as { hint?: string }).hint}`;
    expect(text).toMatch(/HTTP 500/);
    expect(text).not.toContain('SECRET-TOKEN');
    expect(text).not.toContain('127.0.0.1');
  });

  it('does not retry a 4xx: asking again will not help', async () => {
    const { url, received } = await receiver((_, res) => res.writeHead(404).end());
    await expect(webhookSink(url, { timeoutMs: 2000, retryDelayMs: 10 }).send(event)).rejects.toThrow(
      /HTTP 404/,
    );
    expect(received).toHaveLength(1);
  });

  it('cuts off a receiver that never answers, twice at most', async () => {
    const { url, received } = await receiver(() => {}); // never responds
    const err = await webhookSink(url, { timeoutMs: 200, retryDelayMs: 10 })
      .send(event)
      .catch((e: Error) => e);
    expect((err as Error).message).toMatch(/timed out/);
    expect((err as Error).message).not.toContain('SECRET-TOKEN');
    expect(received).toHaveLength(2);
  });

  it('a closed port is a network error without the URL', async () => {
    const { url } = await receiver(() => {});
    const dead = url.replace(/:(\d+)\//, (_, p: string) => `:${Number(p) === 1 ? 2 : 1}/`);
    const err = await webhookSink(dead, { timeoutMs: 500, retryDelayMs: 10 })
      .send(event)
      .catch((e: Error) => e);
    expect((err as Error).message).toMatch(/network error/);
    expect((err as Error).message).not.toContain('SECRET-TOKEN');
  });

  it('sends credentials in the URL as Basic authentication', async () => {
    const { url, received } = await receiver((_, res) => res.writeHead(200).end());
    await webhookSink(url.replace('http://', 'http://alerts:p%40ss@'), { timeoutMs: 2000 }).send(event);
    expect(received[0]?.headers.authorization).toBe(`Basic ${Buffer.from('alerts:p@ss').toString('base64')}`);
  });

  it('rejects a URL that is not http(s), without repeating it', () => {
    expect(() => webhookSink('ftp://x/SECRET-TOKEN', { timeoutMs: 100 })).toThrow(/http or https/);
    let msg = '';
    try {
      webhookSink('not a url SECRET-TOKEN', { timeoutMs: 100 });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/not a valid URL/);
    expect(msg).not.toContain('SECRET-TOKEN');
  });
});
