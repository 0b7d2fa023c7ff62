/**
 * The WAN lab's operating-system edge: network namespaces, veth pairs, one bridge and
 * iptables chains, made and removed with `ip` and `iptables` (Debian iproute2,
 * iptables). Everything it creates is named after the layout's id, so removal touches
 * only what this lab made; everything is idempotent, so `lab down` after a crash at any
 * point removes what exists and ignores what was never made.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RegionctlError } from '../../errors.js';
import type { Cut, WanLayout } from './plan.js';
import { rulesFor } from './plan.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({
        code,
        stdout: String(stdout),
        stderr: String(stderr || (err && code !== 0 ? err.message : '')),
      });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function must(file: string, args: string[], input?: string): Promise<string> {
  const r = await run(file, args, input);
  if (r.code !== 0) {
    throw new RegionctlError(
      'E_LAB_WAN_COMMAND',
      `\`${file} ${args.join(' ')}\` failed (exit ${r.code}): ${r.stderr.trim()}`,
      'run `regionctl lab down` to remove what the WAN lab made, then `regionctl lab up --wan` again',
    );
  }
  return r.stdout;
}

/** Run, ignoring "does not exist"-style failures (removal of something never made). */
async function quiet(file: string, args: string[]): Promise<void> {
  await run(file, args);
}

