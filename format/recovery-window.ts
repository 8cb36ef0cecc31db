import type { BaseBackup } from './manifest';
import { compareLsn, formatLsn, historyFileName, parseLsn, parseWalFileName, segmentNumberOf, segmentStartLsn, walContinuity, type Lsn, type WalGap } from './wal';

/**
 * The recovery window of a PostgreSQL PITR source: which points in time (and LSNs) a restore can
 * reach from the kept base backups and the WAL archive, and which holes in the archive break it.
 * Pure: the agent (`coldseal list`, `coldseal restore`) and the keyless verifier Lambda feed it
 * what they listed and read.
 *
 * - A base backup b reaches any point from its stop LSN (the first consistent point) up to the end
 *   of the newest segment archived without a hole after its start (format/wal.ts walContinuity),
 *   along the latest timeline its history leads to.
 * - The window is the union of those ranges. `from`/`to` are the range that ends furthest: from
 *   the earliest base backup whose WAL continues without a gap to the newest reachable segment.
 *   Older ranges, cut off by a gap, are listed in `ranges`.
 * - Times: a base's stoppedAt (server time at pg_backup_stop); at the other end, the archive time
 *   (S3 LastModified) of the newest reachable segment, which is at or after the last transaction
 *   it holds: the recovery point actually achieved.
 * - Timeline switches come from the .history files' content. A reader that cannot decrypt them
 *   (a keyless `list`, the verifier) passes none: each newer timeline is then assumed to fork off
 *   the next older timeline present, at its first archived segment, and `notes` says so. At
 *   segment granularity that is exact whenever the assumed parent is right.
 */

/** One archived WAL object as a listing shows it. */
export interface ArchivedWalFile {
  /** The WAL file name (segment, .history, .backup or .partial). */
  readonly walFile: string;
  /** When the object was written (ISO 8601; S3 LastModified). */
  readonly archivedAt: string;
}

export type WindowBaseBackup = Pick<BaseBackup, 'systemIdentifier' | 'timeline' | 'startLsn' | 'stopLsn' | 'walSegmentSize' | 'stoppedAt'> & {
  /** What names the base backup to a person: its manifest key or stamp. */
  readonly id: string;
};

export interface RecoveryPoint {
  /** "X/Y". */
  readonly lsn: string;
  readonly time: string;
  readonly timeline: number;
  /** The base backup this end starts from (`from` ends only). */
  readonly base?: string;
  /** The newest reachable segment (`to` ends only). */
  readonly segment?: string;
}

export interface RecoveryRange {
  readonly from: RecoveryPoint;
  readonly to: RecoveryPoint;
}

export interface RecoveryWindowGap {
  readonly timeline: number;
  /** First and last missing segment files. */
  readonly from: string;
  readonly to: string;
  /** Replay from before the gap stops here ("X/Y"). */
  readonly breaksAt: string;
  /** The first LSN archived again after it. */
  readonly resumesAt: string;
  /** Base backups whose range the gap ends. */
  readonly breaks: readonly string[];
}

export interface BaseReach {
  readonly id: string;
  readonly timeline: number;
  /** Null when the base reaches no point (its own WAL is missing, or it is not on the archive's timelines). */
  readonly range: RecoveryRange | null;
  readonly targetTimeline?: number;
  readonly problem?: string;
}

export interface RecoveryWindow {
  readonly from: RecoveryPoint | null;
  readonly to: RecoveryPoint | null;
  /** Every reachable range, oldest first, overlapping ones merged; the last one is from..to. */
  readonly ranges: readonly RecoveryRange[];
  readonly gaps: readonly RecoveryWindowGap[];
  /** The newest archived segment, reachable or not (a `to` older than it means a hole or no base after it). */
  readonly newestSegment: { readonly walFile: string; readonly archivedAt: string; readonly timeline: number } | null;
  readonly bases: readonly BaseReach[];
  readonly walSegmentSize: number | null;
  /** Assumptions and refusals a person should read next to the window. */
  readonly notes: readonly string[];
}

export interface RecoveryWindowInput {
  readonly files: readonly ArchivedWalFile[];
  /** Content of the .history files that could be read, by file name; empty when none could. */
  readonly histories: ReadonlyMap<string, string>;
  readonly bases: readonly WindowBaseBackup[];
}

/**
 * History contents for every timeline the archive shows: the real ones where given, otherwise
 * assumed (see the module comment). Returns the notes describing what was assumed.
 */
