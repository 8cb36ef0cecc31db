/**
 * The PostgreSQL WAL archive contract shared by the agent's archive_command / restore_command, the
 * restore planner and the keyless verifier: LSNs, WAL file names, timeline history files and the
 * continuity of an archive. Pure data and functions.
 *
 * What we rely on from PostgreSQL (docs "Continuous Archiving and Point-in-Time Recovery (PITR)" and
 * its section "Timelines"; source src/include/access/xlog_internal.h and xlogrecovery.c):
 * - An LSN is a 64-bit byte position in the WAL stream, printed as "%X/%X" (high/low 32 bits).
 * - The stream is cut into segments of wal_segment_size bytes (a power of two, 1 MB..1 GB, fixed at
 *   initdb). Segment number = LSN / segsize (XLByteToSeg). Its file name is XLogFileName:
 *   "%08X%08X%08X" of timeline, segno / XLogSegmentsPerXLogId, segno % XLogSegmentsPerXLogId, where
 *   XLogSegmentsPerXLogId = 0x100000000 / segsize: so the last 8 digits roll over at 0xFF with 16 MB
 *   segments but at 0x3F with 64 MB ones.
 * - A new timeline is born at each end of recovery (promotion, PITR). Its TTTTTTTT.history file lists
 *   every ancestor as "parentTLI<TAB>switchpoint<TAB>reason"; the switch point is where the ancestor
 *   ends. Lines may be blank or "#" comments (readTimeLineHistory).
 * - Recovery reads segment n from the newest timeline on the target's history whose begin segment is
 *   <= n (XLogFileReadAnyTLI): after a switch at LSN L the segment that holds L, and all later ones,
 *   come from the child timeline (the parent's copy of that segment is archived only as .partial).
 * - recovery_target_timeline 'latest' (the default since PostgreSQL 12) follows the highest
 *   timeline whose history file exists, probed as tli+1, tli+2, … (findNewestTimeLine).
 */

// ── LSNs ────────────────────────────────────────────────────────────────────────────────────────

export type Lsn = bigint;

