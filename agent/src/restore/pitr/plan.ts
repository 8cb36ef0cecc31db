import type { BaseBackup } from '../../../../format/manifest';
import { recoveryWindow, type ArchivedWalFile } from '../../../../format/recovery-window';
import { compareLsn, formatLsn, parseLsn, segmentFileNameOfLsn, walContinuity, type Lsn, type WalContinuity } from '../../../../format/wal';
import { ColdsealError, EXIT } from '../../errors';
import { describeTarget, formatMicros, microsOf, type RecoveryTarget, type TargetTimeline } from './target';

/** S3's LastModified is whole seconds: an object's listed time is up to this much before it was written. */
const LAST_MODIFIED_RESOLUTION_MICROS = 999_999n;

/**
 * Which base backup a point-in-time restore starts from, and whether the archive carries it to the
 * target: decided from the signed manifests and the WAL archive's listing alone, before a byte of
 * the base backup or of WAL is downloaded. Pure.
 *
 * - The base must have ended (pg_backup_stop) before the target: PostgreSQL refuses a target
 *   before the backup's consistent point ("requested recovery stop point is before consistent
 *   recovery point"). The newest such base replays the least WAL.
 * - From the base's stop LSN the archive must hold every segment up to the target (the WAL from
 *   start to stop is inside the base's own tar: pg_basebackup -X fetch). A target after the newest
 *   archived segment, or beyond a hole, is refused naming what exists.
 * - A time is compared with when each segment reached the archive (its object's time): a segment
 *   archived at A holds no commit after A, so a target after the newest segment's time cannot be
 *   reached from the archive.
 */
export interface BaseCandidate {
  readonly manifestKey: string;
  readonly stamp: string;
  readonly artifact: string;
  readonly baseBackup: BaseBackup;
}

export interface ArchiveView {
  /** Every archived file with its archive time (the listing). */
  readonly files: readonly ArchivedWalFile[];
  /** The content of the archived .history files, by file name (read and checked by the caller). */
  readonly histories: ReadonlyMap<string, string>;
}

export interface RecoveryPlan {
  readonly base: BaseCandidate;
  /** The timeline recovery follows (resolved from 'latest'). */
  readonly timeline: number;
  readonly requestedTimeline: TargetTimeline;
  readonly continuity: WalContinuity;
  /** The last LSN the archive lets recovery reach without a hole (exclusive end of the newest segment). */
  readonly reachableLsn: Lsn;
  /** When the newest segment on the path reached the archive. */
  readonly reachableTime: Date;
  /** The first segment recovery asks the archive for. */
  readonly firstSegment: string;
}

/** The recovery window (format/recovery-window.ts), as messages name it: "from … to …", and its gaps. */
export function describeWindow(bases: readonly BaseCandidate[], archive: ArchiveView): string {
  if (bases.length === 0) return 'empty: no base backup exists';
  const window = recoveryWindow({ files: archive.files, histories: archive.histories, bases: bases.map((b) => ({ ...b.baseBackup, id: b.stamp })) });
  if (!window.from || !window.to) return `empty: ${window.notes.join('; ') || 'no base backup can be replayed with the archived WAL'}`;
  const gaps = window.gaps.length ? `; gaps: ${window.gaps.map((g) => `${g.from}${g.to !== g.from ? `..${g.to}` : ''} (breaks replay at ${g.breaksAt})`).join(', ')}` : '';
  const older = window.ranges.length > 1 ? `; also ${window.ranges.slice(0, -1).map((r) => `${r.from.time}..${r.to.time}`).join(', ')}` : '';
  return `from ${window.from.time} (LSN ${window.from.lsn}, end of base backup ${window.from.base}) to about ${window.to.time} (LSN ${window.to.lsn}, newest archived segment ${window.to.segment})${older}${gaps}`;
}

function stopsBefore(base: BaseBackup, target: RecoveryTarget): boolean {
  switch (target.kind) {
    case 'time':
      return microsOf(new Date(base.stoppedAt)) < target.micros;
    case 'lsn':
      return compareLsn(parseLsn(base.stopLsn), target.lsn) <= 0;
    case 'latest':
      return true;
  }
}

export function planRecovery(bases: readonly BaseCandidate[], archive: ArchiveView, target: RecoveryTarget, timeline: TargetTimeline): RecoveryPlan {
  const window = describeWindow(bases, archive);
  if (bases.length === 0) {
    throw new ColdsealError(EXIT.NOT_FOUND, 'there is no base backup of this source: a point-in-time restore starts from one', 'Enable pitr (with baseBackup) for the source and run coldseal backup; see coldseal list');
  }
  const newestFirst = [...bases].sort((a, b) => Date.parse(b.baseBackup.stoppedAt) - Date.parse(a.baseBackup.stoppedAt) || compareLsn(parseLsn(b.baseBackup.stopLsn), parseLsn(a.baseBackup.stopLsn)));
  const eligible = newestFirst.filter((b) => stopsBefore(b.baseBackup, target));
  if (eligible.length === 0) {
    throw new ColdsealError(EXIT.NOT_FOUND, `the target ${describeTarget(target)} is before the end of the first base backup: the recovery window is ${window}`, 'Choose a target inside the window (coldseal list shows it)');
  }
  const names = archive.files.map((f) => f.walFile);
  const skipped: string[] = [];
  for (const base of eligible) {
    const b = base.baseBackup;
    let continuity: WalContinuity;
    try {
      // Recovery needs the archive from the stop LSN on: start to stop is in the base's tar.
      continuity = walContinuity({ files: names, histories: archive.histories, segSize: b.walSegmentSize, start: { timeline: b.timeline, lsn: parseLsn(b.stopLsn) }, targetTimeline: timeline === 'latest' ? undefined : timeline });
    } catch (error) {
      skipped.push(`${base.stamp}: ${(error as Error).message}`);
      continue;
    }
    return checkReach(base, continuity, archive, target, timeline, window);
  }
  throw new ColdsealError(EXIT.NOT_FOUND, `no base backup before the target ${describeTarget(target)} is on ${timeline === 'latest' ? 'the latest timeline' : `timeline ${timeline}`}'s history (${skipped.join('; ')})`, 'Choose another --target-timeline, or a target after a base backup of that timeline');
}