export function historiesWithAssumptions(files: readonly ArchivedWalFile[], histories: ReadonlyMap<string, string>, segSize: number): { histories: Map<string, string>; notes: string[] } {
  const firstSegment = new Map<number, bigint>();
  const lastSegment = new Map<number, bigint>();
  const timelines = new Set<number>();
  for (const { walFile } of files) {
    const parsed = parseWalFileName(walFile);
    timelines.add(parsed.timeline);
    if (parsed.kind !== 'segment') continue;
    const segno = segmentNumberOf(walFile, segSize);
    const first = firstSegment.get(parsed.timeline);
    if (first === undefined || segno < first) firstSegment.set(parsed.timeline, segno);
    const last = lastSegment.get(parsed.timeline);
    if (last === undefined || segno > last) lastSegment.set(parsed.timeline, segno);
  }
  const result = new Map(histories);
  const notes: string[] = [];
  const sorted = [...timelines].sort((a, b) => a - b);
  // Each assumed history extends the (real or assumed) history of its parent, as PostgreSQL writes them.
  for (const timeline of sorted) {
    const name = historyFileName(timeline);
    if (timeline === 1 || result.has(name)) continue;
    const parent = sorted.filter((t) => t < timeline).at(-1);
    // A timeline with no segment archived yet (just promoted): its first segment is the one after
    // the parent's newest complete one (the parent's copy of the switch segment is only a .partial).
    const parentLast = parent === undefined ? undefined : lastSegment.get(parent);
    const first = firstSegment.get(timeline) ?? (parentLast === undefined ? undefined : parentLast + 1n);
    if (parent === undefined || first === undefined) continue;
    const parentHistory = parent === 1 ? '' : result.get(historyFileName(parent));
    if (parentHistory === undefined) continue;
    const switchLsn = formatLsn(segmentStartLsn(first, segSize));
    result.set(name, `${parentHistory.trimEnd()}${parentHistory.trim() ? '\n' : ''}${parent}\t${switchLsn}\tassumed by coldseal (history file not read)\n`);
    notes.push(`timeline ${timeline}: its history file was not read (no private key here), so it is assumed to fork off timeline ${parent} at its first archived segment (${switchLsn})`);
  }
  return { histories: result, notes };
}

