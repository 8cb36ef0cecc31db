import { REPORT_SCHEMA, reportSchema, type RecoveryPointReport, type RecoveryTimeReport, type Report, type RetentionReport, type StorageReport } from '../../../format/verification-report';
import { recoverySection, storageSection } from './report-audit';
import { CHECKS, statusOf, type Finding, type Status } from '../../shared/findings';
import { formatBytes } from '../../../runtime/byte-size';
import type { HistoryEntry } from './fleet';
import type { DrillSummary } from './drills';
import type { BinlogPitrRow } from './binlog-pitr';
import { formatAge, type PitrRow } from './pitr';

/**
 * The daily report: built here from the verifier's findings, to the schema in format/verification-report.ts
 * (the monitor reads it back). The HTML is for people: one self-contained file (no scripts, no
 * external assets) that opens from S3 or email.
 */

export interface ReplicaCounts {
  replicated: number;
  pending: number;
  missing: number;
}

export interface SourceRow {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly history: readonly HistoryEntry[];
  /** null (or absent): no replica expected. */
  readonly replica?: ReplicaCounts | null;
  /** Recovery point, recovery time and retention figures (audit.ts); absent when the group's keys could not be read. */
  readonly audit?: { readonly recoveryPoint: RecoveryPointReport; readonly recoveryTime: RecoveryTimeReport; readonly retention: RetentionReport };
}

export function buildReport(input: {
  now: Date;
  bucket: string;
  findings: readonly Finding[];
  newIds: ReadonlySet<string>;
  /** Findings said once (Finding.once) and already announced: listed, but they no longer set a status. */
  settledIds?: ReadonlySet<string>;
  firstSeen: ReadonlyMap<string, string>;
  resolved: readonly { id: string; summary: string; firstSeenAt: string }[];
  sources: readonly SourceRow[];
  drills: readonly DrillSummary[];
  /** PITR sources (absent in a deployment without any). */
  pitr?: ReadonlyArray<PitrRow | BinlogPitrRow>;
  /** What the vault stores and costs (storage-report.ts). */
  storage?: StorageReport;
  backups: number;
  verification: Report['verification'];
}): Report {
  const { now } = input;
  const standing = input.findings.filter((f) => !input.settledIds?.has(f.id));
  const sources = input.sources.map((row) => {
    const mine = standing.filter((f) => f.group === row.group && f.host === row.host && f.source === row.source);
    const newest = row.history[row.history.length - 1];
    const copies: Record<string, number> = {};
    for (const e of row.history) copies[e.tier] = (copies[e.tier] ?? 0) + 1;
    return {
      group: row.group,
      host: row.host,
      source: row.source,
      status: statusOf(mine),
      newest: newest
        ? { stamp: newest.stamp, finishedAt: newest.finishedAt, ageHours: Math.round(((now.getTime() - Date.parse(newest.finishedAt)) / 3_600_000) * 10) / 10, bytes: newest.bytes, durationSeconds: newest.durationSeconds }
        : null,
      copies,
      history: row.history.slice(-30).map((e) => ({ stamp: e.stamp, tier: e.tier, bytes: e.bytes, ciphertextBytes: e.ciphertextBytes, durationSeconds: e.durationSeconds })),
      replica: row.replica ?? null,
      ...(row.audit ?? {}),
    };
  });
  const findings = input.findings.map((f) => ({ ...f, new: input.newIds.has(f.id), firstSeenAt: input.firstSeen.get(f.id) }));
  return reportSchema.parse({
    schema: REPORT_SCHEMA,
    generatedAt: now.toISOString(),
    bucket: input.bucket,
    status: statusOf(standing),
    counts: {
      fail: input.findings.filter((f) => f.severity === 'fail').length,
      warn: input.findings.filter((f) => f.severity === 'warn').length,
      new: findings.filter((f) => f.new).length,
      resolved: input.resolved.length,
      backups: input.backups,
      sources: sources.length,
    },
    findings,
    resolved: input.resolved,
    sources,
    ...(input.pitr?.length ? { pitr: input.pitr.map((row) => ({ ...row, status: statusOf(standing.filter((f) => f.group === row.group && f.host === row.host && f.source === row.source && pitrCheckOf(row, f.check))) })) } : {}),
    drills: input.drills.map((d) => ({ group: d.group, host: d.host, stamp: d.stamp, ok: d.ok, ageDays: Math.round(d.ageDays * 10) / 10, ...(d.readFrom ? { readFrom: d.readFrom } : {}) })),
    ...(input.storage ? { storage: input.storage } : {}),
    verification: input.verification,
  });
}

