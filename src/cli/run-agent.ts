import { runAgent } from '../agent/agent.js';
import { openAuthorityFromSpec } from '../authority/index.js';
import { RegionctlError } from '../errors.js';
import { loadSpecOrThrow } from '../spec/load.js';

export async function runAgentCommand(opts: {
  spec: string;
  region: string;
  pgdata?: string;
}): Promise<number> {
  const { spec, dir } = await loadSpecOrThrow(opts.spec);
  if (!spec.regions.some((r) => r.name === opts.region)) {
    throw new RegionctlError(
      'E_USAGE_UNKNOWN_REGION',
      `unknown region '${opts.region}'`,
      `regions in ${opts.spec}: ${spec.regions.map((r) => r.name).join(', ')}`,
    );
  }
  const authority = openAuthorityFromSpec(spec, dir);
  if (!authority) {
    throw new RegionctlError(
      'E_AGENT_NO_AUTHORITY',
      `${opts.spec} has no \`authority\` section: the agent keeps its leases in etcd`,
      'add authority.endpoints (see the README, "Safety model")',
    );
  }
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const log = (e: Record<string, unknown>) =>
    process.stdout.write(`${JSON.stringify({ ts: new Date().toISOString(), region: opts.region, ...e })}\n`);
  log({ level: 'info', msg: 'agent starting', pid: process.pid });
  try {
    await runAgent({
      spec,
      specDir: dir,
      region: opts.region,
      authority,
      signal: ac.signal,
      log,
      ...(opts.pgdata ? { pgdata: opts.pgdata } : {}),
    });
  } finally {
    await authority.close().catch(() => {});
    log({ level: 'info', msg: 'agent stopped' });
  }
  return 0;
}
