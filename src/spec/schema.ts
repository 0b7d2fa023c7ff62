/**
 * The one source of truth for the shape of regions.yaml. The JSON Schema file in
 * schemas/ is generated from this (`npm run gen:schema`, checked by a test) and the
 * TypeScript types are derived from it, so neither can drift from the other.
 */
import { type Static, Type as T, type TSchema } from '@sinclair/typebox';
import { DEFAULT_LEASE_SECONDS, PROMOTION_MARGIN_SECONDS } from './authority-defaults.js';
import {
  IDENTIFIER_PATTERN,
  REGION_NAME_MAX_LENGTH,
  REGION_NAME_PATTERN,
  TABLE_NAME_PATTERN,
} from './patterns.js';

export { IDENTIFIER_PATTERN, REGION_NAME_MAX_LENGTH, REGION_NAME_PATTERN, TABLE_NAME_PATTERN };

const strict = { additionalProperties: false } as const;

const RegionName = T.String({
  description:
    'Region name, e.g. us-east-1. Lowercase letters, digits and single dashes (at most 40); it is used in replication object names.',
  pattern: REGION_NAME_PATTERN,
  maxLength: REGION_NAME_MAX_LENGTH,
});

const RegionRef = (description: string) => T.String({ description, minLength: 1 });

const TableName = T.String({
  description: 'A table as schema.table, e.g. public.orders (unquoted lowercase identifiers).',
  pattern: TABLE_NAME_PATTERN,
});

const ColumnName = T.String({
  description: 'A column name (unquoted lowercase identifier).',
  pattern: IDENTIFIER_PATTERN,
});

const SecretRef = T.Union(
  [
    T.Object(
      {
        env: T.String({
          description: 'Name of the environment variable that holds the secret.',
          minLength: 1,
        }),
      },
      { ...strict, description: 'Read the secret from an environment variable.' },
    ),
    T.Object(
      {
        file: T.String({
          description:
            'Path of a file that holds the secret (relative to regions.yaml). Trailing newline ignored.',
          minLength: 1,
        }),
      },
      { ...strict, description: 'Read the secret from a file.' },
    ),
  ],
  {
    description:
      'A reference to a secret. Secrets never appear literally in regions.yaml: give an env var or a file.',
  },
);

const Endpoint = {
  host: T.String({ description: 'Host name or address of the PostgreSQL server.', minLength: 1 }),
  port: T.Integer({ description: 'TCP port of the PostgreSQL server.', minimum: 1, maximum: 65535 }),
  user: T.String({
    description: 'Role regionctl connects as (needs REPLICATION and ownership of the replicated tables).',
    minLength: 1,
  }),
  password: T.Optional(SecretRef),
  sslmode: T.Optional(
    T.Union([T.Literal('disable'), T.Literal('prefer'), T.Literal('require'), T.Literal('verify-full')], {
      description: 'TLS mode for connections to this server.',
    }),
  ),
};

const RegionEndpoint = T.Object(Endpoint, {
  ...strict,
  description: "How regionctl reaches this region's database server.",
});

const Region = T.Object(
  {
    name: RegionName,
    role: T.Union([T.Literal('primary'), T.Literal('secondary')], {
      description: 'Exactly one region is the primary (accepts writes); the others are secondaries.',
    }),
    location: T.Object(
      {
        lat: T.Number({ description: 'Latitude in degrees.', minimum: -90, maximum: 90 }),
        lon: T.Number({ description: 'Longitude in degrees.', minimum: -180, maximum: 180 }),
      },
      { ...strict, description: 'Where the region is, for nearest-replica read routing.' },
    ),
    endpoint: RegionEndpoint,
    failover: T.Optional(
      T.Object(
        {
          candidate: T.Boolean({
            description:
              'May this region be promoted? A region that receives a filtered subset must not be a candidate.',
          }),
          priority: T.Optional(
            T.Integer({
              description: 'Tie-break among equally advanced candidates: lower wins.',
              minimum: 1,
            }),
          ),
        },
        { ...strict, description: 'Failover eligibility of this region.' },
      ),
    ),
  },
  { ...strict, description: 'One cloud region holding a copy of the database.' },
);

