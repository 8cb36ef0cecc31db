import { canonicalGtidState, isBinlogFileName, type BinlogFlavor } from '../../../../format/binlog';

/**
 * The binary log position of a logical dump's snapshot, read from what mysqldump / mariadb-dump
 * itself wrote (--master-data=2 / --source-data=2): the coordinates and the GTID position are
 * comment lines the tool prints from the same consistent snapshot it dumps. Pure: no process, no
 * stream; the dump step's companion feeds it the plaintext as it passes.
 *
 * Where each tool writes them:
 * - MariaDB 10.x, --single-transaction --master-data=2 --gtid: near the head,
 *   `-- CHANGE MASTER TO MASTER_LOG_FILE='mariadb-bin.000001', MASTER_LOG_POS=1232;` (from the
 *   Binlog_snapshot_file/position status of its START TRANSACTION WITH CONSISTENT SNAPSHOT), and a
 *   header line announcing that the GTID is "printed later in the file": 10.11 (10.11.19 here)
 *   writes `-- SET GLOBAL gtid_slave_pos='0-1-5';` after the data, just before the footer,
 *   under "-- The deferred gtid setting for slave corresponding to the master-data CHANGE-MASTER
 *   follows". Older MariaDB dumps print it in the head.
 * - MySQL 8.0.26+, --source-data=2: `-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='binlog.000002',
 *   SOURCE_LOG_POS=157;`; older, `-- CHANGE MASTER TO MASTER_LOG_FILE=…`. With GTIDs on, the head
 *   also has `SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*\/ 'uuid:1-5,\nuuid2:1-3';` (the set may span
 *   lines; with --set-gtid-purged=COMMENTED every line starts with "-- ").
 *
 * Memory stays bounded whatever the dump's size: the head is kept up to the first dumped object
 * (or MAX_HEAD_BYTES), then only a rolling tail of TAIL_BYTES.
 */

/** The header mysqldump writes before the first database is a few KB; a GTID set of many servers a few more. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** The footer after the deferred GTID line is under 1 KB; the line itself is bounded by the manifest's 600 characters. */
export const TAIL_BYTES = 16 * 1024;

