import type { S3Client } from '@aws-sdk/client-s3';
import { ARCHIVED_CLASSES } from '../../../format/backup-listing';
import type { Tier } from '../../../format/layout';
import type { RecoveryWindow } from '../../../format/recovery-window';
import { mapLimit } from '../../../runtime/concurrency';
import type { DrillState } from './drills';
import { headRestoreState, type RestoreState } from './glacier';
import { isComplete, type BackupEntry } from './listing';

/** One row of `coldseal list`: what a person or a script needs to pick a backup. */
export interface BackupRow {
  readonly tier: Tier;
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly stamp: string;
  readonly time: string;
  readonly complete: boolean;
  readonly manifestKey?: string;
  readonly artifacts: { name: string; key: string; bytes: number; storageClass: string; restoredUntil?: string; restoreInProgress?: boolean }[];
  readonly bytes: number;
  /** The storage classes of its ciphertexts, e.g. "STANDARD" or "GLACIER (restored until …)". */
  readonly storage: string;
  readonly drill?: DrillState;
}

/**
 * Rows for the listing. Archived ciphertexts get a HEAD each (the LIST does not say whether a
 * restored copy exists), a few at a time; everything else comes from the LIST alone.
 */
export async function describeBackups(s3: S3Client, bucket: string, entries: readonly BackupEntry[], drills: ReadonlyMap<string, DrillState> = new Map()): Promise<BackupRow[]> {
  const archived = entries.flatMap((e) => e.artifacts.flatMap((a) => a.objects.filter((o) => ARCHIVED_CLASSES.has(o.storageClass)).map((o) => o.key)));
  const states = new Map<string, RestoreState>();
  await mapLimit(archived, 8, async (key) => {
    try {
      const state = await headRestoreState(s3, bucket, key);
      if (state) states.set(key, state.restore);
    } catch {
      // shown without restore state
    }
  });
  return entries.map((e) => {
    const artifacts = e.artifacts.map((a) => {
      // A segmented artifact is as readable as its least readable segment.
      const segmentStates = a.objects.map((o) => states.get(o.key));
      const state = segmentStates.find((x) => x?.state !== 'restored') ?? segmentStates[0];
      return {
        name: a.artifact,
        key: a.key,
        bytes: a.size,
        storageClass: a.storageClass,
        ...(state?.state === 'restored' ? { restoredUntil: state.expiry?.toISOString() ?? 'unknown' } : {}),
        ...(state?.state === 'ongoing' ? { restoreInProgress: true } : {}),
      };
    });
    const classes = [...new Set(artifacts.map((a) => a.storageClass + (a.restoredUntil ? ` (restored until ${a.restoredUntil.slice(0, 16).replace('T', ' ')})` : a.restoreInProgress ? ' (retrieval in progress)' : '')))];
    const manifestKeyOf = e.manifest?.key;
    return {
      tier: e.tier,
      group: e.group,
      host: e.host,
      source: e.source,
      stamp: e.stamp,
      time: `${e.stamp.slice(0, 4)}-${e.stamp.slice(4, 6)}-${e.stamp.slice(6, 8)}T${e.stamp.slice(9, 11)}:${e.stamp.slice(11, 13)}:${e.stamp.slice(13, 15)}Z`,
      complete: isComplete(e),
      manifestKey: manifestKeyOf,
      artifacts,
      bytes: artifacts.reduce((sum, a) => sum + a.bytes, 0),
      storage: classes.join(', ') || '-',
      ...(manifestKeyOf && drills.has(manifestKeyOf) ? { drill: drills.get(manifestKeyOf) } : {}),
    };
  });
}

/** One row of `coldseal status`: the state of one (group, host, source). */
export interface SourceStatus {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly latest?: BackupRow;
  readonly ageHours?: number;
  readonly backups: number;
  readonly incomplete: number;
  readonly byTier: Record<string, number>;
}

export function summarize(rows: readonly BackupRow[], now: Date): SourceStatus[] {
  const bySource = new Map<string, BackupRow[]>();
  for (const row of rows) {
    const id = `${row.group}/${row.host}/${row.source}`;
    bySource.set(id, [...(bySource.get(id) ?? []), row]);
  }
  return [...bySource.values()].map((list) => {
    const complete = list.filter((r) => r.complete);
    const latest = complete.reduce<BackupRow | undefined>((best, r) => (!best || r.stamp > best.stamp ? r : best), undefined);
    const byTier: Record<string, number> = {};
    for (const r of complete) byTier[r.tier] = (byTier[r.tier] ?? 0) + 1;
    return {
      group: list[0].group,
      host: list[0].host,
      source: list[0].source,
      latest,
      ageHours: latest ? (now.getTime() - Date.parse(latest.time)) / 3_600_000 : undefined,
      backups: complete.length,
      incomplete: list.length - complete.length,
      byTier,
    };
  });
}

/**
 * The recovery window of one PITR source as `coldseal list` shows it (format/recovery-window.ts):
 * on every backup row of that source in --json, and as a block after the table in text.
 */
export interface RecoveryWindowSummary {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly from: RecoveryWindow['from'];
  readonly to: RecoveryWindow['to'];
  /** Every reachable range, oldest first; several when a gap cuts an older base backup off. */
  readonly ranges: RecoveryWindow['ranges'];
  readonly gaps: RecoveryWindow['gaps'];
  readonly newestArchivedWal: RecoveryWindow['newestSegment'];
  readonly notes: readonly string[];
}

export function summarizeWindow(location: { group: string; host: string; source: string }, window: RecoveryWindow): RecoveryWindowSummary {
  return { ...location, from: window.from, to: window.to, ranges: window.ranges, gaps: window.gaps, newestArchivedWal: window.newestSegment, notes: window.notes };
}

export function formatWindows(windows: readonly RecoveryWindowSummary[]): string {
  if (windows.length === 0) return '';
  const point = (p: { time: string; lsn: string; timeline: number }) => `${p.time.replace(/\.\d{3}Z$/, 'Z')} (LSN ${p.lsn}, timeline ${p.timeline})`;
  const lines = ['', 'RECOVERY WINDOWS (point-in-time recovery)'];
  for (const w of windows) {
    const name = `${w.host}/${w.source}`;
    if (w.from && w.to) lines.push(`${name}: from ${point(w.from)} to ${point(w.to)}`);
    else lines.push(`${name}: no recovery window${w.newestArchivedWal ? ` (newest archived WAL ${w.newestArchivedWal.walFile} at ${w.newestArchivedWal.archivedAt})` : ''}`);
    for (const r of w.ranges.slice(0, -1)) lines.push(`  also from ${point(r.from)} to ${point(r.to)} (cut off by a gap)`);
    for (const g of w.gaps) lines.push(`  GAP ${g.from}..${g.to} (timeline ${g.timeline}): replay stops at ${g.breaksAt}, WAL resumes at ${g.resumesAt}${g.breaks.length ? `; ends the range of ${g.breaks.join(', ')}` : ''}`);
    if (w.from && w.to && w.newestArchivedWal && w.newestArchivedWal.walFile !== w.to.segment) lines.push(`  newer WAL is archived (${w.newestArchivedWal.walFile}) but no base backup reaches it`);
    for (const n of w.notes) lines.push(`  note: ${n}`);
  }
  return lines.join('\n');
}