const Channel = T.Object(
  {
    from: RegionRef('Publishing region (must be the primary).'),
    to: RegionRef('Subscribing region (a secondary).'),
    rpo: T.Object(
      {
        alertSeconds: T.Number({
          description: 'Alert when lag exceeds this many seconds; the channel is `lagging` beyond twice it.',
          exclusiveMinimum: 0,
        }),
        failoverMaxLagSeconds: T.Number({
          description: 'Automatic failover refuses to promote this secondary when it lags more than this.',
          exclusiveMinimum: 0,
        }),
      },
      { ...strict, description: 'Recovery point objective thresholds for this channel.' },
    ),
    filters: T.Optional(
      T.Object(
        {
          rows: T.Optional(
            T.Array(
              T.Object(
                {
                  table: TableName,
                  where: T.String({
                    description: 'A single SQL boolean expression over the table columns (a row filter).',
                    minLength: 1,
                  }),
                },
                { ...strict, description: 'Only rows matching `where` are replicated on this channel.' },
              ),
              { description: 'Row filters applied on this channel only.' },
            ),
          ),
          columns: T.Optional(
            T.Array(
              T.Object(
                {
                  table: TableName,
                  columns: T.Array(ColumnName, {
                    description: 'Columns replicated; the others are withheld (must include the key).',
                    minItems: 1,
                  }),
                },
                { ...strict, description: 'A column list for one table on this channel.' },
              ),
              { description: 'Column lists applied on this channel only.' },
            ),
          ),
          withhold: T.Optional(
            T.Array(TableName, { description: 'Replicated tables this channel does not carry at all.' }),
          ),
        },
        { ...strict, description: 'Narrow what this channel carries. A filtered region is not a candidate.' },
      ),
    ),
  },
  { ...strict, description: 'A logical replication channel from the primary to one secondary.' },
);

const Replication = T.Object(
  {
    tables: T.Array(TableName, {
      description: 'Tables replicated from the primary to every secondary (unless narrowed).',
      minItems: 1,
    }),
    exclude: T.Optional(
      T.Array(
        T.Object(
          {
            table: TableName,
            reason: T.String({
              description: 'Why losing this table on failover is acceptable.',
              minLength: 1,
            }),
          },
          { ...strict, description: 'A table that is never replicated.' },
        ),
        {
          description:
            'Tables never replicated, declared loss-acceptable: a failover starts them empty on the new primary.',
        },
      ),
    ),
    pinned: T.Optional(
      T.Array(
        T.Object(
          {
            table: TableName,
            region: RegionRef('The region the table must stay in (normally the primary).'),
            reason: T.String({ description: 'Why the table must stay in its region.', minLength: 1 }),
          },
          { ...strict, description: 'A table that never leaves its region.' },
        ),
        {
          description:
            'Residency-pinned tables: never replicated, not even during a failover (unavailable while their region is down).',
        },
      ),
    ),
    residency: T.Optional(
      T.Array(
        T.Object(
          {
            name: T.String({ description: 'Name of the rule, used in plans and reports.', minLength: 1 }),
            table: TableName,
            rows: T.String({
              description:
                'SQL boolean expression selecting the restricted rows; those rows are filtered out of channels to other regions.',
              minLength: 1,
            }),
            allowedRegions: T.Array(RegionRef('A region that may hold the restricted rows.'), {
              description:
                'Regions that may hold the restricted rows. Must include the primary; the other regions are not failover candidates.',
              minItems: 1,
            }),
          },
          { ...strict, description: 'Rows of a table that may only be held by some regions.' },
        ),
        { description: 'Data residency rules enforced by row filters.' },
      ),
    ),
  },
  { ...strict, description: 'What is replicated, and what is not.' },
);

const Fencing = T.Union(
  [
    T.Object(
      {
        method: T.Literal('sql', {
          description: 'Revoke writes for application roles and end their sessions.',
        }),
      },
      { ...strict, description: 'Fence at SQL level (needs the old primary reachable).' },
    ),
    T.Object(
      {
        method: T.Literal('command', {
          description: 'Run a user command (e.g. revoke a security group rule).',
        }),
        command: T.Array(T.String({ description: 'Program and arguments; {region} is replaced.' }), {
          description: 'The fence command; exit status 0 confirms the fence.',
          minItems: 1,
        }),
        timeoutSeconds: T.Optional(
          T.Number({ description: 'Kill the command after this many seconds.', exclusiveMinimum: 0 }),
        ),
      },
      {
        ...strict,
        description: 'Fence with an external command (works when the old primary is unreachable).',
      },
    ),
  ],
  { description: 'A fencing method.' },
);