const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): Lsn {
  const m = LSN_PATTERN.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a PostgreSQL LSN: expected two hex numbers of up to 8 digits, as "16/B374D848"`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: Lsn): string {
  if (lsn < 0n || lsn > 0xffffffffffffffffn) throw new Error(`LSN ${lsn} is outside 0..2^64-1`);
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** For Array.prototype.sort: negative, zero or positive. */
export function compareLsn(a: Lsn, b: Lsn): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ── Segment size and numbers ─────────────────────────────────────────────────────────────────────

export const MIN_WAL_SEGMENT_SIZE = 1 << 20;
export const MAX_WAL_SEGMENT_SIZE = 1 << 30;

export function assertWalSegmentSize(size: number): void {
  if (!Number.isInteger(size) || size < MIN_WAL_SEGMENT_SIZE || size > MAX_WAL_SEGMENT_SIZE || (size & (size - 1)) !== 0) {
    throw new Error(`wal_segment_size ${size} is not a power of two between 1 MB and 1 GB: read it with "show wal_segment_size" (in bytes: select setting from pg_settings where name = 'wal_segment_size')`);
  }
}

/** XLogSegmentsPerXLogId. */
export function segmentsPerXLogId(segSize: number): bigint {
  assertWalSegmentSize(segSize);
  return 0x100000000n / BigInt(segSize);
}

/** XLByteToSeg: the segment that holds the byte at `lsn`. */
export function segmentOfLsn(lsn: Lsn, segSize: number): bigint {
  assertWalSegmentSize(segSize);
  return lsn / BigInt(segSize);
}

/** XLogSegNoOffsetToRecPtr with offset 0. */
export function segmentStartLsn(segno: bigint, segSize: number): Lsn {
  assertWalSegmentSize(segSize);
  return segno * BigInt(segSize);
}

/** The first LSN after the segment (exclusive end). */
export function segmentEndLsn(segno: bigint, segSize: number): Lsn {
  return segmentStartLsn(segno + 1n, segSize);
}

// ── File names ───────────────────────────────────────────────────────────────────────────────────

export type WalFileName =
  | { kind: 'segment'; name: string; timeline: number; log: number; seg: number }
  | { kind: 'partial'; name: string; timeline: number; log: number; seg: number }
  | { kind: 'backup'; name: string; timeline: number; log: number; seg: number; offset: number }
  | { kind: 'history'; name: string; timeline: number };

const SEGMENT_NAME = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$/;
const PARTIAL_NAME = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.partial$/;
const BACKUP_NAME = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.([0-9A-F]{8})\.backup$/;
const HISTORY_NAME = /^([0-9A-F]{8})\.history$/;

const hex8 = (n: number | bigint): string => n.toString(16).toUpperCase().padStart(8, '0');

function assertTimeline(timeline: number, what: string): void {
  // Timeline 0 does not exist: PostgreSQL starts at 1.
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > 0xffffffff) throw new Error(`${what}: timeline ${timeline} is outside 1..FFFFFFFF`);
}

/**
 * Reads a file name from pg_wal / the archive. PostgreSQL writes the hex in upper case; anything
 * else (lower case, other suffixes, a path) is refused so that one segment never has two names.
 */
export function parseWalFileName(name: string): WalFileName {
  const num = (h: string) => Number.parseInt(h, 16);
  let m = SEGMENT_NAME.exec(name) ?? PARTIAL_NAME.exec(name);
  if (m) {
    const timeline = num(m[1]);
    assertTimeline(timeline, `WAL file "${name}"`);
    return { kind: name.endsWith('.partial') ? 'partial' : 'segment', name, timeline, log: num(m[2]), seg: num(m[3]) };
  }
  m = BACKUP_NAME.exec(name);
  if (m) {
    const timeline = num(m[1]);
    assertTimeline(timeline, `WAL file "${name}"`);
    return { kind: 'backup', name, timeline, log: num(m[2]), seg: num(m[3]), offset: num(m[4]) };
  }
  m = HISTORY_NAME.exec(name);
  if (m) {
    const timeline = num(m[1]);
    assertTimeline(timeline, `WAL file "${name}"`);
    return { kind: 'history', name, timeline };
  }
  throw new Error(
    `"${name}" is not a WAL file name: expected a segment (24 upper-case hex digits, TTTTTTTTXXXXXXXXYYYYYYYY), TTTTTTTT.history, <segment>.<8 hex>.backup or <segment>.partial`,
  );
}

/** The segment number a segment / partial / backup name stands for; refuses a YYYYYYYY too large for the segment size. */
export function segmentNumberOf(name: string, segSize: number): bigint {
  const parsed = parseWalFileName(name);
  if (parsed.kind === 'history') throw new Error(`"${name}" is a timeline history file, not a segment`);
  const perId = segmentsPerXLogId(segSize);
  if (BigInt(parsed.seg) >= perId) {
    throw new Error(`WAL file "${name}": segment part ${hex8(parsed.seg)} does not exist with wal_segment_size ${segSize} (at most ${hex8(perId - 1n)}): is the segment size right?`);
  }
  return BigInt(parsed.log) * perId + BigInt(parsed.seg);
}

/** XLogFileName. */
export function segmentFileName(timeline: number, segno: bigint, segSize: number): string {
  assertTimeline(timeline, 'segment name');
  const perId = segmentsPerXLogId(segSize);
  if (segno < 0n || segno / perId > 0xffffffffn) throw new Error(`segment number ${segno} is outside the WAL address space`);
  return `${hex8(timeline)}${hex8(segno / perId)}${hex8(segno % perId)}`;
}

/**
 * The segment file that holds `lsn`. Not what pg_walfile_name / pg_walfile_name_offset answer for an
 * LSN exactly on a segment boundary: they use XLByteToPrevSeg and name the preceding file (docs
 * "System Administration Functions", Backup Control Functions, PostgreSQL 15), as the archiver
 * wants; the restore planner and continuity need the file that holds the byte.
 */
export function segmentFileNameOfLsn(timeline: number, lsn: Lsn, segSize: number): string {
  return segmentFileName(timeline, segmentOfLsn(lsn, segSize), segSize);
}

export function nextSegmentFileName(name: string, segSize: number): string {
  const parsed = parseWalFileName(name);
  if (parsed.kind !== 'segment') throw new Error(`"${name}" is a ${parsed.kind} file, not a segment: only segments have a next one`);
  return segmentFileName(parsed.timeline, segmentNumberOf(name, segSize) + 1n, segSize);
}

/** TLHistoryFileName. */
export function historyFileName(timeline: number): string {
  assertTimeline(timeline, 'history file name');
  return `${hex8(timeline)}.history`;
}

/** BackupHistoryFileName: written by pg_backup_stop for a backup that started at `startLsn`. */
export function backupFileName(timeline: number, startLsn: Lsn, segSize: number): string {
  const offset = startLsn % BigInt(segSize);
  return `${segmentFileNameOfLsn(timeline, startLsn, segSize)}.${hex8(offset)}.backup`;
}

export function partialFileName(timeline: number, segno: bigint, segSize: number): string {
  return `${segmentFileName(timeline, segno, segSize)}.partial`;
}

// ── Timeline history ─────────────────────────────────────────────────────────────────────────────

/** One timeline of a history: it holds WAL from `begin` (inclusive) to `end` (exclusive; null: still open). */
export interface TimelineSpan {
  readonly timeline: number;
  readonly begin: Lsn;
  readonly end: Lsn | null;
}

/**
 * Reads TTTTTTTT.history for `timeline` into its whole ancestry, oldest first, ending with
 * `timeline` itself (open-ended), as readTimeLineHistory does. Timeline 1 has no history file: pass
 * content '' for it.
 */
export function parseTimelineHistory(timeline: number, content: string): TimelineSpan[] {
  assertTimeline(timeline, 'timeline history');
  const file = timeline === 1 ? 'timeline 1' : historyFileName(timeline);
  const spans: TimelineSpan[] = [];
  let begin = 0n;
  content.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    // PostgreSQL reads "%u\t%X/%X" and ignores the rest (the reason is free text).
    const m = /^(\d+)\s+([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})(?:\s|$)/.exec(line);
    if (!m) throw new Error(`${file} line ${index + 1} "${raw}" is not "parentTLI<TAB>switchpoint<TAB>reason": the history file is damaged`);
    const tli = Number(m[1]);
    assertTimeline(tli, `${file} line ${index + 1}`);
    const end = parseLsn(m[2]);
    const previous = spans.at(-1);
    if (previous && tli <= previous.timeline) throw new Error(`${file} line ${index + 1}: timeline IDs must be in increasing sequence (${tli} after ${previous.timeline})`);
    if (end < begin) throw new Error(`${file} line ${index + 1}: switch point ${m[2]} is before the previous one ${formatLsn(begin)}`);
    if (tli >= timeline) throw new Error(`${file} line ${index + 1}: timeline IDs must be less than the child timeline's ID ${timeline} (found ${tli})`);
    spans.push({ timeline: tli, begin, end });
    begin = end;
  });
  if (timeline > 1 && spans.length === 0) throw new Error(`${file} lists no parent timeline: a history file names at least its parent`);
  spans.push({ timeline, begin, end: null });
  return spans;
}

