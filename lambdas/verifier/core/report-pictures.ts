import type { Report, StorageReport } from '../../../format/verification-report';
import { formatBytes } from '../../../runtime/byte-size';

/**
 * The report's two pictures, as inline SVG (no script, no external asset, so the HTML stays one
 * file that opens from S3 or an email): per group, each source's recovery window as a bar on one
 * time axis, and the bytes stored by storage class over the days the verifier kept a snapshot.
 * Both scale to the page width (viewBox, width 100%), so they stay readable on a phone.
 */

export function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export const TIER_COLORS: Readonly<Record<string, string>> = { daily: '#4285f4', weekly: '#12a4af', monthly: '#9334e6', yearly: '#e8710a' };
export const CLASS_COLORS: Readonly<Record<string, string>> = {
  STANDARD: '#4285f4',
  STANDARD_IA: '#7baaf7',
  INTELLIGENT_TIERING: '#12a4af',
  GLACIER_IR: '#a142f4',
  GLACIER: '#9334e6',
  DEEP_ARCHIVE: '#3c1a78',
};
const LOG_COLOR = '#81c995';
const DAY_MS = 86_400_000;

/** Ticks at ages a person names (now, a day, a week, a month…), those within the axis. */
const TICKS: readonly [number, string][] = [
  [0, 'now'],
  [1, '1 d'],
  [7, '7 d'],
  [30, '30 d'],
  [90, '90 d'],
  [365, '1 y'],
  [730, '2 y'],
  [1825, '5 y'],
  [3650, '10 y'],
];

interface WindowRow {
  readonly label: string;
  readonly copies: readonly { at: string; tier: string }[];
  readonly ranges: readonly { from: string; to: string; what: string }[];
}

/**
 * One bar per source: a tick per good copy, coloured by tier, and the PITR archive's reachable
 * ranges as a band. The axis is the square root of age, so that yesterday's dailies and a
 * seven-year-old yearly are both visible on one bar; the ticks name the ages.
 */
export function recoveryWindowChart(group: string, report: Report): string {
  const now = Date.parse(report.generatedAt);
  const rows: WindowRow[] = report.sources
    .filter((s) => s.group === group && s.retention)
    .map((s) => {
      const pitr = report.pitr?.find((p) => p.group === s.group && p.host === s.host && p.source === s.source);
      const what = pitr?.engine === 'mysql' ? 'binary log' : 'WAL';
      return { label: `${s.host} / ${s.source}`, copies: s.retention!.copies, ranges: (pitr?.ranges ?? []).map((r) => ({ from: r.from.time, to: r.to.time, what })) };
    });
  if (rows.length === 0) return '';
  const times = rows.flatMap((r) => [...r.copies.map((c) => Date.parse(c.at)), ...r.ranges.map((x) => Date.parse(x.from))]).filter(Number.isFinite);
  const maxAgeDays = Math.max(2, ...times.map((t) => (now - t) / DAY_MS)) * 1.05;
  const width = 720;
  const left = 150;
  const right = 12;
  const rowH = 26;
  const top = 8;
  const plotW = width - left - right;
  const x = (t: number) => left + plotW * (1 - Math.sqrt(Math.max(0, now - t) / DAY_MS / maxAgeDays));
  const height = top + rows.length * rowH + 44;
  const parts: string[] = [];
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    parts.push(`<text x="${left - 6}" y="${y + 16}" font-size="11" text-anchor="end" fill="#202124">${esc(r.label)}</text>`);
    parts.push(`<rect x="${left}" y="${y + 9}" width="${plotW}" height="6" fill="#eceff1"/>`);
    for (const range of r.ranges) {
      const x1 = x(Date.parse(range.from));
      const x2 = x(Math.min(now, Date.parse(range.to)));
      parts.push(`<rect class="pitr" x="${x1.toFixed(1)}" y="${y + 5}" width="${Math.max(2, x2 - x1).toFixed(1)}" height="14" fill="${LOG_COLOR}" opacity="0.85"><title>${esc(range.what)} replay ${esc(range.from)} to ${esc(range.to)}</title></rect>`);
    }
    for (const c of r.copies) {
      const tall = c.tier === 'daily' ? 6 : c.tier === 'weekly' ? 8 : 10;
      parts.push(`<rect class="copy" x="${(x(Date.parse(c.at)) - 1).toFixed(1)}" y="${y + 12 - tall}" width="2" height="${tall * 2}" fill="${TIER_COLORS[c.tier] ?? '#5f6368'}"><title>${esc(c.tier)} copy ${esc(c.at)}</title></rect>`);
    }
  });
  const axisY = top + rows.length * rowH + 4;
  parts.push(`<line x1="${left}" y1="${axisY}" x2="${width - right}" y2="${axisY}" stroke="#9aa0a6"/>`);
  for (const [days, label] of TICKS.filter(([d]) => d <= maxAgeDays)) {
    const tx = x(now - days * DAY_MS);
    parts.push(`<line x1="${tx.toFixed(1)}" y1="${axisY}" x2="${tx.toFixed(1)}" y2="${axisY + 4}" stroke="#9aa0a6"/><text x="${tx.toFixed(1)}" y="${axisY + 15}" font-size="10" text-anchor="middle" fill="#5f6368">${label}</text>`);
  }
  const legend = [...Object.entries(TIER_COLORS), ['PITR', LOG_COLOR] as [string, string]];
  legend.forEach(([name, color], i) => {
    const lx = left + i * 80;
    parts.push(`<rect x="${lx}" y="${axisY + 24}" width="10" height="10" fill="${color}"/><text x="${lx + 14}" y="${axisY + 33}" font-size="10" fill="#5f6368">${name === 'PITR' ? 'log replay' : name}</text>`);
  });
  return `<svg class="picture window" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="100%" style="max-width:${width}px" role="img" aria-label="recovery window of each source of group ${esc(group)}: copies by tier and point-in-time ranges by age">${parts.join('')}</svg>`;
}

