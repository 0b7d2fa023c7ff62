/**
 * The `command` fencing method: run the operator's program to fence a region that SQL
 * cannot reach (revoke a security group rule, detach a network, stop an instance).
 *
 * - No shell: the argv from regions.yaml is executed as is, with `{region}` replaced in
 *   the arguments, so a region name can never be interpreted as shell syntax.
 * - Exit status 0 and nothing else confirms the fence. A non-zero exit, a signal, a
 *   timeout or a program that cannot be started are outcomes (confirmed: false) for
 *   the failover journal, not exceptions: the caller decides (refuse, or --force).
 * - On timeout the whole process group is killed (SIGKILL), so a script's children do
 *   not outlive it and keep fencing (or unfencing) behind the journal's back.
 * - Output (stdout and stderr interleaved) is kept bounded: the head and the tail,
 *   which is where the command says what it did and why it failed.
 */
import { spawn } from 'node:child_process';
import { RegionctlError } from '../../errors.js';
import type { FencingSpec } from '../../spec/schema.js';

export type CommandFencing = Extract<FencingSpec, { method: 'command' }>;

export interface FenceCommandResult {
  method: 'command';
  /** True only when the command exited with status 0 within its timeout. */
  confirmed: boolean;
  /** null when it was killed by a signal, timed out or never started. */
  exitCode: number | null;
  durationMs: number;
  /** stdout and stderr interleaved, bounded (see `maxOutputBytes`). */
  output: string;
  /** The argv that ran, after `{region}` substitution. */
  argv: string[];
  region: string;
  timedOut: boolean;
  signal: string | null;
  /** Why it could not be started (e.g. ENOENT), if it could not. */
  spawnError?: string;
}

export interface FenceCommandOptions {
  /** Default 30 s when the spec gives no timeoutSeconds. */
  defaultTimeoutSeconds?: number;
  /** Default 16 KiB: head and tail of the output are kept, the middle is elided. */
  maxOutputBytes?: number;
  /** Extra environment; REGIONCTL_FENCE_REGION is always set. */
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_FENCE_TIMEOUT_SECONDS = 30;

/** Collects output up to a bound, keeping the first and the last half. */
class BoundedOutput {
  private head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private dropped = 0;
  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    const half = Math.floor(this.limit / 2);
    if (this.headBytes < half) {
      const take = chunk.subarray(0, half - this.headBytes);
      this.head.push(take);
      this.headBytes += take.length;
      chunk = chunk.subarray(take.length);
    }
    if (chunk.length === 0) return;
    this.tail.push(chunk);
    this.tailBytes += chunk.length;
    const keep = this.limit - half;
    while (this.tailBytes > keep) {
      const first = this.tail[0]!;
      const excess = this.tailBytes - keep;
      if (first.length <= excess) {
        this.tail.shift();
        this.tailBytes -= first.length;
        this.dropped += first.length;
      } else {
        this.tail[0] = first.subarray(excess);
        this.tailBytes -= excess;
        this.dropped += excess;
      }
    }
  }

  toString(): string {
    const head = Buffer.concat(this.head).toString('utf8');
    const tail = Buffer.concat(this.tail).toString('utf8');
    return this.dropped > 0 ? `${head}\n[... ${this.dropped} bytes omitted ...]\n${tail}` : head + tail;
  }
}

export async function runFenceCommand(
  spec: CommandFencing,
  region: string,
  opts: FenceCommandOptions = {},
): Promise<FenceCommandResult> {
  if (
    spec.method !== 'command' ||
    !Array.isArray(spec.command) ||
    spec.command.length === 0 ||
    !spec.command[0]
  ) {
    throw new RegionctlError(
      'E_FENCE_SPEC',
      'runFenceCommand needs a { method: command, command: [program, ...] } spec',
    );
  }
  if (!region) throw new RegionctlError('E_FENCE_SPEC', 'runFenceCommand needs the region to fence');
  const timeoutSeconds = spec.timeoutSeconds ?? opts.defaultTimeoutSeconds ?? DEFAULT_FENCE_TIMEOUT_SECONDS;
  if (!(timeoutSeconds > 0) || !Number.isFinite(timeoutSeconds)) {
    throw new RegionctlError('E_FENCE_SPEC', `fence timeout ${timeoutSeconds} s is not a positive number`);
  }
  const [program, ...rest] = spec.command as [string, ...string[]];
  const args = rest.map((a) => a.replaceAll('{region}', region));
  const argv = [program, ...args];
  const output = new BoundedOutput(opts.maxOutputBytes ?? 16 * 1024);
  const started = performance.now();

  return new Promise<FenceCommandResult>((resolve) => {
    let timedOut = false;
    let settled = false;
    const finish = (exitCode: number | null, signal: string | null, spawnError?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(grace);
      resolve({
        method: 'command',
        confirmed: exitCode === 0 && !timedOut && spawnError === undefined,
        exitCode,
        durationMs: Math.round(performance.now() - started),
        output: output.toString(),
        argv,
        region,
        timedOut,
        signal,
        ...(spawnError !== undefined ? { spawnError } : {}),
      });
    };
    let grace: NodeJS.Timeout | undefined;
    const child = spawn(program, args, {
      shell: false,
      // Own process group, so the timeout can kill the command and everything it started.
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env, REGIONCTL_FENCE_REGION: region },
    });
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, timeoutSeconds * 1000);
    child.stdout?.on('data', (d: Buffer) => output.push(d));
    child.stderr?.on('data', (d: Buffer) => output.push(d));
    child.once('error', (e: NodeJS.ErrnoException) => {
      output.push(Buffer.from(`cannot run ${program}: ${e.message}\n`));
      finish(null, null, e.code ?? e.message);
    });
    child.once('exit', (code, signal) => {
      // 'close' waits for the pipes; a grandchild that escaped the group could hold
      // them open forever, so do not wait for it longer than a moment.
      grace = setTimeout(() => finish(code, signal), 200);
    });
    child.once('close', (code, signal) => finish(code, signal));
  });
}
