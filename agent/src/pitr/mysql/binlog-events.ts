import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Transform, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';
import {
  canonicalGtidState,
  formatMariadbGtid,
  formatMysqlGtidSet,
  mariadbStateAfter,
  mysqlGtidSetUnion,
  type BinlogFlavor,
  type MariadbGtid,
  type MysqlGtidSet,
} from '../../../../format/binlog';

/**
 * A streaming reader of one MySQL/MariaDB binary log file (format v4), fed the file's bytes in
 * the same single pass that feeds compression and encryption: it never holds more than one
 * event's header and the first bytes of the few event kinds it reads, whatever the file's size.
 * It checks the file's framing (magic, every event's length and end position, each event's CRC32
 * when the Format_description event says the server writes them) and computes what the signed
 * record (format/binlog-record.ts) says of the file.
 *
 * Layouts, from the MariaDB Knowledge Base "Binary Log Events" pages and MySQL's source docs:
 * - file magic \xfe'bin' and the 19-byte v4 header (timestamp 4, type 1, server_id 4,
 *   event_length 4, next_position 4, flags 2), all little-endian:
 *   https://mariadb.com/kb/en/2-binlog-event-header/
 * - Format_description (15): https://mariadb.com/kb/en/format_description_event/ (binlog version
 *   2, server version 50, create time 4, header length 1, post-header lengths, then the checksum
 *   algorithm 1 and the CRC32 4 on servers that know checksums: MariaDB ≥ 5.3, MySQL ≥ 5.6.1)
 * - checksums: https://mariadb.com/kb/en/binlog-event-checksum/ (CRC32 of the event without its
 *   last 4 bytes, little-endian; the Format_description's is computed with the
 *   LOG_EVENT_BINLOG_IN_USE_F flag cleared, since the server clears that flag in place on close)
 * - MariaDB Gtid_list (163): https://mariadb.com/kb/en/gtid_list_event/ ; GTID (162):
 *   https://mariadb.com/kb/en/gtid_event/ (seq 8, domain 4, flags 1; FL_STANDALONE = 1)
 * - MySQL Previous_gtids (35) and Gtid (33), Anonymous_gtid (34):
 *   https://dev.mysql.com/doc/dev/mysql-server/latest/classmysql_1_1binlog_1_1event_1_1Previous__gtids__event.html
 *   https://dev.mysql.com/doc/dev/mysql-server/latest/classmysql_1_1binlog_1_1event_1_1Gtid__event.html
 * - Query (2): https://mariadb.com/kb/en/query_event/ ; Xid (16): https://mariadb.com/kb/en/xid_event/ ;
 *   MariaDB's compressed Query (165, log_bin_compress: https://mariadb.com/kb/en/compressing-events-to-reduce-size-of-the-binary-log/)
 *   is never a BEGIN or COMMIT (they are shorter than log_bin_compress_min_len), so it only ends a one-statement group
 * - MySQL 8 Transaction_payload (40, binlog_transaction_compression): the whole transaction, BEGIN
 *   to XID, compressed into one event after its GTID:
 *   https://dev.mysql.com/doc/refman/8.0/en/binary-log-transaction-compression.html
 * - Rotate (4): https://mariadb.com/kb/en/rotate_event/ ; Stop (3): https://mariadb.com/kb/en/stop_event/
 * - Start_encryption (164): https://mariadb.com/kb/en/start_encryption_event/ (what follows is encrypted)
 */

export const BINLOG_MAGIC = Buffer.from([0xfe, 0x62, 0x69, 0x6e]);
const HEADER_BYTES = 19;
/** The largest event a server writes is bounded by max_allowed_packet (1 GiB at most), plus headers. */
const MAX_EVENT_BYTES = 1024 * 1024 * 1024 + 64 * 1024;
/** Bytes of a Query event kept: enough for the post-header, status variables, database name and a COMMIT. */
const QUERY_CAPTURE_BYTES = 64 * 1024 + 512;
/** Bytes of any other event we parse (Format_description, GTID lists, Rotate): far more than they hold. */
const SMALL_CAPTURE_BYTES = 4 * 1024 * 1024;

