import type { Command } from 'commander';
import { specOption } from '../options.js';

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description("Run a region's agent: direct probes, the region and primary leases, self-fencing")
    .addOption(specOption())
    .requiredOption('--region <name>', 'the region this agent runs beside')
    .option(
      '--pgdata <dir>',
      "the database's data directory on this host (for the boot fence; default: asked of the server at first contact)",
    )
    .addHelpText(
      'after',
      `
Runs beside one region's PostgreSQL until stopped (SIGTERM/SIGINT), logging JSON lines.
Needs regions.yaml's \`authority\` section (etcd). Each agent holds its region's lease and
publishes its probes: the primary's agent probes its own database, the others probe the
primary directly from their region. The primary's agent holds the primary lease and,
when it cannot renew it, fences its own database (application roles: no login, no
writes, sessions ended, verified by a failing write) before etcd can expire the lease;
the reconciler promotes another region only after that lease is gone plus a margin.
It lifts its fence only when etcd grants it the primary lease again at the same epoch.
When the primary's (or a former primary's) server is down, the agent also shuts the
application roles out in its pg_hba.conf (the boot fence), so a restarted server takes no
application login before the agent has decided: it lifts those lines once the primary
lease is held again, or once the SQL fence holds. This needs the agent on the database's
host with write access to pg_hba.conf; without it the agent logs "no boot fence".
Production: one per region, as a systemd unit (examples/systemd/regionctl-agent@.service).

Example:
  regionctl agent --region us-east-1 --spec /etc/regionctl/regions.yaml`,
    )
    .action(async (opts: { spec: string; region: string; pgdata?: string }) => {
      const { runAgentCommand } = await import('../run-agent.js');
      process.exitCode = await runAgentCommand(opts);
    });
}
