import { parseKey, WAL_PREFIX } from '../../../format/layout';
import type { GroupSettings } from '../../../format/lambda-settings';
import type { Manifest } from '../../../format/manifest';
import { recoveryWindow, type RecoveryPoint, type RecoveryWindow, type WindowBaseBackup } from '../../../format/recovery-window';
import { compareLsn, historyFileName, parseLsn, parseWalFileName, segmentFileName, segmentNumberOf } from '../../../format/wal';
import { formatBytes } from '../../../runtime/byte-size';
import { mapLimit } from '../../../runtime/concurrency';
import { makeFinding, type Finding } from '../../shared/findings';
import type { BucketStore, ListedObject, Log } from '../../shared/ports';
import type { Budget } from './hashing';
import type { GroupKeys } from './keys';
import { checkBinlogObject, finishBinlogRun, binlogSummaryLine, type BinlogPitrRow, type KeptDump } from './binlog-pitr';
import { archiveFindings, formatAge, objectFindings, s3, saveRunState, type ArchiveWords } from './log-archive';
import { checkWalObject, loadWalState, objectIdentity, walStateKey, type WalObjectState } from './wal-objects';

export { formatAge };

/**
 * The verifier's part of point-in-time recovery, per PITR source (group settings `pitrSources`) and
 * host: every archived WAL object checked (wal-objects.ts, incrementally), then the archive's
 * continuity from each kept base backup to the newest archived WAL (format/recovery-window.ts, the
 * same window `coldseal list` shows). A bad object is
 * a FAIL naming its segment and counts as missing for continuity, so the FAIL of the hole it leaves
 * names the recovery window it breaks too. A MySQL/MariaDB source (engine "mysql") is listed and
 * its objects checked here too, in the same phases and budget; its continuity and findings are
 * binlog-pitr.ts's.
 *
 * The sweep calls it in phases so that one hashing budget serves backups and WAL in the order that
 * matters: new backups, new WAL, re-reads of backups, then the daily sample of older WAL.
 */

/** HEAD + ranged GET per object; WAL objects are small, so latency dominates. */
const WAL_CONCURRENCY = 8;
/** A sampled re-read skips what was hashed this recently. */
const RESAMPLE_MIN_AGE_MS = 24 * 3_600_000;
/** A base backup's manifest is written once its WAL is archived; an hour covers a slow archiver before "reaches nothing" is a FAIL. */
const BASE_GRACE_MS = 3_600_000;

/** A kept base backup as the window needs it (id: its stamp), with where its manifest is. */
export type KeptBaseBackup = WindowBaseBackup & { readonly manifestKey: string; readonly stopWalFile: string };

/** One hole in the archive and the part of the recovery window it breaks. */
export interface BrokenWindow {
  /** First and last missing segment file (inclusive), on one timeline. */
  readonly from: string;
  readonly to: string;
  readonly timeline: number;
  readonly segments: number;
  /** Replay from the base backups below stops here ("X/Y"). */
  readonly breaksAt: string;
  readonly resumesAt: string;
  /** The archived segment just before the hole, and its archive time: the last point still reachable through it. */
  readonly lastBefore: { readonly segment: string; readonly archivedAt: string } | null;
  /** Base backups (stamps) whose reach the hole ends. */
  readonly brokenBases: readonly string[];
  /** The first kept base backup after the hole that reaches a consistent point: restores work again from its stop. */
  readonly nextBase: { readonly stamp: string; readonly stoppedAt: string } | null;
}

export interface PitrRun {
  readonly group: GroupSettings;
  readonly host: string;
  readonly source: string;
  /** Which archive: WAL under timelines (postgres) or binary logs under binlog/ (mysql). */
  readonly engine: 'postgres' | 'mysql';
  readonly keys: GroupKeys;
  readonly archiveTimeoutSeconds: number;
  /** The objects listed now, by WAL (or binary log) file name. */
  readonly listed: Map<string, ListedObject>;
  readonly objects: Map<string, WalObjectState>;
  readonly bases: KeptBaseBackup[];
  /** A MySQL source's kept dumps with a binary log position (empty for PostgreSQL). */
  readonly dumps: KeptDump[];
  readonly stateKey: string;
  checked: number;
  hashed: number;
  hashedBytes: number;
}

