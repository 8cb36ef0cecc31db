import { parseBinlogFileName } from '../../../format/binlog';
import { binlogWindow, type BinlogDumpReach, type BinlogGap, type BinlogWindowPoint, type WindowBinlog } from '../../../format/binlog-window';
import { binlogPrefix } from '../../../format/layout';
import type { BinlogPositionRecord, Manifest } from '../../../format/manifest';
import { formatBytes } from '../../../runtime/byte-size';
import { openBinlogRecord } from '../../../runtime/binlog-record';
import type { ListedObject } from '../../shared/ports';
import { makeFinding, type Finding } from '../../shared/findings';
import { archiveFindings, formatAge, objectFindings, s3, saveRunState, type ArchiveWords } from './log-archive';
import type { PitrDeps, PitrRun } from './pitr';
import { checkLogObject, type WalCheckContext, type WalCheckOutcome, type WalObjectState } from './wal-objects';

/**
 * The verifier's part of MySQL/MariaDB point-in-time recovery, per PITR source with engine
 * "mysql" and host: each archived binary log object is checked like a WAL object (wal-objects.ts:
 * signed record, size, SHA-256 within the hashing budget, recipients), its record's window facts
 * (file, GTID states, times) are remembered with the result, and the archive's continuity is
 * judged from every kept dump's binary log position to the newest file with format/binlog-window.ts
 * (the same window `coldseal list` and `restore --to-time` use). A bad object is a FAIL naming the
 * file and counts as missing, so the hole it leaves is a FAIL naming the lost range too.
 */

/** A kept dump's position as the window needs it, with where its manifest is. */
export interface KeptDump {
  readonly manifestKey: string;
  readonly stamp: string;
  readonly database: string;
  readonly position: BinlogPositionRecord;
}

/** A dump's binary log file is archived on the next push: a few intervals (at least an hour) before "reaches nothing" is a FAIL. */
const DUMP_GRACE_MIN_MS = 3_600_000;
const DUMP_GRACE_INTERVALS = 3;

/** The database dumps of checked manifests that record a binary log position, by group/host/source. */
export function keptBinlogDumps(manifests: Iterable<{ manifestKey: string; manifest: Manifest }>): Map<string, KeptDump[]> {
  const out = new Map<string, KeptDump[]>();
  for (const { manifestKey, manifest } of manifests) {
    for (const artifact of manifest.artifacts) {
      if (!artifact.binlogPosition) continue;
      const id = `${manifest.group}/${manifest.host}/${manifest.source}`;
      out.set(id, [...(out.get(id) ?? []), { manifestKey, stamp: manifest.stamp, database: artifact.name, position: artifact.binlogPosition }]);
    }
  }
  return out;
}

/** Checks one binary log object (wal-objects.ts checkLogObject) and keeps its record's window facts. Null when the object is gone. */
export async function checkBinlogObject(ctx: WalCheckContext, object: ListedObject, binlogFile: string, previous: WalObjectState | undefined): Promise<WalCheckOutcome | null> {
  return checkLogObject(ctx, object, previous, 'binlog', async (metadata, key) => {
    const { record } = await openBinlogRecord(metadata, ctx.keys.signing, key);
    const binlog = {
      binlogFile,
      flavor: record.flavor,
      gtidStart: record.gtidStart,
      gtidEnd: record.gtidEnd,
      openedAt: record.openedAt,
      closedAt: record.closedAt,
      endsWith: record.endsWith,
      lastCommitAt: record.lastCommitAt,
      serverId: record.serverId,
    };
    const facts = { archivedAt: record.archivedAt, recipientKeyIds: record.recipientKeyIds, binlog };
    // Times decide which file a --to-time replays: a record whose file closes before it opens would misplace it.
    if (Date.parse(record.closedAt) < Date.parse(record.openedAt)) {
      return { record, facts, problem: { check: 'binlog-record', summary: `has a signed record whose file closes (${record.closedAt}) before it opens (${record.openedAt})` } };
    }
    return { record, facts };
  });
}

