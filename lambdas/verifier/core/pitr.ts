import { parseKey, WAL_PREFIX } from '../../../format/layout';
import type { GroupSettings } from '../../../format/lambda-settings';
import type { Manifest } from '../../../format/manifest';
import { parseWalFileName } from '../../../format/wal';
import { formatBytes } from '../../../runtime/byte-size';
import { mapLimit } from '../../../runtime/concurrency';
import { makeFinding, type Finding } from '../../shared/findings';
import type { BucketStore, ListedObject, Log } from '../../shared/ports';
import type { Budget } from './hashing';
import type { GroupKeys } from './keys';
import { checkWalObject, loadWalState, objectIdentity, sameKeyIds, walStateKey, WAL_STATE_SCHEMA, type WalObjectState } from './wal-objects';
import { recoveryWindow, type BrokenWindow, type KeptBaseBackup, type RecoveryWindow } from './wal-window';

/**
 * The verifier's part of point-in-time recovery, per PITR source (group settings `pitrSources`) and
 * host: every archived WAL object checked (wal-objects.ts, incrementally), then the archive's
 * continuity from each kept base backup to the newest archived WAL (wal-window.ts). A bad object is
 * a FAIL naming its segment and counts as missing for continuity, so the FAIL of the hole it leaves
 * names the recovery window it breaks too.
 *
 * The sweep calls it in phases so that one hashing budget serves backups and WAL in the order that
 * matters: new backups, new WAL, re-reads of backups, then the daily sample of older WAL.
 */

/** HEAD + ranged GET per object; WAL objects are small, so latency dominates. */
const WAL_CONCURRENCY = 8;
/** A WAL object not hashed a day after it was first seen is worth a warning (as for backups). */
const PENDING_GRACE_MS = 24 * 3_600_000;
/** A sampled re-read skips what was hashed this recently. */
const RESAMPLE_MIN_AGE_MS = 24 * 3_600_000;

export interface PitrRun {
  readonly group: GroupSettings;
  readonly host: string;
  readonly source: string;
  readonly keys: GroupKeys;
  readonly archiveTimeoutSeconds: number;
  /** The objects listed now, by WAL file name. */
  readonly listed: Map<string, ListedObject>;
  readonly objects: Map<string, WalObjectState>;
  readonly bases: KeptBaseBackup[];
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
        { stamp: manifest.stamp, manifestKey, timeline: b.timeline, startLsn: b.startLsn, stopLsn: b.stopLsn, stopWalFile: b.stopWalFile, stoppedAt: b.stoppedAt, systemIdentifier: b.systemIdentifier, walSegmentSize: b.walSegmentSize },
      ]);
    }
  }
  return out;
}