/** The timeline that holds `lsn` on this history (the switch point itself belongs to the child). */
export function timelineOfLsn(history: readonly TimelineSpan[], lsn: Lsn): number {
  const span = history.find((s) => lsn >= s.begin && (s.end === null || lsn < s.end));
  if (!span) throw new Error(`LSN ${formatLsn(lsn)} is on no timeline of this history`);
  return span.timeline;
}

// ── Continuity ───────────────────────────────────────────────────────────────────────────────────

export interface WalPosition {
  readonly timeline: number;
  readonly segment: string;
  readonly lsn: Lsn;
}

export interface WalGap {
  /** First missing segment file. */
  readonly from: string;
  /** Last missing segment file (the one before the next archived one). */
  readonly to: string;
  readonly timeline: number;
  /** Recovery from the start cannot replay past this LSN (the start of `from`). */
  readonly breaksAt: Lsn;
  /** The first LSN archived again after the gap (the end of `to`). */
  readonly resumesAt: Lsn;
}

export interface WalContinuity {
  readonly targetTimeline: number;
  readonly history: readonly TimelineSpan[];
  /**
   * From the start to the end of the newest segment reachable without a hole: recovery can reach
   * any LSN in [from.lsn, to.lsn). Null when the segment holding the start is itself missing.
   */
  readonly covered: { readonly from: WalPosition; readonly to: WalPosition } | null;
  readonly gaps: readonly WalGap[];
}

export interface ContinuityInput {
  /** Archived file names (segments of any timelines, .history, .backup, .partial). */
  readonly files: Iterable<string>;
  /** The content of each archived .history file the walk needs, by file name. */
  readonly histories: ReadonlyMap<string, string>;
  readonly segSize: number;
  /** Where recovery starts, e.g. a base backup's start LSN and timeline. */
  readonly start: { readonly timeline: number; readonly lsn: Lsn };
  /** recovery_target_timeline as a number; omitted: 'latest'. */
  readonly targetTimeline?: number;
}

