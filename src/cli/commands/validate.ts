import type { Command } from 'commander';
import { ExitCode, RegionctlError } from '../../errors.js';
import { formatOption, specOption } from '../options.js';

interface ValidateOptions {
  spec: string;
  format: 'text' | 'json';
}

const HELP_AFTER = `
Checks regions.yaml against its schema and the rules a schema cannot express
(one primary, channels naming declared regions, thresholds ordered, filters and
residency rules consistent, no literal secrets) and reports every problem at once,
in compiler style on stdout: file:line:col severity CODE message.

Exit status: 0 valid (warnings may be printed), 1 invalid or unreadable spec
(a missing file is E_SPEC_NOT_FOUND, exit 1), 2 usage error.

Examples:
  $ regionctl validate
  regions.yaml: valid
  $ regionctl validate --spec deploy/regions.yaml --format json
`;

export function registerValidate(program: Command): void {
  program
    .command('validate')
    .description('check regions.yaml and report every problem with its file:line:col')
    .addOption(specOption())
    .addOption(formatOption(['text', 'json'], 'text'))
    .addHelpText('after', HELP_AFTER)
    .action(async (opts: ValidateOptions) => {
      process.exitCode = await runValidate(opts.spec, opts.format);
    });
}

export async function runValidate(path: string, format: 'text' | 'json'): Promise<number> {
  if (path.trim() === '')
    throw new RegionctlError(
      'E_USAGE_SPEC',
      '--spec is empty',
      'give the path of regions.yaml, e.g. --spec regions.yaml',
    );
  // Loaded here, not at the top: `regionctl --help` should not pay for the validator.
  const { formatDiagnostic, loadSpec, summarize } = await import('../../spec/load.js');
  const result = await loadSpec(path);
  if (format === 'json') {
    const errors = result.diagnostics.filter((d) => d.severity === 'error');
    const warnings = result.diagnostics.filter((d) => d.severity === 'warning');
    process.stdout.write(
      `${JSON.stringify({ file: result.file, valid: result.ok, errors, warnings }, null, 2)}\n`,
    );
  } else {
    const lines = result.diagnostics.map(formatDiagnostic);
    lines.push(summarize(result.file, result.diagnostics));
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return result.ok ? ExitCode.ok : ExitCode.failure;
}