/**
 * Bytes by storage class per day (one stacked bar per stored snapshot, today last) for one group;
 * with the offsite replica's listing, its bar stands beside the data bucket's, paler and marked
 * "replica", on the same scale.
 */
export function storageHistoryChart(group: string, history: StorageReport['history'], replicaHistory: StorageReport['history'] = []): string {
  const replicaOn = new Map(replicaHistory.filter((h) => h.bytes[group]).map((h) => [h.date, h.bytes[group]]));
  const days = history.filter((h) => h.bytes[group] || replicaOn.has(h.date));
  if (days.length === 0) return '';
  const stacks = days.flatMap((d) => [d.bytes[group] ?? {}, replicaOn.get(d.date) ?? {}]);
  const classes = [...new Set(stacks.flatMap((b) => Object.keys(b)))].sort((a, b) => Object.keys(CLASS_COLORS).indexOf(a) - Object.keys(CLASS_COLORS).indexOf(b));
  const max = Math.max(1, ...stacks.map((b) => Object.values(b).reduce((n, x) => n + x, 0)));
  const width = 720;
  const left = 70;
  const right = 12;
  const top = 10;
  const plotH = 120;
  const plotW = width - left - right;
  const slot = plotW / Math.max(days.length, 7);
  const paired = replicaOn.size > 0;
  const bar = Math.max(2, (slot * 0.75) / (paired ? 2 : 1));
  const parts: string[] = [];
  const stack = (bytes: Readonly<Record<string, number>>, x: number, date: string, replica: boolean) => {
    let y = top + plotH;
    for (const cls of classes) {
      const b = bytes[cls] ?? 0;
      if (!b) continue;
      const h = Math.max(1, (b / max) * plotH);
      y -= h;
      parts.push(`<rect class="stored${replica ? ' replica' : ''}" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${bar.toFixed(1)}" height="${h.toFixed(1)}" fill="${CLASS_COLORS[cls] ?? '#9aa0a6'}"${replica ? ' opacity="0.55" stroke="#5f6368" stroke-width="0.5"' : ''}><title>${esc(date)}${replica ? ' replica' : ''} ${esc(cls)}: ${esc(formatBytes(b))}</title></rect>`);
    }
  };
  days.forEach((d, i) => {
    stack(d.bytes[group] ?? {}, left + i * slot, d.date, false);
    const r = replicaOn.get(d.date);
    if (r) stack(r, left + i * slot + bar, d.date, true);
  });
  parts.push(`<line x1="${left}" y1="${top + plotH}" x2="${width - right}" y2="${top + plotH}" stroke="#9aa0a6"/>`);
  parts.push(`<text x="${left - 6}" y="${top + 9}" font-size="10" text-anchor="end" fill="#5f6368">${esc(formatBytes(max))}</text><text x="${left - 6}" y="${top + plotH}" font-size="10" text-anchor="end" fill="#5f6368">0</text>`);
  parts.push(`<text x="${left}" y="${top + plotH + 14}" font-size="10" fill="#5f6368">${esc(days[0].date)}</text>`);
  if (days.length > 1) parts.push(`<text x="${(left + (days.length - 1) * slot + bar * (paired ? 2 : 1)).toFixed(1)}" y="${top + plotH + 14}" font-size="10" text-anchor="end" fill="#5f6368">${esc(days[days.length - 1].date)}</text>`);
  classes.forEach((cls, i) => {
    const lx = left + i * 110;
    parts.push(`<rect x="${lx}" y="${top + plotH + 24}" width="10" height="10" fill="${CLASS_COLORS[cls] ?? '#9aa0a6'}"/><text x="${lx + 14}" y="${top + plotH + 33}" font-size="10" fill="#5f6368">${esc(cls)}</text>`);
  });
  if (paired) {
    const lx = left + classes.length * 110;
    parts.push(`<rect x="${lx}" y="${top + plotH + 24}" width="10" height="10" fill="#9aa0a6" opacity="0.55" stroke="#5f6368" stroke-width="0.5"/><text x="${lx + 14}" y="${top + plotH + 33}" font-size="10" fill="#5f6368">right bar: replica</text>`);
  }
  const height = top + plotH + 42;
  return `<svg class="picture storage" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="100%" style="max-width:${width}px" role="img" aria-label="bytes stored by group ${esc(group)} per storage class, ${days.length} day(s)${paired ? ', data bucket and offsite replica side by side' : ''}">${parts.join('')}</svg>`;
}