export interface PitrDeps {
  readonly store: BucketStore;
  readonly log: Log;
  readonly bucket: string;
  readonly reverifyDays: number;
  /** Milliseconds the run may still spend (the Lambda's time left minus the margin). */
  readonly remainingMs: () => number;
}

/** The base backups of checked manifests (kind "cluster"), by group/host/source. */
export function keptBaseBackups(manifests: Iterable<{ manifestKey: string; manifest: Manifest }>): Map<string, KeptBaseBackup[]> {
  const out = new Map<string, KeptBaseBackup[]>();
  for (const { manifestKey, manifest } of manifests) {
    for (const artifact of manifest.artifacts) {
      const b = artifact.baseBackup;
      if (artifact.kind !== 'cluster' || !b) continue;
      const id = `${manifest.group}/${manifest.host}/${manifest.source}`;
      out.set(id, [
        ...(out.get(id) ?? []),
        { id: manifest.stamp, manifestKey, timeline: b.timeline, startLsn: b.startLsn, stopLsn: b.stopLsn, stopWalFile: b.stopWalFile, stoppedAt: b.stoppedAt, systemIdentifier: b.systemIdentifier, walSegmentSize: b.walSegmentSize },
      ]);
    }
  }
  return out;
}

/** Lists each PITR group's log archive once and loads each source's state: one run per (host, PITR source) seen or expected. */
export async function preparePitr(
  deps: PitrDeps,
  groups: readonly GroupSettings[],
  keysByGroup: ReadonlyMap<string, GroupKeys>,
  bases: ReadonlyMap<string, KeptBaseBackup[]>,
  dumps: ReadonlyMap<string, KeptDump[]> = new Map(),
): Promise<PitrRun[]> {
  const runs: PitrRun[] = [];
  for (const group of groups) {
    const pitrSources = group.pitrSources ?? [];
    const keys = keysByGroup.get(group.name);
    // Without the group's keys nothing can be checked; the caller reports that once per group.
    if (pitrSources.length === 0 || !keys || keys.problem) continue;
    // By engine, then host/source, then file name: a source's WAL and binary logs never mix.
    const listed = { postgres: new Map<string, Map<string, ListedObject>>(), mysql: new Map<string, Map<string, ListedObject>>() };
    for (const object of await deps.store.list(`${WAL_PREFIX}${group.name}/`)) {
      const parsed = parseKey(object.key);
      if (parsed?.kind !== 'wal' && parsed?.kind !== 'binlog') continue;
      const id = `${parsed.host}/${parsed.source}`;
      const byEngine = parsed.kind === 'wal' ? listed.postgres : listed.mysql;
      const byName = byEngine.get(id) ?? new Map<string, ListedObject>();
      byName.set(parsed.kind === 'wal' ? parsed.walFile : parsed.binlogFile, object);
      byEngine.set(id, byName);
    }
    for (const { source, archiveTimeoutSeconds, engine: configured } of pitrSources) {
      const engine = configured === 'mysql' ? 'mysql' : 'postgres';
      const kept = engine === 'mysql' ? dumps : bases;
      const hosts = new Set(group.hosts);
      for (const id of listed[engine].keys()) if (id.endsWith(`/${source}`)) hosts.add(id.slice(0, id.indexOf('/')));
      for (const id of kept.keys()) if (id.startsWith(`${group.name}/`) && id.endsWith(`/${source}`)) hosts.add(id.split('/')[1]);
      for (const host of [...hosts].sort()) {
        const stateKey = walStateKey(group.name, host, source);
        const state = await loadWalState(deps.store, stateKey);
        runs.push({
          group,
          host,
          source,
          engine,
          keys,
          archiveTimeoutSeconds,
          listed: listed[engine].get(`${host}/${source}`) ?? new Map(),
          objects: new Map(Object.entries(state.objects)),
          bases: engine === 'postgres' ? (bases.get(`${group.name}/${host}/${source}`) ?? []) : [],
          dumps: engine === 'mysql' ? (dumps.get(`${group.name}/${host}/${source}`) ?? []) : [],
          stateKey,
          checked: 0,
          hashed: 0,
          hashedBytes: 0,
        });
      }
    }
  }
  return runs;
}