const Failover = T.Object(
  {
    mode: T.Union([T.Literal('automatic'), T.Literal('manual')], {
      description:
        'automatic: the reconciler fails over; manual: it alerts and a person runs `regionctl failover`.',
    }),
    probe: T.Object(
      {
        intervalSeconds: T.Number({ description: 'Seconds between health probes.', exclusiveMinimum: 0 }),
        failureThreshold: T.Integer({
          description: 'Consecutive failed probes before the primary counts as down.',
          minimum: 1,
        }),
        timeoutMs: T.Integer({ description: 'Connect/statement timeout of one probe.', minimum: 50 }),
      },
      { ...strict, description: 'How the primary is probed.' },
    ),
    fencing: T.Array(Fencing, { description: 'Fencing methods, tried in order.', minItems: 1 }),
  },
  { ...strict, description: 'Failover policy.' },
);

/**
 * Lease arithmetic behind the defaults (the transition engine relies on it):
 *
 * - The primary's agent renews the primary lease about every leaseSeconds/3 and fences
 *   its own database when it has not renewed for leaseSeconds (counted from the moment
 *   it *sent* the last acknowledged renewal, so etcd's expiry is never earlier than the
 *   agent's).
 * - A candidate may be made writable only after that lease is gone from etcd plus
 *   PROMOTION_MARGIN_SECONDS (1 s), which absorbs clock-rate differences between etcd and
 *   the agent, and the observer's own polling delay.
 * - Failover must stay ≤ 5 s with the lab's probes (1 s × 3 = 3 s to call the primary
 *   down). A primary that died at T stopped renewing at T, so its lease is gone by
 *   T + leaseSeconds and the promotion gate opens at T + leaseSeconds + 1. With 2 s
 *   that is T + 3 s, no later than detection, leaving ~2 s for promotion and DNS;
 *   with 3 s it is T + 4 s (1 s left), with 4 s the lease alone would break the budget.
 * - 2 s is also the smallest TTL etcd grants with its default election timeout (1 s):
 *   it raises shorter TTLs to ceil(1.5 × election timeout) without saying so.
 * - Renewing every ~0.67 s, a 2 s lease survives two lost renewals or an etcd leader
 *   election (≤ election timeout, 1 s). Cross-region etcd clusters usually need a longer
 *   election timeout (≥ 5-10 × RTT), which raises both the minimum TTL and this value.
 */
export { DEFAULT_LEASE_SECONDS, PROMOTION_MARGIN_SECONDS };

const FileRef = (description: string) =>
  T.Object(
    {
      file: T.String({
        description: 'Path of the file (relative to regions.yaml).',
        minLength: 1,
      }),
    },
    { ...strict, description },
  );

const Authority = T.Object(
  {
    provider: T.Literal('etcd', {
      description: 'The consensus store holding the authority (only etcd, v3 API).',
    }),
    endpoints: T.Array(
      T.String({
        description: 'Client URL of one etcd member, e.g. https://etcd-1.example:2379.',
        minLength: 1,
      }),
      {
        description:
          'Client URLs of the etcd members (all http:// or all https://). Use 3 or 5 members, one per region or witness site, so a majority survives the loss of a region.',
        minItems: 1,
      },
    ),
    prefix: T.Optional(
      T.String({
        description:
          "Key prefix of this topology in etcd (default: /regionctl/ and the spec's name, e.g. /regionctl/shop). Topologies sharing a cluster need distinct prefixes.",
        pattern: '^(/[A-Za-z0-9._-]+)+$',
      }),
    ),
    leaseSeconds: T.Optional(
      T.Integer({
        description: `TTL in seconds of the leader, region and primary leases (default ${DEFAULT_LEASE_SECONDS}; etcd's minimum with its default 1 s election timeout). The primary's agent fences its database when it cannot renew for this long; a candidate is promoted only ${PROMOTION_MARGIN_SECONDS} s after the lease expired, so keep leaseSeconds + ${PROMOTION_MARGIN_SECONDS} within failover detection (probe interval × threshold).`,
        minimum: 2,
        maximum: 60,
      }),
    ),
    tls: T.Optional(
      T.Object(
        {
          ca: T.Optional(FileRef("CA certificate (PEM) that signed the etcd members' certificates.")),
          cert: T.Optional(FileRef('Client certificate (PEM) for etcd client-certificate authentication.')),
          key: T.Optional(SecretRef),
        },
        {
          ...strict,
          description:
            "TLS settings for https:// endpoints; `key` (the client certificate's private key) is a secret reference.",
        },
      ),
    ),
    username: T.Optional(
      T.String({ description: 'etcd user for password authentication (needs `password`).', minLength: 1 }),
    ),
    password: T.Optional(SecretRef),
  },
  {
    ...strict,
    description:
      'Where authority lives: the leader lease of the reconcilers, the topology epoch and primary (compare-and-set only), region and primary leases, the in-flight transition, the pause flag.',
  },
);

