#!/usr/bin/env node
/**
 * The WAN lab's delay relay as a process:
 *
 *   node dist/src/lab/wan/relay-main.js --config relay.json --pid-file relay.pid
 *
 * The pid file appears only once every listener is bound, so a launcher can wait for it.
 * SIGHUP re-reads the config (delays and sources; listeners need a restart), SIGTERM/SIGINT
 * stop. Every event is one JSON line on stderr.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { errorMessage } from '../../errors.js';
import { parseRelayConfig, type Relay, type RelayConfig, startRelay } from './relay.js';

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), event, ...fields })}\n`);
}

function readConfig(file: string): RelayConfig {
  return parseRelayConfig(readFileSync(file, 'utf8'), file);
}

function sameListeners(a: RelayConfig, b: RelayConfig): boolean {
  return JSON.stringify(a.listeners) === JSON.stringify(b.listeners);
}

async function main(): Promise<number> {
  let args: { config: string; pidFile: string };
  try {
    const { values } = parseArgs({
      options: { config: { type: 'string' }, 'pid-file': { type: 'string' } },
      strict: true,
    });
    if (values.config === undefined || values['pid-file'] === undefined)
      throw new Error('both --config FILE and --pid-file FILE are required');
    args = { config: values.config, pidFile: values['pid-file'] };
  } catch (e) {
    log('error', { phase: 'usage', message: errorMessage(e) });
    return 2;
  }

  let config: RelayConfig;
  let relay: Relay;
  try {
    config = readConfig(args.config);
    relay = await startRelay(config, { onError: (e) => log('error', { phase: 'relay', ...e }) });
  } catch (e) {
    log('error', { phase: 'start', message: errorMessage(e) });
    return 1;
  }

  // Written atomically: whoever polls for the file must never read a half-written pid.
  const tmp = `${args.pidFile}.${process.pid}.tmp`;
  writeFileSync(tmp, `${process.pid}\n`);
  renameSync(tmp, args.pidFile);
  log('start', { pid: process.pid, config: args.config, listeners: relay.addresses() });

  process.on('SIGHUP', () => {
    try {
      const next = readConfig(args.config);
      relay.reconfigure(next);
      log('reload', {
        config: args.config,
        ...(sameListeners(config, next)
          ? {}
          : { warning: 'listeners changed: they apply only after a restart' }),
        connections: relay.stats().connections,
      });
      config = { ...next, listeners: config.listeners };
    } catch (e) {
      log('error', { phase: 'reload', message: `${errorMessage(e)} (the previous config stays in force)` });
    }
  });

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      void relay.close().then(() => {
        try {
          // Only our own pid file: a successor may already have written its own.
          if (readFileSync(args.pidFile, 'utf8').trim() === String(process.pid)) rmSync(args.pidFile);
        } catch {}
        log('stop', { signal, ...relay.stats() });
        resolve(0);
      });
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

process.exitCode = await main();
