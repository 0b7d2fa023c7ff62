/**
 * What test/global-setup.ts hands to every test file through vitest's provide/inject.
 * Plain JSON: it crosses from the main process to the test workers.
 */
import type { RegionsSpec } from '../../src/spec/schema.js';

export interface TestLabContext {
  /** The shared lab's state directory (fresh each run), e.g. /tmp/regionctl-test-lab. */
  stateDir: string;
  /** regions.yaml with ports shifted and secret/DNS paths made absolute, as written to disk. */
  specPath: string;
  specDir: string;
  spec: RegionsSpec;
  /** Inclusive port range reserved for private labs of this run. */
  privatePorts: [number, number];
}

declare module 'vitest' {
  export interface ProvidedContext {
    regionctlLab: TestLabContext;
  }
}
