/**
 * Name patterns of regions.yaml, shared by the schema and by the validator, which turns a
 * pattern mismatch into a specific code and explanation instead of echoing a regex.
 * Kept apart from schema.ts so the CLI path does not load TypeBox.
 *
 * Region names become parts of replication object names: dashes turn into underscores
 * and `__` separates names, hence no underscores, no double or trailing dashes.
 */
export const REGION_NAME_PATTERN = '^[a-z](?:-?[a-z0-9])*$';
export const REGION_NAME_MAX_LENGTH = 40;
/** An unquoted lowercase PostgreSQL identifier (at most 63 bytes). */
export const IDENTIFIER_PATTERN = '^[a-z_][a-z0-9_$]{0,62}$';
export const TABLE_NAME_PATTERN = '^[a-z_][a-z0-9_$]{0,62}\\.[a-z_][a-z0-9_$]{0,62}$';
