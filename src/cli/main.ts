#!/usr/bin/env node
/**
 * Entry point. Kept thin and light: each command module registers its flags here and
 * imports its heavy machinery (pg, ajv, the lab) only when it actually runs, so that
 * `regionctl validate` and `--help` start fast.
 */
import { Command, CommanderError } from 'commander';
import { ExitCode, errorMessage, isRegionctlError } from '../errors.js';
import { registerAgent } from './commands/agent.js';
import { registerApply } from './commands/apply.js';
import { registerFailover } from './commands/failover.js';
import { registerLab } from './commands/lab.js';
import { registerPlan } from './commands/plan.js';
import { registerReconcile } from './commands/reconcile.js';
import { registerRejoin } from './commands/rejoin.js';
import { registerRoute } from './commands/route.js';
import { registerStatus } from './commands/status.js';
import { registerValidate } from './commands/validate.js';
import { registerVerify } from './commands/verify.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('regionctl')
    .description(
      'Keep one PostgreSQL database replicated across cloud regions, declaratively.\n' +
        'regions.yaml declares regions, channels, RPO thresholds and filters; regionctl validates it,\n' +
        'plans and applies the channels, observes lag and drift, and fails over across regions.',
    )
    .version('0.1.0')
    .showSuggestionAfterError(true)
    .exitOverride();
  registerValidate(program);
  registerLab(program);
  registerPlan(program);
  registerApply(program);
  registerStatus(program);
  registerReconcile(program);
  registerFailover(program);
  registerVerify(program);
  registerRoute(program);
  registerRejoin(program);
  registerAgent(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.ok;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end through here with exit code 0.
      return e.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
    }
    if (isRegionctlError(e)) {
      process.stderr.write(`error ${e.code}: ${e.message}\n`);
      if (e.hint) process.stderr.write(`  hint: ${e.hint}\n`);
      return e.code.startsWith('E_USAGE') ? ExitCode.usage : ExitCode.failure;
    }
    process.stderr.write(`error E_INTERNAL: ${errorMessage(e)}\n`);
    if (process.env.REGIONCTL_DEBUG) process.stderr.write(`${(e as Error).stack ?? ''}\n`);
    return ExitCode.failure;
  }
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`error E_INTERNAL: ${errorMessage(e)}\n`);
    process.exitCode = ExitCode.failure;
  },
);
