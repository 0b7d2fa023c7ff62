/**
 * Defaults of regions.yaml's `authority` section, shared by the schema (descriptions),
 * the validator and src/authority. Kept apart from schema.ts so the CLI path does not
 * load TypeBox. The arithmetic behind them is in schema.ts, above the section.
 */
export const DEFAULT_LEASE_SECONDS = 2;
export const PROMOTION_MARGIN_SECONDS = 1;
