/**
 * Process entry of the fault suite's workload (workload.ts), for running it where the
 * suite puts clients — inside a network namespace:
 *
 *   ip netns exec NS node --import tsx test/chaos/workload-main.ts --config FILE
 *   node --import tsx test/chaos/workload-main.ts --config FILE     (directly)
 *
 * FILE is the JSON WorkloadConfig; its relative paths (zoneFile, passwordFile, logFile)
 * are taken relative to FILE's directory, so a config works whatever the cwd of
 * `ip netns exec`. SIGTERM or SIGINT stops the writers (an in-flight write or connect
 * finishes within queryTimeoutMs / connectTimeoutMs and is logged) and the process
 * exits 0; a second signal exits at once (1), leaving in-flight ids as bare `send` lines. Exit 2: bad arguments or config. stdout stays quiet; one summary line goes to
 * stderr at the end.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseWorkloadConfig, startWorkload, type WorkloadConfig } from './workload.js';

function loadConfig(file: string): WorkloadConfig {
  const cfg = parseWorkloadConfig(JSON.parse(readFileSync(file, 'utf8')));
  const dir = dirname(resolve(file));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  return {
    ...cfg,
    zoneFile: abs(cfg.zoneFile),
    passwordFile: abs(cfg.passwordFile),
    logFile: abs(cfg.logFile),
  };
}

function main(): void {
  let cfg: WorkloadConfig;
  try {
    const { values } = parseArgs({ options: { config: { type: 'string' } }, strict: true });
    if (!values.config) throw new Error('usage: workload-main.ts --config FILE');
    cfg = loadConfig(values.config);
  } catch (e) {
    process.stderr.write(`workload: ${(e as Error).message}\n`);
    process.exit(2);
  }
  const workload = startWorkload(cfg);
  let signalled = false;
  const stop = (sig: string) => {
    if (signalled) process.exit(1); // Asked twice: do not wait for in-flight writes.
    signalled = true;
    process.stderr.write(`workload ${cfg.id}: ${sig}, stopping writers\n`);
    void workload.stop();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  workload.done.then(
    () => {
      const s = workload.stats();
      const sum = (k: 'acks' | 'errors' | 'connErrors') => s.reduce((n, w) => n + w[k], 0);
      process.stderr.write(
        `workload ${cfg.id}: stopped; ${sum('acks')} acks, ${sum('errors')} errors, ${sum('connErrors')} failed connects\n`,
      );
      process.exit(0);
    },
    (e: unknown) => {
      process.stderr.write(`workload ${cfg.id}: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}

main();
