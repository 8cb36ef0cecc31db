import {
  compareLsn,
  formatLsn,
  historyFileName,
  parseLsn,
  parseWalFileName,
  segmentFileName,
  segmentNumberOf,
  segmentStartLsn,
  walContinuity,
  type Lsn,
  type WalContinuity,
} from '../../../format/wal';

/**
 * The recovery window of one PITR source as the keyless verifier sees it: from the WAL object
 * names and the kept base backups' signed manifests, through format/wal.ts walContinuity.
 *
 * Limitation: a .history file is encrypted like every WAL object and the verifier holds no private
 * key, so it cannot read the switch points PostgreSQL wrote in it. It uses names only: a timeline T
 * exists for recovery when its TTTTTTTT.history object is archived, and T's switch point is taken as
 * the start of T's earliest archived segment (the segment that holds the real switch point is the
 * first one the child writes; the parent's copy of it is archived only as .partial). Its parent is
 * taken as the newest older timeline that has WAL before that segment, else timeline 1. A history
 * that branches off an older timeline in an unusual way is therefore approximated; the restore
 * itself (which decrypts the .history) follows the real one.
 */

export interface KeptBaseBackup {
  readonly stamp: string;
  readonly manifestKey: string;
  readonly timeline: number;
  readonly startLsn: string;
  readonly stopLsn: string;
  readonly stopWalFile: string;
  readonly stoppedAt: string;
  readonly systemIdentifier: string;
  readonly walSegmentSize: number;
}

export interface WindowPoint {
  readonly lsn: string;
  readonly timeline: number;
  /** A time at which the point was in the archive (a base backup's stop, or the segment's archive time). */
  readonly time: string | null;
  readonly segment: string;
}

export interface BrokenWindow {
  /** First and last missing segment file (inclusive), on one timeline. */
  readonly from: string;
  readonly to: string;
  readonly timeline: number;
  readonly segments: number;
  /** Recovery from the base backups below cannot replay past this LSN. */
  readonly breaksAt: string;
  readonly resumesAt: string;
  /** The archived segment just before the hole and when it was archived: the last point still reachable. */
  readonly lastBefore: { readonly segment: string; readonly archivedAt: string | null } | null;
  /** Base backups whose window the hole cuts short (stamps). */
  readonly brokenBases: readonly string[];
  /** The first kept base backup after the hole, from whose stop point recovery works again; null when none. */
  readonly nextBase: { readonly stamp: string; readonly stoppedAt: string } | null;
}

export interface TimelineProblem {
  readonly timeline: number;
  readonly firstSegment: string;
  readonly segments: number;
}

export interface RecoveryWindow {
  /** null when no kept base backup uses this archive. */
  readonly window: { readonly from: WindowPoint & { readonly baseBackup: string }; readonly to: WindowPoint } | null;
  readonly gaps: readonly BrokenWindow[];
  /** Timelines with archived segments, ascending. */
  readonly timelines: readonly number[];
  /** Timelines with segments but no .history object: recovery cannot follow them. */
  readonly missingHistories: readonly TimelineProblem[];
  /** Bases whose continuity could not be computed at all (message says why). */
  readonly unusableBases: readonly { readonly stamp: string; readonly problem: string }[];
}

export interface WindowInput {
  /** Trusted archived WAL files (segments, .history, .backup, .partial) of one cluster, with their archive time when known. */
  readonly files: ReadonlyMap<string, string | null>;
  readonly bases: readonly KeptBaseBackup[];
}

interface Derived {
  readonly histories: Map<string, string>;
  readonly usableTargets: number[];
  readonly missing: TimelineProblem[];
  readonly timelines: number[];
}

/** Synthesized history file contents, per timeline, from names only (see the limitation above). */
function deriveHistories(names: ReadonlySet<string>, segSize: number): Derived {
  const segs = new Map<number, bigint[]>();
  for (const name of names) {
    const parsed = parseWalFileName(name);
    if (parsed.kind !== 'segment') continue;
    const list = segs.get(parsed.timeline) ?? [];
    list.push(segmentNumberOf(name, segSize));
    segs.set(parsed.timeline, list);
  }
  const first = new Map<number, bigint>();
  for (const [tl, list] of segs) first.set(tl, list.reduce((a, b) => (b < a ? b : a)));
  const timelines = [...segs.keys()].sort((a, b) => a - b);
  const missing: TimelineProblem[] = [];
  const usable = new Set<number>([1]);
  for (const tl of timelines) {
    if (tl === 1) continue;
    if (names.has(historyFileName(tl))) usable.add(tl);
    else missing.push({ timeline: tl, firstSegment: segmentFileName(tl, first.get(tl)!, segSize), segments: segs.get(tl)!.length });
  }
  const contents = new Map<number, string>([[1, '']]);
  const contentOf = (tl: number): string => {
    const known = contents.get(tl);
    if (known !== undefined) return known;
    const begin = first.get(tl)!;
    const parent = [...usable].filter((p) => p < tl && (p === 1 || (segs.get(p) ?? []).some((s) => s < begin))).sort((a, b) => b - a)[0] ?? 1;
    const text = `${contentOf(parent)}${parent}\t${formatLsn(segmentStartLsn(begin, segSize))}\tderived from the archive's object names\n`;
    contents.set(tl, text);
    return text;
  };
  const histories = new Map<string, string>();
  for (const tl of usable) if (tl > 1 && first.has(tl)) histories.set(historyFileName(tl), contentOf(tl));
  // A .history without any segment yet: the timeline was just born and cannot be followed by name.
  const usableTargets = [...usable].filter((tl) => tl === 1 || first.has(tl)).sort((a, b) => b - a);
  return { histories, usableTargets, missing, timelines };
}

