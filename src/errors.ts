/**
 * Every failure regionctl reports carries a stable code (for scripts and docs) and a
 * message that says what to do, not just what broke.
 */
export class RegionctlError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  constructor(code: string, message: string, hint?: string) {
    super(message);
    this.name = 'RegionctlError';
    this.code = code;
    this.hint = hint;
  }
}

export function isRegionctlError(e: unknown): e is RegionctlError {
  return e instanceof RegionctlError;
}

/** Exit codes shared by every command. */
export const ExitCode = {
  ok: 0,
  failure: 1,
  usage: 2,
} as const;

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