/** Lists each PITR group's WAL and loads each source's state: one run per (host, PITR source) seen or expected. */
export async function preparePitr(deps: PitrDeps, groups: readonly GroupSettings[], keysByGroup: ReadonlyMap<string, GroupKeys>, bases: ReadonlyMap<string, KeptBaseBackup[]>): Promise<PitrRun[]> {
  const runs: PitrRun[] = [];
  for (const group of groups) {
    const pitrSources = group.pitrSources ?? [];
    const keys = keysByGroup.get(group.name);
    // Without the group's keys nothing can be checked; the caller reports that once per group.
    if (pitrSources.length === 0 || !keys || keys.problem) continue;
    const listed = new Map<string, Map<string, ListedObject>>();
    for (const object of await deps.store.list(`${WAL_PREFIX}${group.name}/`)) {
      const parsed = parseKey(object.key);
      if (parsed?.kind !== 'wal') continue;
      const id = `${parsed.host}/${parsed.source}`;
      const byName = listed.get(id) ?? new Map<string, ListedObject>();
      byName.set(parsed.walFile, object);
      listed.set(id, byName);
    }
    for (const { source, archiveTimeoutSeconds } of pitrSources) {
      const hosts = new Set(group.hosts);
      for (const id of listed.keys()) if (id.endsWith(`/${source}`)) hosts.add(id.slice(0, id.indexOf('/')));
      for (const id of bases.keys()) if (id.startsWith(`${group.name}/`) && id.endsWith(`/${source}`)) hosts.add(id.split('/')[1]);
      for (const host of [...hosts].sort()) {
        const stateKey = walStateKey(group.name, host, source);
        const state = await loadWalState(deps.store, stateKey);
        runs.push({
          group,
          host,
          source,
          keys,
          archiveTimeoutSeconds,
          listed: listed.get(`${host}/${source}`) ?? new Map(),
          objects: new Map(Object.entries(state.objects)),
          bases: bases.get(`${group.name}/${host}/${source}`) ?? [],
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
    const outcome = await checkWalObject({ store: deps.store, keys: run.keys, budget, now }, object, walFile, run.objects.get(walFile));
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
    deps.log.debug('WAL object checked', { key: object.key, hashed: outcome.hashedBytes, problem: outcome.state.problem?.check });
  });
}

export interface PitrRow {
  readonly group: string;
  readonly host: string;
  readonly source: string;
  readonly archiveTimeoutSeconds: number;
  readonly systemIdentifier: string | null;
  readonly walSegmentSize: number | null;
  readonly baseBackups: number;
  readonly window: RecoveryWindow['window'];
  readonly gaps: readonly BrokenWindow[];
  readonly timelines: readonly number[];
  /** The newest archived WAL reachable from a kept base backup: the point a restore can reach today. */
  readonly recoveryPoint: { readonly segment: string; readonly archivedAt: string; readonly ageSeconds: number } | null;
  readonly newestArchivedAt: string | null;
  readonly objects: { readonly total: number; readonly checked: number; readonly hashed: number; readonly hashedBytes: number; readonly pending: number; readonly failed: number };
}

const s3 = (bucket: string, key: string) => `s3://${bucket}/${key}`;

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
  const broken = `recovery from base backup${gap.brokenBases.length > 1 ? 's' : ''} ${gap.brokenBases.join(', ')} stops at LSN ${gap.breaksAt}`;
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
    detail: `recovery window broken: base backup${gap.brokenBases.length > 1 ? 's' : ''} ${gap.brokenBases.join(', ')} reach${gap.brokenBases.length > 1 ? '' : 'es'} at most LSN ${gap.breaksAt}; WAL resumes at ${gap.resumesAt}${gap.nextBase ? `; base backup ${gap.nextBase.stamp} restores again from ${gap.nextBase.stoppedAt}` : ''}`,
    action: `Look for the missing objects' versions (aws s3api list-object-versions --bucket ${bucket} --prefix ${WAL_PREFIX}${group.name}/${host}/${source}/${gap.from.slice(0, 8)}/) and at the archiver on ${host} (pg_stat_archiver, pg_wal/archive_status). Take a new base backup now (coldseal trigger --group ${group.name} --host ${host}) so that points after the gap can be restored.`,
  });
}