const COLORS: Record<Status, { bg: string; fg: string }> = {
  OK: { bg: '#e6f4ea', fg: '#137333' },
  WARN: { bg: '#fef7e0', fg: '#8a5a00' },
  FAIL: { bg: '#fce8e6', fg: '#a50e0e' },
};

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Size (bars) and duration (line) of the last backups, as inline SVG: no script, no external asset. */
export function historyChart(history: Report['sources'][number]['history'], width = 360, height = 90): string {
  if (history.length === 0) return '<svg class="chart" width="360" height="90" role="img" aria-label="no backups yet"><text x="8" y="48" fill="#666">no backups yet</text></svg>';
  const pad = 4;
  const maxBytes = Math.max(1, ...history.map((h) => h.bytes));
  const maxDur = Math.max(1, ...history.map((h) => h.durationSeconds));
  const slot = (width - 2 * pad) / history.length;
  const bar = Math.max(1, slot * 0.7);
  const plotH = height - 2 * pad - 12;
  const bars = history
    .map((h, i) => {
      const bh = Math.max(1, (h.bytes / maxBytes) * plotH);
      return `<rect x="${(pad + i * slot).toFixed(1)}" y="${(pad + plotH - bh).toFixed(1)}" width="${bar.toFixed(1)}" height="${bh.toFixed(1)}" fill="#8ab4f8"><title>${esc(h.stamp)}: ${esc(formatBytes(h.bytes))}, ${h.durationSeconds.toFixed(0)} s</title></rect>`;
    })
    .join('');
  const points = history.map((h, i) => `${(pad + i * slot + bar / 2).toFixed(1)},${(pad + plotH - (h.durationSeconds / maxDur) * plotH).toFixed(1)}`).join(' ');
  const legend = `<text x="${pad}" y="${height - 2}" font-size="10" fill="#555">bars: size (max ${esc(formatBytes(maxBytes))}) - line: duration (max ${maxDur.toFixed(0)} s) - last ${history.length}</text>`;
  return `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="size and duration of the last ${history.length} backups">${bars}<polyline points="${points}" fill="none" stroke="#d93025" stroke-width="1.5"/>${legend}</svg>`;
}

/** "12 of 12 replicated", or what is not: the offsite copy at a glance. */
export function replicaText(r: ReplicaCounts): string {
  const total = r.replicated + r.pending + r.missing;
  const rest = [r.pending ? `${r.pending} pending` : '', r.missing ? `${r.missing} MISSING` : ''].filter(Boolean).join(', ');
  return `${r.replicated} of ${total} replicated${rest ? `, ${rest}` : ''}`;
}

/** Whether a finding speaks for a PITR row: its engine's checks, and "no recovery window" for both. */
function pitrCheckOf(row: PitrRow | BinlogPitrRow, check: string): boolean {
  return row.engine === 'mysql' ? check.startsWith('binlog-') || check === 'wal-no-window' : check.startsWith('wal-');
}

type BinlogReportRow = Extract<NonNullable<Report['pitr']>[number], { engine: 'mysql' }>;

