/**
 * vitest globalSetup: ONE shared lab per test run — the servers of regions.yaml plus the
 * control store, ports shifted so a developer's own lab (`regionctl lab up`) keeps
 * running beside the tests. Tests isolate themselves by database (test/support/topology.ts),
 * not by server, so the ~2-5 s of initdb+start is paid once.
 *
 * Several runs on one machine (two checkouts, two people) must not purge each other's
 * lab: each run claims a slot with a lock file. Slot 0 is /tmp/regionctl-test-lab on
 * ports 55430.., slot k is /tmp/regionctl-test-lab-k on ports +100k. Ports 55440..55499
 * (+100k) are for private labs (test/support/topology.ts privateLab), for tests that
 * kill or restart servers and so must not share them.
 * REGIONCTL_TEST_KEEP_LAB=1 leaves the servers running after the run, for a post-mortem.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { parse, stringify } from 'yaml';
import { labDown, labUp } from '../src/lab/lab.js';
import type { RegionsSpec } from '../src/spec/schema.js';
import type { TestLabContext } from './support/lab-context.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PORT_SHIFT = 1000;
const SLOTS = 10;
const SLOT_PORTS = 100;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const { slot, stateDir, release } = claimSlot();
  const base = parse(readFileSync(join(ROOT, 'regions.yaml'), 'utf8')) as RegionsSpec;
  const portShift = PORT_SHIFT + SLOT_PORTS * slot;
  const spec = testLabSpec(base, stateDir, portShift);

  // Fresh every run: stop whatever an earlier (crashed) run of this slot left, then wipe.
  await stopLabs(stateDir);
  await labDown({ stateDir, purge: true });
  const specDir = join(stateDir, 'specs');
  mkdirSync(specDir, { recursive: true });
  const specPath = join(specDir, '_lab.yaml');
  writeFileSync(specPath, stringify(spec));

  const t0 = performance.now();
  try {
    await labUp(spec, { specDir, stateDir, demoSchema: false });
  } catch (e) {
    await labDown({ stateDir }).catch(() => {});
    release();
    throw e;
  }
  if (process.env.REGIONCTL_TEST_VERBOSE) {
    process.stderr.write(`test lab up in ${Math.round(performance.now() - t0)} ms at ${stateDir}\n`);
  }
  const ctx: TestLabContext = {
    stateDir,
    specPath,
    specDir,
    spec,
    privatePorts: [55440 + SLOT_PORTS * slot, 55499 + SLOT_PORTS * slot],
  };
  project.provide('regionctlLab', ctx);

  return async () => {
    try {
      if (!process.env.REGIONCTL_TEST_KEEP_LAB) await stopLabs(stateDir);
    } finally {
      release();
    }
  };
}

/** The shared lab and every private lab a test left running. */
async function stopLabs(stateDir: string): Promise<void> {
  const privateRoot = join(stateDir, 'private');
  const privates = existsSync(privateRoot)
    ? readdirSync(privateRoot, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => join(privateRoot, d.name))
    : [];
  await Promise.all([...privates, stateDir].map((d) => labDown({ stateDir: d })));
}

/** regions.yaml as the test lab runs it: shifted ports; secrets and the DNS zone under the state dir. */
export function testLabSpec(base: RegionsSpec, stateDir: string, shift: number): RegionsSpec {
  const spec = structuredClone(base);
  const password = { file: join(stateDir, 'secrets', 'postgres.password') };
  for (const r of spec.regions) {
    r.endpoint.port += shift;
    if (r.endpoint.password && 'file' in r.endpoint.password) r.endpoint.password = password;
  }
  spec.controlStore.port += shift;
  if (spec.controlStore.password && 'file' in spec.controlStore.password)
    spec.controlStore.password = password;
  if (spec.dns?.file) spec.dns.file.path = join(stateDir, 'dns', 'zone.json');
  return spec;
}

function claimSlot(): { slot: number; stateDir: string; release: () => void } {
  const forced = process.env.REGIONCTL_TEST_LAB_SLOT;
  const slots = forced !== undefined ? [Number(forced)] : [...Array(SLOTS).keys()];
  for (const slot of slots) {
    const stateDir = slot === 0 ? '/tmp/regionctl-test-lab' : `/tmp/regionctl-test-lab-${slot}`;
    const lock = `${stateDir}.lock`;
    if (tryLock(lock)) return { slot, stateDir, release: () => rmSync(lock, { force: true }) };
  }
  throw new Error(
    `all ${SLOTS} test lab slots (/tmp/regionctl-test-lab*) are in use by running test processes; ` +
      'wait for them, or remove stale /tmp/regionctl-test-lab*.lock files',
  );
}

function tryLock(lock: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = Number(readFileSync(lock, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) return false;
    rmSync(lock, { force: true }); // The run that held it is gone.
  }
  return false;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
