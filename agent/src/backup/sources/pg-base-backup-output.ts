import { formatLsn, parseLsn, segmentFileName, segmentFileNameOfLsn, segmentOfLsn, type Lsn } from '../../../../format/wal';

/**
 * What a base backup's manifest records, read from what pg_basebackup itself wrote: the
 * backup_label at the head of its tar (exactly as PostgreSQL wrote it), and the WAL end point from
 * its -v messages. Pure: no process, no stream; the backup step feeds it.
 */

/** Entries PostgreSQL puts before the data directory in the base tar (basebackup.c sends them first). */
const LEADING_ENTRIES = new Set(['backup_label', 'tablespace_map']);
/** backup_label is a few hundred bytes; a tablespace_map one line per tablespace. Anything bigger is not theirs. */
const MAX_ENTRY_BYTES = 1 << 20;
const BLOCK = 512;

export interface LeadingFiles {
  readonly backupLabel: string;
  /** Null when the tar has none, or an empty one (pg_basebackup -Ft writes an empty map when there is no tablespace). */
  readonly tablespaceMap: string | null;
}

/**
 * Reads the first entries of a POSIX ustar stream as it passes (a tap on pg_basebackup's stdout),
 * keeping at most one chunk plus MAX_ENTRY_BYTES, then nothing: memory stays bounded whatever the
 * size of the backup. It never throws from push(): a stream observer must not break the stream;
 * result() says what went wrong.
 */
export class BaseTarLeadReader {
  private buffer: Buffer = Buffer.alloc(0);
  private offset = 0;
  private done = false;
  private problem: string | undefined;
  private readonly entries = new Map<string, string>();
  private firstName: string | undefined;

  push(chunk: Buffer): void {
    if (this.done) return;
    this.buffer = this.buffer.length === this.offset ? chunk : Buffer.concat([this.buffer.subarray(this.offset), chunk]);
    this.offset = 0;
    try {
      this.parse();
    } catch (error) {
      this.finish((error as Error).message);
    }
    if (!this.done && this.buffer.length - this.offset > MAX_ENTRY_BYTES + 2 * BLOCK) this.finish(`an entry at the head of the tar is larger than ${MAX_ENTRY_BYTES} bytes`);
  }

  /** What was read; call once the stream has ended. */
  result(): LeadingFiles | Error {
    if (this.problem) return new Error(this.problem);
    const label = this.entries.get('backup_label');
    if (label === undefined) {
      if (this.firstName === undefined || this.firstName === 'backup_label') return new Error('the tar ended before the end of its first entry, backup_label');
      return new Error(`the tar does not begin with backup_label (its first entry is "${this.firstName}")`);
    }
    const map = this.entries.get('tablespace_map');
    return { backupLabel: label, tablespaceMap: map ? map : null };
  }

  private finish(problem?: string): void {
    this.done = true;
    this.problem ??= problem;
    this.buffer = Buffer.alloc(0);
    this.offset = 0;
  }

  private parse(): void {
    while (!this.done && this.buffer.length - this.offset >= BLOCK) {
      const header = this.buffer.subarray(this.offset, this.offset + BLOCK);
      if (header.every((b) => b === 0)) return this.finish();
      const entry = readHeader(header);
      this.firstName ??= entry.name;
      if (this.entries.size === 0 && entry.name !== 'backup_label') return this.finish();
      if (!LEADING_ENTRIES.has(entry.name) || this.entries.has(entry.name)) return this.finish();
      if (entry.size > MAX_ENTRY_BYTES) return this.finish(`${entry.name} in the tar claims ${entry.size} bytes`);
      const padded = Math.ceil(entry.size / BLOCK) * BLOCK;
      if (this.buffer.length - this.offset < BLOCK + padded) return;
      this.entries.set(entry.name, this.buffer.subarray(this.offset + BLOCK, this.offset + BLOCK + entry.size).toString('utf8'));
      this.offset += BLOCK + padded;
    }
  }
}

/** A ustar header's name and size, after its checksum (POSIX pax/ustar "Header Block"). */
export function readHeader(header: Buffer): { name: string; size: number; type: string } {
  const stored = octal(header.subarray(148, 156), 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
  if (sum !== stored) throw new Error(`a tar header's checksum does not match (${stored}, computed ${sum}): this is not a tar stream`);
  const text = (from: number, to: number) => {
    const field = header.subarray(from, to);
    const end = field.indexOf(0);
    return field.subarray(0, end < 0 ? field.length : end).toString('utf8');
  };
  const prefix = header.subarray(257, 262).toString('latin1') === 'ustar' ? text(345, 500) : '';
  const name = prefix ? `${prefix}/${text(0, 100)}` : text(0, 100);
  return { name, size: size(header.subarray(124, 136)), type: String.fromCharCode(header[156] || 0x30) };
}

function octal(field: Buffer, what: string): number {
  const digits = field.toString('latin1').replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]+$/.test(digits)) throw new Error(`a tar header's ${what} field "${digits}" is not octal`);
  return Number.parseInt(digits, 8);
}

/** Octal, or GNU base-256 (high bit set) for sizes of 8 GiB and more. */
function size(field: Buffer): number {
  if ((field[0] & 0x80) === 0) return octal(field, 'size');
  let value = 0;
  for (let i = 1; i < field.length; i++) value = value * 256 + field[i];
  return value;
}