/** A MySQL/MariaDB source's row: the window from a dump's binary log position, its recovery point, the holes. */
function binlogTableRow(r: BinlogReportRow): string {
  const from = (p: BinlogReportRow['ranges'][number]['from']) => `${esc(p.time)}<div class="note">${esc(p.position)}${p.gtid ? `, GTID ${esc(p.gtid)}` : ''}</div><div class="note">dump ${esc(p.dump)} (${esc(p.database)})</div>`;
  const to = (p: BinlogReportRow['ranges'][number]['to']) => `${esc(p.time)}<div class="note">end of ${esc(p.file)}${p.gtid ? `, GTID ${esc(p.gtid)}` : ''}</div>`;
  const window = r.window ? from(r.window.from) : 'none';
  const earlier = r.ranges.length > 1 ? `<div class="note">earlier: ${r.ranges.slice(0, -1).map((x) => `${esc(x.from.time)} to ${esc(x.to.time)}`).join('; ')}</div>` : '';
  const rp = r.recoveryPoint ? `${esc(formatAge(r.recoveryPoint.ageSeconds))} ago<div class="note">${esc(r.recoveryPoint.file)}, closed ${esc(r.recoveryPoint.closedAt)}</div>` : 'none';
  const notes = r.notes.length ? `<div class="note">${r.notes.map(esc).join('<br>')}</div>` : '';
  const gaps = r.gaps.length
    ? r.gaps.map((g) => `<div><b>${g.missing.length ? esc(g.missing.join(' to ')) : `${esc(g.after)} / ${esc(g.before)}`}</b> (${g.reason === 'missing-files' ? 'missing' : 'GTID states do not chain'}): lost ${esc(g.fromTime)} to ${esc(g.toTime)}; ${g.brokenDumps.length ? `dump${g.brokenDumps.length > 1 ? 's' : ''} ${esc(g.brokenDumps.join(', '))} stop there` : 'no dump reaches it'}; ${g.nextDump ? `restorable again from ${esc(g.nextDump.readAt)}` : 'nothing later restorable until a new dump'}</div>`).join('')
    : 'none';
  const o = r.objects;
  const objects = `${o.total} (${o.checked} checked now, ${esc(formatBytes(o.hashedBytes))} hashed${o.pending ? `, ${o.pending} hash pending` : ''}${o.failed ? `, <b>${o.failed} failed</b>` : ''})`;
  const server = `${r.flavor ?? '?'} binary logs, server id${r.serverIds.length > 1 ? 's' : ''} ${r.serverIds.join(', ') || '-'}, ${r.dumps} dump${r.dumps === 1 ? '' : 's'}`;
  return `<tr><td>${badge(r.status)}</td><td>${esc(r.host)} / ${esc(r.source)}<div class="note">${esc(r.group)}; ${esc(server)}</div></td><td>${window}${earlier}</td><td>${r.window ? to(r.window.to) : 'none'}</td><td>${rp}</td><td>${gaps}${notes}</td><td>${objects}</td></tr>`;
}

