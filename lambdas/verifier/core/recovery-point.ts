import type { GroupSettings } from '../../../format/lambda-settings';
import { makeFinding, type Finding } from '../../shared/findings';
import { hours, sourceSubject } from '../../shared/freshness';

/**
 * The recovery point a source achieves, as an auditor asks it: how old is the newest thing we can
 * restore now, and how long was the longest stretch over the last 30 days with nothing newer to
 * restore, against the group's rpoHours.
 *
 * Restorable points are the good backups (those whose manifest checked out: the verifier's
 * history) and, for a PITR source, every moment inside a reachable range of its log archive (WAL
 * or binary log: the ranges of format/recovery-window.ts or format/binlog-window.ts, from a base
 * or dump to the newest log reachable without a hole). The exposure at a moment is the time since
 * the latest restorable point before it; a gap is a stretch between restorable points, so a
 * backup gap that the log archive covers is no gap, and a hole in the archive between two
 * backups is one only as long as no backup falls inside it.
 *
 * A gap still open (the newest restorable point is older than the RPO now) is the freshness
 * check's FAIL (lambdas/shared/freshness.ts, check "rpo"); what this adds is the record of closed
 * gaps: each one longer than the RPO is a WARN with its dates, said once (Finding.once) and kept
 * in the report for as long as it lies in the window.
 */

export const RPO_WINDOW_DAYS = 30;
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** A good backup: what the verifier's history entry (fleet.ts HistoryEntry) holds. */
export interface GoodBackup {
  readonly stamp: string;
  readonly finishedAt: string;
}

/** A PITR source's log archive as its recovery window sees it; times are ISO strings. */
export interface LogArchiveCoverage {
  readonly kind: 'wal' | 'binlog';
  /** Reachable ranges, from a base backup's stop (or a dump's position) to the newest log reachable from it. */
  readonly ranges: readonly { readonly from: string; readonly to: string }[];
  /** The newest archived log, reachable or not. */
  readonly newestArchivedAt: string | null;
}

export interface RecoveryPointInput {
  readonly group: GroupSettings;
  readonly host: string;
  readonly source: string;
  readonly bucket: string;
  /** Good backups of the source, any tier, any order. */
  readonly history: readonly GoodBackup[];
  readonly log?: LogArchiveCoverage;
  readonly now: Date;
  readonly windowDays?: number;
}

/** One end of a gap: a backup (its stamp), or the end or start of a log range. */
export interface GapEnd {
  readonly at: string;
  readonly what: string;
}

export interface RecoveryGap {
  readonly from: GapEnd;
  readonly to: GapEnd;
  readonly hours: number;
}

export interface RecoveryPointFigures {
  readonly rpoHours: number;
  readonly windowDays: number;
  readonly newestBackup: { readonly stamp: string; readonly finishedAt: string; readonly ageHours: number } | null;
  /** Set for a PITR source: the end of its newest reachable range, and the newest archived log. */
  readonly log: { readonly kind: 'wal' | 'binlog'; readonly reachableTo: string | null; readonly ageHours: number | null; readonly newestArchivedAt: string | null } | null;
  /** The newest restorable point now, whichever gives it. */
  readonly current: { readonly at: string; readonly ageHours: number; readonly by: 'backup' | 'log' } | null;
  /** The longest closed gap that ends inside the window. */
  readonly worstGap: RecoveryGap | null;
  /** Every closed gap in the window longer than the RPO, oldest first. */
  readonly misses: readonly RecoveryGap[];
}

export interface RecoveryPointResult {
  readonly figures: RecoveryPointFigures;
  readonly findings: Finding[];
}

