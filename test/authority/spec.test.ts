/**
 * regions.yaml's `authority` section: schema, semantic checks (with their lines), and
 * the resolved connection settings (defaults, secrets). Pure: no etcd needed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { authorityConfig, DEFAULT_CALL_TIMEOUT_MS } from '../../src/authority/config.js';
import { formatDiagnostic, loadSpecFromString } from '../../src/spec/load.js';
import type { RegionsSpec } from '../../src/spec/schema.js';

const base = readFileSync(new URL('../spec/fixtures/valid-base.yaml', import.meta.url), 'utf8');

/** The base spec with an authority section appended (YAML text, so lines are checkable). */
function withAuthority(section: string): string {
  return `${base.trimEnd()}\nauthority:\n${section.replace(/^\n/, '')}`;
}

function findings(text: string): string[] {
  return loadSpecFromString(text, 'regions.yaml').diagnostics.map(
    (d) => `${d.severity} ${d.code} @ ${text.split('\n')[d.line - 1]?.trim()}`,
  );
}

const THREE = `
  provider: etcd
  endpoints: [https://10.0.0.5:2379, https://10.0.1.5:2379, https://10.0.2.5:2379]
`;

describe('authority section of regions.yaml', () => {
  it('three members with defaults validate clean; so does a lab cluster on loopback', () => {
    expect(findings(withAuthority(THREE))).toEqual([]);
    expect(
      findings(
        withAuthority(`
  provider: etcd
  endpoints: [http://127.0.0.1:2379]
  prefix: /regionctl/lab
  leaseSeconds: 2
`),
      ),
    ).toEqual([]);
  });

  it('rejects endpoints that are not etcd client URLs, duplicates and mixed schemes', () => {
    const got = findings(
      withAuthority(`
  provider: etcd
  endpoints:
    - etcd-1:2379
    - https://10.0.1.5:2379/v3
    - https://10.0.2.5:2379
    - https://10.0.2.5:2379
    - http://10.0.3.5:2379
`),
    );
    expect(got.sort()).toEqual([
      // Findings about the whole list (mixed schemes; 2 usable members) sit at its first line.
      'error E_AUTHORITY_ENDPOINT @ - etcd-1:2379',
      'error E_AUTHORITY_ENDPOINT @ - etcd-1:2379',
      'error E_AUTHORITY_ENDPOINT @ - https://10.0.1.5:2379/v3',
      'error E_AUTHORITY_ENDPOINT @ - https://10.0.2.5:2379',
      'warning W_AUTHORITY_QUORUM @ - etcd-1:2379',
    ]);
  });

  it('warns about 1, 2 or 4 members off loopback: no majority survives a region loss', () => {
    const two = findings(
      withAuthority(`
  provider: etcd
  endpoints: [https://10.0.0.5:2379, https://10.0.1.5:2379]
`),
    );
    expect(two).toEqual([
      'warning W_AUTHORITY_QUORUM @ endpoints: [https://10.0.0.5:2379, https://10.0.1.5:2379]',
    ]);
    const d = loadSpecFromString(
      withAuthority(`
  provider: etcd
  endpoints: [https://10.0.0.5:2379, https://10.0.1.5:2379]
`),
      'r.yaml',
    ).diagnostics[0]!;
    expect(d.message).toMatch(/2 etcd members tolerate 0 failures/);
  });

  it('TLS needs https and a key with its certificate; password authentication needs both halves', () => {
    expect(
      findings(
        withAuthority(`
  provider: etcd
  endpoints: [http://10.0.0.5:2379, http://10.0.1.5:2379, http://10.0.2.5:2379]
  tls:
    cert: { file: tls/client.pem }
  username: regionctl
`),
      ),
    ).toEqual([
      'error E_AUTHORITY_TLS @ tls:',
      'error E_AUTHORITY_TLS @ cert: { file: tls/client.pem }',
      'error E_AUTHORITY_CREDENTIALS @ username: regionctl',
    ]);
  });

  it('secrets are references: a literal password is refused without being echoed', () => {
    const text = withAuthority(`${THREE}  username: regionctl\n  password: hunter2-etcd\n`);
    const result = loadSpecFromString(text, 'regions.yaml');
    expect(result.ok).toBe(false);
    expect(result.diagnostics.map((d) => d.code)).toContain('E_LITERAL_SECRET');
    expect(JSON.stringify(result.diagnostics)).not.toContain('hunter2');
  });

  it('leaseSeconds: at least etcd’s minimum of 2; a lease longer than detection is a warning', () => {
    expect(findings(withAuthority(`${THREE}  leaseSeconds: 1\n`))).toEqual([
      'error E_SCHEMA_RANGE @ leaseSeconds: 1',
    ]);
    const slow = loadSpecFromString(withAuthority(`${THREE}  leaseSeconds: 5\n`), 'r.yaml').diagnostics;
    expect(slow.map(formatDiagnostic)).toEqual([
      expect.stringMatching(
        /warning W_AUTHORITY_LEASE_SLOW a candidate is promoted only 6 s after .* later than the 3 s detection takes/,
      ),
    ]);
  });

  it('resolves defaults and secrets into connection settings', () => {
    const dir = mkdtempSync(join(tmpdir(), 'regionctl-authority-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'ca.pem'), 'CA PEM\n');
    writeFileSync(join(dir, 'etcd.password'), 's3cret\n');
    const spec = {
      name: 'shop',
      authority: {
        provider: 'etcd',
        endpoints: ['https://10.0.0.5:2379'],
        tls: { ca: { file: 'ca.pem' } },
        username: 'regionctl',
        password: { file: 'etcd.password' },
      },
    } satisfies Pick<RegionsSpec, 'name' | 'authority'>;
    const c = authorityConfig(spec, dir)!;
    expect(c).toMatchObject({
      endpoints: ['https://10.0.0.5:2379'],
      prefix: '/regionctl/shop',
      leaseSeconds: 2,
      callTimeoutMs: DEFAULT_CALL_TIMEOUT_MS,
      auth: { username: 'regionctl', password: 's3cret' },
    });
    expect(c.tls?.ca?.toString()).toBe('CA PEM\n');
    expect(authorityConfig({ name: 'shop' }, dir)).toBeUndefined();
    expect(() =>
      authorityConfig(
        { ...spec, authority: { ...spec.authority, tls: { ca: { file: 'missing.pem' } } } },
        dir,
      ),
    ).toThrow(/authority\.tls\.ca: cannot read/);
  });
});
