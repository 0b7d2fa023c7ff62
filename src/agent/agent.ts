/**
 * `regionctl agent --region NAME`: runs beside one region's PostgreSQL (in the lab: in
 * the region's namespace; in production: a systemd unit or sidecar on the database's
 * host or in its network) and answers, through the authority, the two questions a
 * cross-region failover cannot answer from afar:
 *
 *  - "Is the primary really down?" Every agent probes the primary directly from its
 *    own region and publishes the count of consecutive failures in its region lease's
 *    status; the primary's own agent probes its database locally. The reconciler's
 *    detection rule (src/safety/detection.ts) votes with these, never with its own
 *    view alone nor with replication-stream silence.
 *  - "Can the old primary still take writes?" The primary's agent holds the primary
 *    lease in etcd, and fences its own database — application roles NOLOGIN, write
 *    privileges revoked, sessions terminated, verified by a write that fails — as soon
 *    as it cannot prove the lease alive: FENCE_LEAD_MS before the lease's certain
 *    validity ends (last acknowledged renewal's send time + TTL), which is before etcd
 *    can expire it. The reconciler promotes only after the lease is gone plus a margin
 *    (src/safety/promotion.ts), so the old primary has fenced itself by then: the
 *    worst-case dual-write window is zero.
 *
 * It lifts its own fence only when it holds the primary lease again, which etcd grants
 * only in a transaction checking that the topology's epoch and primary are still the
 * ones this region was primary at — the explicit instruction carrying the current
 * epoch. A region that was failed away from stays fenced until rejoin.
 */

import type pg from 'pg';
import type { Authority, PrimaryLeaseHandle, RegionLeaseHandle, RegionStatus } from '../authority/types.js';
import { desiredState, primaryOf } from '../model/desired.js';
import { sleep } from '../sleep.js';
import type { RegionsSpec } from '../spec/schema.js';
import { connect, endWithin, regionTarget, withDeadline } from '../sql/connect.js';
import { verifyFence } from '../sql/fence-verify.js';
import { fenceSql, unfenceSql } from '../sql/guard.js';
import { runStatements } from '../sql/statement.js';
import { BootFence } from './boot-fence.js';

/** The fence starts this long before the lease could possibly expire in etcd. */
export const FENCE_LEAD_MS = 500;
/** How often the watchdog looks at the lease's validity. */
const WATCHDOG_MS = 100;

export interface AgentOptions {
  spec: RegionsSpec;
  specDir: string;
  region: string;
  authority: Authority;
  signal: AbortSignal;
  log: (event: Record<string, unknown>) => void;
  fenceLeadMs?: number;
  /**
   * The database's data directory on this host, for the boot fence (src/agent/boot-fence.ts).
   * Without it the agent learns it (and hba_file) from the server at first contact; an
   * agent that cannot write there (not on the database's host) has no boot fence.
   */
  pgdata?: string;
}

export interface AgentStatus extends RegionStatus {
  region: string;
  /** Consecutive failed probes of the primary from this region (null: this is the primary). */
  primaryProbeFailures: number | null;
  /** Consecutive failed probes of this region's own database. */
  databaseFailures: number;
  /** Topology this agent last read. */
  epoch: number | null;
  primary: string | null;
  /** This agent holds the primary lease. */
  primaryLease: boolean;
  /** The agent fenced its own database (and has not lifted it). */
  selfFenced: boolean;
  /** pg_hba.conf holds the agent's boot fence (the server starts with application roles shut out). */
  bootFence: boolean;
  fenceReason: string | null;
  at: string;
}

export class RegionAgent {
  private local: pg.Client | null = null;
  private regionLease: RegionLeaseHandle | null = null;
  private primaryLease: PrimaryLeaseHandle | null = null;
  private dbFailures = 0;
  private primaryFailures: number | null = null;
  private epoch: number | null = null;
  private primary: string | null = null;
  /** Fenced by this agent; `pending` while the database could not be reached to do it. */
  private fence: { state: 'none' | 'pending' | 'done'; reason: string | null } = {
    state: 'none',
    reason: null,
  };
  private fencing: Promise<void> | null = null;
  private boot: BootFence | null = null;
  private bootSet = false;
  private bootProblem: string | null = null;
  /** This region was primary at some point of this agent's life (or its database says so). */
  private wasPrimary = false;
  private watchdog: NodeJS.Timeout | null = null;
  private readonly probe: RegionsSpec['failover']['probe'];
  private readonly leadMs: number;

