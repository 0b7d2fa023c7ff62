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
    .option('--wan', 'regions as network hosts: namespaces, WAN latency, partitionable links (root)')
    .option('--rtt-file <file>', 'with --wan: JSON round-trip matrix overriding the public defaults')
    .option('--lab-timeouts', "with --wan: keep the lab's 5 s replication timeouts (default: PostgreSQL's)")
    .addOption(formatOption(['text', 'json'], 'text'))
    .addHelpText(
      'after',
      `
Idempotent: running servers are left alone, initialised ones are just started. The
superuser password is generated once into the file regions.yaml references
(endpoint.password.file) and never printed. Hosts must be loopback addresses.

--wan runs each region's server in a network namespace of its own, its application
clients in another, joined to this host (the control plane) through a WAN namespace
whose delay relay holds every packet for half the pair's round trip (us-east-1 <->
eu-west-1 70 ms, <-> ap-southeast-1 220 ms, eu-west-1 <-> ap-southeast-1 160 ms, in
region 1 ms; --rtt-file overrides). Addresses are from 198.18.0.0/15 only. It writes
regions.wan.yaml beside regions.yaml (endpoints = relays): pass it as --spec to every
other command. It also runs the authority (one etcd member per region namespace) and
one region agent per region beside its server (\`regionctl agent --help\`), and writes
the authority section into regions.wan.yaml. Faults: \`regionctl lab net --help\`.
Needs root, iproute2, iptables, etcd-server.
Replication timeouts stay at PostgreSQL's defaults, as in production.`,
    )
    .action(
      async (
        opts: Common & {
          demoSchema: boolean;
          format: string;
          wan?: boolean;
          rttFile?: string;
          labTimeouts?: boolean;
        },
      ) => {
        let { spec, specDir, stateDir } = await load(opts);
        const { labUp } = await import('../../lab/lab.js');
        let wan: import('../../lab/wan/wan.js').WanUpResult | undefined;
        if (opts.wan) {
          const { wanUp } = await import('../../lab/wan/wan.js');
          const { resolveStateDir } = await import('../../lab/servers.js');
          wan = await wanUp(spec, {
            specPath: resolve(opts.spec),
            specDir,
            stateDir: resolveStateDir(specDir, stateDir),
            ...(opts.rttFile ? { rttFile: resolve(opts.rttFile) } : {}),
            serverSettings: opts.labTimeouts ? 'lab' : 'production',
            onProgress: (m) => progress({ message: m }),
          });
          ({ spec, specDir, stateDir } = await load({ ...opts, spec: wan.specFile }));
        } else if (opts.rttFile || opts.labTimeouts) {
          throw new (await import('../../errors.js')).RegionctlError(
            'E_USAGE',
            '--rtt-file and --lab-timeouts only apply to a WAN lab',
            'add --wan',
          );
        }
        const r = await labUp(spec, { specDir, stateDir, demoSchema: opts.demoSchema, onProgress: progress });
        if (wan) {
          const { wanServicesUp } = await import('../../lab/wan/wan.js');
          await wanServicesUp(r.stateDir, (m) => progress({ message: m }));
        }
        if (opts.format === 'json') {
          process.stdout.write(`${JSON.stringify(wan ? { ...r, wan } : r, null, 2)}\n`);
          return;
        }
        for (const s of r.servers) {
          process.stdout.write(
            `${s.name.padEnd(20)} ${`${s.host}:${s.port}`.padEnd(18)} ${s.action} (${s.ms} ms)\n`,
          );
        }
        process.stdout.write(`lab up in ${r.totalMs} ms; state in ${r.stateDir}\n`);
        if (wan) {
          process.stdout.write(
            `WAN lab ${wan.subnet}: use --spec ${wan.specFile} (endpoints are the delay relays)\n`,
          );
        }
      },
    );

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

  registerLabNet(lab);
}