type Work = { run: PitrRun; walFile: string; object: ListedObject; fresh: boolean };

/**
 * phase 'new': every object not checked yet or changed since (its record always; its hash while the
 * budget lasts), then the pending hashes of earlier runs. phase 'sample': the daily re-read of
 * older objects, the least recently hashed first, 1/reverifyDays of each source per day, so every
 * object is read again about every reverifyDays days.
 */
export async function checkPitrObjects(deps: PitrDeps, runs: readonly PitrRun[], budget: Budget, now: Date, phase: 'new' | 'sample'): Promise<void> {
  const fresh: Work[] = [];
  const pending: Work[] = [];
  const sample: Work[] = [];
  for (const run of runs) {
    const reread: Work[] = [];
    for (const [walFile, object] of run.listed) {
      const known = run.objects.get(walFile);
      if (!known || known.identity !== objectIdentity(object) || known.size !== object.size) fresh.push({ run, walFile, object, fresh: true });
      else if (known.problem) continue;
      else if (known.hashedAt === null) pending.push({ run, walFile, object, fresh: false });
      else if (now.getTime() - Date.parse(known.hashedAt) >= RESAMPLE_MIN_AGE_MS) reread.push({ run, walFile, object, fresh: false });
    }
    const quota = Math.ceil(run.listed.size / Math.max(1, deps.reverifyDays));
    sample.push(...reread.sort((a, b) => run.objects.get(a.walFile)!.hashedAt!.localeCompare(run.objects.get(b.walFile)!.hashedAt!)).slice(0, quota));
  }
  const newestFirst = (a: Work, b: Work) => b.object.lastModified.getTime() - a.object.lastModified.getTime() || b.walFile.localeCompare(a.walFile);
  const work = phase === 'new' ? [...fresh.sort(newestFirst), ...pending.sort(newestFirst)] : sample;
  await mapLimit(work, WAL_CONCURRENCY, async ({ run, walFile, object, fresh: isFresh }) => {
    // A new object's record is checked whatever the byte budget (a HEAD and 4 KiB); a pending hash or a re-read needs the budget.
    if (deps.remainingMs() <= 0 || (!isFresh && budget.exhausted)) return;
    const check = run.engine === 'mysql' ? checkBinlogObject : checkWalObject;
    const outcome = await check({ store: deps.store, keys: run.keys, budget, now }, object, walFile, run.objects.get(walFile));
    if (!outcome) {
      run.listed.delete(walFile);
      return;
    }
    run.objects.set(walFile, outcome.state);
    run.checked++;
    if (outcome.hashedBytes > 0) {
      run.hashed++;
      run.hashedBytes += outcome.hashedBytes;
    }
    deps.log.debug(run.engine === 'mysql' ? 'binary log object checked' : 'WAL object checked', { key: object.key, hashed: outcome.hashedBytes, problem: outcome.state.problem?.check });
  });
}

type Point = { readonly lsn: string; readonly time: string; readonly timeline: number };