  constructor(private readonly o: AgentOptions) {
    this.probe = o.spec.failover.probe;
    this.leadMs = o.fenceLeadMs ?? FENCE_LEAD_MS;
  }

  status(): AgentStatus {
    return {
      region: this.o.region,
      primaryProbeFailures: this.primary === this.o.region ? null : this.primaryFailures,
      databaseFailures: this.dbFailures,
      epoch: this.epoch,
      primary: this.primary,
      primaryLease: this.primaryLease?.isHeld() ?? false,
      selfFenced: this.fence.state !== 'none',
      bootFence: this.bootSet,
      fenceReason: this.fence.reason,
      at: new Date().toISOString(),
    };
  }

  async run(): Promise<void> {
    this.watchdog = setInterval(() => this.checkLease(), WATCHDOG_MS);
    try {
      while (!this.o.signal.aborted) {
        const started = Date.now();
        await this.tick().catch((e: Error) =>
          this.o.log({ level: 'error', msg: 'agent pass failed', error: e.message }),
        );
        // Once its database is declared down, look for its return ten times as often: a
        // former primary that restarts must be fenced before its clients find it.
        const every =
          this.dbFailures >= this.probe.failureThreshold
            ? Math.min(100, this.probe.intervalSeconds * 1000)
            : this.probe.intervalSeconds * 1000;
        await sleep(Math.max(0, every - (Date.now() - started)), this.o.signal);
      }
    } finally {
      if (this.watchdog) clearInterval(this.watchdog);
      // A stopping agent no longer guards its database's right to write: give the
      // primary lease up only after fencing, or let it run out (the reconciler then
      // sees a lapsed lease and, with the witnesses, decides).
      await this.regionLease?.release().catch(() => {});
      if (this.local) await endWithin(this.local);
    }
  }

  /** One probe interval: read the topology, probe, hold or give up leases, report. */
  private async tick(): Promise<void> {
    const a = this.o.authority;
    // undefined: the authority did not answer; null: nobody recorded a topology yet, so
    // record the spec's primary at epoch 1 (a no-op when another party got there first).
    const topo = await a
      .topology()
      .then((t) => t ?? a.ensureTopology(primaryOf(this.o.spec)))
      .catch((e: Error) => {
        this.o.log({ level: 'warn', msg: 'authority unreachable', error: e.message });
        return undefined;
      });
    if (topo) {
      this.epoch = topo.epoch;
      this.primary = topo.primary;
    }
    const dbUp = await this.probeLocal();
    const iAmPrimary = topo?.primary === this.o.region;
    if (iAmPrimary) this.wasPrimary = true;
    if (dbUp) await this.discoverFiles();
    else this.maybeSetBootFence();
    if (this.fence.state === 'pending' && dbUp) await this.selfFence(this.fence.reason ?? 'pending');

    if (!topo) {
      // Not knowing the topology is no sign that it moved: a held primary lease stays
      // held, and the watchdog fences when its validity runs out (which a partition
      // from the authority makes it do). Nothing else can be decided without etcd.
    } else if (iAmPrimary) {
      this.primaryFailures = null;
      if (this.dbFailures >= this.probe.failureThreshold && this.primaryLease) {
        // Its database is down: nothing writes there; say so by letting go of the lease.
        this.o.log({
          level: 'warn',
          msg: 'own database down: releasing the primary lease',
          failures: this.dbFailures,
        });
        const l = this.primaryLease;
        this.primaryLease = null;
        await l.release().catch(() => {});
      } else if (dbUp && !this.primaryLease?.isHeld()) {
        await this.takePrimaryLease(topo.epoch);
      } else if (dbUp && this.fence.state !== 'none' && this.primaryLease?.epoch === topo.epoch) {
        // The lease was taken again but lifting the fence failed then: try again.
        await this.liftFence(topo.epoch);
      }
    } else {
      if (this.primaryLease) {
        // The topology moved on (switchover or failover): this region is no primary now.
        // A switchover fenced it already and then makes it a read-only secondary: fence
        // only what can still write (or what cannot be asked).
        const writable = await this.appRolesCanWrite().catch(() => true);
        if (writable)
          await this.selfFence(`the topology names ${topo.primary} primary at epoch ${topo.epoch}`);
        else
          this.o.log({
            level: 'info',
            msg: 'no longer primary; already fenced by the transition',
            epoch: topo.epoch,
          });
        const l = this.primaryLease;
        this.primaryLease = null;
        await l.release().catch(() => {});
      } else if (dbUp) {
        await this.fenceIfFormerPrimary(topo.epoch, topo.primary);
      }
      await this.probePrimary(topo.primary);
    }
    if (dbUp && this.bootSet) await this.maybeLiftBootFence(topo, iAmPrimary);
    await this.report();
  }