/** Lines that start the dumped objects: the head (everything the tool writes about the snapshot) ends there. */
const HEAD_END = /^(?:-- Current Database: |-- Table structure for table |CREATE DATABASE |USE `|DROP TABLE )/m;
const DEFERRED_ANNOUNCED = /gtid state is printed (?:as comments )?later in the file/;
const GTID_SLAVE_POS_LINE = /^(?:-- )?SET GLOBAL gtid_slave_pos='([^']*)'\s*;\s*$/;
const DEFERRED_MARKER = '-- The deferred gtid setting for slave corresponding to the master-data CHANGE-MASTER follows';

export interface DumpPosition {
  readonly file: string;
  readonly position: number;
  /** Canonical GTID state text (format/binlog.ts); "" when the server had logged no GTID (or, on MySQL, GTIDs are off). */
  readonly gtid: string;
  readonly flavor: BinlogFlavor;
}

/** Lines with a leading "-- " comment mark removed, so commented and plain statements read alike. */
function uncomment(text: string): string {
  return text
    .split('\n')
    .map((l) => l.replace(/^-- ?/, ''))
    .join('\n');
}

/** The CHANGE MASTER TO / CHANGE REPLICATION SOURCE TO coordinates in a dump's head; null when it has none. */
export function parseDumpCoordinates(head: string): { file: string; position: number } | null {
  const match = /^(?:-- )?CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='([^']+)',\s*(?:MASTER|SOURCE)_LOG_POS=(\d+)\s*;/m.exec(head);
  if (!match) return null;
  if (!isBinlogFileName(match[1])) throw new Error(`the dump names binary log file "${match[1]}", which is not a binary log file name`);
  return { file: match[1], position: Number(match[2]) };
}

/**
 * MySQL's GTID_PURGED statement in a dump's head (plain or commented, over several lines); null
 * when there is none. ([*] rather than a backslash before a slash: the bundle reserves those two
 * characters, scripts/build-agent.ts.)
 */
export function parseMysqlGtidPurged(head: string): string | null {
  const match = /^SET @@GLOBAL\.GTID_PURGED=(?:\/\*!80000 '\+'[*]\/ )?'([^']*)'\s*;/im.exec(uncomment(head));
  return match ? match[1].replace(/\s+/g, '') : null;
}

/** MariaDB's gtid_slave_pos statement (plain or commented); the last one in `text`; null when there is none. */
export function parseMariadbGtidSlavePos(text: string): string | null {
  const found = text.split('\n').flatMap((l) => GTID_SLAVE_POS_LINE.exec(l)?.[1] ?? []);
  return found.length ? found[found.length - 1] : null;
}

/**
 * The deferred GTID of a MariaDB dump's tail: the statement after the LAST deferred marker. Only
 * a header that announced it is trusted to have one, so a routine body quoting the marker earlier
 * in the dump never counts, and anything but the footer after it is refused.
 */
export function parseDeferredGtid(tail: string): string | Error {
  const at = tail.lastIndexOf(DEFERRED_MARKER);
  if (at < 0) return new Error('the dump announced its GTID position "later in the file", but its end has no deferred GTID section');
  const lines = tail.slice(at + DEFERRED_MARKER.length).split('\n');
  const index = lines.findIndex((l) => GTID_SLAVE_POS_LINE.test(l));
  if (index < 0) return new Error('the deferred GTID section at the end of the dump has no SET GLOBAL gtid_slave_pos line');
  const between = lines.slice(0, index).every((l) => l.trim() === '' || l.startsWith('--'));
  const footer = lines.slice(index + 1).every((l) => l.trim() === '' || /^\/\*!\d+ SET .*[*]\/;$/.test(l.trim()) || l.startsWith('-- Dump completed'));
  if (!between || !footer) return new Error('the deferred GTID line is surrounded by more than comments and the dump footer: not the one mariadb-dump wrote');
  return GTID_SLAVE_POS_LINE.exec(lines[index])![1];
}

/**
 * Reads the position as the dump passes: push() every chunk of the plaintext in order, then
 * result() once it ended. It never throws from push(): a stream observer must not break the stream.
 */
export class DumpPositionReader {
  private head = '';
  private headDone = false;
  private coordinates: { file: string; position: number } | null = null;
  private problem: string | undefined;
  private tail: Buffer = Buffer.alloc(0);
  /** When the coordinates were read: at or after the snapshot, which the tool took before writing them. */
  private readAt: Date | undefined;

  constructor(
    private readonly flavor: BinlogFlavor,
    private readonly now: () => Date = () => new Date(),
  ) {}

  push(chunk: Buffer): void {
    if (!this.headDone) {
      // latin1 keeps one character per byte, so the bounds hold; the lines looked for are ASCII.
      this.head += chunk.toString('latin1');
      const end = this.head.search(HEAD_END);
      if (end >= 0 || this.head.length > MAX_HEAD_BYTES) {
        this.head = end >= 0 ? this.head.slice(0, end) : this.head.slice(0, MAX_HEAD_BYTES);
        this.headDone = true;
      }
      this.readCoordinates();
    }
    // Only the end of each chunk is copied: the dump itself never passes through a string.
    const end = chunk.length > TAIL_BYTES ? chunk.subarray(chunk.length - TAIL_BYTES) : chunk;
    this.tail = this.tail.length + end.length > TAIL_BYTES ? Buffer.concat([this.tail, end]).subarray(-TAIL_BYTES) : Buffer.concat([this.tail, end]);
  }

  private readCoordinates(): void {
    if (this.coordinates || this.problem) return;
    try {
      this.coordinates = parseDumpCoordinates(this.head);
      if (this.coordinates) this.readAt = this.now();
    } catch (error) {
      this.problem = (error as Error).message;
    }
  }

  /** The position, or why there is none; call once the stream has ended. */
  result(): (DumpPosition & { readAt: Date }) | Error {
    if (this.problem) return new Error(this.problem);
    if (!this.coordinates || !this.readAt) {
      return new Error(`the dump's head (its first ${Math.min(this.head.length, MAX_HEAD_BYTES)} bytes, up to the first dumped object) has no CHANGE MASTER TO / CHANGE REPLICATION SOURCE TO line`);
    }
    let gtid: string | null;
    if (this.flavor === 'mariadb') {
      gtid = parseMariadbGtidSlavePos(this.head);
      if (gtid === null && DEFERRED_ANNOUNCED.test(this.head)) {
        const deferred = parseDeferredGtid(this.tail.toString('latin1'));
        if (deferred instanceof Error) return deferred;
        gtid = deferred;
      }
      if (gtid === null) return new Error("the dump has the binary log coordinates but no GTID position (mariadb-dump --gtid prints SET GLOBAL gtid_slave_pos)");
    } else {
      // No GTID_PURGED line: the server runs without GTIDs; replay goes by file and position alone.
      gtid = parseMysqlGtidPurged(this.head) ?? '';
    }
    let canonical: string;
    try {
      canonical = canonicalGtidState(gtid, this.flavor);
    } catch (error) {
      return new Error(`the dump's GTID position "${gtid.slice(0, 200)}" does not parse: ${(error as Error).message}`);
    }
    if (canonical.length > 600) return new Error(`the dump's GTID position is ${canonical.length} characters long; a manifest holds at most 600 (about 16 GTID domains or server UUIDs)`);
    return { ...this.coordinates, gtid: canonical, flavor: this.flavor, readAt: this.readAt };
  }
}