const EVENT = {
  QUERY: 2,
  STOP: 3,
  ROTATE: 4,
  FORMAT_DESCRIPTION: 15,
  XID: 16,
  MYSQL_GTID: 33,
  MYSQL_ANONYMOUS_GTID: 34,
  MYSQL_PREVIOUS_GTIDS: 35,
  MYSQL_XA_PREPARE: 38,
  MYSQL_TRANSACTION_PAYLOAD: 40,
  MYSQL_GTID_TAGGED: 42,
  MARIADB_GTID: 162,
  MARIADB_GTID_LIST: 163,
  MARIADB_START_ENCRYPTION: 164,
  MARIADB_QUERY_COMPRESSED: 165,
  MARIADB_XA_PREPARE: 169,
} as const;

const LOG_EVENT_BINLOG_IN_USE_F = 0x1;
const MARIADB_FL_STANDALONE = 0x1;

/** What one closed binary log file says of itself (the record's facts, format/binlog-record.ts). */
export interface BinlogFacts {
  readonly flavor: BinlogFlavor;
  readonly serverVersion: string;
  readonly serverId: number;
  readonly checksum: 'crc32' | 'none';
  readonly gtidStart: string;
  readonly gtidEnd: string;
  readonly openedAt: string;
  readonly closedAt: string;
  readonly endsWith: 'rotate' | 'stop';
  /** The file a Rotate names as next (undefined after a Stop). */
  readonly rotatesTo?: string;
  readonly transactions: number;
  readonly firstCommitAt: string | null;
  readonly lastCommitAt: string | null;
  readonly events: number;
  readonly bytes: number;
  readonly sha256: string;
}

/** The file is not a well-formed, closed binary log: names the file, the offset and what is wrong. */
export class BinlogFormatError extends Error {
  constructor(
    readonly file: string,
    readonly offset: number,
    problem: string,
  ) {
    super(`${file}: ${problem}${offset >= 0 ? ` (at byte ${offset})` : ''}`);
    this.name = 'BinlogFormatError';
  }
}

interface Header {
  readonly start: number;
  readonly timestamp: number;
  readonly type: number;
  readonly serverId: number;
  readonly length: number;
  readonly nextPosition: number;
  readonly flags: number;
}

type Group = { standalone: boolean | 'unknown' } | null;

function iso(seconds: number): string {
  return new Date(seconds * 1000).toISOString();
}

/** Whether a server of this version writes the checksum algorithm into its Format_description. */
function knowsChecksums(version: string, flavor: BinlogFlavor): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return true;
  const v = Number(m[1]) * 10000 + Number(m[2]) * 100 + Number(m[3]);
  return flavor === 'mariadb' ? v >= 50300 : v >= 50601;
}

export class BinlogScanner {
  private offset = 0;
  private readonly magic = Buffer.alloc(4);
  private magicFill = 0;
  private readonly header = Buffer.alloc(HEADER_BYTES);
  private headerFill = 0;
  private current: Header | undefined;
  private bodyDone = 0;
  private dataBytes = 0;
  private capture: Buffer | undefined;
  private captureFill = 0;
  private readonly trailer = Buffer.alloc(4);
  private crc = 0;
  private readonly hash = createHash('sha256');

  private flavor: BinlogFlavor | undefined;
  private serverVersion = '';
  private serverId = -1;
  private checksum: 'crc32' | 'none' | undefined;
  private postHeader: Buffer = Buffer.alloc(0);
  private openedAt = 0;
  private lastTimestamp = 0;
  private lastType = -1;
  private ended: 'rotate' | 'stop' | undefined;
  private rotatesTo: string | undefined;
  private events = 0;
  private mariadbStart: MariadbGtid[] | undefined;
  private mariadbState: MariadbGtid[] = [];
  private mysqlStart: MysqlGtidSet | undefined;
  private mysqlState: MysqlGtidSet = new Map();
  private group: Group = null;
  private transactions = 0;
  private firstCommit: number | undefined;
  private lastCommit: number | undefined;
  private inUse = false;

  constructor(readonly file: string) {}

  get bytes(): number {
    return this.offset;
  }

  private fail(problem: string, offset = this.current?.start ?? this.offset): never {
    throw new BinlogFormatError(this.file, offset, problem);
  }