function registerLabNet(lab: Command): void {
  const net = lab
    .command('net')
    .description('Network faults in a WAN lab: partitions, isolation, control-plane cuts, delays')
    .addHelpText(
      'after',
      `
Nodes: a region (its server), '<region>:clients' (its application clients), 'control'
(this host: the CLI, the reconciler, the control store's clients). Partitions are
iptables DROP rules inside the namespaces, so connects and open streams hang as in a
real partition; TCP timeouts and keepalives behave as in production. Every command is
idempotent and reversible; the state lives in <state>/wan/wan.json.

Examples:
  regionctl lab net cut-control us-east-1            # only the control plane loses it
  regionctl lab net isolate us-east-1 --except-clients
  regionctl lab net partition us-east-1 eu-west-1 --one-way
  regionctl lab net delay us-east-1 eu-west-1 300ms
  regionctl lab net heal --all
  regionctl lab net show --format json`,
    );
  const stateOf = async (opts: Common) => {
    const { resolveStateDir } = await import('../../lab/servers.js');
    return resolveStateDir(dirname(resolve(opts.spec)), opts.stateDir);
  };
  const done = async (opts: Common, what: string) => {
    const { netShow, renderNetShow } = await import('../../lab/wan/wan.js');
    process.stderr.write(`lab net: ${what}\n`);
    if ((opts as { quiet?: boolean }).quiet) return;
    process.stdout.write(renderNetShow(netShow(await stateOf(opts))));
  };
  const common = (c: Command) =>
    c
      .addOption(specOption())
      .addOption(stateDirOption())
      .option('-q, --quiet', 'do not print the matrix afterwards');

  common(
    net
      .command('partition')
      .description("Drop traffic between two nodes (--one-way: only A's packets to B)")
      .argument('<a>', 'node')
      .argument('<b>', 'node')
      .option('--one-way', "only A's packets to B are lost"),
  ).action(async (a: string, b: string, opts: Common & { oneWay?: boolean }) => {
    const { netPartition } = await import('../../lab/wan/wan.js');
    await netPartition(await stateOf(opts), a, b, opts.oneWay ?? false);
    await done(opts, `${a} ${opts.oneWay ? '-x->' : '<-x->'} ${b}`);
  });

  common(
    net
      .command('isolate')
      .description('Cut a region from every other node (its clients too, unless --except-clients)')
      .argument('<region>', 'region')
      .option('--except-clients', "the region's own application clients still reach it"),
  ).action(async (region: string, opts: Common & { exceptClients?: boolean }) => {
    const { netIsolate } = await import('../../lab/wan/wan.js');
    await netIsolate(await stateOf(opts), region, opts.exceptClients ?? false);
    await done(opts, `${region} isolated${opts.exceptClients ? ' (its clients still connected)' : ''}`);
  });

  common(
    net
      .command('cut-control')
      .description(
        'Only the control plane (this host) loses the region; the other regions and its clients keep it',
      )
      .argument('<region>', 'region'),
  ).action(async (region: string, opts: Common) => {
    const { netCutControl } = await import('../../lab/wan/wan.js');
    await netCutControl(await stateOf(opts), region);
    await done(opts, `control <-x-> ${region}`);
  });

  common(
    net
      .command('cut-store')
      .description('The control plane loses the control store (--heal: gets it back)')
      .option('--heal', 'remove this cut only'),
  ).action(async (opts: Common & { heal?: boolean }) => {
    const { spec } = await load(opts);
    const { netCutLocalPort } = await import('../../lab/wan/wan.js');
    await netCutLocalPort(await stateOf(opts), spec.controlStore.port, !opts.heal);
    await done(
      opts,
      `control ${opts.heal ? '<-->' : '<-x->'} control store (127.0.0.1:${spec.controlStore.port})`,
    );
  });

  common(
    net
      .command('delay')
      .description('Set the round trip between two nodes (e.g. 300ms, 1.5s)')
      .argument('<a>', 'node')
      .argument('<b>', 'node')
      .argument('<rtt>', 'round trip: 300ms, 1.5s, or a number of ms'),
  ).action(async (a: string, b: string, rtt: string, opts: Common) => {
    const m = /^(\d+(?:\.\d+)?)\s*(ms|s)?$/.exec(rtt.trim());
    if (!m) {
      const { RegionctlError } = await import('../../errors.js');
      throw new RegionctlError('E_USAGE', `bad round trip '${rtt}'`, 'write it as 300ms, 1.5s or 300');
    }
    const ms = Number(m[1]) * (m[2] === 's' ? 1000 : 1);
    const { netDelay } = await import('../../lab/wan/wan.js');
    await netDelay(await stateOf(opts), a, b, ms);
    await done(opts, `${a} <-> ${b}: ${ms} ms round trip`);
  });

  common(
    net
      .command('heal')
      .description('Remove cuts: all, those of one node, or between two (--all: also reset delays)')
      .argument('[a]', 'node')
      .argument('[b]', 'node')
      .option('--all', 'also reset every delay set with `lab net delay`'),
  ).action(async (a: string | undefined, b: string | undefined, opts: Common & { all?: boolean }) => {
    const { netHeal } = await import('../../lab/wan/wan.js');
    await netHeal(await stateOf(opts), { ...(a ? { a } : {}), ...(b ? { b } : {}), all: opts.all ?? false });
    await done(
      opts,
      a
        ? `healed ${a}${b ? ` <-> ${b}` : ''}`
        : opts.all
          ? 'healed everything, delays reset'
          : 'healed every cut',
    );
  });

  net
    .command('show')
    .description('The round-trip matrix and the cuts in force (table or JSON)')
    .addOption(specOption())
    .addOption(stateDirOption())
    .addOption(formatOption(['text', 'json'], 'text'))
    .action(async (opts: Common & { format: string }) => {
      const { netShow, renderNetShow } = await import('../../lab/wan/wan.js');
      const v = netShow(await stateOf(opts));
      process.stdout.write(opts.format === 'json' ? `${JSON.stringify(v, null, 2)}\n` : renderNetShow(v));
    });
}
