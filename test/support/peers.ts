/**
 * Tests that need a real outside program (BIND's named, dig, ...) call `requirePeer`.
 * A developer without it gets a skip with the reason printed; CI sets
 * REGIONCTL_REQUIRE_PEERS=1, where a missing program is a failure, so a broken
 * .ci/apt-packages cannot silently turn a suite into skips.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

// Daemons live in sbin, which is often not in a non-root PATH.
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Absolute path of `program` on PATH (or in the sbin directories), or undefined. */
export function findProgram(program: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const p = join(dir, program);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function peersRequired(): boolean {
  return process.env.REGIONCTL_REQUIRE_PEERS === '1';
}

/**
 * The path of `program`, or undefined after printing why the caller's tests will skip.
 * Under REGIONCTL_REQUIRE_PEERS=1 a missing program throws instead, which fails the
 * test file that asked.
 */
export function requirePeer(program: string, install = `apt-get install ${program}`): string | undefined {
  const path = findProgram(program);
  if (path) return path;
  const reason = `${program} is not installed (${install}; CI installs .ci/apt-packages)`;
  if (peersRequired()) {
    throw new Error(`REGIONCTL_REQUIRE_PEERS=1 but ${reason}`);
  }
  console.warn(`SKIP: ${reason}`);
  return undefined;
}

/**
 * For the WAN lab's tests: undefined when it can run here; otherwise prints why the
 * caller's tests skip (or throws under REGIONCTL_REQUIRE_PEERS=1) and returns the reason.
 */
export function requireWanLab(problems: string[]): string | undefined {
  if (problems.length === 0) return undefined;
  const reason = `the WAN lab needs ${problems.join('; ')} (CI runs as root and installs .ci/apt-packages)`;
  if (peersRequired()) throw new Error(`REGIONCTL_REQUIRE_PEERS=1 but ${reason}`);
  console.warn(`SKIP: ${reason}`);
  return reason;
}