/** Defaults of `retention` (src/reconcile/retention.ts reads them). */
export const RETENTION_DEFAULTS = {
  maxBytes: 10 * 1024 ** 3,
  maxAgeHours: 168,
  onExceeded: 'alert',
} as const;

const Retention = T.Object(
  {
    maxBytes: T.Optional(
      T.Integer({
        description: `WAL in bytes one kept slot may hold back (default ${RETENTION_DEFAULTS.maxBytes}, 10 GiB).`,
        minimum: 1048576,
      }),
    ),
    maxAgeHours: T.Optional(
      T.Number({
        description: `Hours a former primary may await its rejoin before its slots count as over the limit (default ${RETENTION_DEFAULTS.maxAgeHours}).`,
        exclusiveMinimum: 0,
      }),
    ),
    onExceeded: T.Optional(
      T.Union([T.Literal('alert'), T.Literal('drop')], {
        description:
          "Past a limit: 'alert' (default) raises a critical alert and keeps the slots; 'drop' also drops them, records it in the failover event, and the rejoin then reports lost writes by comparison instead of from the WAL.",
      }),
    ),
  },
  {
    ...strict,
    description:
      "Limits on the slots regionctl keeps for a former primary's rejoin — the rejoin slot on the new primary and the evidence slots on the former primary — which hold WAL until the rejoin.",
  },
);

const Dns = T.Object(
  {
    provider: T.Union([T.Literal('file'), T.Literal('rfc2136'), T.Literal('route53')], {
      description: 'Where DNS records live: a local file (lab), a name server (RFC 2136), or Route 53.',
    }),
    zone: T.String({ description: 'DNS zone, e.g. db.example.com.', minLength: 1 }),
    ttl: T.Integer({
      description: 'TTL of the records in seconds (keep it low: it bounds cutover time).',
      minimum: 1,
    }),
    primaryRecord: T.String({ description: 'Name that always points at the primary.', minLength: 1 }),
    readRecords: T.Optional(
      T.Record(T.String(), T.String({ description: 'DNS name of the read record.', minLength: 1 }), {
        description: 'Per-region read record names: region name → record name.',
      }),
    ),
    file: T.Optional(
      T.Object(
        {
          path: T.String({ description: 'Path of the zone file (relative to regions.yaml).', minLength: 1 }),
        },
        { ...strict, description: 'Settings of the file provider.' },
      ),
    ),
    rfc2136: T.Optional(
      T.Object(
        {
          server: T.String({ description: 'Name server address.', minLength: 1 }),
          port: T.Optional(
            T.Integer({ description: 'Name server port (default 53).', minimum: 1, maximum: 65535 }),
          ),
          keyName: T.String({ description: 'TSIG key name.', minLength: 1 }),
          keyAlgorithm: T.Optional(T.String({ description: 'TSIG algorithm (default hmac-sha256).' })),
          keySecret: SecretRef,
        },
        { ...strict, description: 'Settings of the RFC 2136 provider.' },
      ),
    ),
    route53: T.Optional(
      T.Object(
        { hostedZoneId: T.String({ description: 'Route 53 hosted zone id.', minLength: 1 }) },
        { ...strict, description: 'Settings of the Route 53 provider.' },
      ),
    ),
  },
  { ...strict, description: 'DNS records that route applications to the primary and to read replicas.' },
);