/**
 * Which WAL from `start` onwards is in the archive without a hole, along the target timeline's
 * history. A hole is reported only when a later segment of the path is archived after it; missing
 * segments after the newest archived one are the archive's end, not a gap.
 */
export function walContinuity(input: ContinuityInput): WalContinuity {
  const { segSize, start } = input;
  assertWalSegmentSize(segSize);
  assertTimeline(start.timeline, 'recovery start');
  const names = new Set(input.files);
  const bySegment = new Map<number, bigint[]>();
  for (const name of names) {
    const parsed = parseWalFileName(name);
    if (parsed.kind !== 'segment') continue;
    const list = bySegment.get(parsed.timeline) ?? [];
    list.push(segmentNumberOf(name, segSize));
    bySegment.set(parsed.timeline, list);
  }

  let target = input.targetTimeline;
  if (target === undefined) {
    target = start.timeline;
    while (names.has(historyFileName(target + 1))) target++;
  }
  assertTimeline(target, 'target timeline');
  let history: TimelineSpan[];
  if (target === 1) {
    history = parseTimelineHistory(1, '');
  } else {
    const file = historyFileName(target);
    const content = input.histories.get(file);
    if (!names.has(file) || content === undefined) throw new Error(`the archive has no ${file} for target timeline ${target}: without it recovery cannot follow the timeline switches`);
    history = parseTimelineHistory(target, content);
  }
  const startSpan = history.find((s) => s.timeline === start.timeline);
  if (!startSpan) throw new Error(`target timeline ${target} is not a child of the start's timeline ${start.timeline} (its history: ${history.map((s) => s.timeline).join(', ')})`);
  if (startSpan.end !== null && start.lsn >= startSpan.end) {
    throw new Error(`target timeline ${target} forked off timeline ${start.timeline} at ${formatLsn(startSpan.end)}, before the start ${formatLsn(start.lsn)}: pick another target timeline`);
  }

  const startSeg = segmentOfLsn(start.lsn, segSize);
  // Per timeline of the path, the segment numbers recovery reads from it (XLogFileReadAnyTLI).
  const ranges = history
    .map((span, i) => {
      const next = history[i + 1];
      const first = segmentOfLsn(span.begin, segSize);
      const last = next ? segmentOfLsn(next.begin, segSize) - 1n : null;
      return { timeline: span.timeline, first: first > startSeg ? first : startSeg, last };
    })
    .filter((r) => r.last === null || r.last >= r.first);

  const gaps: WalGap[] = [];
  let covered: WalContinuity['covered'] = null;
  let expected = startSeg;
  let lastPresent: { timeline: number; segno: bigint } | null = null;
  const closeCovered = () => {
    if (covered === null && gaps.length === 0 && lastPresent) {
      covered = {
        from: { timeline: start.timeline, segment: segmentFileName(start.timeline, startSeg, segSize), lsn: start.lsn },
        to: { timeline: lastPresent.timeline, segment: segmentFileName(lastPresent.timeline, lastPresent.segno, segSize), lsn: segmentEndLsn(lastPresent.segno, segSize) },
      };
    }
  };
  for (const range of ranges) {
    const present = (bySegment.get(range.timeline) ?? [])
      .filter((s) => s >= range.first && (range.last === null || s <= range.last))
      .sort((a, b) => compareLsn(a, b));
    for (const segno of present) {
      if (segno > expected) {
        closeCovered();
        // A hole may span a timeline switch: report each timeline's part of it.
        for (const part of ranges) {
          const lo = expected > part.first ? expected : part.first;
          const hiLimit = segno - 1n;
          const hi = part.last !== null && part.last < hiLimit ? part.last : hiLimit;
          if (lo > hi) continue;
          gaps.push({
            from: segmentFileName(part.timeline, lo, segSize),
            to: segmentFileName(part.timeline, hi, segSize),
            timeline: part.timeline,
            breaksAt: lo === startSeg ? start.lsn : segmentStartLsn(lo, segSize),
            resumesAt: segmentEndLsn(hi, segSize),
          });
        }
      }
      expected = segno + 1n;
      lastPresent = { timeline: range.timeline, segno };
    }
  }
  closeCovered();
  return { targetTimeline: target, history, covered, gaps };
}