  /** Where the server's files are, once; and whether a boot fence is already in place. */
  private async discoverFiles(): Promise<void> {
    if (this.boot || this.bootProblem) return;
    let files: { hbaFile: string; dataDir: string };
    if (this.o.pgdata) {
      files = { dataDir: this.o.pgdata, hbaFile: `${this.o.pgdata}/pg_hba.conf` };
    } else {
      try {
        const r = await (await this.client()).query(
          "SELECT current_setting('data_directory') AS d, current_setting('hba_file') AS h",
        );
        files = { dataDir: r.rows[0].d as string, hbaFile: r.rows[0].h as string };
      } catch (e) {
        this.o.log({ level: 'warn', msg: 'boot fence: server files unknown', error: (e as Error).message });
        return;
      }
    }
    const problem = BootFence.usable(files);
    if (problem) {
      this.bootProblem = problem;
      this.o.log({
        level: 'warn',
        msg: "no boot fence: this agent cannot write the server's pg_hba.conf (run it on the database host, or pass --pgdata)",
        error: problem,
      });
      return;
    }
    this.boot = new BootFence(files, this.o.spec.applicationRoles);
    this.bootSet = this.boot.isSet();
  }

  /**
   * The postmaster of a region that is or was primary is gone: shut the application
   * roles out in pg_hba.conf now, so that whenever it starts again — after a failover
   * or not — nobody writes before this agent has decided (maybeLiftBootFence).
   */
  private maybeSetBootFence(): void {
    const b = this.boot;
    if (!b || this.bootSet || !this.wasPrimary) return;
    try {
      if (!b.postmasterDown()) return;
      b.set(
        `written by the regionctl agent of ${this.o.region} at ${new Date().toISOString()}: server down; lifted at first contact`,
      );
      this.bootSet = true;
      this.o.log({ level: 'warn', msg: 'boot fence set: server down', hbaFile: b.hbaFile });
    } catch (e) {
      this.o.log({ level: 'error', msg: 'boot fence not set', error: (e as Error).message });
    }
  }

  /**
   * First contact after a restart: lift the boot fence once the database's state is
   * decided — primary lease held again at the current epoch (the primary came back), or
   * the SQL fence applied and verified (a former primary). Without the topology, keep it.
   */
  private async maybeLiftBootFence(
    topo: { epoch: number; primary: string } | undefined,
    iAmPrimary: boolean,
  ): Promise<void> {
    if (!topo) return;
    if (iAmPrimary) {
      if (!this.primaryLease?.isHeld() || this.fence.state !== 'none') return;
    } else {
      if (this.fence.state !== 'done')
        await this.selfFence(
          `restarted while ${topo.primary} is primary at epoch ${topo.epoch}: fenced before its boot fence is lifted`,
        );
      if (this.fence.state !== 'done') return;
    }
    try {
      this.boot?.clear();
      await (await this.client()).query('SELECT pg_reload_conf()');
      this.bootSet = false;
      this.o.log({
        level: 'warn',
        msg: iAmPrimary
          ? 'boot fence lifted: primary lease held again'
          : 'boot fence lifted: the SQL fence holds',
        epoch: topo.epoch,
      });
    } catch (e) {
      this.o.log({ level: 'error', msg: 'boot fence not lifted', error: (e as Error).message });
    }
  }

