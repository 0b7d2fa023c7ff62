/**
 * A pgoutput (protocol 1) decoder that keeps every column in PostgreSQL's own text form.
 *
 * pg-logical-replication's PgoutputPlugin#parse runs node-postgres' type parsers over the
 * values: a timestamptz becomes a Date (microseconds lost), so a lost-write report built
 * on it could not replay a row exactly. The wire format is small and stable
 * (https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html), so
 * the report decodes it here and types values itself from the column type OIDs.
 */

export interface RelationColumnInfo {
  name: string;
  /** Part of the replica identity (every column when the identity is FULL). */
  identity: boolean;
  typeOid: number;
  typeMod: number;
}

export interface RelationInfo {
  oid: number;
  schema: string;
  name: string;
  replicaIdentity: 'default' | 'nothing' | 'full' | 'index';
  columns: RelationColumnInfo[];
}

/** One column of a tuple: its text, SQL NULL, or an unchanged TOASTed value the WAL does not carry. */
export type TupleValue = { kind: 'text'; text: string } | { kind: 'null' } | { kind: 'unchanged' };

export type Tuple = Map<string, TupleValue>;

export type PgoutputMessage =
  | { tag: 'begin'; finalLsn: string; commitTimeUs: bigint; xid: number }
  | { tag: 'commit'; commitLsn: string; endLsn: string; commitTimeUs: bigint }
  | { tag: 'relation'; relation: RelationInfo }
  | { tag: 'insert'; relation: RelationInfo; new: Tuple }
  | { tag: 'update'; relation: RelationInfo; key: Tuple | null; old: Tuple | null; new: Tuple }
  | { tag: 'delete'; relation: RelationInfo; key: Tuple | null; old: Tuple | null }
  | { tag: 'truncate'; relations: RelationInfo[]; cascade: boolean; restartIdentity: boolean }
  | { tag: 'other'; code: string };

/** Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01. */
const PG_EPOCH_US = 946_684_800_000_000n;

export function pgTimeToIso(us: bigint): string {
  const unixUs = us + PG_EPOCH_US;
  const ms = unixUs / 1000n;
  const micro = Number(unixUs % 1_000_000n);
  const iso = new Date(Number(ms)).toISOString();
  // toISOString has milliseconds; keep PostgreSQL's microseconds.
  return `${iso.slice(0, 19)}.${String(micro).padStart(6, '0')}Z`;
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  u8(): number {
    const v = this.buf.readUInt8(this.pos);
    this.pos += 1;
    return v;
  }
  i16(): number {
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  i32(): number {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  u32(): number {
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  i64(): bigint {
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  lsn(): string {
    const hi = this.u32();
    const lo = this.u32();
    return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
  }
  cstring(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new Error('pgoutput: unterminated string');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
}

const IDENTITY = { d: 'default', n: 'nothing', f: 'full', i: 'index' } as const;

/** Stateful: relation messages precede the rows that use them, as in the stream. */
export class PgoutputTextDecoder {
  private readonly relations = new Map<number, RelationInfo>();

  decode(buf: Buffer): PgoutputMessage {
    const r = new Reader(buf);
    const code = String.fromCharCode(r.u8());
    switch (code) {
      case 'B':
        return { tag: 'begin', finalLsn: r.lsn(), commitTimeUs: r.i64(), xid: r.u32() };
      case 'C': {
        r.u8(); // flags, unused
        return { tag: 'commit', commitLsn: r.lsn(), endLsn: r.lsn(), commitTimeUs: r.i64() };
      }
      case 'R': {
        const oid = r.u32();
        const schema = r.cstring() || 'pg_catalog';
        const name = r.cstring();
        const ident = String.fromCharCode(r.u8()) as keyof typeof IDENTITY;
        const n = r.i16();
        const columns: RelationColumnInfo[] = [];
        for (let i = 0; i < n; i++) {
          const flags = r.u8();
          columns.push({
            identity: (flags & 1) === 1,
            name: r.cstring(),
            typeOid: r.u32(),
            typeMod: r.i32(),
          });
        }
        const relation: RelationInfo = {
          oid,
          schema,
          name,
          replicaIdentity: IDENTITY[ident] ?? 'default',
          columns,
        };
        this.relations.set(oid, relation);
        return { tag: 'relation', relation };
      }
      case 'I': {
        const relation = this.relation(r.u32());
        expect(r, 'N');
        return { tag: 'insert', relation, new: this.tuple(r, relation) };
      }
      case 'U': {
        const relation = this.relation(r.u32());
        let key: Tuple | null = null;
        let old: Tuple | null = null;
        let sub = String.fromCharCode(r.u8());
        if (sub === 'K') key = this.tuple(r, relation);
        if (sub === 'O') old = this.tuple(r, relation);
        if (sub !== 'N') sub = String.fromCharCode(r.u8());
        if (sub !== 'N') throw new Error(`pgoutput: update without a new tuple ('${sub}')`);
        return { tag: 'update', relation, key, old, new: this.tuple(r, relation) };
      }
      case 'D': {
        const relation = this.relation(r.u32());
        const sub = String.fromCharCode(r.u8());
        const t = this.tuple(r, relation);
        return { tag: 'delete', relation, key: sub === 'K' ? t : null, old: sub === 'O' ? t : null };
      }
      case 'T': {
        const n = r.i32();
        const flags = r.u8();
        const relations: RelationInfo[] = [];
        for (let i = 0; i < n; i++) relations.push(this.relation(r.u32()));
        return { tag: 'truncate', relations, cascade: (flags & 1) === 1, restartIdentity: (flags & 2) === 2 };
      }
      default:
        // Origin (O), type (Y), logical message (M): nothing a report needs.
        return { tag: 'other', code };
    }
  }

  private relation(oid: number): RelationInfo {
    const rel = this.relations.get(oid);
    if (!rel) throw new Error(`pgoutput: row for relation ${oid} before its relation message`);
    return rel;
  }

  private tuple(r: Reader, rel: RelationInfo): Tuple {
    const n = r.i16();
    const out: Tuple = new Map();
    for (let i = 0; i < n; i++) {
      const col = rel.columns[i];
      if (!col)
        throw new Error(`pgoutput: tuple of ${rel.schema}.${rel.name} has more columns than its relation`);
      const kind = String.fromCharCode(r.u8());
      if (kind === 'n') out.set(col.name, { kind: 'null' });
      else if (kind === 'u') out.set(col.name, { kind: 'unchanged' });
      else if (kind === 't' || kind === 'b') {
        // 'b' only appears with the binary option, which the report never asks for.
        out.set(col.name, { kind: 'text', text: r.bytes(r.i32()).toString('utf8') });
      } else throw new Error(`pgoutput: unknown column kind '${kind}'`);
    }
    return out;
  }
}

function expect(r: Reader, code: string): void {
  const got = String.fromCharCode(r.u8());
  if (got !== code) throw new Error(`pgoutput: expected '${code}', got '${got}'`);
}
