/**
 * `regionctl plan --format markdown`, the pull-request comment: header with spec commit
 * and plan hash, counts by risk, changes grouped by region and channel with before →
 * after, risk labels, deterministic output, and no way for a password to reach it.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { convergedObservation } from '../../bench/synthetic.js';
import { desiredState } from '../../src/model/desired.js';
import type { Observed } from '../../src/model/observed.js';
import { planSteadyState } from '../../src/plan/plan.js';
import { renderMarkdown, scrubSecrets } from '../../src/plan/render.js';
import { loadSpecFromString } from '../../src/spec/load.js';
import type { RegionsSpec } from '../../src/spec/schema.js';
import { conninfo } from '../../src/sql/connect.js';

const EXAMPLE = readFileSync(resolve(import.meta.dirname, '../../regions.yaml'), 'utf8');

function load(text: string): RegionsSpec {
  const r = loadSpecFromString(text, 'regions.yaml');
  if (!r.ok) throw new Error(JSON.stringify(r.diagnostics));
  return r.spec;
}

/** The lab converged on `before`, then regions.yaml changed to `after`. */
function scenario(before: string, after: string) {
  const observed: Observed = convergedObservation(desiredState(load(before)));
  const desired = desiredState(load(after));
  const plan = planSteadyState(desired, observed);
  return { plan, observed, desired };
}

// Before: EU customers were allowed everywhere; after: ap-southeast-1 must not hold them.
const BEFORE = EXAMPLE.replace(
  'allowedRegions: [us-east-1, eu-west-1]',
  'allowedRegions: [us-east-1, eu-west-1, ap-southeast-1]',
);
const COMMIT = '0123456789abcdef0123456789abcdef01234567';

describe('plan as markdown', () => {
  it('shows the header, counts by risk, and per region and channel before → after', () => {
    const { plan, observed, desired } = scenario(BEFORE, EXAMPLE);
    const md = renderMarkdown(plan, { specPath: 'regions.yaml', specCommit: COMMIT, observed, desired });
    expect(md).toContain(`Spec \`regions.yaml\` at \`0123456789ab\``);
    expect(md).toContain(`plan hash \`${plan.hash.slice(0, 16)}\``);
    expect(md).toContain('| resync |');
    expect(md.replace(plan.hash.slice(0, 16), 'HASH')).toMatchInlineSnapshot(`
      "### regionctl plan — \`shop\`

      Spec \`regions.yaml\` at \`0123456789ab\` · primary **us-east-1** · plan hash \`HASH\`

      Plan: 5 action(s): 1 alter, 4 resync.

      | risk | count |
      |---|---|
      | alter | 1 |
      | resync | 4 |

      #### ap-southeast-1

      _channel us-east-1 → ap-southeast-1_

      - 2. **alter** refresh subscription rc_sub_us_east_1__ap_southeast_1 (copy newly published tables) — the subscriber must stop applying the tables being re-copied
      - 3. **resync** truncate public.customers on the secondary — rows copied under the old definition must go; they are copied again under the new one
        - \`public.customers\`: current rows → emptied, then copied again
      - 5. **resync** refresh subscription rc_sub_us_east_1__ap_southeast_1 (copy newly published tables) — copy the tables the publication now carries

      #### us-east-1

      _channel us-east-1 → ap-southeast-1_

      - 1. **resync** alter publication rc_pub_ap_southeast_1 for ap-southeast-1 (-public.customers) — the spec changed what channel us-east-1 → ap-southeast-1 carries: filters changed on public.customers; take them out of the channel first
        - \`public.customers\`: \`all columns, all rows\` → (not published)
      - 4. **resync** alter publication rc_pub_ap_southeast_1 for ap-southeast-1 (+public.customers) — the spec changed what channel us-east-1 → ap-southeast-1 carries
        - \`public.customers\`: \`all columns, all rows\` → \`all columns, WHERE NOT coalesce((residency = 'eu'), false)\`
      "
    `);
  });

  it('labels data loss, resync and DNS cutover risks', () => {
    const { plan, observed, desired } = scenario(BEFORE, EXAMPLE);
    const risky = {
      ...plan,
      actions: [
        { ...plan.actions[0]!, risk: 'data-loss' as const },
        { ...plan.actions[1]!, risk: 'dns-cutover' as const },
        ...plan.actions.slice(2),
      ],
    };
    const md = renderMarkdown(risky, { specPath: 'regions.yaml', specCommit: null, observed, desired });
    expect(md).toContain('**DATA LOSS POSSIBLE**');
    expect(md).toContain('**DNS cutover**');
    expect(md).toContain('**resync**');
    expect(md).toContain('| DATA LOSS POSSIBLE | 1 |');
    expect(md).toContain('(not committed)');
  });

  it('is deterministic: the same inputs give the same bytes, whatever order regions were observed in', () => {
    const a = scenario(BEFORE, EXAMPLE);
    const b = scenario(BEFORE, EXAMPLE);
    b.observed.regions.reverse();
    const ctx = { specPath: 'regions.yaml', specCommit: COMMIT };
    const ra = renderMarkdown(a.plan, { ...ctx, observed: a.observed, desired: a.desired });
    const rb = renderMarkdown(planSteadyState(b.desired, b.observed), {
      ...ctx,
      observed: b.observed,
      desired: b.desired,
    });
    expect(rb).toBe(ra);
  });

  it('a conninfo with a password can never reach the output', () => {
    const { plan, observed, desired } = scenario(BEFORE, EXAMPLE);
    const password = "hunter2-'quoted' \\back";
    const info = withEnv('RC_TEST_MD_PW', password, () =>
      conninfo({
        endpoint: { host: 'db.example.com', port: 5432, user: 'rep', password: { env: 'RC_TEST_MD_PW' } },
        database: 'shop',
        specDir: '/',
        label: 'test',
      }),
    );
    expect(info).toContain('hunter2');
    // Wherever free text can go — a reason, a problem, a hint — the conninfo is masked.
    const leaky = {
      ...plan,
      actions: plan.actions.map((a) => ({ ...a, reason: `${a.reason} (${info})` })),
      problems: [
        {
          code: 'E_TEST',
          severity: 'error' as const,
          region: 'eu-west-1',
          message: `could not connect with ${info}`,
          hint: `try postgres://rep:${encodeURIComponent('hunter2x')}@db.example.com/shop`,
        },
      ],
    };
    const md = renderMarkdown(leaky, { specPath: 'regions.yaml', specCommit: null, observed, desired });
    expect(md).not.toContain('hunter2');
    expect(md).toContain("password='***'");
  });

  it('known secret values are masked wherever they appear, whatever they look like', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 6, maxLength: 40 }),
        fc.string(),
        fc.string(),
        (secret, pre, post) => {
          const out = scrubSecrets(`${pre}${secret}${post}`, [secret]);
          expect(out).not.toContain(secret);
        },
      ),
    );
  });
});

function withEnv<T>(name: string, value: string, fn: () => T): T {
  process.env[name] = value;
  try {
    return fn();
  } finally {
    delete process.env[name];
  }
}