  /**
   * A database that was primary at an older epoch and comes back (a crash, a restart
   * after the failover) must not take application writes, whatever happened to the
   * failover's own fence (a hook that could not run, a fence command lost with the
   * region). Its agent remembers in the database itself — a row outside every
   * publication — the epoch it held the primary lease at, and fences it at first
   * contact if its application roles can still write.
   */
  private async fenceIfFormerPrimary(epoch: number, primary: string): Promise<void> {
    try {
      const c = await this.client();
      const was = await c
        .query(
          "SELECT epoch FROM regionctl.agent_primary WHERE to_regclass('regionctl.agent_primary') IS NOT NULL",
        )
        .catch(() => ({ rows: [] as { epoch: string }[] }));
      const heldAt = was.rows[0] ? Number(was.rows[0].epoch) : null;
      if (heldAt !== null) this.wasPrimary = true;
      if (heldAt === null || heldAt >= epoch) return;
      if (!(await this.appRolesCanWrite())) return;
      if (this.fence.state === 'done') this.fence = { state: 'none', reason: null };
      await this.selfFence(
        `this database was primary at epoch ${heldAt}; the topology names ${primary} at epoch ${epoch}, and its application roles could still write`,
      );
    } catch (e) {
      this.o.log({ level: 'warn', msg: 'former-primary check failed', error: (e as Error).message });
    }
  }

  /** Some application role may write some application table here. */
  private async appRolesCanWrite(): Promise<boolean> {
    const c = await this.client();
    const tables = await this.appTables(c);
    const w = await c.query(
      `SELECT EXISTS (SELECT 1 FROM unnest($1::text[]) r JOIN pg_roles ON rolname = r, unnest($2::text[]) t
                       WHERE has_table_privilege(r, t, 'INSERT, UPDATE, DELETE')) AS writable`,
      [this.o.spec.applicationRoles, tables],
    );
    return Boolean(w.rows[0]?.writable);
  }

  /** Remember, in the database, that it was primary at this epoch (see fenceIfFormerPrimary). */
  private async markPrimary(epoch: number): Promise<void> {
    const c = await this.client();
    await c.query(`CREATE SCHEMA IF NOT EXISTS regionctl;
      CREATE TABLE IF NOT EXISTS regionctl.agent_primary (
        id boolean PRIMARY KEY DEFAULT true CHECK (id), epoch bigint NOT NULL, at timestamptz NOT NULL);
      INSERT INTO regionctl.agent_primary (id, epoch, at) VALUES (true, ${Math.trunc(epoch)}, now())
        ON CONFLICT (id) DO UPDATE SET epoch = EXCLUDED.epoch, at = EXCLUDED.at`);
  }

  private async takePrimaryLease(epoch: number): Promise<void> {
    try {
      const lease = await this.o.authority.holdPrimaryLease(this.o.region, epoch);
      this.primaryLease = lease;
      await this.markPrimary(epoch).catch((e: Error) =>
        this.o.log({
          level: 'warn',
          msg: 'could not record the primary epoch in the database',
          error: e.message,
        }),
      );
      lease.onLost((r) => void this.selfFence(`primary lease lost: ${r.message}`));
      this.o.log({ level: 'info', msg: 'holding the primary lease', epoch, ttlSeconds: lease.ttlSeconds });
    } catch (e) {
      this.o.log({ level: 'warn', msg: 'primary lease not taken', error: (e as Error).message });
      return;
    }
    if (this.fence.state !== 'none') await this.liftFence(epoch);
  }

  /** The watchdog: fence before the lease can have expired in etcd. */
  private checkLease(): void {
    const l = this.primaryLease;
    if (!l || this.fence.state !== 'none') return;
    if (Date.now() >= l.validUntilMs() - this.leadMs) {
      void this.selfFence(
        `primary lease renewal overdue: valid until ${new Date(l.validUntilMs()).toISOString()}, fencing ${this.leadMs} ms before`,
      );
    }
  }

  private async selfFence(reason: string): Promise<void> {
    if (this.fence.state === 'done') return;
    if (this.fencing) return this.fencing;
    this.fencing = (async () => {
      const t = Date.now();
      try {
        const c = await this.client();
        const tables = await this.appTables(c);
        await runStatements(c, fenceSql(this.o.spec.applicationRoles, tables, this.o.spec.database));
        const verified = await verifyFence(c, this.o.spec.applicationRoles, tables);
        this.fence = { state: 'done', reason };
        this.o.log({ level: 'warn', msg: 'self-fenced', reason, verified, ms: Date.now() - t });
      } catch (e) {
        // The database is unreachable (down): it takes no writes now; fence it when it answers.
        this.fence = { state: 'pending', reason };
        await this.dropClient();
        this.o.log({
          level: 'error',
          msg: 'self-fence pending: database unreachable',
          reason,
          error: (e as Error).message,
        });
      } finally {
        this.fencing = null;
      }
    })();
    return this.fencing;
  }