/** One row per PITR source: the window a restore can reach, its recovery point, and what breaks it. */
export function pitrTable(rows: NonNullable<Report['pitr']>): string {
  const point = (p: { time: string; lsn: string; timeline: number }) => `${esc(p.time)}<div class="note">LSN ${esc(p.lsn)}, timeline ${p.timeline}</div>`;
  const body = rows
    .map((r) => {
      if (r.engine === 'mysql') return binlogTableRow(r);
      const window = r.window ? `${point(r.window.from)}<div class="note">base backup ${esc(r.window.from.baseBackup)}</div>` : 'none';
      const to = r.window ? point(r.window.to) : 'none';
      const rp = r.recoveryPoint ? `${esc(formatAge(r.recoveryPoint.ageSeconds))} ago<div class="note">${esc(r.recoveryPoint.segment)}, archived ${esc(r.recoveryPoint.archivedAt)}</div>` : 'none';
      const earlier = r.ranges.length > 1 ? `<div class="note">earlier: ${r.ranges.slice(0, -1).map((x) => `${esc(x.from.time)} to ${esc(x.to.time)}`).join('; ')}</div>` : '';
      const notes = r.notes.length ? `<div class="note">${r.notes.map(esc).join('<br>')}</div>` : '';
      const gaps = r.gaps.length
        ? r.gaps.map((g) => `<div><b>${esc(g.from)}${g.to !== g.from ? ` to ${esc(g.to)}` : ''}</b> (${g.segments} missing): ${g.brokenBases.length ? `base backup${g.brokenBases.length > 1 ? 's' : ''} ${esc(g.brokenBases.join(', '))} stop at LSN ${esc(g.breaksAt)}` : `no base backup reaches LSN ${esc(g.breaksAt)}`}${g.lastBefore ? ` (${esc(g.lastBefore.archivedAt)})` : ''}; ${g.nextBase ? `restorable again from ${esc(g.nextBase.stoppedAt)}` : 'nothing later restorable until a new base backup'}</div>`).join('')
        : 'none';
      const o = r.objects;
      const objects = `${o.total} (${o.checked} checked now, ${esc(formatBytes(o.hashedBytes))} hashed${o.pending ? `, ${o.pending} hash pending` : ''}${o.failed ? `, <b>${o.failed} failed</b>` : ''})`;
      const cluster = `${r.walSegmentSize ? esc(formatBytes(r.walSegmentSize)) : '?'} segments, timeline${r.timelines.length > 1 ? 's' : ''} ${r.timelines.join(', ') || '-'}, ${r.baseBackups} base backup${r.baseBackups === 1 ? '' : 's'}`;
      return `<tr><td>${badge(r.status)}</td><td>${esc(r.host)} / ${esc(r.source)}<div class="note">${esc(r.group)}; ${cluster}</div></td><td>${window}${earlier}</td><td>${to}</td><td>${rp}</td><td>${gaps}${notes}</td><td>${objects}</td></tr>`;
    })
    .join('');
  return `<table class="list"><tr><th>status</th><th>source</th><th>window from</th><th>window to</th><th>recovery point</th><th>gaps</th><th>log objects</th></tr>${body}</table>`;
}

function badge(status: Status): string {
  const c = COLORS[status];
  return `<span class="badge" style="background:${c.bg};color:${c.fg}">${status}</span>`;
}