interface Island {
  start: number;
  end: number;
  startWhat: string;
  endWhat: string;
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const iso = (ms: number) => new Date(ms).toISOString();

/** Restorable points and ranges merged into islands, oldest first. */
function islands(history: readonly GoodBackup[], log: LogArchiveCoverage | undefined, now: number): Island[] {
  const logName = log?.kind === 'binlog' ? 'binary log' : 'WAL';
  const raw: Island[] = history.map((b) => {
    const t = Date.parse(b.finishedAt);
    return { start: t, end: t, startWhat: `backup ${b.stamp}`, endWhat: `backup ${b.stamp}` };
  });
  for (const r of log?.ranges ?? []) {
    const start = Date.parse(r.from);
    const end = Math.min(Date.parse(r.to), now);
    if (end >= start) raw.push({ start, end, startWhat: `${logName} replay reachable from`, endWhat: `${logName} archived up to` });
  }
  raw.sort((a, b) => a.start - b.start || b.end - a.end);
  const merged: Island[] = [];
  for (const i of raw) {
    const last = merged[merged.length - 1];
    if (last && i.start <= last.end) {
      if (i.end > last.end) {
        last.end = i.end;
        last.endWhat = i.endWhat;
      }
    } else merged.push({ ...i });
  }
  return merged;
}

export function recoveryPoint(input: RecoveryPointInput): RecoveryPointResult {
  const { group, now } = input;
  const nowMs = now.getTime();
  const windowDays = input.windowDays ?? RPO_WINDOW_DAYS;
  const windowStart = nowMs - windowDays * DAY_MS;
  const rpoMs = group.rpoHours * HOUR_MS;

  const sorted = [...input.history].sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
  const newest = sorted[sorted.length - 1];
  const newestBackup = newest ? { stamp: newest.stamp, finishedAt: newest.finishedAt, ageHours: round1((nowMs - Date.parse(newest.finishedAt)) / HOUR_MS) } : null;

  let log: RecoveryPointFigures['log'] = null;
  if (input.log) {
    const ends = input.log.ranges.map((r) => Math.min(Date.parse(r.to), nowMs));
    const reachable = ends.length ? Math.max(...ends) : undefined;
    log = { kind: input.log.kind, reachableTo: reachable === undefined ? null : iso(reachable), ageHours: reachable === undefined ? null : round1((nowMs - reachable) / HOUR_MS), newestArchivedAt: input.log.newestArchivedAt };
  }

  const all = islands(sorted, input.log, nowMs);
  const last = all[all.length - 1];
  const current = last ? { at: iso(last.end), ageHours: round1((nowMs - last.end) / HOUR_MS), by: last.endWhat.startsWith('backup') ? ('backup' as const) : ('log' as const) } : null;

  const gaps: RecoveryGap[] = [];
  for (let i = 1; i < all.length; i++) {
    const before = all[i - 1];
    const after = all[i];
    if (after.start <= windowStart) continue;
    gaps.push({ from: { at: iso(before.end), what: before.endWhat }, to: { at: iso(after.start), what: after.startWhat }, hours: round1((after.start - before.end) / HOUR_MS) });
  }
  const worstGap = gaps.reduce<RecoveryGap | null>((w, g) => (!w || g.hours > w.hours ? g : w), null);
  const misses = gaps.filter((g) => Date.parse(g.to.at) - Date.parse(g.from.at) > rpoMs);

  const { at, subject, where } = sourceSubject({ group, host: input.host, source: input.source, bucket: input.bucket });
  const findings = misses.map((g) =>
    makeFinding({
      ...at,
      where,
      // One finding per miss, keyed by when it began: a later miss is news of its own.
      subject: `${subject}/${g.from.at}`,
      check: 'rpo-missed',
      severity: 'warn',
      once: true,
      since: iso(Date.parse(g.from.at) + rpoMs),
      summary: `for ${hours(Date.parse(g.to.at) - Date.parse(g.from.at))} nothing newer than ${g.from.at} (${g.from.what}) could be restored, until ${g.to.at} (${g.to.what}); the RPO is ${group.rpoHours} h`,
      action: `Data written in that stretch would have been lost to a failure at its end. Find why no backup${input.log ? ' or log' : ''} landed (SSM Run Command history of ${input.host}, the monitor's alerts of those days) and whether the cause is gone; the finding stays in the report for ${windowDays} days from the gap.`,
    }),
  );
  return { figures: { rpoHours: group.rpoHours, windowDays, newestBackup, log, current, worstGap, misses }, findings };
}