interface WindowEnd {
  readonly time: string;
  readonly file: string;
  readonly gtid: string;
}
interface WindowStart {
  readonly time: string;
  readonly position: string;
  readonly gtid: string;
  readonly dump: string;
  readonly database: string;
}

/** One hole in a binary log archive, the dumps whose reach it ends and the first dump after it. */
export interface BinlogGapRow extends BinlogGap {
  readonly brokenDumps: readonly string[];
  readonly nextDump: { readonly stamp: string; readonly readAt: string } | null;
}

/** A MySQL/MariaDB PITR source's report row (format/verification-report.ts binlogSourceSchema). */
export interface BinlogPitrRow {
  readonly engine: 'mysql';
  readonly group: string;
  readonly host: string;
  readonly source: string;
  /** The binlog-push interval: how old the newest archived file may be on a quiet server. */
  readonly archiveTimeoutSeconds: number;
  readonly flavor: 'mariadb' | 'mysql' | null;
  readonly serverIds: readonly number[];
  /** Kept dumps (manifests) with a binary log position. */
  readonly dumps: number;
  /** The reachable range that ends furthest: from a dump's position to the newest file reachable from it without a hole. */
  readonly window: { readonly from: WindowStart; readonly to: WindowEnd } | null;
  readonly ranges: readonly { readonly from: WindowStart; readonly to: WindowEnd }[];
  readonly gaps: readonly BinlogGapRow[];
  /** The end of the window: everything committed before `closedAt` is archived, and how old that is. */
  readonly recoveryPoint: { readonly file: string; readonly closedAt: string; readonly ageSeconds: number } | null;
  /** The newest archived file, reachable or not. */
  readonly newest: { readonly file: string; readonly closedAt: string; readonly archivedAt: string | null } | null;
  readonly notes: readonly string[];
  readonly objects: { readonly total: number; readonly checked: number; readonly hashed: number; readonly hashedBytes: number; readonly pending: number; readonly failed: number };
}

function binlogWords(run: PitrRun): ArchiveWords {
  const { group, host, source } = run;
  return {
    kind: 'binlog',
    file: 'binary log',
    object: 'binary log object',
    doNotRely: `A restore refuses this file: do not rely on recovery past it. Look for an older version of the object and for who wrote it (S3 server access logs / CloudTrail data events); take a new dump (coldseal trigger --group ${group.name} --host ${host}) so that later points do not need it.`,
    recipientsAction: `The escrow key may not be able to decrypt these binary logs. Check the recipients in the agent config of group ${group.name}; the next coldseal pitr binlog-push --source ${source} on ${host} uses the configured ones.`,
  };
}

const start = (p: BinlogWindowPoint): WindowStart => ({ time: p.time, position: p.position, gtid: p.gtid, dump: p.dump ?? '', database: p.database ?? '' });
const end = (p: BinlogWindowPoint): WindowEnd => ({ time: p.time, file: p.position, gtid: p.gtid });

/** Whether a file name lies strictly inside a gap (a file listed but not checked in this run is not lost). */
function inside(gap: BinlogGap, name: string): boolean {
  try {
    const n = parseBinlogFileName(name);
    const a = parseBinlogFileName(gap.after);
    return n.basename === a.basename && n.sequence > a.sequence && n.sequence < parseBinlogFileName(gap.before).sequence;
  } catch {
    return false;
  }
}

function checkAction(run: PitrRun, bucket: string): string {
  const { group, host, source } = run;
  return (
    `Look for the missing objects' versions (aws s3api list-object-versions --bucket ${bucket} --prefix ${binlogPrefix(group.name, host, source)}) and at binlog-push on ${host}: its systemd timer (systemctl list-timers 'coldseal*' and its journal), or run coldseal pitr binlog-push --source ${source} by hand; ` +
    `coldseal pitr setup --source ${source} shows whether binlog_expire_logs_seconds keeps the logs longer than the push interval. Take a new dump now (coldseal trigger --group ${group.name} --host ${host}) so that points after the gap can be restored.`
  );
}