export const RegionsSpecSchema = T.Object(
  {
    $schema: T.Optional(T.String({ description: 'Optional JSON Schema reference for editors.' })),
    version: T.Literal(1, { description: 'Version of the regions.yaml format.' }),
    name: T.String({ description: 'Name of this replicated database topology.', minLength: 1 }),
    database: T.String({
      description: 'Name of the replicated database (the same in every region).',
      pattern: IDENTIFIER_PATTERN,
    }),
    applicationRoles: T.Array(T.String({ description: 'A role name.', pattern: IDENTIFIER_PATTERN }), {
      description:
        'Roles applications log in as: read-only on secondaries, unable to write on a fenced region.',
      minItems: 1,
    }),
    regions: T.Array(Region, { description: 'The regions, one primary and its secondaries.', minItems: 1 }),
    controlStore: T.Object(
      {
        ...Endpoint,
        database: T.String({ description: 'Database of the control store.', minLength: 1 }),
      },
      {
        ...strict,
        description: 'The Postgres database holding history, journal and audit (not a replicated region).',
      },
    ),
    channels: T.Array(Channel, { description: 'Replication channels, one per secondary.' }),
    replication: Replication,
    failover: Failover,
    authority: T.Optional(Authority),
    retention: T.Optional(Retention),
    heartbeat: T.Optional(
      T.Object(
        {
          intervalSeconds: T.Number({
            description: 'How often the primary writes its heartbeat row.',
            exclusiveMinimum: 0,
          }),
        },
        { ...strict, description: 'Heartbeat used to measure lag in seconds.' },
      ),
    ),
    dns: T.Optional(Dns),
    readRouting: T.Optional(
      T.Object(
        {
          stalenessBudgetSeconds: T.Number({
            description: 'Replicas lagging more than this do not serve reads.',
            exclusiveMinimum: 0,
          }),
          classes: T.Optional(
            T.Record(
              T.String(),
              T.Number({
                description: 'Staleness budget of this read class in seconds.',
                exclusiveMinimum: 0,
              }),
              {
                description: 'Per read class staleness budgets in seconds, e.g. catalog: 30.',
              },
            ),
          ),
          recoveryPasses: T.Optional(
            T.Integer({
              description:
                'A replica taken out of read routing serves again after this many consecutive reconcile passes with lag under half its budget (default 3).',
              minimum: 1,
            }),
          ),
          document: T.Optional(
            T.String({
              description:
                'Where the reconciler writes the JSON routing document for the client library (relative to regions.yaml; default: beside the zone file of the file DNS provider, zone.json → zone.routing.json; else .regionctl/routing.json).',
              minLength: 1,
            }),
          ),
        },
        { ...strict, description: 'Read routing policy.' },
      ),
    ),
    alerts: T.Optional(
      T.Object(
        { webhook: T.Optional(SecretRef) },
        { ...strict, description: 'Where alerts go besides the log. The webhook URL is a secret reference.' },
      ),
    ),
  },
  {
    ...strict,
    $id: 'https://regionctl.dev/schemas/regions.schema.json',
    title: 'regionctl regions.yaml',
    description: 'Desired cross-region replication topology of one PostgreSQL database.',
  },
);

export type RegionsSpec = Static<typeof RegionsSpecSchema>;
export type RegionSpec = RegionsSpec['regions'][number];
export type ChannelSpec = RegionsSpec['channels'][number];
export type EndpointSpec = RegionSpec['endpoint'];
export type ControlStoreSpec = RegionsSpec['controlStore'];
export type SecretRefSpec = NonNullable<EndpointSpec['password']>;
export type FencingSpec = RegionsSpec['failover']['fencing'][number];
export type DnsSpec = NonNullable<RegionsSpec['dns']>;
export type AuthoritySpec = NonNullable<RegionsSpec['authority']>;

/** The schema as a plain JSON document (2020-12), as written to schemas/regions.schema.json. */
export function jsonSchemaDocument(): Record<string, unknown> {
  const plain = JSON.parse(JSON.stringify(RegionsSpecSchema as TSchema)) as Record<string, unknown>;
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', ...plain };
}
