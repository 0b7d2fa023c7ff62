/**
 * Connection settings of a running lab, for people and scripts. Passwords are never
 * printed: the JSON names the file each secret lives in, and the shell form exports
 * PGPASSFILE pointing at a pgpass file (mode 0600, in the state directory) that libpq
 * tools (psql, pg_dump) read on their own.
 */
import { writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { resolveSecret } from '../secrets/resolve.js';
import type { EndpointSpec, RegionsSpec } from '../spec/schema.js';
import { appRolePasswordFile } from './demo-schema.js';
import { labServers, resolveStateDir } from './servers.js';

export interface LabEnvServer {
  name: string;
  label: string;
  role: 'primary' | 'secondary' | 'control';
  host: string;
  port: number;
  user: string;
  database: string;
  /** postgresql:// URL without a password. */
  url: string;
  /** Where the password is: `file:/abs/path` or `env:NAME`; absent when none is set. */
  password?: string;
}

export interface LabEnv {
  stateDir: string;
  pgpassFile: string;
  primary: string;
  servers: LabEnvServer[];
  applicationRoles: { role: string; passwordFile: string }[];
}

export function labEnv(spec: RegionsSpec, opts: { specDir: string; stateDir?: string }): LabEnv {
  const stateDir = resolveStateDir(opts.specDir, opts.stateDir);
  const servers = labServers(spec, stateDir).map((s): LabEnvServer => {
    const region = spec.regions.find((r) => r.name === s.name);
    const database = s.databases[0]!;
    const out: LabEnvServer = {
      name: s.name,
      label: s.label,
      role: region ? region.role : 'control',
      host: s.endpoint.host,
      port: s.endpoint.port,
      user: s.endpoint.user,
      database,
      url: pgUrl(s.endpoint, database),
    };
    const ref = s.endpoint.password;
    if (ref) out.password = 'env' in ref ? `env:${ref.env}` : `file:${absolute(opts.specDir, ref.file)}`;
    return out;
  });
  const pgpassFile = join(stateDir, 'pgpass');
  const lines: string[] = [];
  for (const s of labServers(spec, stateDir)) {
    if (!s.endpoint.password) continue;
    const pw = resolveSecret(s.endpoint.password, opts.specDir, `${s.label} password`);
    lines.push(pgpassLine(s.endpoint.host, s.endpoint.port, s.endpoint.user, pw));
  }
  const applicationRoles = spec.applicationRoles.map((role) => ({
    role,
    passwordFile: appRolePasswordFile(stateDir, role),
  }));
  for (const { role, passwordFile } of applicationRoles) {
    let pw: string;
    try {
      pw = resolveSecret({ file: passwordFile }, opts.specDir, `role ${role} password`);
    } catch {
      continue; // Not created yet (lab up without the demo schema).
    }
    for (const r of spec.regions) lines.push(pgpassLine(r.endpoint.host, r.endpoint.port, role, pw));
  }
  writeFileSync(pgpassFile, `${lines.join('\n')}\n`, { mode: 0o600 });
  const primary = spec.regions.find((r) => r.role === 'primary')?.name ?? spec.regions[0]?.name ?? '';
  return { stateDir, pgpassFile, primary, servers, applicationRoles };
}

/** `export` lines for a POSIX shell: PG* for the primary, one URL variable per server. */
export function labEnvShell(env: LabEnv): string {
  const q = (v: string) => `'${v.replaceAll("'", "'\\''")}'`;
  const out = [`export PGPASSFILE=${q(env.pgpassFile)}`];
  const p = env.servers.find((s) => s.name === env.primary);
  if (p) {
    out.push(
      `# primary: ${p.name}`,
      `export PGHOST=${q(p.host)} PGPORT=${p.port} PGUSER=${q(p.user)} PGDATABASE=${q(p.database)}`,
    );
  }
  for (const s of env.servers) {
    const v = `REGIONCTL_LAB_${s.name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_URL`;
    out.push(`export ${v}=${q(s.url)}`);
  }
  return `${out.join('\n')}\n`;
}

function pgUrl(ep: EndpointSpec, database: string): string {
  const host = ep.host.includes(':') && !ep.host.startsWith('[') ? `[${ep.host}]` : ep.host;
  return `postgresql://${encodeURIComponent(ep.user)}@${host}:${ep.port}/${encodeURIComponent(database)}`;
}

function pgpassLine(host: string, port: number, user: string, password: string): string {
  const e = (v: string) => v.replaceAll('\\', '\\\\').replaceAll(':', '\\:');
  return [host, String(port), '*', user, password].map(e).join(':');
}

function absolute(specDir: string, p: string): string {
  return isAbsolute(p) ? p : resolve(specDir, p);
}
