/**
 * What `status` and the metrics show of the authority: quorum, leader, topology, who
 * holds the primary lease, each agent's last report, pause and handoff. Never throws:
 * an authority that does not answer is itself the finding (quorum false, and why).
 */
import type { Authority } from './types.js';

export interface AgentView {
  region: string;
  alive: boolean;
  lastUpdate: string | null;
  selfFenced: boolean | null;
  bootFence: boolean | null;
  primaryProbeFailures: number | null;
  databaseFailures: number | null;
}

export interface AuthorityView {
  quorum: boolean;
  summary: string;
  leader: string | null;
  epoch: number | null;
  primary: string | null;
  primaryLease: { region: string; epoch: number; holder: string } | null;
  paused: string | null;
  handoff: string | null;
  agents: AgentView[];
  error: string | null;
}

const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
const bool = (v: unknown): boolean | null => (typeof v === 'boolean' ? v : null);

export async function authorityView(a: Authority, regions: string[]): Promise<AuthorityView> {
  const empty: AuthorityView = {
    quorum: false,
    summary: '',
    leader: null,
    epoch: null,
    primary: null,
    primaryLease: null,
    paused: null,
    handoff: null,
    agents: [],
    error: null,
  };
  const h = await a.health().catch((e: Error) => ({ quorum: false, summary: e.message, endpoints: [] }));
  if (!h.quorum) return { ...empty, summary: h.summary, error: h.summary };
  try {
    const [leader, topo, lease, paused, handoff, leases] = await Promise.all([
      a.leader(),
      a.topology(),
      a.primaryLease(),
      a.paused(),
      a.handoff(),
      a.regionLeases(),
    ]);
    return {
      quorum: true,
      summary: h.summary,
      leader: leader?.identity ?? null,
      epoch: topo?.epoch ?? null,
      primary: topo?.primary ?? null,
      primaryLease: lease ? { region: lease.region, epoch: lease.epoch, holder: lease.holder } : null,
      paused: paused ? `${paused.reason} (since ${paused.at})` : null,
      handoff: handoff ? `${handoff.who} (since ${handoff.since})` : null,
      agents: regions.map((region) => {
        const l = leases.find((x) => x.region === region);
        const s = l?.status ?? {};
        return {
          region,
          alive: l?.alive ?? false,
          lastUpdate: l?.lastUpdate ?? null,
          selfFenced: bool(s.selfFenced),
          bootFence: bool(s.bootFence),
          primaryProbeFailures: num(s.primaryProbeFailures),
          databaseFailures: num(s.databaseFailures),
        };
      }),
      error: null,
    };
  } catch (e) {
    return { ...empty, summary: h.summary, error: (e as Error).message };
  }
}