export interface PitrRow {
  readonly engine?: 'postgres';
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly archiveTimeoutSeconds: number;
  readonly systemIdentifier: string | null;
  readonly walSegmentSize: number | null;
  readonly baseBackups: number;
  /** The reachable range that ends furthest: from a base backup's stop to the newest WAL reachable from it without a hole. */
  readonly window: { readonly from: Point & { readonly baseBackup: string }; readonly to: Point & { readonly segment: string } } | null;
  /** Every reachable range, oldest first (earlier ones end at a hole). */
  readonly ranges: readonly { readonly from: Point & { readonly baseBackup: string }; readonly to: Point & { readonly segment: string } }[];
  readonly gaps: readonly BrokenWindow[];
  readonly timelines: readonly number[];
  /** The end of the window: the newest point a restore reaches today, and how old it is. */
  readonly recoveryPoint: { readonly segment: string; readonly archivedAt: string; readonly ageSeconds: number } | null;
  /** The newest archived segment, reachable or not. */
  readonly newestArchivedAt: string | null;
  /** What the window assumes (timelines followed by name, left-out base backups). */
  readonly notes: readonly string[];
  readonly objects: { readonly total: number; readonly checked: number; readonly hashed: number; readonly hashedBytes: number; readonly pending: number; readonly failed: number };
}


function mostCommon(values: readonly string[]): string | undefined {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0]?.[0];
}

function gapFinding(run: PitrRun, bucket: string, gap: BrokenWindow, now: Date): Finding {
  const { group, host, source } = run;
  const at = { group: group.name, host, source, where: s3(bucket, `${WAL_PREFIX}${group.name}/${host}/${source}/${gap.from.slice(0, 8)}/`) };
  const range = gap.from === gap.to ? `WAL segment ${gap.from}` : `WAL segments ${gap.from} to ${gap.to}`;
  const lastTime = gap.lastBefore?.archivedAt ?? null;
  const reachable = gap.lastBefore ? `the last point reachable before it is the end of ${gap.lastBefore.segment}${lastTime ? ` (archived ${lastTime})` : ''}` : 'nothing after the start of the base backup is reachable';
  const broken = gap.brokenBases.length
    ? `recovery from base backup${gap.brokenBases.length > 1 ? 's' : ''} ${gap.brokenBases.join(', ')} stops at LSN ${gap.breaksAt}`
    : `no kept base backup reaches it (an earlier hole stops them first), and replay cannot pass LSN ${gap.breaksAt}`;
  const after = gap.nextBase
    ? `points in time from ${lastTime ?? `LSN ${gap.breaksAt}`} until ${gap.nextBase.stoppedAt} (the stop of base backup ${gap.nextBase.stamp}) cannot be restored`
    : `no kept base backup starts after the gap, so nothing after ${lastTime ?? `LSN ${gap.breaksAt}`} can be restored until a new base backup is taken`;
  return makeFinding({
    ...at,
    subject: `${group.name}/${host}/${source}/${gap.from}-${gap.to}`,
    check: 'wal-gap',
    severity: 'fail',
    since: lastTime ?? now.toISOString(),
    summary: `${range} (timeline ${gap.timeline}, ${gap.segments} segment${gap.segments === 1 ? '' : 's'}, LSN ${gap.breaksAt} to ${gap.resumesAt}) missing from the WAL archive of ${host}/${source}: ${broken}; ${reachable}; ${after}`,
    detail: `recovery window broken at LSN ${gap.breaksAt}${gap.brokenBases.length ? ` for base backup${gap.brokenBases.length > 1 ? 's' : ''} ${gap.brokenBases.join(', ')}` : ''}; WAL resumes at ${gap.resumesAt}${gap.nextBase ? `; base backup ${gap.nextBase.stamp} restores again from ${gap.nextBase.stoppedAt}` : ''}`,
    action: `Look for the missing objects' versions (aws s3api list-object-versions --bucket ${bucket} --prefix ${WAL_PREFIX}${group.name}/${host}/${source}/${gap.from.slice(0, 8)}/) and at the archiver on ${host} (pg_stat_archiver, pg_wal/archive_status). Take a new base backup now (coldseal trigger --group ${group.name} --host ${host}) so that points after the gap can be restored.`,
  });
}