export interface BackupLabel {
  readonly startLsn: Lsn;
  readonly startWalFile: string;
  readonly checkpointLsn: Lsn;
  readonly timeline: number;
  readonly label: string;
  readonly startTime: string;
  readonly backupFrom: string;
}

/**
 * backup_label as do_pg_backup_start writes it (PostgreSQL src/backend/access/transam/xlog.c):
 * "START WAL LOCATION: %X/%X (file %s)", "CHECKPOINT LOCATION: %X/%X", "BACKUP METHOD", "BACKUP
 * FROM", "START TIME", "LABEL", "START TIMELINE: %u" (since PostgreSQL 11).
 */
export function parseBackupLabel(text: string): BackupLabel {
  const field = (name: string): string => {
    const m = new RegExp(`^${name}: (.*)$`, 'm').exec(text);
    if (!m) throw new Error(`backup_label has no "${name}" line`);
    return m[1].trim();
  };
  const start = /^([0-9A-F]{1,8}\/[0-9A-F]{1,8}) \(file ([0-9A-F]{24})\)$/.exec(field('START WAL LOCATION'));
  if (!start) throw new Error(`backup_label's START WAL LOCATION "${field('START WAL LOCATION')}" is not "X/Y (file <segment>)"`);
  const timeline = Number(field('START TIMELINE'));
  if (!Number.isInteger(timeline) || timeline < 1) throw new Error(`backup_label's START TIMELINE "${field('START TIMELINE')}" is not a timeline`);
  return {
    startLsn: parseLsn(start[1]),
    startWalFile: start[2],
    checkpointLsn: parseLsn(field('CHECKPOINT LOCATION')),
    timeline,
    label: field('LABEL'),
    startTime: field('START TIME'),
    backupFrom: field('BACKUP FROM'),
  };
}

export interface BasebackupMessages {
  readonly startLsn?: Lsn;
  readonly startTimeline?: number;
  readonly endLsn?: Lsn;
}

/**
 * pg_basebackup -v's messages (src/bin/pg_basebackup/pg_basebackup.c, PostgreSQL 15): "write-ahead
 * log start point: %s on timeline %u" and "write-ahead log end point: %s". The end point is the
 * LSN pg_backup_stop returned: just past the backup-end record.
 */
export function parseBasebackupMessages(stderr: string): BasebackupMessages {
  const start = /write-ahead log start point: ([0-9A-F]{1,8}\/[0-9A-F]{1,8}) on timeline (\d+)/.exec(stderr);
  const end = /write-ahead log end point: ([0-9A-F]{1,8}\/[0-9A-F]{1,8})/.exec(stderr);
  return {
    ...(start ? { startLsn: parseLsn(start[1]), startTimeline: Number(start[2]) } : {}),
    ...(end ? { endLsn: parseLsn(end[1]) } : {}),
  };
}

/**
 * The last WAL file a backup that ends at `stopLsn` needs. stopLsn is an end (the first byte after
 * the backup-end record), so the file is the one holding the byte before it, which is what
 * pg_walfile_name() answers and what pg_backup_stop waits for when it waits for archiving
 * (XLByteToPrevSeg; docs "System Administration Functions", Backup Control Functions).
 */
export function stopWalFileOf(timeline: number, stopLsn: Lsn, segSize: number): string {
  if (stopLsn === 0n) throw new Error('a backup cannot end at LSN 0/0');
  return segmentFileName(timeline, segmentOfLsn(stopLsn - 1n, segSize), segSize);
}

/** The facts of one base backup, cross-checked between the label and pg_basebackup's messages. */
export function baseBackupFacts(args: { leading: LeadingFiles; stderr: string; segSize: number }): {
  label: BackupLabel;
  timeline: number;
  startLsn: string;
  stopLsn: string;
  startWalFile: string;
  stopWalFile: string;
} {
  const label = parseBackupLabel(args.leading.backupLabel);
  const messages = parseBasebackupMessages(args.stderr);
  if (messages.endLsn === undefined) throw new Error('pg_basebackup did not print its "write-ahead log end point" (is -v on its command line?)');
  if (messages.startLsn !== undefined && (messages.startLsn !== label.startLsn || messages.startTimeline !== label.timeline)) {
    throw new Error(`pg_basebackup's start point ${formatLsn(messages.startLsn)} on timeline ${messages.startTimeline} differs from its backup_label's ${formatLsn(label.startLsn)} on timeline ${label.timeline}`);
  }
  const computedStart = segmentFileNameOfLsn(label.timeline, label.startLsn, args.segSize);
  if (computedStart !== label.startWalFile) {
    throw new Error(`backup_label names WAL file ${label.startWalFile} for ${formatLsn(label.startLsn)}, but with wal_segment_size ${args.segSize} that LSN is in ${computedStart}`);
  }
  if (messages.endLsn < label.startLsn) throw new Error(`pg_basebackup's end point ${formatLsn(messages.endLsn)} is before its start point ${formatLsn(label.startLsn)}`);
  return {
    label,
    timeline: label.timeline,
    startLsn: formatLsn(label.startLsn),
    stopLsn: formatLsn(messages.endLsn),
    startWalFile: label.startWalFile,
    stopWalFile: stopWalFileOf(label.timeline, messages.endLsn, args.segSize),
  };
}