function gapFinding(run: PitrRun, bucket: string, gap: BinlogGapRow): Finding {
  const { group, host, source } = run;
  const broken = gap.brokenDumps.length
    ? `replay from dump${gap.brokenDumps.length > 1 ? 's' : ''} ${gap.brokenDumps.join(', ')} stops at the end of ${gap.after} (${gap.fromTime})`
    : `no kept dump reaches it (an earlier hole or a later start), and replay cannot pass the end of ${gap.after}`;
  const after = gap.nextDump
    ? `points in time from ${gap.fromTime} until ${gap.nextDump.readAt} (dump ${gap.nextDump.stamp}) cannot be restored`
    : `no kept dump starts after the gap, so nothing after ${gap.fromTime} can be restored until a new dump is taken`;
  return makeFinding({
    group: group.name,
    host,
    source,
    where: s3(bucket, binlogPrefix(group.name, host, source)),
    subject: `${group.name}/${host}/${source}/binlog/${gap.after}-${gap.before}`,
    check: 'binlog-gap',
    severity: 'fail',
    since: gap.fromTime,
    summary: `binary log archive of ${host}/${source}: ${gap.description}; ${broken}; ${after}`,
    detail: `GTID state ${gap.gtidBefore || '(empty)'} at the end of ${gap.after}, ${gap.gtidAfter || '(empty)'} at the head of ${gap.before}`,
    action: checkAction(run, bucket),
  });
}

/**
 * Failed objects after the newest good file: no later good file shows the hole as a gap yet (the
 * window just ends), but nothing after that file can be replayed, and files missing before the bad
 * one (purged before binlog-push saw them) are hidden behind it. Null when the archive ends well.
 */
function tailFinding(run: PitrRun, bucket: string, files: readonly WindowBinlog[], present: ReadonlyMap<string, WalObjectState | undefined>): { finding: Finding; note: string } | null {
  const newest = [...files].sort((a, b) => b.closedAt.localeCompare(a.closedAt))[0];
  if (!newest) return null;
  const last = parseBinlogFileName(newest.binlogFile);
  const after = (name: string) => {
    try {
      const n = parseBinlogFileName(name);
      return n.basename === last.basename && n.sequence > last.sequence ? n.sequence : null;
    } catch {
      return null;
    }
  };
  const bad = [...run.listed.keys()].filter((name) => !present.has(name) && after(name) !== null).sort((a, b) => after(a)! - after(b)!);
  if (bad.length === 0) return null;
  const listed = new Set([...run.listed.keys()].map(after).filter((n): n is number => n !== null));
  const width = newest.binlogFile.length - last.basename.length - 1;
  const name = (n: number) => `${last.basename}.${String(n).padStart(width, '0')}`;
  const missing: number[] = [];
  for (let n = last.sequence + 1; n < after(bad[bad.length - 1])!; n++) if (!listed.has(n)) missing.push(n);
  const missingText = missing.length === 0 ? '' : `; ${missing.length === 1 ? name(missing[0]) : `${name(missing[0])}–${name(missing[missing.length - 1])}`} ${missing.length === 1 ? 'is' : 'are'} not in the archive at all`;
  const { group, host, source } = run;
  const summary = `binary log archive of ${host}/${source}: nothing after the end of ${newest.binlogFile} (${newest.closedAt}) can be replayed: ${bad.join(', ')} failed ${bad.length === 1 ? 'its' : 'their'} checks${missingText}`;
  return {
    finding: makeFinding({
      group: group.name,
      host,
      source,
      where: s3(bucket, binlogPrefix(group.name, host, source)),
      subject: `${group.name}/${host}/${source}/binlog/${newest.binlogFile}-tail`,
      check: 'binlog-gap',
      severity: 'fail',
      since: newest.closedAt,
      summary,
      action: checkAction(run, bucket),
    }),
    note: `the archive is good up to ${newest.binlogFile}; ${bad.join(', ')} after it failed ${bad.length === 1 ? 'its' : 'their'} checks`,
  };
}