  /** Never throws: a fence that could not be lifted is tried again on the next pass. */
  private async liftFence(epoch: number): Promise<void> {
    if (this.fencing) await this.fencing;
    try {
      const c = await this.client();
      const tables = await this.appTables(c);
      await runStatements(
        c,
        unfenceSql(this.o.spec.applicationRoles, tables, this.o.spec.database, 'read-write'),
      );
    } catch (e) {
      // A lost connection may hide a committed unfence: count the fence as not done, so
      // it is applied (and verified) again before the next attempt to lift it.
      this.fence = { state: 'pending', reason: `lifting the fence failed: ${(e as Error).message}` };
      await this.dropClient();
      this.o.log({ level: 'error', msg: 'fence not lifted', epoch, error: (e as Error).message });
      return;
    }
    this.o.log({ level: 'warn', msg: 'fence lifted: primary lease held again at the same epoch', epoch });
    this.fence = { state: 'none', reason: null };
    // A loss while lifting found the fence still up and did nothing (selfFence returns
    // early on a done fence): put it back now.
    const l = this.primaryLease;
    if (!l?.isHeld()) void this.selfFence('primary lease lost while the fence was being lifted');
  }

  private async appTables(c: pg.Client): Promise<string[]> {
    const want = desiredState(this.o.spec).applicationTables;
    const r = await c.query('SELECT t FROM unnest($1::text[]) t WHERE to_regclass(t) IS NOT NULL', [want]);
    return r.rows.map((x) => x.t as string);
  }

  private async client(): Promise<pg.Client> {
    if (this.local) return this.local;
    const c = await connect(regionTarget(this.o.spec, this.o.region, this.o.specDir), {
      applicationName: 'regionctl-agent',
      connectTimeoutMs: this.probe.timeoutMs,
      statementTimeoutMs: 10_000,
    });
    c.on('error', () => {
      if (this.local === c) this.local = null;
    });
    this.local = c;
    return c;
  }

  private async dropClient(): Promise<void> {
    const c = this.local;
    this.local = null;
    if (c) await endWithin(c);
  }

  private async probeLocal(): Promise<boolean> {
    // Not in the middle of a fence: the probe shares its connection, and a probe timing
    // out behind the fence's statements would close that connection under the fence.
    if (this.fencing) await this.fencing;
    try {
      const c = await this.client();
      await withDeadline(c.query('SELECT 1'), this.probe.timeoutMs, 'probe');
      this.dbFailures = 0;
      return true;
    } catch {
      this.dbFailures++;
      await this.dropClient();
      return false;
    }
  }

  /** A new connection each time, as an application in this region would open one. */
  private async probePrimary(primary: string): Promise<void> {
    try {
      const c = await connect(regionTarget(this.o.spec, primary, this.o.specDir), {
        applicationName: 'regionctl-agent-probe',
        connectTimeoutMs: this.probe.timeoutMs,
        statementTimeoutMs: this.probe.timeoutMs,
      });
      try {
        await withDeadline(c.query('SELECT 1'), this.probe.timeoutMs, 'probe');
      } finally {
        await endWithin(c);
      }
      if (this.primaryFailures) this.o.log({ level: 'info', msg: 'primary reachable again', primary });
      this.primaryFailures = 0;
    } catch (e) {
      this.primaryFailures = (this.primaryFailures ?? 0) + 1;
      // The witness's vote, as it changes: the first failure and the threshold.
      if (this.primaryFailures === 1 || this.primaryFailures === this.probe.failureThreshold) {
        this.o.log({
          level: 'warn',
          msg: 'primary probe failed',
          primary,
          failures: this.primaryFailures,
          error: (e as Error).message,
        });
      }
    }
  }

  private async report(): Promise<void> {
    const s = this.status();
    try {
      if (!this.regionLease?.isHeld()) {
        this.regionLease = await this.o.authority.holdRegionLease(this.o.region, undefined, s);
        this.o.log({ level: 'info', msg: 'holding the region lease' });
      } else {
        await this.regionLease.update(s);
      }
    } catch (e) {
      this.o.log({ level: 'warn', msg: 'region lease not renewed', error: (e as Error).message });
    }
  }
}

export async function runAgent(o: AgentOptions): Promise<void> {
  await new RegionAgent(o).run();
}
