/**
 * Per-test isolation on the shared test lab (test/global-setup.ts). Servers are shared;
 * each test gets its own DATABASE on every region (`t_<name>`), its own control store
 * database (`c_<name>`), its own application roles (`<role>_<name>`: roles are
 * cluster-wide, and fencing one test's role must not cut off another test's sessions)
 * and its own DNS zone file. Replication slots are cluster-wide too; regionctl names
 * them after the database (src/model/names.ts), so they do not collide either.
 *
 * Names must be unique across the whole run: test files run in parallel.
 *
 *   const topo = await testTopology('apply_basic');
 *   afterAll(() => topo.close());
 *   const us = await topo.client('us-east-1');   // superuser, database t_apply_basic
 *   execFile('node', ['dist/src/cli/main.js', 'plan', '--spec', topo.specPath]);
 *
 * Tests that kill, restart or partition servers must not do it to the shared ones:
 * they use privateLab(name), which runs its own servers (same shape, same naming)
 * from the run's reserved port range and stops them in close().
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { inject } from 'vitest';
import { stringify } from 'yaml';
import { installDemoSchema } from '../../src/lab/demo-schema.js';
import { killRegion, labDown, labUp, startRegion } from '../../src/lab/lab.js';
import type { EndpointSpec, RegionsSpec } from '../../src/spec/schema.js';
import { connect, controlTarget, regionTarget } from '../../src/sql/connect.js';
import { ident } from '../../src/sql/quote.js';
import './lab-context.js';

export interface TestTopology {
  spec: RegionsSpec;
  /** The spec written as YAML, for CLI tests (`--spec`). Secret paths in it are absolute. */
  specPath: string;
  specDir: string;
  /** The shared lab's state directory (also where app role passwords live: secrets/<role>.password). */
  stateDir: string;
  /** A new superuser connection to the test database on one region; closed by close(). */
  client(region: string): Promise<pg.Client>;
  /** A new superuser connection to the test's control store database; closed by close(). */
  control(): Promise<pg.Client>;
  /** Ends every client handed out. Idempotent. */
  close(): Promise<void>;
}

const NAME = /^[a-z][a-z0-9_]{0,39}$/;

export async function testTopology(
  name: string,
  mutate?: (spec: RegionsSpec) => void,
): Promise<TestTopology> {
  const lab = labContext(name);
  const spec = isolatedSpec(lab.spec, name, lab.stateDir);
  mutate?.(spec);
  const specDir = join(lab.stateDir, 'specs');
  await Promise.all([
    ...spec.regions.map(async (r) => {
      await recreateDatabase(r.endpoint, spec.database, specDir, `region ${r.name}`, spec.applicationRoles);
      await installDemoSchema(spec, specDir, r.name, { stateDir: lab.stateDir });
    }),
    (async () => {
      const { database, ...endpoint } = spec.controlStore;
      await recreateDatabase(endpoint, database, specDir, 'control store', []);
    })(),
  ]);
  return handle(name, spec, specDir, lab.stateDir);
}

export interface PrivateLab extends TestTopology {
  /** Immediate shutdown of one region (or `control`): an outage. */
  kill(region: string): Promise<void>;
  /** Start it again with its data. */
  start(region: string): Promise<void>;
}

const PRIVATE_PORTS_PER_LAB = 5;

/**
 * A lab of its own for one test: the same regions, naming and demo schema as
 * testTopology, on servers nobody else uses. `stateDir` is the private lab's (its app
 * role passwords and ledger live there). close() stops the servers.
 */
export async function privateLab(name: string, mutate?: (spec: RegionsSpec) => void): Promise<PrivateLab> {
  const lab = labContext(name);
  const stateDir = join(lab.stateDir, 'private', name);
  const { index, release } = claimPrivatePorts(lab.stateDir, lab.privatePorts);
  const base = lab.privatePorts[0] + index * PRIVATE_PORTS_PER_LAB;
  const spec = isolatedSpec(lab.spec, name, stateDir);
  spec.regions.forEach((r, i) => {
    r.endpoint.port = base + i;
  });
  spec.controlStore.port = base + PRIVATE_PORTS_PER_LAB - 1;
  mutate?.(spec);
  const specDir = join(lab.stateDir, 'specs');
  rmSync(stateDir, { recursive: true, force: true });
  try {
    await labUp(spec, { specDir, stateDir, templateDir: join(lab.stateDir, '_template') });
  } catch (e) {
    await labDown({ stateDir }).catch(() => {});
    release();
    throw e;
  }
  const h = handle(name, spec, specDir, stateDir);
  return {
    ...h,
    kill: async (region) => {
      await killRegion(spec, region, { specDir, stateDir });
    },
    start: async (region) => {
      await startRegion(spec, region, { specDir, stateDir });
    },
    close: async () => {
      try {
        await h.close();
        await labDown({ stateDir });
      } finally {
        release();
      }
    },
  };
}