  update(chunk: Buffer): void {
    this.hash.update(chunk);
    let p = 0;
    while (p < chunk.length) {
      if (this.magicFill < 4) {
        const n = Math.min(4 - this.magicFill, chunk.length - p);
        chunk.copy(this.magic, this.magicFill, p, p + n);
        this.magicFill += n;
        p += n;
        this.offset += n;
        if (this.magicFill === 4 && !this.magic.equals(BINLOG_MAGIC)) this.fail(`does not start with the binary log magic \\xfebin (starts with ${this.magic.toString('hex')}): not a binary log file`, 0);
        continue;
      }
      if (!this.current) {
        const n = Math.min(HEADER_BYTES - this.headerFill, chunk.length - p);
        chunk.copy(this.header, this.headerFill, p, p + n);
        this.headerFill += n;
        p += n;
        this.offset += n;
        if (this.headerFill === HEADER_BYTES) {
          this.startEvent();
          if (this.current!.length === HEADER_BYTES) this.endEvent();
        }
        continue;
      }
      const n = Math.min(this.current.length - HEADER_BYTES - this.bodyDone, chunk.length - p);
      this.body(chunk.subarray(p, p + n));
      p += n;
      this.offset += n;
      if (this.bodyDone === this.current.length - HEADER_BYTES) this.endEvent();
    }
  }

  private startEvent(): void {
    const h = this.header;
    const start = this.offset - HEADER_BYTES;
    const header: Header = {
      start,
      timestamp: h.readUInt32LE(0),
      type: h.readUInt8(4),
      serverId: h.readUInt32LE(5),
      length: h.readUInt32LE(9),
      nextPosition: h.readUInt32LE(13),
      flags: h.readUInt16LE(17),
    };
    this.current = header;
    this.headerFill = 0;
    this.bodyDone = 0;
    this.captureFill = 0;
    if (this.ended) this.fail(`an event (type ${header.type}) follows the ${this.ended === 'rotate' ? 'Rotate' : 'Stop'} event that closed the file`, start);
    const trailerBytes = this.checksum === 'crc32' ? 4 : 0;
    if (header.length < HEADER_BYTES + trailerBytes || header.length > MAX_EVENT_BYTES) this.fail(`event length ${header.length} is impossible: the file is corrupt`, start);
    // next_position is the end of the event in the file (v4); a mismatch means lost or garbled bytes.
    // Positions above 4 GiB wrap in this 32-bit field, so it is compared modulo 2^32.
    if (header.nextPosition !== (start + header.length) % 0x1_0000_0000) {
      this.fail(`event of type ${header.type} and length ${header.length} says it ends at ${header.nextPosition}, not ${start + header.length}: the file is corrupt`, start);
    }
    if (this.events === 0 && header.type !== EVENT.FORMAT_DESCRIPTION) this.fail(`the first event is of type ${header.type}, not a Format_description (15): not a v4 binary log`, start);
    this.dataBytes = this.events === 0 ? header.length - HEADER_BYTES : header.length - HEADER_BYTES - trailerBytes;
    if (this.checksum === 'crc32') {
      this.crc = crc32(this.header);
    }
    const limit = this.captureLimit(header.type);
    this.capture = limit > 0 ? Buffer.allocUnsafe(Math.min(limit, this.dataBytes)) : undefined;
  }

  private captureLimit(type: number): number {
    switch (type) {
      case EVENT.QUERY:
        return QUERY_CAPTURE_BYTES;
      case EVENT.FORMAT_DESCRIPTION:
      case EVENT.ROTATE:
      case EVENT.MARIADB_GTID:
      case EVENT.MARIADB_GTID_LIST:
      case EVENT.MYSQL_GTID:
      case EVENT.MYSQL_PREVIOUS_GTIDS:
        if (this.current!.length > SMALL_CAPTURE_BYTES) this.fail(`a ${type === EVENT.FORMAT_DESCRIPTION ? 'Format_description' : `type ${type}`} event of ${this.current!.length} bytes is impossible: the file is corrupt`);
        return SMALL_CAPTURE_BYTES;
      default:
        return 0;
    }
  }

  private body(slice: Buffer): void {
    const dataLeft = Math.max(0, this.dataBytes - this.bodyDone);
    const data = slice.subarray(0, Math.min(dataLeft, slice.length));
    if (data.length > 0) {
      if (this.checksum === 'crc32' && this.events > 0) this.crc = crc32(data, this.crc);
      if (this.capture && this.captureFill < this.capture.length) {
        const n = Math.min(this.capture.length - this.captureFill, data.length);
        data.copy(this.capture, this.captureFill, 0, n);
        this.captureFill += n;
      }
    }
    const trailer = slice.subarray(data.length);
    if (trailer.length > 0) trailer.copy(this.trailer, this.bodyDone + data.length - this.dataBytes);
    this.bodyDone += slice.length;
  }