/** The findings and report row of one MySQL/MariaDB source, and its state written back. */
export async function finishBinlogRun(deps: PitrDeps, run: PitrRun, now: Date): Promise<{ findings: Finding[]; row: BinlogPitrRow }> {
  const { group, host, source } = run;
  const at = { group: group.name, host, source };
  const words = binlogWords(run);
  const checked = objectFindings(deps, run, words);
  const findings = [...checked.findings];
  findings.push(...archiveFindings(deps, run, checked.present, { count: checked.pendingCount, oldest: checked.oldestPending }, words, now));

  const files: WindowBinlog[] = [];
  const unchecked: string[] = [];
  for (const [name, state] of checked.present) {
    if (state?.binlog) files.push(state.binlog);
    else unchecked.push(name);
  }
  const window = binlogWindow({ dumps: run.dumps.map((d) => ({ id: d.stamp, database: d.database, position: d.position })), files });
  const notes = [...window.notes];
  if (unchecked.length) notes.push(`${unchecked.length} binary log object${unchecked.length === 1 ? ' was' : 's were'} listed but not checked in this run (time ran out): the window stops before ${unchecked.length === 1 ? 'it' : 'them'} until the next run`);
  const flavors = [...new Set(files.map((f) => f.flavor))];
  const serverIds = [...new Set([...checked.present.values()].flatMap((s) => (s?.binlog ? [s.binlog.serverId] : [])))].sort((a, b) => a - b);
  if (serverIds.length > 1) notes.push(`the archived files name server ids ${serverIds.join(', ')}: a failover or another server writing under this source (continuity is judged on the GTID states)`);

  // Which dumps each hole stops, and the first dump after it from which restores work again.
  const byReadAt = [...window.reaches].filter((r): r is BinlogDumpReach & { to: BinlogWindowPoint } => r.to !== null).sort((a, b) => a.from.time.localeCompare(b.from.time));
  const gaps: BinlogGapRow[] = [];
  for (const gap of window.gaps) {
    if (unchecked.some((name) => inside(gap, name))) continue;
    const brokenDumps = [...new Set(window.reaches.filter((r) => r.brokenBy?.after === gap.after && r.brokenBy.before === gap.before).map((r) => r.dump))];
    const next = byReadAt.find((r) => r.from.time >= gap.toTime);
    gaps.push({ ...gap, missing: [...gap.missing], brokenDumps, nextDump: next ? { stamp: next.dump, readAt: next.from.time } : null });
  }
  for (const gap of gaps) findings.push(gapFinding(run, deps.bucket, gap));
  const tail = tailFinding(run, deps.bucket, files, checked.present);
  if (tail) {
    findings.push(tail.finding);
    notes.push(tail.note);
  }

  const grace = Math.max(DUMP_GRACE_MIN_MS, DUMP_GRACE_INTERVALS * run.archiveTimeoutSeconds * 1000);
  for (const reach of window.reaches) {
    const dump = run.dumps.find((d) => d.stamp === reach.dump && d.database === reach.database)!;
    if (reach.to === null) {
      // A hole at the dump's own start file is reported above; a dump just taken waits for its file's push.
      if (gaps.some((g) => inside(g, dump.position.file)) || now.getTime() - Date.parse(dump.position.readAt) < grace) continue;
      findings.push(makeFinding({ ...at, where: s3(deps.bucket, dump.manifestKey), subject: `${dump.manifestKey}:binlog:${dump.database}`, check: 'wal-no-window', severity: 'fail', since: dump.position.readAt, summary: `dump ${dump.stamp} of ${host}/${source} (database ${dump.database}) reaches no point in time with the archived binary logs: ${reach.problems.join('; ')}`, action: checkAction(run, deps.bucket) }));
    } else if (reach.problems.length) {
      findings.push(makeFinding({ ...at, where: s3(deps.bucket, dump.manifestKey), subject: `${dump.manifestKey}:binlog-gtid:${dump.database}`, check: 'wal-no-window', severity: 'warn', since: dump.position.readAt, summary: `dump ${dump.stamp} of ${host}/${source} (database ${dump.database}) and the binary log archive disagree: ${reach.problems.join('; ')}`, action: `A restore from this dump may replay transactions twice or miss some: restore from another dump, and check that the dump and binlog-push on ${host} read the same server (coldseal pitr setup --source ${source}).` }));
    }
  }
  if (checked.present.size > 0 && run.dumps.length === 0) {
    const oldest = [...checked.present.keys()].map((n) => run.listed.get(n)!.lastModified.toISOString()).sort()[0];
    findings.push(makeFinding({ ...at, where: s3(deps.bucket, binlogPrefix(group.name, host, source)), subject: `${group.name}/${host}/${source}:no-dump`, check: 'wal-no-window', severity: 'warn', since: oldest, summary: `${host}/${source} archives binary logs (${checked.present.size} files) but has no kept dump with a binary log position: there is no recovery window`, action: `A PITR source's dumps record their position (pitr.enabled on the source, coldseal pitr setup --source ${source}); take one now: coldseal trigger --group ${group.name} --host ${host}.` }));
  }

  const newestState = window.newest ? [...checked.present.values()].find((s) => s?.binlog?.binlogFile === window.newest!.binlogFile) : undefined;
  const row: BinlogPitrRow = {
    engine: 'mysql',
    group: group.name,
    host,
    source,
    archiveTimeoutSeconds: run.archiveTimeoutSeconds,
    flavor: flavors.length === 1 ? flavors[0] : (window.newest?.flavor ?? null),
    serverIds,
    dumps: new Set(run.dumps.map((d) => d.stamp)).size,
    window: window.from && window.to ? { from: start(window.from), to: end(window.to) } : null,
    ranges: window.ranges.map((r) => ({ from: start(r.from), to: end(r.to) })),
    gaps,
    recoveryPoint: window.to ? { file: window.to.position, closedAt: window.to.time, ageSeconds: Math.max(0, Math.round((now.getTime() - Date.parse(window.to.time)) / 1000)) } : null,
    newest: window.newest ? { file: window.newest.binlogFile, closedAt: window.newest.closedAt, archivedAt: newestState?.archivedAt ?? null } : null,
    notes,
    objects: { total: run.listed.size, checked: run.checked, hashed: run.hashed, hashedBytes: run.hashedBytes, pending: checked.pendingCount, failed: checked.failed },
  };
  await saveRunState(deps, run);
  return { findings, row };
}

export function binlogSummaryLine(row: BinlogPitrRow): string {
  const window = row.window ? `window ${row.window.from.time} to ${row.window.to.time}` : 'no recovery window';
  const point = row.recoveryPoint ? `recovery point ${formatAge(row.recoveryPoint.ageSeconds)} old (${row.recoveryPoint.file})` : 'no recovery point';
  const gaps = row.gaps.length ? `${row.gaps.length} GAP${row.gaps.length === 1 ? '' : 'S'}` : 'no gaps';
  return `PITR ${row.group}/${row.host}/${row.source} (binary logs): ${window}, ${point}, ${gaps}; ${row.objects.total} binary log objects, ${row.objects.checked} checked now (${formatBytes(row.objects.hashedBytes)} hashed)${row.objects.failed ? `, ${row.objects.failed} FAILED` : ''}`;
}
