/**
 * The ledger of acknowledged writes: one JSON line per row a committed transaction
 * wrote, appended outside every region (in the lab's state directory), so that after a
 * failover we can prove exactly which acknowledged writes the new primary lacks.
 * Only commits the primary acknowledged are written; an unknown outcome (the connection
 * died during COMMIT) is counted as failed, never ledgered.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export interface LedgerEntry {
  /** `<table>:<pk>`, e.g. `public.orders:42`. */
  id: string;
  table: string;
  op: 'insert' | 'update' | 'delete';
  /** Region that acknowledged the commit. */
  region: string;
  /**
   * End LSN of the transaction's commit record on that region — the value a subscriber
   * records as its origin's remote_lsn once it applied the transaction, so a
   * transaction was shipped to a subscriber iff commitLsn <= that subscriber's
   * remote_lsn (in the same primary's LSN space). Exact when commitLsnExact; otherwise
   * an upper bound (the primary's flush LSN read right after COMMIT returned), or null
   * when the primary died before even that could be read.
   */
  commitLsn: string | null;
  commitLsnExact: boolean;
  /** Commit timestamp from the primary (track_commit_timestamp), or the client's clock at the acknowledgement. */
  committedAt: string;
  /** The transaction id (xid8, as text) on that region. */
  txid: string;
}

export function ledgerDir(stateDir: string): string {
  return join(stateDir, 'ledger');
}

/** One ledger per database, so tests sharing a lab (one database each) do not mix. */
export function ledgerPath(stateDir: string, database: string): string {
  return join(ledgerDir(stateDir), `${database}.jsonl`);
}

/** Appends lines and makes them durable in batches (one fsync per flush, not per commit). */
export class LedgerWriter {
  private readonly fd: number;
  private pending: string[] = [];
  written = 0;

  constructor(readonly path: string) {
    mkdirSync(join(path, '..'), { recursive: true });
    this.fd = openSync(path, 'a', 0o600);
  }

  add(entries: LedgerEntry[]): void {
    for (const e of entries) this.pending.push(JSON.stringify(e));
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  flush(): void {
    if (this.pending.length === 0) return;
    const text = `${this.pending.join('\n')}\n`;
    this.pending = [];
    writeSync(this.fd, text);
    fsyncSync(this.fd);
    this.written += text.split('\n').length - 1;
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

/**
 * Reads the ledger of one database, or of every database when none is given. A torn
 * last line (the writer was killed mid-append) is ignored: it was never fsync'd.
 */
export function readLedger(stateDir: string, opts: { database?: string } = {}): LedgerEntry[] {
  const dir = ledgerDir(stateDir);
  const files = opts.database
    ? [ledgerPath(stateDir, opts.database)]
    : existsSync(dir)
      ? readdirSync(dir)
          .filter((f) => f.endsWith('.jsonl'))
          .sort()
          .map((f) => join(dir, f))
      : [];
  const out: LedgerEntry[] = [];
  for (const f of files) {
    if (!existsSync(f)) continue;
    const lines = readFileSync(f, 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (!line) return;
      try {
        out.push(JSON.parse(line) as LedgerEntry);
      } catch (e) {
        if (i < lines.length - 2)
          throw new Error(`${f}:${i + 1}: corrupt ledger line (${(e as Error).message})`);
      }
    });
  }
  return out;
}
