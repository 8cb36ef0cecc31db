import { Transform, type TransformCallback } from 'node:stream';
import { formatMariadbGtid, mariadbPositionOf, mariadbStateAfter, parseMariadbGtid, parseMariadbGtidList, type MariadbGtid } from '../../../../format/binlog';

/**
 * mariadb-binlog's output on its way to the one `mariadb` client session, line by line:
 *
 * - It drops `SET @@session.gtid_seq_no=N` and `SET @@session.server_id=N`, so that the server the
 *   restore writes to logs the replayed transactions under GTIDs of its own (the next sequence
 *   numbers of the domain) and its own server_id. Kept, a restore on the source server itself
 *   would log the source's old sequence numbers again: out of order in its binary log (an error
 *   under gtid_strict_mode, https://mariadb.com/kb/en/gtid/#gtid_strict_mode), and a gap in the
 *   archive's GTID chain. Dropped, the replay is logged like any client's writes: replicas follow
 *   it and the source's archive stays continuous.
 * - It refuses a statement event that names the source database qualified (`shop`.`items`), and
 *   a database-level statement (DROP DATABASE shop, under USE shop):
 *   --rewrite-db rewrites the default database (USE) and the table maps of row events, not the
 *   text of statements (https://mariadb.com/kb/en/mariadb-binlog-options/), so such a statement
 *   would change the source database instead of the restored copy.
 * - It follows what was replayed from the event headers (`#YYMMDD HH:MM:SS server id … end_log_pos
 *   N … GTID d-s-n` / `Xid =` / `COMMIT`): transactions, the last committed one's end position,
 *   GTID and commit time. mariadb-binlog prints header times in its local zone: it runs with TZ=UTC.
 *
 * Lines are short (row events are base64 in lines of 76 characters), so a partial line held
 * between chunks is small; chunks without a line to drop pass through uncopied.
 */
export interface ReplayProgress {
  /** Transactions committed (a GTID event group that reached its COMMIT/Xid, or a DDL). */
  transactions: number;
  /** "file:end_log_pos" of the last committed transaction's last event. */
  position: string | null;
  lastGtid: string | null;
  /** ISO 8601 UTC of the last committed transaction's commit event (whole seconds). */
  lastCommitAt: string | null;
}

const HEADER = /^#(\d{2})(\d{2})(\d{2}) {1,2}(\d{1,2}):(\d{2}):(\d{2}) server id \d+ +end_log_pos (\d+) .*?\t(.*)$/;
const DROPPED = [Buffer.from('/*M!100001 SET @@session.gtid_seq_no='), Buffer.from('/*M!100001 SET @@session.server_id='), Buffer.from('/*!100001 SET @@session.gtid_seq_no='), Buffer.from('/*!100001 SET @@session.server_id=')];
/** How a commit's statement line reads (spelled out: a regular expression of it would hold the bundle's comment terminator). */
const COMMIT_LINES = new Set(['COMMIT', `COMMIT/*!*${'/'};`]);
const NEWLINE = 10;
const HASH = 35;
const SLASH = 47;

/** What replay reached, carried from one file's stream to the next. */
export class ReplayState {
  readonly progress: ReplayProgress = { transactions: 0, position: null, lastGtid: null, lastCommitAt: null };
  state: MariadbGtid[];

  /** `gtidState`: the GTID state replay starts from (MariaDB list; the dump's position). */
  constructor(gtidState: string) {
    try {
      this.state = parseMariadbGtidList(gtidState);
    } catch {
      this.state = [];
    }
  }

  /** The GTID position reached (newest per domain), MariaDB form. */
  gtidPosition(): string {
    return mariadbPositionOf(this.state).map(formatMariadbGtid).join(',');
  }
}

/** One file's output (one mariadb-binlog run): a stream of its own, so that what it reached is counted against the right file. */
export class BinlogReplayStream extends Transform {
  private carry: Buffer = Buffer.alloc(0);
  private header: { time: string; endPos: number } | null = null;
  private open: { gtid: string; ddl: boolean } | null = null;
  private inQuery = false;
  private readonly qualified: RegExp;

