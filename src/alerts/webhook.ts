/**
 * Alert webhook: each AlertEvent is POSTed as JSON to the URL of `spec.alerts.webhook`
 * (a secret reference, resolved by the caller with src/secrets/resolve.ts). The URL often
 * carries a token, so it never appears in an error, a log line or a thrown message.
 */
import { RegionctlError } from '../errors.js';
import type { AlertEvent, AlertSink } from './sink.js';

export interface WebhookOptions {
  /** Per attempt; the whole send takes at most about twice this plus the retry pause. */
  timeoutMs: number;
  /** Pause before the single retry (default 500 ms). */
  retryDelayMs?: number;
}

interface PreparedUrl {
  url: string;
  authorization: string | null;
}

/**
 * fetch() refuses URLs with user:password@; a webhook written that way gets the
 * credentials as Basic authentication instead.
 */
function prepare(raw: string): PreparedUrl {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new RegionctlError(
      'E_ALERT_WEBHOOK_URL',
      'alerts.webhook is not a valid URL',
      'the secret must hold an absolute http(s) URL, e.g. https://hooks.example.com/T000/B000/XXXX',
    );
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new RegionctlError(
      'E_ALERT_WEBHOOK_URL',
      `alerts.webhook must be an http or https URL (got ${u.protocol})`,
      'store an https URL in the secret alerts.webhook refers to',
    );
  }
  let authorization: string | null = null;
  if (u.username || u.password) {
    const user = decodeURIComponent(u.username);
    const pass = decodeURIComponent(u.password);
    authorization = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    u.username = '';
    u.password = '';
  }
  return { url: u.toString(), authorization };
}

/** What went wrong, without the URL (undici's messages can quote it). */
function failure(e: unknown): string {
  const err = e as { name?: string; cause?: { code?: string }; code?: string };
  if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'timed out';
  const code = err.cause?.code ?? err.code;
  return code ? `network error ${code}` : 'network error';
}

type Attempt = { ok: true } | { ok: false; retry: boolean; why: string };

export function webhookSink(url: string, opts: WebhookOptions): AlertSink {
  const target = prepare(url);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'user-agent': 'regionctl',
  };
  if (target.authorization) headers.authorization = target.authorization;

  async function attempt(body: string): Promise<Attempt> {
    try {
      const res = await fetch(target.url, {
        method: 'POST',
        headers,
        body,
        redirect: 'error', // a redirect could hand the body (and a token in the path) elsewhere
        signal: AbortSignal.timeout(opts.timeoutMs),
      });
      // Free the connection; the receiver's answer is not used.
      await res.body?.cancel().catch(() => {});
      if (res.ok) return { ok: true };
      // 4xx will not get better by asking again (except 408/429); 5xx might.
      const retry = res.status >= 500 || res.status === 408 || res.status === 429;
      return { ok: false, retry, why: `HTTP ${res.status}` };
    } catch (e) {
      return { ok: false, retry: true, why: failure(e) };
    }
  }

  return {
    async send(e: AlertEvent) {
      const body = JSON.stringify(e);
      let r = await attempt(body);
      if (!r.ok && r.retry) {
        // One retry, not a loop: the next reconcile pass is the real retry, and the alert
        // is in the control store and the log whatever the webhook does.
        await new Promise((res) => setTimeout(res, opts.retryDelayMs ?? 500));
        r = await attempt(body);
      }
      if (!r.ok) {
        throw new RegionctlError(
          'E_ALERT_WEBHOOK',
          `alert ${e.key} (${e.state}) could not be delivered to alerts.webhook: ${r.why}`,
          'check the receiver and the URL stored in the secret alerts.webhook refers to; the alert is in the log and the control store',
        );
      }
    },
  };
}
