import type { BinlogGap, BinlogRange, BinlogWindow, BinlogWindowPoint } from '../../../format/binlog-window';

/**
 * The binary log recovery window of one MySQL/MariaDB PITR source as `coldseal list` shows it
 * (format/binlog-window.ts): on every backup row of that source in --json, and as lines after the
 * table in text, beside the PostgreSQL windows (rows.ts).
 */
export interface BinlogWindowSummary {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly from: BinlogWindowPoint | null;
  /** `to.time` is the recovery point achieved: everything committed before it is archived. */
  readonly to: BinlogWindowPoint | null;
  readonly ranges: readonly BinlogRange[];
  readonly gaps: readonly BinlogGap[];
  /** The newest archived file and when it was closed (how current the archive is). */
  readonly newestArchivedBinlog: { readonly file: string; readonly closedAt: string } | null;
  /** Files listed, and records opened to work the window out (binlog-catalog.ts says which). */
  readonly archivedFiles: number;
  readonly recordsOpened: number;
  readonly notes: readonly string[];
}

export function summarizeBinlogWindow(location: { group: string; host: string; source: string }, window: BinlogWindow, counts: { listed: number; opened: number }): BinlogWindowSummary {
  return {
    ...location,
    from: window.from,
    to: window.to,
    ranges: window.ranges,
    gaps: window.gaps,
    newestArchivedBinlog: window.newest ? { file: window.newest.binlogFile, closedAt: window.newest.closedAt } : null,
    archivedFiles: counts.listed,
    recordsOpened: counts.opened,
    notes: window.notes,
  };
}

function point(p: BinlogWindowPoint): string {
  const where = p.dump ? `${p.position}, dump of ${p.database}` : `end of ${p.position}`;
  return `${p.time.replace(/\.\d{3}Z$/, 'Z')} (${where}${p.gtid ? `, GTID ${p.gtid}` : ''})`;
}

/** Lines after the backup table; the header only when no PostgreSQL window printed it. */
export function formatBinlogWindows(windows: readonly BinlogWindowSummary[], withHeader: boolean): string {
  if (windows.length === 0) return '';
  const lines = withHeader ? ['', 'RECOVERY WINDOWS (point-in-time recovery)'] : [];
  for (const w of windows) {
    const name = `${w.host}/${w.source} (binary log)`;
    if (w.from && w.to) lines.push(`${name}: from ${point(w.from)} to ${point(w.to)}`);
    else lines.push(`${name}: no recovery window${w.newestArchivedBinlog ? ` (newest archived binary log ${w.newestArchivedBinlog.file}, closed ${w.newestArchivedBinlog.closedAt})` : ''}`);
    const furthest = w.to;
    for (const r of w.ranges.filter((r) => r.to !== furthest)) lines.push(`  also from ${point(r.from)} to ${point(r.to)} (cut off by a gap)`);
    for (const g of w.gaps) lines.push(`  GAP ${g.fromTime}..${g.toTime}: ${g.description}`);
    if (w.to && w.newestArchivedBinlog && w.newestArchivedBinlog.file !== w.to.position) lines.push(`  newer binary logs are archived (${w.newestArchivedBinlog.file}) but no dump reaches them`);
    for (const n of w.notes) lines.push(`  note: ${n}`);
  }
  return lines.join('\n');
}