  /** `sourceDatabase`: the name statements must not qualify. */
  constructor(
    sourceDatabase: string,
    private readonly file: string,
    private readonly shared: ReplayState,
  ) {
    super();
    const name = sourceDatabase.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    this.qualified = new RegExp(`(\`${name.replace(/`/g, '``')}\`|(?<![\\w$.\`])${name})\\s*\\.`, 'i');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    const data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const lastNewline = data.lastIndexOf(NEWLINE);
    if (lastNewline < 0) {
      this.carry = Buffer.from(data);
      return callback();
    }
    const keep: Buffer[] = [];
    let from = 0;
    let pos = 0;
    try {
      while (pos <= lastNewline) {
        const end = data.indexOf(NEWLINE, pos);
        const first = data[pos];
        if (first === HASH) this.onComment(data.toString('latin1', pos, end));
        else if (first === SLASH && DROPPED.some((p) => data.compare(p, 0, p.length, pos, Math.min(pos + p.length, end)) === 0)) {
          if (pos > from) keep.push(data.subarray(from, pos));
          from = end + 1;
        } else if (this.open !== null || this.inQuery) this.onStatementLine(data, pos, end);
        pos = end + 1;
      }
    } catch (error) {
      return callback(error as Error);
    }
    if (from <= lastNewline) keep.push(data.subarray(from, lastNewline + 1));
    this.carry = lastNewline + 1 < data.length ? Buffer.from(data.subarray(lastNewline + 1)) : Buffer.alloc(0);
    for (const part of keep) this.push(part);
    callback();
  }

  override _flush(callback: TransformCallback): void {
    if (this.carry.length) this.push(this.carry);
    this.carry = Buffer.alloc(0);
    callback();
  }

  private onComment(line: string): void {
    const m = HEADER.exec(line);
    if (!m) return;
    const [, yy, mo, dd, hh, mi, ss, endPos, what] = m;
    this.header = { time: `20${yy}-${mo}-${dd}T${hh.padStart(2, '0')}:${mi}:${ss}.000Z`, endPos: Number(endPos) };
    this.inQuery = false;
    const gtid = /^GTID (\d+-\d+-\d+)( ddl| trans)?/.exec(what);
    if (gtid) {
      this.open = { gtid: gtid[1], ddl: gtid[2] === ' ddl' };
      return;
    }
    if (what.startsWith('Xid = ')) return this.commit();
    if (what.startsWith('Query')) {
      this.inQuery = true;
      if (this.open?.ddl) this.commit();
    }
  }

  private onStatementLine(data: Buffer, start: number, end: number): void {
    // A statement's text: COMMIT ends a transaction logged with a Query COMMIT (non-transactional
    // tables, statement format); anything else is checked for the source database's name.
    if (end - start <= 14 && COMMIT_LINES.has(data.toString('latin1', start, end).replace(/\r$/, ''))) {
      if (this.open) this.commit();
      return;
    }
    if (!this.inQuery) return;
    const text = data.toString('utf8', start, Math.min(end, start + 64 * 1024));
    if (/^(SET |use |\/\*|BEGIN|START TRANSACTION|ROLLBACK|DELIMITER)/.test(text)) return;
    // A database-level statement (DROP DATABASE shop) names no table to rewrite: on the copy it would hit the source.
    if (/^\s*(CREATE|DROP|ALTER)\s+(DATABASE|SCHEMA)\b/i.test(text)) {
      throw new Error(`${this.file} holds a database-level statement (ending at ${this.header?.endPos ?? '?'}), which cannot be replayed onto a copy under another name: ${text.slice(0, 200)}. Restore to a target before it`);
    }
    if (this.qualified.test(text.replace(/'(?:[^'\\]|\\.)*'/g, "''"))) {
      throw new Error(`a statement in ${this.file} (ending at ${this.header?.endPos ?? '?'}) names the source database qualified, which --rewrite-db does not rewrite: replaying it would change the source database instead of the restored copy. Statement: ${text.slice(0, 200)}`);
    }
  }

  private commit(): void {
    if (!this.open || !this.header) return;
    const progress = this.shared.progress;
    progress.transactions += 1;
    progress.position = `${this.file}:${this.header.endPos}`;
    progress.lastGtid = this.open.gtid;
    progress.lastCommitAt = this.header.time;
    try {
      this.shared.state = mariadbStateAfter(this.shared.state, parseMariadbGtid(this.open.gtid));
    } catch {
      // MySQL GTIDs are not followed here; the last one seen is still reported.
    }
    this.open = null;
  }
}
