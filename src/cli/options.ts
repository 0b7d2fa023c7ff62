/** Flags and parsers shared by several commands. */
import { InvalidArgumentError, Option } from 'commander';

export const DEFAULT_SPEC = 'regions.yaml';

export function specOption(): Option {
  return new Option('--spec <path>', 'path of regions.yaml (env REGIONCTL_SPEC)')
    .env('REGIONCTL_SPEC')
    .default(DEFAULT_SPEC);
}

export function formatOption(formats: readonly string[], dflt: string): Option {
  return new Option('--format <format>', 'output format').choices(formats).default(dflt);
}

export function positiveNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a positive number`);
    return n;
  };
}