/** The window's holes, with what a person needs to judge them: the last point before, and the base backup after. */
function brokenWindows(window: RecoveryWindow, bases: readonly KeptBaseBackup[], files: readonly { walFile: string; archivedAt: string }[], segSize: number): BrokenWindow[] {
  const segmentsAt = new Map<bigint, { walFile: string; archivedAt: string }[]>();
  for (const f of files) {
    if (parseWalFileName(f.walFile).kind !== 'segment') continue;
    const n = segmentNumberOf(f.walFile, segSize);
    segmentsAt.set(n, [...(segmentsAt.get(n) ?? []), f]);
  }
  const reaching = new Set(window.bases.filter((r) => r.range).map((r) => r.id));
  const byStop = [...bases].sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt));
  return window.gaps.map((g) => {
    const lo = segmentNumberOf(g.from, segSize);
    const hi = segmentNumberOf(g.to, segSize);
    // The newest timeline's copy of the segment before the hole is the one recovery would have read.
    const before = (segmentsAt.get(lo - 1n) ?? []).sort((x, y) => x.walFile.localeCompare(y.walFile)).pop();
    const next = byStop.find((b) => !g.breaks.includes(b.id) && reaching.has(b.id) && compareLsn(parseLsn(b.startLsn), parseLsn(g.resumesAt)) >= 0);
    return {
      from: g.from,
      to: g.to,
      timeline: g.timeline,
      segments: Number(hi - lo + 1n),
      breaksAt: g.breaksAt,
      resumesAt: g.resumesAt,
      lastBefore: before ? { segment: before.walFile, archivedAt: before.archivedAt } : null,
      brokenBases: g.breaks,
      nextBase: next ? { stamp: next.id, stoppedAt: next.stoppedAt } : null,
    };
  });
}

/** Timelines with archived segments but no .history object: recovery (target 'latest') cannot follow them. */
function timelinesWithoutHistory(files: readonly { walFile: string }[], segSize: number): { timeline: number; firstSegment: string; segments: number }[] {
  const names = new Set(files.map((f) => f.walFile));
  const byTimeline = new Map<number, bigint[]>();
  for (const { walFile } of files) {
    const parsed = parseWalFileName(walFile);
    if (parsed.kind !== 'segment' || parsed.timeline === 1) continue;
    byTimeline.set(parsed.timeline, [...(byTimeline.get(parsed.timeline) ?? []), segmentNumberOf(walFile, segSize)]);
  }
  return [...byTimeline]
    .filter(([tl]) => !names.has(historyFileName(tl)))
    .sort((a, b) => a[0] - b[0])
    .map(([timeline, segnos]) => ({ timeline, firstSegment: segmentFileName(timeline, segnos.reduce((x, y) => (y < x ? y : x)), segSize), segments: segnos.length }));
}

function walWords(run: PitrRun): ArchiveWords {
  const { group, host } = run;
  return {
    kind: 'wal',
    file: 'WAL file',
    object: 'WAL object',
    doNotRely: `A restore stops at this segment (restore_command refuses it): do not rely on recovery past it. Look for an older version of the object and for who wrote it (S3 server access logs / CloudTrail data events); take a new base backup (coldseal trigger --group ${group.name} --host ${host}) so that later points do not need it.`,
    recipientsAction: `The escrow key may not be able to decrypt this WAL. Check the recipients in the agent config of group ${group.name} and restart archiving on ${host} with the right keys.`,
  };
}