export function renderHtml(report: Report): string {
  const findingRows = (list: Report['findings']) =>
    list
      .map((f) => `<tr class="${f.severity}"><td>${badge(f.severity === 'fail' ? 'FAIL' : 'WARN')}${f.new ? ' <b>new</b>' : ''}</td><td>${esc(CHECKS[f.check as keyof typeof CHECKS] ?? f.check)}</td><td>${esc(f.summary)}${f.detail ? `<pre>${esc(f.detail)}</pre>` : ''}<div class="where">${esc(f.where)}</div></td><td>${esc(f.since)}</td><td>${esc(f.action)}</td></tr>`)
      .join('');
  const groups = [...new Set(report.sources.map((s) => s.group))];
  const sections = groups
    .map((group) => {
      const rows = report.sources.filter((s) => s.group === group);
      return `<h2>Group ${esc(group)}</h2>${recoverySection(report, group)}${rows
        .map((s) => {
          const mine = report.findings.filter((f) => f.group === s.group && f.host === s.host && f.source === s.source);
          const c = COLORS[s.status];
          const newest = s.newest ? `${esc(s.newest.stamp)} (${s.newest.ageHours} h ago), ${esc(formatBytes(s.newest.bytes))}, ${s.newest.durationSeconds.toFixed(0)} s` : 'none';
          const copies = Object.entries(s.copies).map(([t, n]) => `${esc(t)} ${n}`).join(', ') || 'none';
          const replica = s.replica ? `<tr><th>replica</th><td>${replicaText(s.replica)}</td></tr>` : '';
          return `<section class="source" style="border-left:6px solid ${c.fg}"><table><caption>${badge(s.status)} ${esc(s.host)} / ${esc(s.source)}</caption><tr><th>newest</th><td>${newest}</td></tr><tr><th>copies</th><td>${copies}</td></tr>${replica}<tr><th>findings</th><td>${mine.length ? mine.map((f) => esc(f.summary)).join('<br>') : 'none'}</td></tr></table>${historyChart(s.history)}</section>`;
        })
        .join('')}`;
    })
    .join('');
  const drills = report.drills.length
    ? `<table class="list"><tr><th>group</th><th>host</th><th>drill</th><th>read from</th><th>result</th><th>age</th></tr>${report.drills.map((d) => `<tr><td>${esc(d.group)}</td><td>${esc(d.host)}</td><td>${esc(d.stamp)}</td><td>${d.readFrom ? `offsite replica ${esc(d.readFrom)}` : 'data bucket'}</td><td>${badge(d.ok ? 'OK' : 'FAIL')}</td><td>${d.ageDays} days</td></tr>`).join('')}</table>`
    : '<p>No restore drill receipts.</p>';
  const v = report.verification;
  const c = COLORS[report.status];
  const pitr = report.pitr?.length ? `<h2>Point-in-time recovery</h2>${pitrTable(report.pitr)}` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>coldseal verification ${esc(report.generatedAt.slice(0, 10))}: ${report.status}</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#202124;max-width:1200px}
h1{margin:0 0 4px}.sub{color:#5f6368;margin-bottom:16px}
.banner{padding:12px 16px;border-radius:6px;font-weight:600;background:${c.bg};color:${c.fg};margin-bottom:16px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:700}
table.list{border-collapse:collapse;width:100%;margin-bottom:16px}table.list td,table.list th{border-bottom:1px solid #e0e0e0;padding:6px;text-align:left;vertical-align:top}
tr.fail td:first-child{border-left:4px solid ${COLORS.FAIL.fg}}tr.warn td:first-child{border-left:4px solid ${COLORS.WARN.fg}}
pre{white-space:pre-wrap;background:#f8f9fa;padding:4px;margin:4px 0;font-size:12px}.where{color:#5f6368;font-size:12px;word-break:break-all}.note{color:#5f6368;font-size:12px}
.source{display:flex;gap:16px;align-items:center;padding:8px 12px;margin:8px 0;background:#fafafa;border-radius:4px;flex-wrap:wrap}
.source table{width:620px;table-layout:fixed}.source th{width:90px}.source caption{text-align:left;font-weight:600;padding-bottom:4px}.source th{text-align:left;color:#5f6368;font-weight:normal;padding-right:12px}
.miss{color:${COLORS.WARN.fg}}figure{margin:8px 0 16px}svg.picture{display:block;height:auto}
@media (max-width:700px){body{margin:8px;font-size:13px}.source table{width:100%}table.list{display:block;overflow-x:auto}table.audit td{min-width:140px}svg.chart{max-width:100%;height:auto}}
</style></head><body>
<h1>coldseal verification report</h1>
<div class="sub">${esc(report.generatedAt)} - bucket ${esc(report.bucket)} - ${report.counts.backups} backups of ${report.counts.sources} sources</div>
<div class="banner">${report.status}: ${report.counts.fail} failing, ${report.counts.warn} warning (${report.counts.new} new, ${report.counts.resolved} resolved)</div>
<h2>Findings</h2>
${report.findings.length ? `<table class="list"><tr><th>status</th><th>check</th><th>what / where</th><th>since</th><th>what to do</th></tr>${findingRows(report.findings)}</table>` : '<p>None: every check passed.</p>'}
${report.resolved.length ? `<h2>Resolved since the last run</h2><ul>${report.resolved.map((r) => `<li>${esc(r.summary)} (open since ${esc(r.firstSeenAt)})</li>`).join('')}</ul>` : ''}
${sections}
${pitr}
<h2>Restore drills</h2>${drills}
${storageSection(report)}
<h2>Verification</h2><p>Hashed ${esc(formatBytes(v.hashedBytes))} in ${v.hashedObjects} objects in ${v.seconds.toFixed(1)} s; ${v.verifiedArtifacts} artifacts proven by a full read, ${v.archivedArtifacts} archived (checked from metadata), ${v.pendingObjects} waiting for the next run.</p>
</body></html>
`;
}