export function recoveryWindow(input: RecoveryWindowInput): RecoveryWindow {
  const notes: string[] = [];
  const segmentFiles = input.files.filter((f) => parseWalFileName(f.walFile).kind === 'segment');
  const newestName = segmentFiles.map((f) => f.walFile).sort((a, b) => newerSegment(a, b)).at(-1);
  const newest = newestName ? segmentFiles.find((f) => f.walFile === newestName)! : undefined;
  const newestSegment = newest ? { walFile: newest.walFile, archivedAt: newest.archivedAt, timeline: parseWalFileName(newest.walFile).timeline } : null;
  if (input.bases.length === 0) {
    return { from: null, to: null, ranges: [], gaps: [], newestSegment, bases: [], walSegmentSize: null, notes: ['no base backup: there is no recovery window until one is taken'] };
  }

  // WAL names of two clusters can collide: only the cluster of the newest base backup counts.
  const newestBase = [...input.bases].sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt)).at(-1)!;
  const bases = input.bases.filter((b) => b.systemIdentifier === newestBase.systemIdentifier);
  const foreign = input.bases.filter((b) => b.systemIdentifier !== newestBase.systemIdentifier);
  if (foreign.length > 0) notes.push(`${foreign.length} base backup(s) of another cluster (system identifier ${[...new Set(foreign.map((b) => b.systemIdentifier))].join(', ')}) are left out: ${foreign.map((b) => b.id).join(', ')}`);
  const segSize = newestBase.walSegmentSize;
  const otherSizes = bases.filter((b) => b.walSegmentSize !== segSize);
  if (otherSizes.length > 0) notes.push(`base backup(s) ${otherSizes.map((b) => b.id).join(', ')} have another wal_segment_size than ${segSize}: left out`);

  let walFiles: readonly ArchivedWalFile[] = input.files;
  const unreadable = input.files.filter((f) => {
    try {
      const parsed = parseWalFileName(f.walFile);
      if (parsed.kind !== 'history') segmentNumberOf(f.walFile, segSize);
      return false;
    } catch {
      return true;
    }
  });
  if (unreadable.length > 0) {
    notes.push(`${unreadable.length} archived file(s) do not fit wal_segment_size ${segSize} and are ignored (e.g. ${unreadable[0].walFile})`);
    walFiles = input.files.filter((f) => !unreadable.includes(f));
  }
  const assumed = historiesWithAssumptions(walFiles, input.histories, segSize);
  notes.push(...assumed.notes);
  const archivedAt = new Map(walFiles.map((f) => [f.walFile, f.archivedAt]));
  const names = walFiles.map((f) => f.walFile);

  const gaps = new Map<string, { gap: WalGap; breaks: string[] }>();
  const reaches: BaseReach[] = [];
  const ranges: { from: Lsn; to: Lsn; range: RecoveryRange }[] = [];
  for (const base of bases) {
    if (base.walSegmentSize !== segSize) {
      reaches.push({ id: base.id, timeline: base.timeline, range: null, problem: `wal_segment_size ${base.walSegmentSize} differs from ${segSize}` });
      continue;
    }
    const stop = parseLsn(base.stopLsn);
    let continuity;
    try {
      continuity = walContinuity({ files: names, histories: assumed.histories, segSize, start: { timeline: base.timeline, lsn: parseLsn(base.startLsn) } });
    } catch (error) {
      reaches.push({ id: base.id, timeline: base.timeline, range: null, problem: (error as Error).message });
      continue;
    }
    for (const gap of continuity.gaps) {
      const id = `${gap.timeline}/${gap.from}/${gap.to}`;
      const entry = gaps.get(id) ?? { gap, breaks: [] };
      gaps.set(id, entry);
    }
    const covered = continuity.covered;
    if (!covered || covered.to.lsn <= stop) {
      const first = continuity.gaps[0];
      reaches.push({
        id: base.id,
        timeline: base.timeline,
        range: null,
        targetTimeline: continuity.targetTimeline,
        problem: first ? `the WAL it needs to become consistent is not all archived: ${first.from}..${first.to} missing` : 'the WAL it needs to become consistent is not archived yet',
      });
      if (first) gaps.get(`${first.timeline}/${first.from}/${first.to}`)!.breaks.push(base.id);
      continue;
    }
    const firstGap = continuity.gaps[0];
    if (firstGap) gaps.get(`${firstGap.timeline}/${firstGap.from}/${firstGap.to}`)!.breaks.push(base.id);
    const range: RecoveryRange = {
      from: { lsn: formatLsn(stop), time: base.stoppedAt, timeline: base.timeline, base: base.id },
      to: { lsn: formatLsn(covered.to.lsn), time: archivedAt.get(covered.to.segment) ?? '', timeline: covered.to.timeline, segment: covered.to.segment },
    };
    reaches.push({ id: base.id, timeline: base.timeline, range, targetTimeline: continuity.targetTimeline });
    ranges.push({ from: stop, to: covered.to.lsn, range });
  }

  // Union of the ranges: sorted by start, one range swallowing the next when they overlap.
  ranges.sort((a, b) => compareLsn(a.from, b.from) || compareLsn(b.to, a.to));
  const merged: { from: Lsn; to: Lsn; range: RecoveryRange }[] = [];
  for (const r of ranges) {
    const last = merged.at(-1);
    if (last && r.from <= last.to) {
      if (r.to > last.to) merged[merged.length - 1] = { from: last.from, to: r.to, range: { from: last.range.from, to: r.range.to } };
    } else merged.push(r);
  }
  const furthest = merged.reduce<(typeof merged)[number] | undefined>((best, r) => (!best || r.to > best.to ? r : best), undefined);
  if (bases.length > 0 && merged.length === 0) notes.push('no base backup can be replayed to a consistent point with the archived WAL');
  return {
    from: furthest?.range.from ?? null,
    to: furthest?.range.to ?? null,
    ranges: merged.map((r) => r.range),
    gaps: [...gaps.values()].map(({ gap, breaks }) => ({ timeline: gap.timeline, from: gap.from, to: gap.to, breaksAt: formatLsn(gap.breaksAt), resumesAt: formatLsn(gap.resumesAt), breaks })),
    newestSegment,
    bases: reaches,
    walSegmentSize: segSize,
    notes,
  };
}

/** Orders segment names by position in the WAL stream, then timeline (a later timeline's copy of a position is the newer one). */
function newerSegment(a: string, b: string): number {
  return a.slice(8).localeCompare(b.slice(8)) || a.slice(0, 8).localeCompare(b.slice(0, 8));
}

/** Whether `lsn` on the window's timeline path can be reached from some base backup. */
export function windowContains(window: RecoveryWindow, lsn: Lsn): boolean {
  return window.ranges.some((r) => lsn >= parseLsn(r.from.lsn) && lsn <= parseLsn(r.to.lsn));
}