  private endEvent(): void {
    const header = this.current!;
    const body = this.capture ? this.capture.subarray(0, this.captureFill) : Buffer.alloc(0);
    if (this.events === 0) {
      this.formatDescription(header, body);
    } else if (this.checksum === 'crc32') {
      const stored = this.trailer.readUInt32LE(0);
      if (stored !== this.crc >>> 0) {
        this.fail(`event of type ${header.type} fails its CRC32 checksum (stored ${stored.toString(16).padStart(8, '0')}, computed ${(this.crc >>> 0).toString(16).padStart(8, '0')}): the file is corrupt`, header.start);
      }
    }
    if (this.events > 0) this.event(header, body);
    this.events++;
    this.lastTimestamp = header.timestamp;
    this.lastType = header.type;
    this.current = undefined;
    this.capture = undefined;
  }

  private formatDescription(header: Header, event: Buffer): void {
    if (event.length < 57) this.fail('the Format_description event is too short');
    const binlogVersion = event.readUInt16LE(0);
    if (binlogVersion !== 4) this.fail(`binary log format version ${binlogVersion} (only v4, MySQL ≥ 5.0 and MariaDB, is read)`, header.start);
    const version = event.subarray(2, 52).toString('latin1').replace(/\0.*$/s, '');
    const createdAt = event.readUInt32LE(52);
    const headerLength = event.readUInt8(56);
    if (headerLength !== HEADER_BYTES) this.fail(`event header length ${headerLength} (v4 has 19)`, header.start);
    this.flavor = /mariadb/i.test(version) ? 'mariadb' : 'mysql';
    this.serverVersion = version.slice(0, 60) || 'unknown';
    this.serverId = header.serverId;
    this.openedAt = header.timestamp || createdAt;
    this.inUse = (header.flags & LOG_EVENT_BINLOG_IN_USE_F) !== 0;
    if (knowsChecksums(version, this.flavor)) {
      const algorithm = event.readUInt8(event.length - 5);
      if (algorithm === 1) {
        const whole = Buffer.concat([this.header, event]);
        whole.writeUInt16LE(header.flags & ~LOG_EVENT_BINLOG_IN_USE_F, 17);
        const computed = crc32(whole.subarray(0, whole.length - 4)) >>> 0;
        const stored = whole.readUInt32LE(whole.length - 4);
        if (computed !== stored) this.fail(`the Format_description event fails its CRC32 checksum (stored ${stored.toString(16)}, computed ${computed.toString(16)}): the file is corrupt`, header.start);
        this.checksum = 'crc32';
      } else if (algorithm === 0) {
        this.checksum = 'none';
      } else {
        this.fail(`unknown binlog checksum algorithm ${algorithm} in the Format_description event`, header.start);
      }
      this.postHeader = Buffer.from(event.subarray(57, event.length - 5));
    } else {
      this.checksum = 'none';
      this.postHeader = Buffer.from(event.subarray(57));
    }
  }

  private postHeaderLength(type: number, fallback: number): number {
    return type - 1 < this.postHeader.length ? this.postHeader[type - 1]! : fallback;
  }

  private commit(timestamp: number): void {
    this.transactions++;
    this.firstCommit ??= timestamp;
    this.lastCommit = timestamp;
    this.group = null;
  }

