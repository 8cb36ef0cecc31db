import { WAL_PREFIX } from '../../../format/layout';
import { makeFinding, type Finding } from '../../shared/findings';
import type { PitrDeps, PitrRun } from './pitr';
import { objectIdentity, sameKeyIds, WAL_STATE_SCHEMA, type LogKind, type WalObjectState } from './wal-objects';

/**
 * What the verifier says of a log archive's objects as a whole, whichever engine writes it
 * (pitr.ts for PostgreSQL WAL, binlog-pitr.ts for MySQL/MariaDB binary logs): the objects that
 * failed a check, Object Lock, the newest object's recipients, hashes pending too long, and the
 * source's state written back. Continuity is each engine's own.
 */

/** A log object not hashed a day after it was first seen is worth a warning (as for backups). */
const PENDING_GRACE_MS = 24 * 3_600_000;

export const s3 = (bucket: string, key: string) => `s3://${bucket}/${key}`;

/** What the source-level findings say of one archive's objects, in its own words. */
export interface ArchiveWords {
  readonly kind: LogKind;
  /** "WAL file" / "binary log": one object by name. */
  readonly file: string;
  /** "WAL object" / "binary log object": counted. */
  readonly object: string;
  /** What a bad object means for restores, and what to do. */
  readonly doNotRely: string;
  /** How to bring the newest object back to today's recipients. */
  readonly recipientsAction: string;
}

/** The objects of a run that failed a check (one FAIL each) and those that did not, with the pending hashes. */
export function objectFindings(deps: PitrDeps, run: PitrRun, words: ArchiveWords): { findings: Finding[]; present: Map<string, WalObjectState | undefined>; failed: number; pendingCount: number; oldestPending: string | undefined } {
  const { group, host, source } = run;
  const at = { group: group.name, host, source };
  const findings: Finding[] = [];
  const present = new Map<string, WalObjectState | undefined>();
  let failed = 0;
  let pendingCount = 0;
  let oldestPending: string | undefined;
  for (const [name, object] of run.listed) {
    const state = run.objects.get(name);
    const current = state && state.identity === objectIdentity(object) ? state : undefined;
    if (current?.problem) {
      failed++;
      findings.push(makeFinding({ ...at, where: s3(deps.bucket, object.key), subject: object.key, check: current.problem.check, severity: 'fail', since: current.problem.since, summary: `${words.file} ${name} of ${host}/${source} ${current.problem.summary}`, detail: current.problem.detail, action: words.doNotRely }));
      continue;
    }
    if (current && current.hashedAt === null) {
      pendingCount++;
      if (!oldestPending || current.firstCheckedAt < oldestPending) oldestPending = current.firstCheckedAt;
    }
    present.set(name, current);
  }
  return { findings, present, failed, pendingCount, oldestPending };
}

/** Object Lock, the newest object's recipients and hashes pending too long: one finding each per source. */
export function archiveFindings(deps: PitrDeps, run: PitrRun, present: ReadonlyMap<string, WalObjectState | undefined>, pending: { count: number; oldest: string | undefined }, words: ArchiveWords, now: Date): Finding[] {
  const { group, host, source, keys } = run;
  const at = { group: group.name, host, source };
  const findings: Finding[] = [];
  const objects = (n: number) => `${n} ${words.object}${n === 1 ? '' : 's'}`;
  // Object Lock, as for backups (format/backup-judgement.ts): held now, or held for the term the
  // log is locked for (the agent locks it like the daily tier) and past it. One finding per source.
  const lockDays = group.lockDays?.daily ?? group.retentionDays.daily;
  const unlocked = [...present].filter(([name, s]) => s && s.lockUntil !== undefined && !lockServes(s.lockUntil, run.listed.get(name)!.lastModified, lockDays, now)).map(([name]) => name).sort();
  if (unlocked.length) {
    const first = run.listed.get(unlocked[0])!;
    findings.push(makeFinding({ ...at, where: s3(deps.bucket, first.key), subject: `${group.name}/${host}/${source}:${words.kind}-lock`, check: 'object-lock', severity: 'fail', since: first.lastModified.toISOString(), summary: `${objects(unlocked.length)} of ${host}/${source} ${unlocked.length === 1 ? 'has' : 'have'} no Object Lock retention${lockDays ? ` for the ${lockDays}-day term` : ''} (first: ${unlocked[0]}): ${unlocked.length === 1 ? 'it' : 'they'} can be deleted or overwritten`, detail: unlocked.slice(0, 20).join('\n'), action: `Check the bucket's default retention and the agent's objectLock setting for tier daily (${words.kind === 'wal' ? 'WAL is' : 'binary logs are'} locked like it); set retention on these objects (put-object-retention).` }));
  }

  // The newest object must be addressed to the recipients configured today (older ones keep the keys of their time).
  const newest = [...present].filter(([, s]) => s?.recipientKeyIds && s.archivedAt).sort((a, b) => a[1]!.archivedAt!.localeCompare(b[1]!.archivedAt!)).pop();
  if (newest && !sameKeyIds(newest[1]!.recipientKeyIds!, keys.recipientKeyIds)) {
    const key = run.listed.get(newest[0])!.key;
    findings.push(makeFinding({ ...at, where: s3(deps.bucket, key), subject: `${group.name}/${host}/${source}:newest-${words.kind}`, check: `${words.kind}-recipients`, severity: 'fail', since: newest[1]!.archivedAt!, summary: `the newest ${words.file} of ${host}/${source}, ${newest[0]}, is encrypted to key ids ${newest[1]!.recipientKeyIds!.join(', ')}, not to the recipients configured in ${keys.recipientsParameter} (${keys.recipientKeyIds.join(', ')})`, action: words.recipientsAction }));
  }

  if (pending.oldest && now.getTime() - Date.parse(pending.oldest) > PENDING_GRACE_MS) {
    findings.push(makeFinding({ ...at, where: s3(deps.bucket, `${WAL_PREFIX}${group.name}/${host}/${source}/`), subject: `${group.name}/${host}/${source}:${words.kind}-pending`, check: `${words.kind}-pending`, severity: 'warn', since: new Date(Date.parse(pending.oldest) + PENDING_GRACE_MS).toISOString(), summary: `${objects(pending.count)} of ${host}/${source} not yet hashed (signature and recipients checked)`, action: "The verifier hashes them on its next runs; if this stays, raise the verifier's timeout or memory (COLDSEAL_HASH_BUDGET_MB)." }));
  }
  return findings;
}

/** Writes a source's state back, without the objects no longer listed. */
export async function saveRunState(deps: PitrDeps, run: PitrRun): Promise<void> {
  const kept: Record<string, WalObjectState> = {};
  for (const name of [...run.listed.keys()].sort()) {
    const state = run.objects.get(name);
    if (state) kept[name] = state;
  }
  await deps.store.put(run.stateKey, JSON.stringify({ schema: WAL_STATE_SCHEMA, objects: kept }), 'application/json');
}

const LOCK_TOLERANCE_MS = 86_400_000;

/** Whether an object's Object Lock does its job: held now, or held for the term (a day's tolerance, as for backups) and the term is over. */
export function lockServes(lockUntil: string | null, lastModified: Date, days: number | undefined, now: Date): boolean {
  if (lockUntil && Date.parse(lockUntil) > now.getTime()) return true;
  if (days === undefined) return false;
  const start = lastModified.getTime();
  if (now.getTime() - start >= days * 86_400_000) return true;
  return lockUntil !== null && Date.parse(lockUntil) >= start + days * 86_400_000 - LOCK_TOLERANCE_MS;
}

export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86_400).toFixed(1)} days`;
}