/** Findings and report rows of every run, and each source's state written back (objects no longer listed dropped). */
export async function finishPitr(deps: PitrDeps, runs: readonly PitrRun[], now: Date): Promise<{ findings: Finding[]; rows: PitrRow[] }> {
  const findings: Finding[] = [];
  const rows: PitrRow[] = [];
  for (const run of runs) {
    const { group, host, source, keys } = run;
    const at = { group: group.name, host, source };
    const doNotRely = `A restore stops at this segment (restore_command refuses it): do not rely on recovery past it. Look for an older version of the object and for who wrote it (S3 server access logs / CloudTrail data events); take a new base backup (coldseal trigger --group ${group.name} --host ${host}) so that later points do not need it.`;
    const present = new Map<string, WalObjectState | undefined>();
    let failed = 0;
    let pendingCount = 0;
    let oldestPending: string | undefined;
    for (const [walFile, object] of run.listed) {
      const state = run.objects.get(walFile);
      const current = state && state.identity === objectIdentity(object) ? state : undefined;
      if (current?.problem) {
        failed++;
        findings.push(makeFinding({ ...at, where: s3(deps.bucket, object.key), subject: object.key, check: current.problem.check, severity: 'fail', since: current.problem.since, summary: `WAL file ${walFile} of ${host}/${source} ${current.problem.summary}`, detail: current.problem.detail, action: doNotRely }));
        continue;
      }
      if (current && current.hashedAt === null) {
        pendingCount++;
        if (!oldestPending || current.firstCheckedAt < oldestPending) oldestPending = current.firstCheckedAt;
      }
      present.set(walFile, current);
    }

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

    // The newest object must be addressed to the recipients configured today (older ones keep the keys of their time).
    const newest = [...present].filter(([, s]) => s?.recipientKeyIds && s.archivedAt).sort((a, b) => a[1]!.archivedAt!.localeCompare(b[1]!.archivedAt!)).pop();
    if (newest && !sameKeyIds(newest[1]!.recipientKeyIds!, keys.recipientKeyIds)) {
      const key = run.listed.get(newest[0])!.key;
      findings.push(makeFinding({ ...at, where: s3(deps.bucket, key), subject: `${group.name}/${host}/${source}:newest-wal`, check: 'wal-recipients', severity: 'fail', since: newest[1]!.archivedAt!, summary: `the newest WAL file of ${host}/${source}, ${newest[0]}, is encrypted to key ids ${newest[1]!.recipientKeyIds!.join(', ')}, not to the recipients configured in ${keys.recipientsParameter} (${keys.recipientKeyIds.join(', ')})`, action: `The escrow key may not be able to decrypt this WAL. Check the recipients in the agent config of group ${group.name} and restart archiving on ${host} with the right keys.` }));
    }

    if (oldestPending && now.getTime() - Date.parse(oldestPending) > PENDING_GRACE_MS) {
      findings.push(makeFinding({ ...at, where: s3(deps.bucket, `${WAL_PREFIX}${group.name}/${host}/${source}/`), subject: `${group.name}/${host}/${source}:wal-pending`, check: 'wal-pending', severity: 'warn', since: new Date(Date.parse(oldestPending) + PENDING_GRACE_MS).toISOString(), summary: `${pendingCount} WAL object${pendingCount === 1 ? '' : 's'} of ${host}/${source} not yet hashed (signature and recipients checked)`, action: "The verifier hashes them on its next runs; if this stays, raise the verifier's timeout or memory (COLDSEAL_HASH_BUDGET_MB)." }));
    }

    // Continuity, per cluster; the report shows the newest cluster's window.
    const archivedAt = (walFile: string) => present.get(walFile)?.archivedAt ?? run.listed.get(walFile)?.lastModified.toISOString() ?? null;
    let shown: RecoveryWindow | null = null;
    const newestBase = [...bases].sort((a, b) => a.stoppedAt.localeCompare(b.stoppedAt)).pop();
    for (const cluster of clusters) {
      const files = new Map<string, string | null>();
      for (const [walFile, state] of present) if (!state?.systemIdentifier || state.systemIdentifier === cluster) files.set(walFile, archivedAt(walFile));
      const result = recoveryWindow({ files, bases: bases.filter((b) => b.systemIdentifier === cluster) });
      if (!newestBase || newestBase.systemIdentifier === cluster) shown = result;
      for (const gap of result.gaps) findings.push(gapFinding(run, deps.bucket, gap, now));
      for (const tl of result.missingHistories) {
        findings.push(makeFinding({ ...at, where: s3(deps.bucket, `${WAL_PREFIX}${group.name}/${host}/${source}/${tl.firstSegment.slice(0, 8)}/`), subject: `${group.name}/${host}/${source}:timeline-${tl.timeline}`, check: 'wal-timeline', severity: 'fail', since: archivedAt(tl.firstSegment) ?? now.toISOString(), summary: `timeline ${tl.timeline} of ${host}/${source} has ${tl.segments} archived segment${tl.segments === 1 ? '' : 's'} (from ${tl.firstSegment}) but no ${tl.firstSegment.slice(0, 8)}.history: recovery cannot follow it`, action: `Check the archiver on ${host}: PostgreSQL archives the .history file when the timeline starts. Copy it from pg_wal if it is still there (coldseal pitr archive-push), or take a new base backup on this timeline.` }));
      }
      for (const u of result.unusableBases) {
        const b = bases.find((x) => x.stamp === u.stamp)!;
        findings.push(makeFinding({ ...at, where: s3(deps.bucket, b.manifestKey), subject: `${b.manifestKey}:wal`, check: 'wal-timeline', severity: 'fail', since: b.stoppedAt, summary: `the WAL archive cannot carry base backup ${u.stamp} of ${host}/${source} forward: ${u.problem}`, action: `Restores from this base backup reach only its stop point (${b.stoppedAt}). Check the archive's timeline history files; take a new base backup (coldseal trigger --group ${group.name} --host ${host}).` }));
      }
    }
    if (present.size > 0 && bases.length === 0) {
      const oldest = [...present.keys()].map((n) => run.listed.get(n)!.lastModified.toISOString()).sort()[0];
      findings.push(makeFinding({ ...at, where: s3(deps.bucket, `${WAL_PREFIX}${group.name}/${host}/${source}/`), subject: `${group.name}/${host}/${source}:no-base`, check: 'wal-no-window', severity: 'warn', since: oldest, summary: `${host}/${source} archives WAL (${present.size} files) but has no kept base backup: there is no recovery window`, action: `Schedule base backups for this source (its pitr.baseBackup setting) or take one now: coldseal trigger --group ${group.name} --host ${host}.` }));
    }

    const segments = [...present.keys()].filter((n) => parseWalFileName(n).kind === 'segment');
    const newestArchivedAt = segments.map(archivedAt).filter((t): t is string => t !== null).sort().pop() ?? null;
    const to = shown?.window?.to;
    const reachedAt = to?.time ?? null;
    const systemIdentifier = newestBase?.systemIdentifier ?? [...clusters][0] ?? null;
    rows.push({
      group: group.name,
      host,
      source,
      archiveTimeoutSeconds: run.archiveTimeoutSeconds,
      systemIdentifier,
      walSegmentSize: newestBase?.walSegmentSize ?? known.find((s) => s.systemIdentifier === systemIdentifier)?.walSegmentSize ?? null,
      baseBackups: bases.length,
      window: shown?.window ?? null,
      gaps: shown?.gaps ?? [],
      timelines: shown?.timelines ?? [],
      recoveryPoint: to && reachedAt ? { segment: to.segment, archivedAt: reachedAt, ageSeconds: Math.max(0, Math.round((now.getTime() - Date.parse(reachedAt)) / 1000)) } : null,
      newestArchivedAt,
      objects: { total: run.listed.size, checked: run.checked, hashed: run.hashed, hashedBytes: run.hashedBytes, pending: pendingCount, failed },
    });

    const kept: Record<string, WalObjectState> = {};
    for (const walFile of [...run.listed.keys()].sort()) {
      const state = run.objects.get(walFile);
      if (state) kept[walFile] = state;
    }
    await deps.store.put(run.stateKey, JSON.stringify({ schema: WAL_STATE_SCHEMA, objects: kept }), 'application/json');
  }
  return { findings, rows };
}

export function pitrSummaryLine(row: Pick<PitrRow, 'group' | 'host' | 'source' | 'window' | 'recoveryPoint' | 'gaps' | 'objects'>): string {
  const window = row.window ? `window ${row.window.from.time ?? row.window.from.lsn} to ${row.window.to.time ?? row.window.to.lsn}` : 'no recovery window';
  const point = row.recoveryPoint ? `recovery point ${formatAge(row.recoveryPoint.ageSeconds)} old` : 'no recovery point';
  const gaps = row.gaps.length ? `${row.gaps.length} GAP${row.gaps.length === 1 ? '' : 'S'}` : 'no gaps';
  return `PITR ${row.group}/${row.host}/${row.source}: ${window}, ${point}, ${gaps}; ${row.objects.total} WAL objects, ${row.objects.checked} checked now (${formatBytes(row.objects.hashedBytes)} hashed)${row.objects.failed ? `, ${row.objects.failed} FAILED` : ''}`;
}

export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} days`;
}
