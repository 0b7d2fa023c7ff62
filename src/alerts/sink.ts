/**
 * Where alerts go. Every alert is a structured JSON line on the log; the control store
 * makes sure each is raised once per episode and resolved once.
 */
export interface AlertEvent {
  /** Stable key of the episode, e.g. `channel:us-east-1->eu-west-1:lagging`. */
  key: string;
  state: 'raised' | 'resolved';
  severity: 'warning' | 'critical';
  channel: string | null;
  message: string;
  at: string;
  detail?: Record<string, unknown>;
}

export interface AlertSink {
  send(e: AlertEvent): Promise<void>;
}

export function logSink(write: (line: string) => void): AlertSink {
  return {
    async send(e) {
      write(JSON.stringify({ level: e.severity === 'critical' ? 'error' : 'warn', msg: 'alert', ...e }));
    },
  };
}

/** Sends to every sink; one failing sink does not stop the others. */
export function fanOut(sinks: AlertSink[], onError: (e: unknown) => void): AlertSink {
  return {
    async send(e) {
      await Promise.all(sinks.map((s) => s.send(e).catch(onError)));
    },
  };
}
