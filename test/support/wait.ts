/** Polling for eventually-true conditions (replication is asynchronous). */

export interface WaitOptions {
  /** Give up after this long (default 15 s). */
  timeoutMs?: number;
  /** Pause between attempts (default 100 ms). */
  intervalMs?: number;
  /** What we are waiting for, for the timeout message: e.g. `row 42 on eu-west-1`. */
  what: string;
}

/**
 * Calls `fn` until it returns a value other than `undefined`, `null` or `false`, and
 * returns that value. Errors thrown by `fn` count as "not yet" (a region may be
 * restarting); the last one is quoted in the timeout error, with the last value seen.
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: WaitOptions,
): Promise<Exclude<T, undefined | null | false>> {
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const intervalMs = opts.intervalMs ?? 100;
  const started = Date.now();
  let attempts = 0;
  let lastError: unknown;
  let lastValue: unknown;
  for (;;) {
    attempts++;
    try {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v as Exclude<T, undefined | null | false>;
      lastValue = v;
      lastError = undefined;
    } catch (e) {
      lastError = e;
    }
    const elapsed = Date.now() - started;
    if (elapsed >= timeoutMs) {
      const detail =
        lastError !== undefined
          ? `last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`
          : `last value: ${JSON.stringify(lastValue)}`;
      throw new Error(
        `timed out after ${elapsed} ms (${attempts} attempts) waiting for ${opts.what}; ${detail}`,
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(intervalMs, timeoutMs - elapsed)));
  }
}
