/**
 * Journaled steps of a transition (failover, switchover). Each step is recorded in the
 * control store before it runs and after; a step recorded done is never run again when
 * the transition is resumed, and every step checks what is already there, so re-running
 * one that was interrupted is safe.
 */
import type { Store } from '../store/store.js';

export class SimulatedCrash extends Error {
  constructor(step: string) {
    super(`simulated crash after step ${step}`);
  }
}

export interface StepRunner {
  eventId: number;
  /** Runs `fn` as step `seq` unless the journal says it is done; returns its detail. */
  step<T extends Record<string, unknown>>(seq: number, name: string, fn: () => Promise<T>): Promise<T>;
  /** Detail recorded by a step that already ran (resume). */
  detail(seq: number): Record<string, unknown> | null;
}

export async function stepRunner(
  store: Store,
  eventId: number,
  log: (line: string) => void,
  crashAfter?: string,
): Promise<StepRunner> {
  const done = new Map<number, Record<string, unknown>>();
  for (const s of await store.failoverSteps(eventId)) {
    if (s.status === 'done' || s.status === 'skipped')
      done.set(s.seq, (s.detail ?? {}) as Record<string, unknown>);
  }
  return {
    eventId,
    detail: (seq) => done.get(seq) ?? null,
    async step(seq, name, fn) {
      const prior = done.get(seq);
      if (prior) return prior as never;
      const t0 = performance.now();
      await store.failoverStepStarted(eventId, seq, name);
      try {
        const detail = await fn();
        const ms = Math.round(performance.now() - t0);
        await store.failoverStepFinished(eventId, seq, 'done', { ...detail, ms });
        done.set(seq, detail);
        log(`  step ${seq} ${name}: done in ${ms} ms`);
        if (crashAfter === name) throw new SimulatedCrash(name);
        return detail;
      } catch (e) {
        if (e instanceof SimulatedCrash) throw e;
        await store.failoverStepFailed(eventId, seq, (e as Error).message);
        throw e;
      }
    },
  };
}