  private event(header: Header, body: Buffer): void {
    switch (header.type) {
      case EVENT.MARIADB_START_ENCRYPTION:
        this.fail('the file is encrypted (MariaDB encrypt_binlog): its events cannot be read from the file; set "read": "server" so the server decrypts them', header.start);
        break;
      case EVENT.MARIADB_GTID_LIST: {
        if (body.length < 4) this.fail('the Gtid_list event is too short', header.start);
        const count = body.readUInt32LE(0) & 0x0fffffff;
        if (body.length < 4 + count * 16) this.fail(`the Gtid_list event says ${count} entries but holds ${Math.floor((body.length - 4) / 16)}`, header.start);
        const list: MariadbGtid[] = [];
        for (let i = 0; i < count; i++) {
          const at = 4 + i * 16;
          list.push({ domain: body.readUInt32LE(at), server: body.readUInt32LE(at + 4), seq: body.readBigUInt64LE(at + 8) });
        }
        if (this.mariadbStart === undefined) {
          this.mariadbStart = list;
          this.mariadbState = list;
        }
        break;
      }
      case EVENT.MARIADB_GTID: {
        if (body.length < 13) this.fail('the GTID event is too short', header.start);
        const gtid: MariadbGtid = { seq: body.readBigUInt64LE(0), domain: body.readUInt32LE(8), server: header.serverId };
        this.mariadbStart ??= [];
        this.mariadbState = mariadbStateAfter(this.mariadbState, gtid);
        this.group = { standalone: (body.readUInt8(12) & MARIADB_FL_STANDALONE) !== 0 };
        break;
      }
      case EVENT.MYSQL_PREVIOUS_GTIDS: {
        const set = this.readMysqlGtidSet(body, header);
        if (this.mysqlStart === undefined) {
          this.mysqlStart = set;
          this.mysqlState = set;
        }
        break;
      }
      case EVENT.MYSQL_GTID:
      case EVENT.MYSQL_ANONYMOUS_GTID: {
        if (header.type === EVENT.MYSQL_GTID) {
          if (body.length < 25) this.fail('the GTID event is too short', header.start);
          const uuid = body.subarray(1, 17).toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
          const gno = body.readBigInt64LE(17);
          this.mysqlStart ??= new Map();
          this.mysqlState = mysqlGtidSetUnion(this.mysqlState, new Map([[uuid, [[gno, gno] as const]]]));
        }
        // A MySQL GTID precedes either BEGIN … COMMIT/XID or one DDL statement: the next Query says which.
        this.group = { standalone: 'unknown' };
        break;
      }
      case EVENT.QUERY: {
        const text = this.queryText(body, header);
        const word = /^\s*(\w+)(?:\s+(\w+))?/.exec(text);
        const first = word?.[1]?.toUpperCase();
        const second = word?.[2]?.toUpperCase();
        if (this.group?.standalone === 'unknown') {
          if (first === 'BEGIN') this.group = { standalone: false };
          else this.commit(header.timestamp);
        } else if (this.group?.standalone === true) {
          this.commit(header.timestamp);
        } else if (this.group) {
          if (first === 'COMMIT' || first === 'ROLLBACK' || (first === 'XA' && (second === 'COMMIT' || second === 'ROLLBACK'))) this.commit(header.timestamp);
        } else if (first === 'BEGIN') {
          this.group = { standalone: false };
        } else if (first !== 'COMMIT') {
          // A statement outside any group (a server without GTID events) is its own transaction.
          this.commit(header.timestamp);
        }
        break;
      }
      case EVENT.MARIADB_QUERY_COMPRESSED:
        if (this.group?.standalone !== false) this.commit(header.timestamp);
        break;
      case EVENT.XID:
      case EVENT.MARIADB_XA_PREPARE:
      case EVENT.MYSQL_XA_PREPARE:
      case EVENT.MYSQL_TRANSACTION_PAYLOAD:
        this.commit(header.timestamp);
        break;
      case EVENT.MYSQL_GTID_TAGGED:
        this.fail('the file holds tagged GTIDs (MySQL 8.3 and later), which coldseal does not read yet', header.start);
        break;
      case EVENT.ROTATE: {
        const fixed = this.postHeaderLength(EVENT.ROTATE, 8);
        this.rotatesTo = body.subarray(fixed).toString('latin1');
        this.ended = 'rotate';
        break;
      }
      case EVENT.STOP:
        this.ended = 'stop';
        break;
      default:
        break;
    }
  }

  private queryText(body: Buffer, header: Header): string {
    const fixed = this.postHeaderLength(EVENT.QUERY, 13);
    if (body.length < fixed) this.fail('the Query event is too short', header.start);
    const dbLength = body.readUInt8(8);
    const statusLength = body.readUInt16LE(11);
    const at = fixed + statusLength + dbLength + 1;
    // Only a statement's first words matter (BEGIN, COMMIT, XA COMMIT): a long one is cut.
    return body.subarray(at, Math.min(body.length, at + 64)).toString('latin1');
  }