function labContext(name: string) {
  if (!NAME.test(name)) {
    throw new Error(
      `test topology name '${name}' must match ${NAME} (it becomes part of database and role names)`,
    );
  }
  const lab = inject('regionctlLab');
  if (!lab)
    throw new Error('no test lab: is test/global-setup.ts registered as globalSetup in vitest.config.ts?');
  return lab;
}

function isolatedSpec(base: RegionsSpec, name: string, stateDir: string): RegionsSpec {
  const spec = structuredClone(base);
  spec.database = `t_${name}`;
  spec.controlStore.database = `c_${name}`;
  spec.applicationRoles = spec.applicationRoles.map((r) => `${r}_${name}`);
  if (spec.dns?.file) spec.dns.file.path = join(stateDir, 'dns', `${name}.json`);
  return spec;
}

function handle(name: string, spec: RegionsSpec, specDir: string, stateDir: string): TestTopology {
  mkdirSync(specDir, { recursive: true });
  const specPath = join(specDir, `${name}.yaml`);
  writeFileSync(specPath, stringify(spec));
  const clients: pg.Client[] = [];
  const track = (c: pg.Client) => {
    clients.push(c);
    return c;
  };
  return {
    spec,
    specPath,
    specDir,
    stateDir,
    client: async (region) =>
      track(await connect(regionTarget(spec, region, specDir), { applicationName: `test ${name}` })),
    control: async () =>
      track(await connect(controlTarget(spec, specDir), { applicationName: `test ${name}` })),
    close: async () => {
      const all = clients.splice(0);
      await Promise.all(all.map((c) => c.end().catch(() => {})));
    },
  };
}

/** Private labs of one run share its port range; a lock file per block of ports hands them out. */
function claimPrivatePorts(
  stateDir: string,
  range: [number, number],
): { index: number; release: () => void } {
  const dir = join(stateDir, 'private');
  mkdirSync(dir, { recursive: true });
  const blocks = Math.floor((range[1] - range[0] + 1) / PRIVATE_PORTS_PER_LAB);
  for (let index = 0; index < blocks; index++) {
    const lock = join(dir, `ports-${index}.lock`);
    try {
      writeFileSync(lock, String(process.pid), { flag: 'wx' });
      return { index, release: () => rmSync(lock, { force: true }) };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  throw new Error(`all ${blocks} private lab port blocks are in use: close() private labs when done`);
}

/**
 * Drop and create one database on one server, clearing what would block the drop: its
 * subscriptions (detached from their slots first, as the remote slot may be unreachable
 * or already gone) and logical slots on this server that belong to the database.
 */
async function recreateDatabase(
  endpoint: EndpointSpec,
  database: string,
  specDir: string,
  label: string,
  roles: string[],
): Promise<void> {
  const admin = await connect(
    { endpoint, database: 'postgres', specDir, label },
    { applicationName: 'test-fixture' },
  );
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (exists.rowCount) {
      const db = await connect({ endpoint, database, specDir, label }, { applicationName: 'test-fixture' });
      try {
        const subs = await db.query<{ subname: string }>(
          'SELECT subname FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())',
        );
        for (const { subname } of subs.rows) {
          await db.query(`ALTER SUBSCRIPTION ${ident(subname)} DISABLE`);
          await db.query(`ALTER SUBSCRIPTION ${ident(subname)} SET (slot_name = NONE)`);
          await db.query(`DROP SUBSCRIPTION ${ident(subname)}`);
        }
      } finally {
        await db.end();
      }
    }
    // An active slot (a walsender still streaming to a subscriber elsewhere) cannot be dropped.
    await admin.query(
      `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`,
      [database],
    );
    const slots = await admin.query<{ slot_name: string }>(
      'SELECT slot_name FROM pg_replication_slots WHERE database = $1',
      [database],
    );
    for (const { slot_name } of slots.rows) {
      for (let attempt = 0; ; attempt++) {
        try {
          await admin.query('SELECT pg_drop_replication_slot($1)', [slot_name]);
          break;
        } catch (e) {
          // 55006: still active for a moment after its walsender was terminated.
          if ((e as { code?: string }).code !== '55006' || attempt >= 50) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    await admin.query(`DROP DATABASE IF EXISTS ${ident(database)} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${ident(database)} STRATEGY = FILE_COPY`);
    // A previous run of this test may have fenced its role; start each test unfenced.
    for (const role of roles) {
      const r = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [role]);
      if (r.rowCount) {
        await admin.query(`ALTER ROLE ${ident(role)} LOGIN`);
        await admin.query(`ALTER ROLE ${ident(role)} RESET ALL`);
      }
    }
  } finally {
    await admin.end();
  }
}