function continuityOf(base: KeptBaseBackup, names: ReadonlySet<string>, derived: Derived): WalContinuity {
  let lastError: Error | undefined;
  // The newest timeline first, as recovery_target_timeline 'latest' does; one that forked before the base started is skipped.
  for (const target of derived.usableTargets.filter((t) => t >= base.timeline)) {
    try {
      return walContinuity({ files: names, histories: derived.histories, segSize: base.walSegmentSize, start: { timeline: base.timeline, lsn: parseLsn(base.startLsn) }, targetTimeline: target });
    } catch (error) {
      lastError = error as Error;
    }
  }
  throw lastError ?? new Error(`timeline ${base.timeline} of the base backup has no ${historyFileName(base.timeline)} in the archive: recovery cannot follow it`);
}

/** The recovery window of one cluster's archive and the holes that break it. */
export function recoveryWindow(input: WindowInput): RecoveryWindow {
  const bases = [...input.bases].sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt));
  const names = new Set(input.files.keys());
  if (bases.length === 0) {
    return { window: null, gaps: [], timelines: [], missingHistories: [], unusableBases: [] };
  }
  // One cluster: one segment size (the caller groups by system identifier).
  const segSize = bases[bases.length - 1].walSegmentSize;
  const segmentNames = new Set([...names].filter((n) => {
    try {
      const p = parseWalFileName(n);
      if (p.kind !== 'segment') return true;
      segmentNumberOf(n, segSize);
      return true;
    } catch {
      return false;
    }
  }));
  const derived = deriveHistories(segmentNames, segSize);
  const archivedAt = (segment: string) => input.files.get(segment) ?? null;

  const unusableBases: { stamp: string; problem: string }[] = [];
  let to: WindowPoint | null = null;
  const later = (a: WindowPoint | null, b: WindowPoint): WindowPoint => {
    if (!a) return b;
    const c = compareLsn(parseLsn(a.lsn), parseLsn(b.lsn));
    return c < 0 || (c === 0 && b.timeline > a.timeline) ? b : a;
  };
  type RawGap = { timeline: number; lo: bigint; hi: bigint; bases: Set<string>; breaksAt: Lsn };
  const raw: RawGap[] = [];
  for (const base of bases) {
    if (base.walSegmentSize !== segSize) {
      unusableBases.push({ stamp: base.stamp, problem: `its manifest says wal_segment_size ${base.walSegmentSize}, the newest base backup of the same cluster ${segSize}` });
      continue;
    }
    // Its own WAL from start to stop is inside the base backup: it is restorable to its stop point whatever the archive holds.
    to = later(to, { lsn: base.stopLsn, timeline: base.timeline, time: base.stoppedAt, segment: base.stopWalFile });
    let result: WalContinuity;
    try {
      result = continuityOf(base, segmentNames, derived);
    } catch (error) {
      unusableBases.push({ stamp: base.stamp, problem: (error as Error).message });
      continue;
    }
    if (result.covered) {
      const end = result.covered.to;
      to = later(to, { lsn: formatLsn(end.lsn), timeline: end.timeline, time: archivedAt(end.segment), segment: end.segment });
    }
    for (const gap of result.gaps) {
      const lo = segmentNumberOf(gap.from, segSize);
      const hi = segmentNumberOf(gap.to, segSize);
      // The same hole seen from several bases (one may start inside it): one entry, the widest range.
      const same = raw.find((r) => r.timeline === gap.timeline && r.lo <= hi + 1n && lo <= r.hi + 1n);
      if (same) {
        if (lo < same.lo) {
          same.lo = lo;
          same.breaksAt = gap.breaksAt;
        }
        if (hi > same.hi) same.hi = hi;
        same.bases.add(base.stamp);
      } else raw.push({ timeline: gap.timeline, lo, hi, bases: new Set([base.stamp]), breaksAt: gap.breaksAt });
    }
  }

  const gaps: BrokenWindow[] = raw
    .sort((a, b) => (a.lo === b.lo ? a.timeline - b.timeline : compareLsn(a.lo, b.lo)))
    .map((r) => {
      const before = [...segmentNames].filter((n) => parseWalFileName(n).kind === 'segment' && segmentNumberOf(n, segSize) === r.lo - 1n).sort().pop();
      const nextBase = bases.find((b) => !r.bases.has(b.stamp) && compareLsn(parseLsn(b.startLsn), segmentStartLsn(r.hi + 1n, segSize)) >= 0);
      return {
        from: segmentFileName(r.timeline, r.lo, segSize),
        to: segmentFileName(r.timeline, r.hi, segSize),
        timeline: r.timeline,
        segments: Number(r.hi - r.lo + 1n),
        breaksAt: formatLsn(r.breaksAt),
        resumesAt: formatLsn(segmentStartLsn(r.hi + 1n, segSize)),
        lastBefore: before ? { segment: before, archivedAt: archivedAt(before) } : null,
        brokenBases: [...r.bases].sort(),
        nextBase: nextBase ? { stamp: nextBase.stamp, stoppedAt: nextBase.stoppedAt } : null,
      };
    });
  const oldest = bases[0];
  return {
    window: to ? { from: { lsn: oldest.stopLsn, timeline: oldest.timeline, time: oldest.stoppedAt, segment: oldest.stopWalFile, baseBackup: oldest.stamp }, to } : null,
    gaps,
    timelines: derived.timelines,
    missingHistories: derived.missing,
    unusableBases,
  };
}
