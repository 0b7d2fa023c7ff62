import { type Command, Option } from 'commander';
import { positiveNumber, specOption } from '../options.js';

export function registerReconcile(program: Command): void {
  program
    .command('reconcile')
    .description(
      'Observe, record channel lag in the control store, alert, and report drift (once or as a daemon)',
    )
    .addOption(specOption())
    .addOption(new Option('--once', 'one pass, then exit (CI, cron)').conflicts('watch'))
    .addOption(new Option('--watch', 'run until interrupted; writes the primary heartbeat').conflicts('once'))
    .option('--interval <seconds>', 'seconds between passes with --watch', positiveNumber('--interval'), 5)
    .option('--report <file>', 'write the drift report and channel health as JSON to FILE')
    .option(
      '--metrics-port <port>',
      'serve Prometheus metrics on 127.0.0.1:PORT (with --watch)',
      positiveNumber('--metrics-port'),
    )
    .addHelpText(
      'after',
      `
Only one reconciler acts at a time: the holder of the leader lock in the control store
writes channel state, alerts and the heartbeat; others observe and say they are standing
by, and take over when the leader's connection dies.

Exit codes (--once): 0 no drift and every channel active, 2 drift or an unhealthy
channel found (the report says what), 1 error.

Examples:
  regionctl reconcile --once --report drift.json
  regionctl reconcile --watch --interval 5 --metrics-port 9187`,
    )
    .action(
      async (opts: {
        spec: string;
        once?: boolean;
        watch?: boolean;
        interval: number;
        report?: string;
        metricsPort?: number;
        writeBackRemote?: string;
        writeBackBase: string;
        autoRejoin?: boolean;
        reportDir: string;
      }) => {
        const { runReconcile } = await import('../run-reconcile.js');
        process.exitCode = await runReconcile(opts);
      },
    );
}
