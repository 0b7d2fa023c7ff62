/**
 * `regionctl lab ...`: the embedded lab of real PostgreSQL servers. Heavy modules (pg,
 * the lab itself) are imported inside the actions so `regionctl --help` stays fast.
 */
import { dirname, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { formatOption, positiveNumber, specOption } from '../options.js';

interface Common {
  spec: string;
  stateDir?: string;
}

const stateDirOption = () =>
  new Option('--state-dir <dir>', 'lab state directory (default .regionctl/lab next to regions.yaml)').env(
    'REGIONCTL_LAB_STATE_DIR',
  );

function progress(e: { message: string }): void {
  process.stderr.write(`lab: ${e.message}\n`);
}

async function load(opts: Common) {
  const { loadSpecOrThrow } = await import('../../spec/load.js');
  const { spec, dir } = await loadSpecOrThrow(opts.spec);
  return { spec, specDir: dir, stateDir: opts.stateDir };
}

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description('Run the regions of regions.yaml as real local PostgreSQL servers (embedded lab)')
    .addHelpText(
      'after',
      `
The lab starts one PostgreSQL server per region of regions.yaml plus the control store,
at the spec's loopback hosts and ports, with data in the state directory. It is what the
demo, the tests and the benchmarks run on, and where failures are rehearsed.

Examples:
  regionctl lab up                 # start (or create) every server, install the demo schema
  regionctl lab load --rate 100 --duration 30
  regionctl lab kill us-east-1     # an outage: immediate shutdown
  regionctl lab start us-east-1    # back, with its data
  eval "$(regionctl lab env)"      # PGHOST/PGPORT/PGPASSFILE for psql
  regionctl lab down --purge       # stop everything and delete the state directory`,
    );

  lab
    .command('up')
    .description('Start every server of the spec (initialising the missing ones) and install the demo schema')
    .addOption(specOption())
    .addOption(stateDirOption())
    .option('--no-demo-schema', 'do not create the demo tables and application roles')
    .addOption(formatOption(['text', 'json'], 'text'))
    .addHelpText(
      'after',
      `
Idempotent: running servers are left alone, initialised ones are just started. The
superuser password is generated once into the file regions.yaml references
(endpoint.password.file) and never printed. Hosts must be loopback addresses.`,
    )
    .action(async (opts: Common & { demoSchema: boolean; format: string }) => {
      const { spec, specDir, stateDir } = await load(opts);
      const { labUp } = await import('../../lab/lab.js');
      const r = await labUp(spec, { specDir, stateDir, demoSchema: opts.demoSchema, onProgress: progress });
      if (opts.format === 'json') {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        return;
      }
      for (const s of r.servers) {
        process.stdout.write(
          `${s.name.padEnd(20)} ${`${s.host}:${s.port}`.padEnd(18)} ${s.action} (${s.ms} ms)\n`,
        );
      }
      process.stdout.write(`lab up in ${r.totalMs} ms; state in ${r.stateDir}\n`);
    });

  lab
    .command('down')
    .description('Stop every server the lab started (and nothing else)')
    .addOption(specOption())
    .addOption(stateDirOption())
    .option('--purge', 'also delete the state directory: data, logs, generated passwords, ledgers')
    .addHelpText(
      'after',
      `
Works without a valid regions.yaml: it stops the servers whose data directories are in
the state directory.`,
    )
    .action(async (opts: Common & { purge?: boolean }) => {
      const { labDown } = await import('../../lab/lab.js');
      const { resolveStateDir } = await import('../../lab/servers.js');
      const stateDir = resolveStateDir(dirname(resolve(opts.spec)), opts.stateDir);
      const r = await labDown({ stateDir, purge: opts.purge ?? false, onProgress: progress });
      process.stdout.write(r.stopped.length ? `stopped: ${r.stopped.join(', ')}\n` : 'nothing was running\n');
    });

  lab
    .command('status')
    .description('Show each server: initialised, running, reachable (exit 1 if any is not running)')
    .addOption(specOption())
    .addOption(stateDirOption())
    .addOption(formatOption(['text', 'json'], 'text'))
    .action(async (opts: Common & { format: string }) => {
      const { spec, specDir, stateDir } = await load(opts);
      const { labStatus } = await import('../../lab/lab.js');
      const r = await labStatus(spec, { specDir, stateDir });
      if (opts.format === 'json') {
        process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      } else {
        for (const s of r.servers) {
          const state = !s.initialised
            ? 'not initialised'
            : !s.running
              ? 'stopped'
              : `running (pid ${s.pid})${s.reachable ? '' : ', NOT reachable'}${s.runningPort ? `, on port ${s.runningPort} (spec says ${s.port}: run lab up)` : ''}`;
          process.stdout.write(`${s.name.padEnd(20)} ${`${s.host}:${s.port}`.padEnd(18)} ${state}\n`);
        }
        process.stdout.write(`state: ${r.stateDir}\n`);
      }
      if (r.servers.some((s) => !s.running || !s.reachable)) process.exitCode = 1;
    });

  lab
    .command('env')
    .description('Print connection settings: shell exports (default) or JSON; never the passwords')
    .addOption(specOption())
    .addOption(stateDirOption())
    .addOption(formatOption(['shell', 'json'], 'shell'))
    .addHelpText(
      'after',
      `
Passwords stay in files: the shell form exports PGPASSFILE (a pgpass file the lab writes,
mode 0600), the JSON form names each password's file or environment variable.
  eval "$(regionctl lab env)" && psql -c 'select 1'`,
    )
    .action(async (opts: Common & { format: string }) => {
      const { spec, specDir, stateDir } = await load(opts);
      const { labEnv, labEnvShell } = await import('../../lab/env.js');
      const env = labEnv(spec, { specDir, stateDir });
      process.stdout.write(opts.format === 'json' ? `${JSON.stringify(env, null, 2)}\n` : labEnvShell(env));
    });

  lab
    .command('kill')
    .description('Stop one region abruptly (immediate shutdown, as in an outage)')
    .argument('<region>', "region name (or 'control' for the control store)")
    .addOption(specOption())
    .addOption(stateDirOption())
    .action(async (region: string, opts: Common) => {
      const { spec, specDir, stateDir } = await load(opts);
      const { killRegion } = await import('../../lab/lab.js');
      await killRegion(spec, region, { specDir, stateDir, onProgress: progress });
    });

  lab
    .command('start')
    .description('Start one stopped or killed region again, with its data')
    .argument('<region>', "region name (or 'control' for the control store)")
    .addOption(specOption())
    .addOption(stateDirOption())
    .action(async (region: string, opts: Common) => {
      const { spec, specDir, stateDir } = await load(opts);
      const { startRegion } = await import('../../lab/lab.js');
      await startRegion(spec, region, { specDir, stateDir, onProgress: progress });
    });

  lab
    .command('fence')
    .description(
      "Reject the application roles in a region's pg_hba.conf (a fence that works while it is down)",
    )
    .argument('<region>', 'region name')
    .addOption(specOption())
    .addOption(stateDirOption())
    .action(async (region: string, opts: Common) => {
      const { spec, specDir, stateDir } = await load(opts);
      const { fenceLabRegion } = await import('../../lab/fence.js');
      const r = await fenceLabRegion(spec, region, { specDir, stateDir });
      process.stderr.write(`lab: region ${r.region}: application roles rejected in ${r.file}\n`);
    });

  lab
    .command('unfence')
    .description('Remove the fence that `lab fence` wrote')
    .argument('<region>', 'region name')
    .addOption(specOption())
    .addOption(stateDirOption())
    .action(async (region: string, opts: Common) => {
      const { spec, specDir, stateDir } = await load(opts);
      const { unfenceLabRegion } = await import('../../lab/fence.js');
      const r = await unfenceLabRegion(spec, region, { specDir, stateDir });
      process.stderr.write(`lab: region ${r.region}: fence removed from ${r.file}\n`);
    });

  lab
    .command('load')
    .description(
      'Generate application writes against the current primary, ledgering every acknowledged commit',
    )
    .addOption(specOption())
    .addOption(stateDirOption())
    .requiredOption('--rate <n>', 'transactions per second', positiveNumber('--rate'))
    .requiredOption('--duration <seconds>', 'how long to run', positiveNumber('--duration'))
    .option('--role <name>', 'application role to connect as (default: the first of applicationRoles)')
    .addOption(formatOption(['text', 'json'], 'text'))
    .addHelpText(
      'after',
      `
Writes go to whichever region is primary now: the DNS zone file's primary record when
dns.provider is file and the file exists, else the spec's primary. Failed transactions
(outage, failover, fence) are counted and retried on a fresh connection. Every
acknowledged commit is appended to <state>/ledger/<database>.jsonl with its commit LSN
and time. Ctrl-C stops early and still prints the figures. Exit 1 if nothing committed.`,
    )
    .action(async (opts: Common & { rate: number; duration: number; role?: string; format: string }) => {
      const { spec, specDir, stateDir } = await load(opts);
      const { runLoad } = await import('../../lab/load.js');
      const ac = new AbortController();
      const onSigint = () => ac.abort();
      process.once('SIGINT', onSigint);
      try {
        const r = await runLoad({
          spec,
          specDir,
          stateDir,
          rate: opts.rate,
          durationSec: opts.duration,
          role: opts.role,
          signal: ac.signal,
          onProgress: (p) =>
            process.stderr.write(
              `load: ${p.elapsedSec}s committed ${p.committed} failed ${p.failed} primary ${p.primary ?? '-'}${p.lastError && p.failed ? ` (last error: ${p.lastError})` : ''}\n`,
            ),
        });
        if (opts.format === 'json') {
          process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
        } else {
          process.stdout.write(
            `attempted ${r.attempted}, committed ${r.committed}, failed ${r.failed}, ${r.achievedRate} tx/s over ${(r.durationMs / 1000).toFixed(1)} s\n` +
              `by region: ${Object.entries(r.byRegion)
                .map(([k, v]) => `${k} ${v}`)
                .join(', ')}\n` +
              `ledger: ${r.ledgerFile} (+${r.rows} rows${r.inexactLsns ? `, ${r.inexactLsns} with an upper-bound LSN` : ''})\n`,
          );
          if (r.lastError && r.failed) process.stdout.write(`last error: ${r.lastError}\n`);
        }
        if (r.committed === 0) process.exitCode = 1;
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
