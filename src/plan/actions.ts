/**
 * The one action union. Every consumer (apply, renderers, the Pulumi program) switches
 * over `kind` exhaustively; adding a kind is a compile error until each handles it.
 */
import type { DesiredGuard, DesiredPublication, DesiredSubscription } from '../model/desired.js';

/** What could go wrong if the action runs: shown in plans and PR comments. */
export type Risk = 'create' | 'alter' | 'drop' | 'resync' | 'data-loss' | 'dns-cutover';

interface Base {
  /** Region whose server the action changes. */
  region: string;
  risk: Risk;
  /** Why the planner decided this, in words an operator can check. */
  reason: string;
}

export type Action =
  | (Base & { kind: 'install-heartbeat' })
  | (Base & { kind: 'set-guard'; guard: DesiredGuard; tables: string[] })
  | (Base & { kind: 'create-publication'; publication: DesiredPublication })
  | (Base & {
      kind: 'alter-publication';
      publication: DesiredPublication;
      added: string[];
      removed: string[];
    })
  | (Base & { kind: 'drop-publication'; name: string })
  | (Base & { kind: 'create-subscription'; subscription: DesiredSubscription })
  | (Base & { kind: 'enable-subscription'; name: string })
  | (Base & { kind: 'refresh-subscription'; name: string })
  | (Base & { kind: 'drop-subscription'; name: string })
  | (Base & { kind: 'truncate-tables'; tables: string[] });

export type ActionKind = Action['kind'];

export function assertNever(x: never): never {
  throw new Error(`unhandled action: ${JSON.stringify(x)}`);
}

/** A stable key identifying an action within a plan (used by the journal to resume). */
export function actionKey(a: Action): string {
  switch (a.kind) {
    case 'install-heartbeat':
      return `${a.kind}:${a.region}`;
    case 'set-guard':
      return `${a.kind}:${a.region}:${a.guard.mode}`;
    case 'create-publication':
    case 'alter-publication':
      return `${a.kind}:${a.region}:${a.publication.name}:${a.publication.defHash}`;
    case 'drop-publication':
    case 'enable-subscription':
    case 'refresh-subscription':
    case 'drop-subscription':
      return `${a.kind}:${a.region}:${a.name}`;
    case 'create-subscription':
      return `${a.kind}:${a.region}:${a.subscription.name}`;
    case 'truncate-tables':
      return `${a.kind}:${a.region}:${a.tables.join(',')}`;
    default:
      return assertNever(a);
  }
}

/** One line describing the action, for text and markdown plans. */
export function describeAction(a: Action): string {
  switch (a.kind) {
    case 'install-heartbeat':
      return 'install heartbeat table regionctl.heartbeat';
    case 'set-guard':
      return `make application roles ${a.guard.roles.join(', ')} ${a.guard.mode}`;
    case 'create-publication':
      return `create publication ${a.publication.name} for ${a.publication.forRegion} (${a.publication.tables.length} tables)`;
    case 'alter-publication': {
      const parts = [
        a.added.length ? `+${a.added.join(', +')}` : '',
        a.removed.length ? `-${a.removed.join(', -')}` : '',
      ].filter(Boolean);
      return `alter publication ${a.publication.name} for ${a.publication.forRegion}${parts.length ? ` (${parts.join('; ')})` : ''}`;
    }
    case 'drop-publication':
      return `drop publication ${a.name}`;
    case 'create-subscription':
      return `create subscription ${a.subscription.name} from ${a.subscription.fromRegion} (initial copy)`;
    case 'enable-subscription':
      return `enable subscription ${a.name}`;
    case 'refresh-subscription':
      return `refresh subscription ${a.name} (copy newly published tables)`;
    case 'drop-subscription':
      return `drop subscription ${a.name}`;
    case 'truncate-tables':
      return `truncate ${a.tables.join(', ')} on the secondary`;
    default:
      return assertNever(a);
  }
}