function checkReach(base: BaseCandidate, continuity: WalContinuity, archive: ArchiveView, target: RecoveryTarget, timeline: TargetTimeline, window: string): RecoveryPlan {
  const b = base.baseBackup;
  const segSize = b.walSegmentSize;
  const stop = parseLsn(b.stopLsn);
  const firstSegment = segmentFileNameOfLsn(b.timeline, stop, segSize);
  const timeOf = new Map(archive.files.map((f) => [f.walFile, new Date(f.archivedAt)]));
  const gap = continuity.gaps[0];
  const what = (missing: string) =>
    `Restore to a target before it (an earlier --to-time or --to-lsn), or run coldseal verify --source … to see what is damaged; ${missing} may still be in the server's pg_wal: archive it again with coldseal pitr archive-push`;
  if (!continuity.covered) {
    throw new ColdsealError(EXIT.INTEGRITY, `WAL segment ${firstSegment}, which recovery from base backup ${base.stamp} needs first, is not in the archive: the recovery window is ${window}`, what(firstSegment));
  }
  const reachableLsn = continuity.covered.to.lsn;
  const reachableTime = timeOf.get(continuity.covered.to.segment) ?? new Date(b.stoppedAt);
  const gapTime = gap ? timeOf.get(continuity.covered.to.segment) : undefined;
  const breaks = (): never => {
    throw new ColdsealError(
      EXIT.INTEGRITY,
      `WAL segment ${gap!.from}${gap!.to !== gap!.from ? ` (to ${gap!.to})` : ''} is missing from the archive: recovery from base backup ${base.stamp} cannot pass LSN ${formatLsn(gap!.breaksAt)}${gapTime ? ` (archived up to about ${gapTime.toISOString()})` : ''}, before the target ${describeTarget(target)}`,
      what(gap!.from),
    );
  };
  switch (target.kind) {
    case 'lsn':
      if (target.lsn >= reachableLsn) {
        if (gap) breaks();
        throw new ColdsealError(EXIT.NOT_FOUND, `the target ${describeTarget(target)} is after the newest archived WAL (LSN ${formatLsn(reachableLsn)}): the recovery window is ${window}`, 'Choose a target inside the window, or --to-latest');
      }
      break;
    case 'time':
      // S3 gives LastModified in whole seconds (ListObjectsV2 answers …T09:37:40.000Z for an object
      // written at 09:37:40.9), so the newest WAL may hold commits up to a second after its listed
      // time: only a target past that second is surely outside the archive.
      if (target.micros > microsOf(reachableTime) + LAST_MODIFIED_RESOLUTION_MICROS) {
        if (gap) breaks();
        throw new ColdsealError(EXIT.NOT_FOUND, `the target ${describeTarget(target)} is after the newest archived WAL (archived ${formatMicros(microsOf(reachableTime))}): the recovery window is ${window}`, 'Choose a target inside the window, or --to-latest');
      }
      break;
    case 'latest':
      // "Latest" is the end of the archive: a hole ends it early, which the user must hear about.
      if (gap) breaks();
      break;
  }
  return { base, timeline: continuity.targetTimeline, requestedTimeline: timeline, continuity, reachableLsn, reachableTime, firstSegment };
}

export interface ReachableRange {
  readonly base: BaseCandidate;
  readonly from: Lsn;
  /** Exclusive: the end of the newest segment reachable without a hole. */
  readonly to: Lsn;
  readonly toTime: Date;
  readonly timeline: number;
}

/** From each base backup, the WAL positions recovery can reach along the latest timeline, up to the first hole (bases that reach nothing are left out). */
export function reachableRanges(bases: readonly BaseCandidate[], archive: ArchiveView): ReachableRange[] {
  const names = archive.files.map((f) => f.walFile);
  const timeOf = new Map(archive.files.map((f) => [f.walFile, new Date(f.archivedAt)]));
  const ranges: ReachableRange[] = [];
  for (const base of bases) {
    const b = base.baseBackup;
    const from = parseLsn(b.stopLsn);
    let continuity: WalContinuity;
    try {
      continuity = walContinuity({ files: names, histories: archive.histories, segSize: b.walSegmentSize, start: { timeline: b.timeline, lsn: from } });
    } catch {
      continue;
    }
    const covered = continuity.covered;
    if (!covered || covered.to.lsn <= from) continue;
    ranges.push({ base, from, to: covered.to.lsn, toTime: timeOf.get(covered.to.segment) ?? new Date(b.stoppedAt), timeline: continuity.targetTimeline });
  }
  return ranges.sort((a, b) => compareLsn(a.from, b.from));
}