/** Findings and report rows of every run, and each source's state written back (objects no longer listed dropped). */
export async function finishPitr(deps: PitrDeps, runs: readonly PitrRun[], now: Date): Promise<{ findings: Finding[]; rows: Array<PitrRow | BinlogPitrRow> }> {
  const findings: Finding[] = [];
  const rows: Array<PitrRow | BinlogPitrRow> = [];
  for (const run of runs) {
    if (run.engine === 'mysql') {
      const finished = await finishBinlogRun(deps, run, now);
      findings.push(...finished.findings);
      rows.push(finished.row);
      continue;
    }
    const { group, host, source } = run;
    const at = { group: group.name, host, source };
    const words = walWords(run);
    const { doNotRely } = words;
    const objectsChecked = objectFindings(deps, run, words);
    findings.push(...objectsChecked.findings);
    const { present, pendingCount, oldestPending } = objectsChecked;
    let failed = objectsChecked.failed;

    // One cluster per system identifier: the kept base backups say which; without one, the records' majority.
    const bases = run.bases;
    const clusters = new Set(bases.map((b) => b.systemIdentifier));
    const known = [...present.values()].filter((s): s is WalObjectState => s?.systemIdentifier !== undefined);
    if (clusters.size === 0) {
      const majority = mostCommon(known.map((s) => s.systemIdentifier!));
      if (majority) clusters.add(majority);
    }
    const sizeOf = new Map<string, number>();
    for (const b of [...bases].sort((x, y) => x.stoppedAt.localeCompare(y.stoppedAt))) sizeOf.set(b.systemIdentifier, b.walSegmentSize);
    for (const [walFile, state] of present) {
      if (!state?.systemIdentifier) continue;
      const object = run.listed.get(walFile)!;
      let problem: string | undefined;
      if (!clusters.has(state.systemIdentifier)) problem = `belongs to another cluster: its signed record says system identifier ${state.systemIdentifier}, this source's ${bases.length ? 'base backups say' : 'other WAL says'} ${[...clusters].join(', ')}`;
      else if (sizeOf.has(state.systemIdentifier) && state.walSegmentSize !== sizeOf.get(state.systemIdentifier)) problem = `says wal_segment_size ${state.walSegmentSize}, the cluster's base backups ${sizeOf.get(state.systemIdentifier)}`;
      if (!problem) continue;
      failed++;
      present.delete(walFile);
      findings.push(makeFinding({ ...at, where: s3(deps.bucket, object.key), subject: object.key, check: 'wal-record', severity: 'fail', since: object.lastModified.toISOString(), summary: `WAL file ${walFile} of ${host}/${source} ${problem}`, action: `WAL of another cluster never belongs in this archive: find which host wrote it (its record names the signer). ${doNotRely}` }));
    }

    findings.push(...archiveFindings(deps, run, present, { count: pendingCount, oldest: oldestPending }, words, now));

    // Continuity, as `coldseal list` computes it (format/recovery-window.ts): the cluster of the
    // newest kept base backup. No .history content: the verifier holds no private key, so each
    // timeline switch is assumed at the new timeline's first archived segment (said in the notes).
    const archivedAt = (walFile: string) => present.get(walFile)?.archivedAt ?? run.listed.get(walFile)!.lastModified.toISOString();
    const newestBase = [...bases].sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt)).pop();
    const cluster = newestBase?.systemIdentifier ?? [...clusters][0];
    const files = [...present].filter(([, s]) => !s?.systemIdentifier || s.systemIdentifier === cluster).map(([walFile]) => ({ walFile, archivedAt: archivedAt(walFile) }));
    const window = recoveryWindow({ files, histories: new Map(), bases });
    const segSize = window.walSegmentSize ?? known.find((s) => s.systemIdentifier === cluster)?.walSegmentSize ?? null;
    const gaps = segSize ? brokenWindows(window, bases, files, segSize) : [];
    for (const gap of gaps) findings.push(gapFinding(run, deps.bucket, gap, now));
    for (const tl of segSize ? timelinesWithoutHistory(files, segSize) : []) {
      findings.push(makeFinding({ ...at, where: s3(deps.bucket, `${WAL_PREFIX}${group.name}/${host}/${source}/${tl.firstSegment.slice(0, 8)}/`), subject: `${group.name}/${host}/${source}:timeline-${tl.timeline}`, check: 'wal-timeline', severity: 'fail', since: archivedAt(tl.firstSegment), summary: `timeline ${tl.timeline} of ${host}/${source} has ${tl.segments} archived segment${tl.segments === 1 ? '' : 's'} (from ${tl.firstSegment}) but no ${historyFileName(tl.timeline)}: recovery cannot follow it`, action: `Check the archiver on ${host}: PostgreSQL archives the .history file when the timeline starts. Archive it from pg_wal if it is still there, or take a new base backup on this timeline (coldseal trigger --group ${group.name} --host ${host}).` }));
    }
    for (const reach of window.bases) {
      const b = bases.find((x) => x.id === reach.id);
      // A hole that stops it is reported above; a base backup just taken may wait for its last segment.
      if (!b || reach.range || gaps.some((g) => g.brokenBases.includes(reach.id)) || now.getTime() - Date.parse(b.stoppedAt) < BASE_GRACE_MS) continue;
      findings.push(makeFinding({ ...at, where: s3(deps.bucket, b.manifestKey), subject: `${b.manifestKey}:wal`, check: 'wal-no-window', severity: 'fail', since: b.stoppedAt, summary: `base backup ${reach.id} of ${host}/${source} reaches no point in time with the archived WAL: ${reach.problem ?? 'its WAL is not in the archive'}`, action: `Check the WAL archive of ${host} (timelines, history files) and take a new base backup (coldseal trigger --group ${group.name} --host ${host}).` }));
    }
    if (present.size > 0 && bases.length === 0) {
      const oldest = [...present.keys()].map((n) => run.listed.get(n)!.lastModified.toISOString()).sort()[0];
      findings.push(makeFinding({ ...at, where: s3(deps.bucket, `${WAL_PREFIX}${group.name}/${host}/${source}/`), subject: `${group.name}/${host}/${source}:no-base`, check: 'wal-no-window', severity: 'warn', since: oldest, summary: `${host}/${source} archives WAL (${present.size} files) but has no kept base backup: there is no recovery window`, action: `Schedule base backups for this source (its pitr.baseBackup setting) or take one now: coldseal trigger --group ${group.name} --host ${host}.` }));
    }

    const to = window.to;
    const asRange = (r: { from: RecoveryPoint; to: RecoveryPoint }) => ({ from: { lsn: r.from.lsn, time: r.from.time, timeline: r.from.timeline, baseBackup: r.from.base ?? '' }, to: { lsn: r.to.lsn, time: r.to.time, timeline: r.to.timeline, segment: r.to.segment ?? '' } });
    rows.push({
      group: group.name,
      host,
      source,
      archiveTimeoutSeconds: run.archiveTimeoutSeconds,
      systemIdentifier: cluster ?? null,
      walSegmentSize: segSize,
      baseBackups: bases.length,
      window: window.from && to ? asRange({ from: window.from, to }) : null,
      ranges: window.ranges.map(asRange),
      gaps,
      timelines: [...new Set(files.filter((f) => parseWalFileName(f.walFile).kind === 'segment').map((f) => parseWalFileName(f.walFile).timeline))].sort((x, y) => x - y),
      recoveryPoint: to?.segment ? { segment: to.segment, archivedAt: to.time, ageSeconds: Math.max(0, Math.round((now.getTime() - Date.parse(to.time)) / 1000)) } : null,
      newestArchivedAt: window.newestSegment?.archivedAt ?? null,
      notes: window.notes,
      objects: { total: run.listed.size, checked: run.checked, hashed: run.hashed, hashedBytes: run.hashedBytes, pending: pendingCount, failed },
    });

    await saveRunState(deps, run);
  }
  return { findings, rows };
}

export function pitrSummaryLine(row: PitrRow | BinlogPitrRow): string {
  if (row.engine === 'mysql') return binlogSummaryLine(row);
  const window = row.window ? `window ${row.window.from.time} to ${row.window.to.time}` : 'no recovery window';
  const point = row.recoveryPoint ? `recovery point ${formatAge(row.recoveryPoint.ageSeconds)} old` : 'no recovery point';
  const gaps = row.gaps.length ? `${row.gaps.length} GAP${row.gaps.length === 1 ? '' : 'S'}` : 'no gaps';
  return `PITR ${row.group}/${row.host}/${row.source}: ${window}, ${point}, ${gaps}; ${row.objects.total} WAL objects, ${row.objects.checked} checked now (${formatBytes(row.objects.hashedBytes)} hashed)${row.objects.failed ? `, ${row.objects.failed} FAILED` : ''}`;
}