function which(name: string): string | undefined {
  for (const d of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
    .split(':')
    .concat(['/usr/sbin', '/sbin'])) {
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** What the WAN lab needs from this machine; each missing piece named with its remedy. */
export function wanSupportProblems(): string[] {
  const problems: string[] = [];
  if (process.getuid?.() !== 0) problems.push('root (network namespaces and iptables need it): run as root');
  if (!which('ip')) problems.push('`ip` (apt-get install iproute2)');
  if (!which('etcd')) problems.push('`etcd` for the authority (apt-get install etcd-server)');
  if (!which('iptables') || !which('iptables-restore'))
    problems.push('`iptables` (apt-get install iptables)');
  return problems;
}

export function checkWanSupport(): void {
  const p = wanSupportProblems();
  if (p.length === 0) return;
  throw new RegionctlError(
    'E_LAB_WAN_UNSUPPORTED',
    `the WAN lab cannot run here; missing: ${p.join('; ')}`,
    'install what is missing, or use the plain loopback lab (`regionctl lab up` without --wan)',
  );
}

const CLAIMS = '/run/regionctl-wan';

/**
 * A /24 of 198.18.0.0/15 for this lab: one the host has no address or route in, claimed
 * by an atomic mkdir so two labs started at once (a test run and `npm run chaos`) never
 * share one. A claim whose owner's state no longer names it is stale and taken over.
 */
export async function claimSubnet(
  stateDir: string,
  isStillOwner: (owner: string, subnet: number) => boolean,
) {
  mkdirSync(CLAIMS, { recursive: true });
  const routes = await must('ip', ['-4', 'route', 'show', 'table', 'all']);
  const addrs = await must('ip', ['-4', '-o', 'addr', 'show']);
  for (let x = 1; x <= 250; x++) {
    const prefix = `198.18.${x}.`;
    if (routes.includes(prefix) || addrs.includes(prefix)) continue;
    const dir = join(CLAIMS, String(x));
    try {
      mkdirSync(dir);
    } catch {
      let owner = '';
      try {
        owner = readFileSync(join(dir, 'owner'), 'utf8').trim();
      } catch {
        // An owner file not written yet: a claim in progress; leave it.
        continue;
      }
      if (owner === stateDir || !isStillOwner(owner, x)) {
        writeFileSync(join(dir, 'owner'), `${stateDir}\n`);
        return x;
      }
      continue;
    }
    writeFileSync(join(dir, 'owner'), `${stateDir}\n`);
    return x;
  }
  throw new RegionctlError(
    'E_LAB_WAN_NO_SUBNET',
    'no free /24 in 198.18.1.0–198.18.250.0 for the WAN lab',
    `remove stale WAN labs (\`regionctl lab down\` in their directories), or stale claims in ${CLAIMS}`,
  );
}

export function releaseSubnet(stateDir: string, subnet: number): void {
  const dir = join(CLAIMS, String(subnet));
  try {
    if (readFileSync(join(dir, 'owner'), 'utf8').trim() !== stateDir) return;
  } catch {
    return;
  }
  rmSync(dir, { recursive: true, force: true });
}

export async function namespaceExists(name: string): Promise<boolean> {
  return existsSync(`/var/run/netns/${name}`) || existsSync(`/run/netns/${name}`);
}

/** Build namespaces, links, addresses and empty iptables chains. Idempotent. */
export async function createTopology(layout: WanLayout): Promise<void> {
  const wan = layout.wanNetns;
  const ipn = (ns: string, ...args: string[]) => must('ip', ['-n', ns, ...args]);
  const namespaces = [wan, ...layout.nodes.flatMap((n) => (n.netns ? [n.netns] : []))];
  for (const ns of namespaces) if (!(await namespaceExists(ns))) await must('ip', ['netns', 'add', ns]);
  for (const ns of namespaces) await ipn(ns, 'link', 'set', 'lo', 'up');
  const links = await must('ip', ['-n', wan, '-o', 'link', 'show']);
  if (!/ br0[:@]/.test(links)) await ipn(wan, 'link', 'add', 'br0', 'type', 'bridge');
  await ipn(wan, 'link', 'set', 'br0', 'up');
  const wanAddrs = await must('ip', ['-n', wan, '-o', '-4', 'addr', 'show', 'dev', 'br0']);
  const addWan = async (addr: string) => {
    if (!wanAddrs.includes(` ${addr}/`)) await ipn(wan, 'addr', 'add', `${addr}/24`, 'dev', 'br0');
  };
  for (const [i, n] of layout.nodes.entries()) {
    const port = `v${i}`;
    if (!new RegExp(` ${port}[:@]`).test(links)) {
      if (n.netns) {
        await ipn(wan, 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.netns);
      } else {
        await must('ip', [
          'link',
          'add',
          layout.hostVeth,
          'type',
          'veth',
          'peer',
          'name',
          port,
          'netns',
          wan,
        ]);
      }
    }
    await ipn(wan, 'link', 'set', port, 'master', 'br0', 'up');
    if (n.netns) {
      const have = await must('ip', ['-n', n.netns, '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
      if (!have.includes(` ${n.address}/`))
        await ipn(n.netns, 'addr', 'add', `${n.address}/24`, 'dev', 'eth0');
      await ipn(n.netns, 'link', 'set', 'eth0', 'up');
    } else {
      const have = await must('ip', ['-o', '-4', 'addr', 'show', 'dev', layout.hostVeth]);
      if (!have.includes(` ${n.address}/`))
        await must('ip', ['addr', 'add', `${n.address}/24`, 'dev', layout.hostVeth]);
      await must('ip', ['link', 'set', layout.hostVeth, 'up']);
    }
    await addWan(n.proxyAddress);
    if (n.relayAddress) await addWan(n.relayAddress);
  }
  // Empty chains hooked into OUTPUT: faults only ever rewrite the chain's contents.
  for (const n of layout.nodes) {
    if (n.netns) await ensureChain(['ip', 'netns', 'exec', n.netns], layout.chain);
    else await ensureChain([], layout.hostChain);
  }
}

async function ensureChain(prefix: string[], chain: string): Promise<void> {
  const ipt = (...args: string[]) =>
    prefix.length
      ? run(prefix[0]!, [...prefix.slice(1), 'iptables', '-w', ...args])
      : run('iptables', ['-w', ...args]);
  if ((await ipt('-S', chain)).code !== 0) {
    const r = await ipt('-N', chain);
    if (r.code !== 0)
      throw new RegionctlError('E_LAB_WAN_COMMAND', `iptables -N ${chain}: ${r.stderr.trim()}`);
  }
  if ((await ipt('-C', 'OUTPUT', '-j', chain)).code !== 0) {
    const r = await ipt('-I', 'OUTPUT', '1', '-j', chain);
    if (r.code !== 0)
      throw new RegionctlError('E_LAB_WAN_COMMAND', `iptables -I OUTPUT -j ${chain}: ${r.stderr.trim()}`);
  }
}

/**
 * Rewrite every namespace's chain to exactly the rules of `cuts` — one atomic
 * iptables-restore per namespace (declaring the chain flushes it), so the result never
 * depends on what was there before.
 */
export async function applyCuts(layout: WanLayout, cuts: Cut[], hostExtra: string[] = []): Promise<void> {
  const rules = rulesFor(layout, cuts);
  rules.get(undefined)?.push(...hostExtra);
  await Promise.all(
    [...rules].map(async ([netns, list]) => {
      const chain = netns ? layout.chain : layout.hostChain;
      const text = [
        '*filter',
        `:${chain} - [0:0]`,
        ...list.map((r) => `-A ${chain} ${r}`),
        'COMMIT',
        '',
      ].join('\n');
      if (netns) await must('ip', ['netns', 'exec', netns, 'iptables-restore', '-w', '--noflush'], text);
      else await must('iptables-restore', ['-w', '--noflush'], text);
    }),
  );
}

/** Processes still inside one of our namespaces (servers, relay, clients). */
export async function namespacePids(ns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns]);
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .map(Number)
    .filter((p) => Number.isInteger(p) && p > 0);
}

/**
 * Remove everything the layout names: processes left in our namespaces are killed
 * first (a namespace lives on while a process is in it), then namespaces (their veth
 * ends go with them), the host veth, and the host chain with its jump.
 */
export async function destroyTopology(layout: WanLayout): Promise<void> {
  const namespaces = [layout.wanNetns, ...layout.nodes.flatMap((n) => (n.netns ? [n.netns] : []))];
  for (const ns of namespaces) {
    for (const pid of await namespacePids(ns)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
  for (const ns of namespaces) await quiet('ip', ['netns', 'del', ns]);
  await quiet('ip', ['link', 'del', layout.hostVeth]);
  for (let i = 0; i < 10; i++) {
    if ((await run('iptables', ['-w', '-D', 'OUTPUT', '-j', layout.hostChain])).code !== 0) break;
  }
  await quiet('iptables', ['-w', '-F', layout.hostChain]);
  await quiet('iptables', ['-w', '-X', layout.hostChain]);
}