  private readMysqlGtidSet(body: Buffer, header: Header): MysqlGtidSet {
    if (body.length < 8) this.fail('the Previous_gtids event is too short', header.start);
    const sids = body.readBigUInt64LE(0);
    if (sids > 0xffffffffn) this.fail('the Previous_gtids event uses tagged GTIDs (MySQL 8.3 and later), which coldseal does not read yet', header.start);
    const set = new Map<string, Array<readonly [bigint, bigint]>>();
    let at = 8;
    for (let i = 0n; i < sids; i++) {
      if (body.length < at + 24) this.fail('the Previous_gtids event is truncated', header.start);
      const uuid = body.subarray(at, at + 16).toString('hex').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
      const intervals = Number(body.readBigUInt64LE(at + 16));
      at += 24;
      if (body.length < at + intervals * 16) this.fail('the Previous_gtids event is truncated', header.start);
      const list: Array<readonly [bigint, bigint]> = [];
      for (let j = 0; j < intervals; j++) {
        // Intervals are stored [start, end): end is exclusive.
        list.push([body.readBigInt64LE(at), body.readBigInt64LE(at + 8) - 1n]);
        at += 16;
      }
      set.set(uuid, list);
    }
    return mysqlGtidSetUnion(new Map(), set);
  }

  /** The facts once every byte was given; throws when the file is truncated or not closed. */
  finish(): BinlogFacts {
    if (this.magicFill < 4) this.fail(this.offset === 0 ? 'the file is empty' : 'the file is shorter than the binary log magic', this.offset);
    if (this.current || this.headerFill > 0) {
      const start = this.current?.start ?? this.offset - this.headerFill;
      this.fail(`the file ends in the middle of an event (${this.offset - start} of ${this.current?.length ?? HEADER_BYTES} bytes): it is truncated`, start);
    }
    if (this.events === 0) this.fail('the file holds no event: not a closed binary log', this.offset);
    if (!this.ended) {
      this.fail(
        `the file does not end with a Rotate or Stop event (last event: type ${this.lastType}${this.inUse ? '; its Format_description still says "in use"' : ''}): the server still writes it, or it was truncated or cut by a crash; it is not archived`,
        this.offset,
      );
    }
    const flavor = this.flavor!;
    const gtidStart = flavor === 'mariadb' ? (this.mariadbStart ?? []).map(formatMariadbGtid).join(',') : formatMysqlGtidSet(this.mysqlStart ?? new Map());
    const gtidEnd = flavor === 'mariadb' ? this.mariadbState.map(formatMariadbGtid).join(',') : formatMysqlGtidSet(this.mysqlState);
    return {
      flavor,
      serverVersion: this.serverVersion,
      serverId: this.serverId,
      checksum: this.checksum ?? 'none',
      gtidStart: canonicalGtidState(gtidStart, flavor),
      gtidEnd: canonicalGtidState(gtidEnd, flavor),
      openedAt: iso(this.openedAt),
      closedAt: iso(this.lastTimestamp),
      endsWith: this.ended,
      ...(this.rotatesTo === undefined ? {} : { rotatesTo: this.rotatesTo }),
      transactions: this.transactions,
      firstCommitAt: this.firstCommit === undefined ? null : iso(this.firstCommit),
      lastCommitAt: this.lastCommit === undefined ? null : iso(this.lastCommit),
      events: this.events,
      bytes: this.offset,
      sha256: this.hash.digest('hex'),
    };
  }
}

/** A pass-through stream that scans the bytes on their way (to the compressor); `facts()` once it ended. */
export class BinlogScanStream extends Transform {
  readonly scanner: BinlogScanner;
  private result: BinlogFacts | undefined;

  constructor(
    file: string,
    private readonly onBytes?: (bytes: number) => void,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.scanner = new BinlogScanner(file);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.scanner.update(chunk);
    } catch (error) {
      callback(error as Error);
      return;
    }
    this.onBytes?.(chunk.length);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.result = this.scanner.finish();
    } catch (error) {
      callback(error as Error);
      return;
    }
    callback();
  }

  facts(): BinlogFacts {
    if (!this.result) throw new Error('binary log facts read before the file was scanned to its end');
    return this.result;
  }
}

/** Scans a whole file (tests, and `coldseal` reading a file without uploading it). */
export async function scanBinlogFile(path: string, file: string): Promise<BinlogFacts> {
  const scanner = new BinlogScanner(file);
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) scanner.update(chunk as Buffer);
  return scanner.finish();
}
