import { BACKUPS_PREFIX, DRILLS_PREFIX, REPORTS_PREFIX, STATE_PREFIX, VERIFIED_PREFIX, WAL_PREFIX, parseKey, reportKeys, TIERS, sourcePrefix } from '../../../format/layout';
import type { Manifest } from '../../../format/manifest';
import { PartBufferPool } from '../../../runtime/part-reader';
import { openManifest } from '../../../runtime/signed-document';
import { alertMessage, hasNews, listBlocks, plural, publishAlert, reconcileAlerts, subjectLine, type AlertPlan } from '../../shared/alerts';
import { mapLimit } from '../../../runtime/concurrency';
import { makeFinding, sortFindings, statusOf, type Check, type Finding } from '../../shared/findings';
import type { BucketStore, Clock, ListedObject, Log, Notifier, ParameterStore } from '../../shared/ports';
import type { GroupSettings, Settings } from '../../../format/lambda-settings';
import { checkBackup, sha256Finding, type CheckedBackup, type HashJob } from './check-backup';
import { drillFindings, type DrillSummary } from './drills';
import { formatBytes } from '../../../runtime/byte-size';
import { historyEntry, orphanFindings, retentionFindings, sourceFindings, type HistoryEntry } from './fleet';
import { Budget, readVerify, verificationRecordKey, type VerificationRecord } from './hashing';
import { buildInventory, sourceId, type ListedBackup } from './inventory';
import { loadGroupKeys, type GroupKeys } from './keys';
import type { ReplicaState } from './replica';
import type { Report } from '../../../format/verification-report';
import { buildReport, renderHtml, type ReplicaCounts } from './report-builder';
import { keptBinlogDumps } from './binlog-pitr';
import { checkPitrObjects, finishPitr, keptBaseBackups, pitrSummaryLine, preparePitr, type PitrDeps, type PitrRow } from './pitr';
import type { BinlogPitrRow } from './binlog-pitr';
import { auditSource, groupDrillEvidence } from './audit';
import { storageReport, type ReplicaListing } from './storage-report';
import type { SourceAudit } from './audit';
import type { PriceListPort } from '../../shared/price-list';

export interface VerifierDeps {
  readonly store: BucketStore;
  readonly notifier: Notifier;
  readonly params: ParameterStore;
  readonly clock: Clock;
  readonly log: Log;
  readonly settings: Settings;
  /** Milliseconds this invocation may still spend hashing (the handler derives it from the Lambda context). */
  readonly remainingMs: () => number;
  /** The AWS Price List API, when the settings allow asking it. */
  readonly priceList?: PriceListPort;
  /** The bucket's region, whose prices apply. */
  readonly region?: string;
  /** The offsite replica, listed once a sweep for the storage section (settings.replica). */
  readonly replica?: ReplicaListing;
}

/** Checks whose absence in a sweep means "resolved" for any subject the sweep saw. */
const SOURCE_CHECKS: ReadonlySet<Check> = new Set(['rpo', 'never-backed-up', 'empty-dump', 'size-drop']);
/** Judged by the sweep alone (the per-manifest verification does not compute them): they resolve only for sources the sweep judged. */
const TARGET_CHECKS: ReadonlySet<Check> = new Set(['rpo-missed', 'rto-exceeded']);
const VERIFIER_CHECKS: ReadonlySet<Check> = new Set<Check>([
  'manifest-signature', 'manifest-invalid', 'manifest-location', 'ciphertext-missing', 'ciphertext-size', 'ciphertext-sha256', 'not-openpgp',
  'recipients', 'dump-exit-status', 'completion-marker', 'object-lock', 'not-read-verified', 'verification-pending', 'retention-count',
  'orphan', 'drill-failed', 'drill-stale', 'drill-invalid', 'replica-missing', 'replica-pending', ...SOURCE_CHECKS, ...TARGET_CHECKS,
  'wal-signature', 'wal-record', 'wal-sha256', 'wal-recipients', 'wal-gap', 'wal-timeline', 'wal-no-window', 'wal-pending',
  'binlog-signature', 'binlog-record', 'binlog-sha256', 'binlog-recipients', 'binlog-gap', 'binlog-pending', 'replica-unlisted',
]);
/** A first read that has not happened a day after the backup is worth a warning. */
const PENDING_GRACE_MS = 24 * 3_600_000;
const IO_CONCURRENCY = 8;

function replicaContext(settings: Settings): { maxPendingHours: number } | undefined {
  return settings.replicaMaxPendingHours === undefined ? undefined : { maxPendingHours: settings.replicaMaxPendingHours };
}

function budgetFor(deps: VerifierDeps): Budget {
  return new Budget(deps.settings.hashBudgetBytes ?? Number.POSITIVE_INFINITY, deps.remainingMs);
}

async function loadRecords(store: BucketStore, objects: readonly ListedObject[]): Promise<Map<string, VerificationRecord>> {
  const records = new Map<string, VerificationRecord>();
  await mapLimit(objects, IO_CONCURRENCY, async (o) => {
    const text = await store.getText(o.key);
    if (!text) return;
    const record = JSON.parse(text) as VerificationRecord;
    if (verificationRecordKey(record.key) === o.key) records.set(record.key, record);
  });
  return records;
}

function keyProblemFinding(keys: GroupKeys, bucket: string, now: Date): Finding {
  return makeFinding({ group: keys.group, where: `${keys.signingParameter}, ${keys.recipientsParameter}`, subject: keys.group, check: 'manifest-signature', severity: 'fail', since: now.toISOString(), summary: `the verifier cannot check group ${keys.group}: ${keys.problem}`, action: `Publish the group's public keys (coldseal keys generate --publish, or the stack's recipients setting); until then no backup of ${keys.group} in s3://${bucket} is verified.` });
}

interface HashOutcome {
  readonly findings: Finding[];
  readonly verified: number;
  readonly pending: number;
}

async function runHashJobs(deps: VerifierDeps, jobs: readonly HashJob[], budget: Budget, now: Date): Promise<HashOutcome> {
  const { store, settings, log } = deps;
  // New backups first, newest first: a fresh problem is the one someone can still act on.
  const ordered = [...jobs].sort((a, b) => (a.firstRead !== b.firstRead ? (a.firstRead ? -1 : 1) : a.firstRead ? b.backup.stamp.localeCompare(a.backup.stamp) : Date.parse(a.previous?.verifiedAt ?? '') - Date.parse(b.previous?.verifiedAt ?? '')));
  const findings: Finding[] = [];
  let verified = 0;
  let pending = 0;
  const buffers = new PartBufferPool();
  for (const job of ordered) {
    const loc = job.backup.location;
    const at = { group: loc.group, host: loc.host, source: loc.source, tier: loc.tier, where: `s3://${settings.bucket}/${job.artifact.key}` };
    let record: VerificationRecord | undefined;
    if (!budget.exhausted) {
      record = await readVerify({ store, artifact: job.artifact, etag: job.head.etag, versionId: job.head.versionId, previous: job.previous, budget, now, buffers });
      await store.put(verificationRecordKey(job.artifact.key), JSON.stringify(record, null, 2), 'application/json');
      log.debug('read-verified', { key: job.artifact.key, complete: record.complete, ok: record.ok, partsDone: record.partsDone, partsTotal: record.partsTotal });
    }
    if (record?.complete && record.ok === false) findings.push(sha256Finding(at, job.artifact, record));
    else if (record?.complete) verified++;
    else {
      pending++;
      const age = now.getTime() - Date.parse(job.manifest.finishedAt);
      if (job.firstRead && age > PENDING_GRACE_MS) {
        const done = record ?? job.previous;
        findings.push(makeFinding({ ...at, subject: job.artifact.key, check: 'verification-pending', severity: 'warn', since: new Date(Date.parse(job.manifest.finishedAt) + PENDING_GRACE_MS).toISOString(), summary: `artifact "${job.artifact.name}" (${formatBytes(job.artifact.ciphertextBytes)}) is not yet fully hashed: ${done?.partsDone ?? 0} of ${job.artifact.parts.sha256.length} parts checked`, action: 'The verifier resumes where it stopped on each run; if this stays, raise the verifier\'s timeout or memory, or lower the number of backups read per day.' }));
      }
    }
  }
  return { findings, verified, pending };
}

/** Opens the manifests of a source's earlier backups (no ciphertext reads) for its size history. */
async function historyOf(store: BucketStore, keys: GroupKeys, backups: readonly ListedBackup[]): Promise<HistoryEntry[]> {
  const entries = await mapLimit(backups, IO_CONCURRENCY, async (b) => {
    if (!b.manifest) return undefined;
    const text = await store.getText(b.manifest.key);
    if (!text) return undefined;
    try {
      return historyEntry(b, (await openManifest(text, keys.signing)).document);
    } catch {
      return undefined;
    }
  });
  return entries.filter((e): e is HistoryEntry => e !== undefined).sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
}

export interface SweepResult {
  readonly report: Report;
  readonly findings: Finding[];
  readonly plan: AlertPlan;
  readonly published: { subject: string; body: string } | undefined;
  readonly reportKeys: { json: string; html: string };
}

/** The daily sweep: every backup, every fleet check, the report, one summary message. */
/** What a sweep starts from: the bucket's listings read into backups, and each configured group's keys. */
interface SweepInputs {
  readonly backupObjects: readonly ListedObject[];
  readonly drillObjects: readonly ListedObject[];
  readonly inventory: ReturnType<typeof buildInventory>;
  readonly records: Map<string, VerificationRecord>;
  readonly groups: ReadonlyMap<string, GroupSettings>;
  readonly keysByGroup: ReadonlyMap<string, GroupKeys>;
  /** The backups of configured groups (others are logged and left alone). */
  readonly backups: ListedBackup[];
  /** A group whose keys cannot be read: one finding each. */
  readonly keyFindings: Finding[];
}

async function readSweepInputs(deps: VerifierDeps, now: Date): Promise<SweepInputs> {
  const { store, settings, log } = deps;
  const [backupObjects, drillObjects, recordObjects] = await Promise.all([store.list(BACKUPS_PREFIX), store.list(DRILLS_PREFIX), store.list(`${VERIFIED_PREFIX}${BACKUPS_PREFIX}`)]);
  const inventory = buildInventory([...backupObjects, ...drillObjects]);
  // Backups' read records only: the WAL state of PITR sources (state/verified/wal/) is read per source by pitr.ts.
  const records = await loadRecords(store, recordObjects);
  const groups = new Map(settings.groups.map((g) => [g.name, g]));
  const keyFindings: Finding[] = [];
  const keysByGroup = new Map<string, GroupKeys>();
  for (const group of settings.groups) {
    const keys = await loadGroupKeys(deps.params, settings.parameterPrefix, group.name);
    keysByGroup.set(group.name, keys);
    if (keys.problem) keyFindings.push(keyProblemFinding(keys, settings.bucket, now));
  }
  const unknown = new Set(inventory.backups.filter((b) => !groups.has(b.location.group)).map((b) => b.location.group));
  if (unknown.size) log.warn('backups of groups this verifier is not configured for are not checked', { groups: [...unknown] });
  const backups = inventory.backups.filter((b) => groups.has(b.location.group));
  return { backupObjects, drillObjects, inventory, records, groups, keysByGroup, backups, keyFindings };
}

/** Orphans: a listed manifest (valid or not) claims its neighbours; a valid one only those it names. */
function referencedKeys(checked: readonly CheckedBackup[]): Set<string> {
  const referenced = new Set<string>();
  for (const c of checked) {
    if (!c.backup.manifest) continue;
    const named = c.manifest ? c.manifest.artifacts.flatMap((a) => a.segments?.map((s) => s.key) ?? [a.key]) : c.backup.artifacts.map((a) => a.key);
    named.forEach((k) => referenced.add(k));
  }
  return referenced;
}

/**
 * The report's replica column, and which monitor "replication failed" alerts this sweep settles:
 * those of backups now fully replicated, or no longer in the bucket (expired).
 */
function replicaTally(settings: Settings, checked: readonly CheckedBackup[], backupObjects: readonly ListedObject[]): { bySource: Map<string, ReplicaCounts>; byManifest: Map<string, ReplicaState | undefined>; settled: (f: Finding) => boolean } {
  const bySource = new Map<string, ReplicaCounts>();
  const byManifest = new Map<string, ReplicaState | undefined>();
  for (const c of checked) {
    if (!c.backup.manifest) continue;
    byManifest.set(c.backup.manifest.key, c.replica);
    if (!c.replica) continue;
    const id = sourceId(c.backup.location);
    const counts = bySource.get(id) ?? { replicated: 0, pending: 0, missing: 0 };
    counts[c.replica]++;
    bySource.set(id, counts);
  }
  const settled = (f: Finding): boolean => {
    if (f.check !== 'replication-failed' || !settings.replicaMaxPendingHours) return false;
    const key = f.id.slice(f.id.indexOf(':') + 1);
    if (!key.startsWith(BACKUPS_PREFIX)) return false;
    return !byManifest.has(key) ? !backupObjects.some((o) => o.key === key) : byManifest.get(key) === 'replicated';
  };
  return { bySource, byManifest, settled };
}

type SourceRow = { group: string; host: string; source: string; history: HistoryEntry[]; replica: ReplicaCounts | null; audit?: Pick<SourceAudit, 'recoveryPoint' | 'recoveryTime' | 'retention'> };

/**
 * Every source of every group, expected or seen: its report row and its fleet findings (fresh,
 * size, retention), then the group's drills. `evaluated` is what this sweep judged, so that only
 * those sources' open alerts may resolve.
 */
async function judgeSources(
  deps: VerifierDeps,
  inputs: SweepInputs,
  checked: readonly CheckedBackup[],
  replica: { bySource: ReadonlyMap<string, ReplicaCounts>; byManifest: ReadonlyMap<string, ReplicaState | undefined> },
  pitrRows: ReadonlyArray<PitrRow | BinlogPitrRow>,
  now: Date,
): Promise<{ rows: SourceRow[]; drills: DrillSummary[]; evaluated: Set<string>; findings: Finding[] }> {
  const { store, settings } = deps;
  const { backups, keysByGroup } = inputs;
  const replicaBySource = replica.bySource;
  const histories = new Map<string, HistoryEntry[]>();
  const manifests = new Map<string, Manifest>();
  const listed = new Map<string, ListedBackup>();
  for (const c of checked) {
    if (!c.manifest) continue;
    manifests.set(c.backup.manifest!.key, c.manifest);
    listed.set(c.backup.manifest!.key, c.backup);
    const id = sourceId(c.backup.location);
    histories.set(id, [...(histories.get(id) ?? []), historyEntry(c.backup, c.manifest)]);
  }
  const rows: SourceRow[] = [];
  const drills: DrillSummary[] = [];
  const evaluated = new Set<string>();
  const findings: Finding[] = [];
  for (const group of settings.groups) {
    const seen = new Set<string>();
    for (const b of backups) if (b.location.group === group.name) seen.add(`${b.location.host}/${b.location.source}`);
    const expected = new Set(group.hosts.flatMap((h) => group.sources.map((s) => `${h}/${s}`)));
    for (const pair of [...new Set([...seen, ...expected])].sort()) {
      const [host, source] = pair.split('/');
      const history = (histories.get(`${group.name}/${pair}`) ?? []).sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
      evaluated.add(`${group.name}/${pair}`);
      rows.push({ group: group.name, host, source, history, replica: settings.replicaMaxPendingHours === undefined ? null : (replicaBySource.get(`${group.name}/${pair}`) ?? { replicated: 0, pending: 0, missing: 0 }) });
      if (keysByGroup.get(group.name)!.problem) continue;
      const input = { group, host, source, history, now, bucket: settings.bucket };
      findings.push(...sourceFindings({ ...input, sizeDropRatio: settings.sizeDropRatio, expected: expected.has(pair) || history.length > 0 || seen.has(pair) }));
      findings.push(...retentionFindings(input));
    }
    const drill = await drillFindings({ store, bucket: settings.bucket, group, keys: keysByGroup.get(group.name)!, drills: inputs.inventory.drills, now });
    findings.push(...drill.findings);
    if (drill.latest) drills.push(drill.latest);
    // The group's recovery figures need its newest drill, so they come after it.
    if (keysByGroup.get(group.name)!.problem) continue;
    const evidence = groupDrillEvidence(drill.latest, manifests);
    for (const row of rows.filter((r) => r.group === group.name)) {
      const pitr = pitrRows.find((p) => p.group === row.group && p.host === row.host && p.source === row.source);
      const audit = auditSource({ group, host: row.host, source: row.source, bucket: settings.bucket, history: row.history, pitr, drill: evidence, listed, replica: settings.replicaMaxPendingHours === undefined ? undefined : replica.byManifest, now });
      row.audit = audit;
      findings.push(...audit.findings);
    }
  }
  return { rows, drills, evaluated, findings };
}

export async function runSweep(deps: VerifierDeps): Promise<SweepResult> {
  const { store, settings, log } = deps;
  const now = deps.clock.now();
  const budget = budgetFor(deps);
  const inputs = await readSweepInputs(deps, now);
  const { backups, groups, keysByGroup, records } = inputs;
  const findings: Finding[] = [...inputs.keyFindings];

  // The newest manifest of each source is held to the recipients configured today.
  const newestManifest = new Map<string, string>();
  for (const b of backups) if (b.manifest) newestManifest.set(sourceId(b.location), b.stamp);
  const checked: CheckedBackup[] = await mapLimit(backups, IO_CONCURRENCY, (b) => {
    const group = groups.get(b.location.group)!;
    return checkBackup({ store, bucket: settings.bucket, keys: keysByGroup.get(group.name)!, records, now, reverifyDays: settings.reverifyDays, retentionDays: group.retentionDays, lockDays: group.lockDays, replica: replicaContext(settings) }, b, { newest: newestManifest.get(sourceId(b.location)) === b.stamp });
  });
  for (const c of checked) findings.push(...c.findings);
  // One budget, spent where it matters most: new backups, new WAL and binary logs, re-reads of backups, then the daily sample of older logs.
  const pitrDeps: PitrDeps = { store, log, bucket: settings.bucket, reverifyDays: settings.reverifyDays, remainingMs: deps.remainingMs };
  const keptManifests = checked.flatMap((c) => (c.manifest && c.backup.manifest ? [{ manifestKey: c.backup.manifest.key, manifest: c.manifest }] : []));
  const pitrRuns = await preparePitr(pitrDeps, settings.groups, keysByGroup, keptBaseBackups(keptManifests), keptBinlogDumps(keptManifests));
  const jobs = checked.flatMap((c) => c.jobs);
  const hashingNew = await runHashJobs(deps, jobs.filter((j) => j.firstRead), budget, now);
  await checkPitrObjects(pitrDeps, pitrRuns, budget, now, 'new');
  const hashingAgain = await runHashJobs(deps, jobs.filter((j) => !j.firstRead), budget, now);
  await checkPitrObjects(pitrDeps, pitrRuns, budget, now, 'sample');
  const hashing = { findings: [...hashingNew.findings, ...hashingAgain.findings], verified: hashingNew.verified + hashingAgain.verified, pending: hashingNew.pending + hashingAgain.pending };
  findings.push(...hashing.findings);
  const pitr = await finishPitr(pitrDeps, pitrRuns, now);
  findings.push(...pitr.findings);
  findings.push(...orphanFindings(backups, now, settings.orphanMinutes, settings.bucket, referencedKeys(checked)));
  const replica = replicaTally(settings, checked, inputs.backupObjects);
  const judged = await judgeSources(deps, inputs, checked, replica, pitr.rows, now);
  findings.push(...judged.findings);
  const walObjects = settings.groups.some((g) => g.pitrSources?.length) ? await store.list(WAL_PREFIX) : [];
  const [reportObjects, stateObjects] = await Promise.all([store.list(REPORTS_PREFIX), store.list(STATE_PREFIX)]);
  const { report: storage, findings: storageFindings } = await storageReport(
    { store, log, priceList: settings.priceList ? deps.priceList : undefined, replica: deps.replica },
    { settings, region: deps.region ?? settings.region ?? 'us-east-1', objects: [...inputs.backupObjects, ...inputs.drillObjects, ...walObjects, ...reportObjects, ...stateObjects], now },
  );
  findings.push(...storageFindings);

  const sorted = sortFindings(findings);
  const plan = await reconcileAlerts(deps, sorted, (f) => replica.settled(f) || (VERIFIER_CHECKS.has(f.check) && ((!SOURCE_CHECKS.has(f.check) && !TARGET_CHECKS.has(f.check)) || judged.evaluated.has(`${f.group}/${f.host}/${f.source}`))));
  const firstSeen = new Map<string, string>();
  for (const r of [...plan.reminded.map((x) => x.record), ...plan.quiet.map((x) => x.record)]) firstSeen.set(r.id, r.firstSeenAt);
  for (const f of plan.opened) firstSeen.set(f.id, now.toISOString());
  const report = buildReport({
    now,
    bucket: settings.bucket,
    findings: sorted,
    newIds: new Set(plan.opened.map((f) => f.id)),
    settledIds: new Set(plan.quiet.filter((q) => q.finding.once).map((q) => q.finding.id)),
    firstSeen,
    resolved: plan.resolved.map((r) => ({ id: r.id, summary: r.finding.summary, firstSeenAt: r.firstSeenAt })),
    sources: judged.rows,
    drills: judged.drills,
    pitr: pitr.rows,
    storage,
    backups: backups.filter((b) => b.manifest).length,
    verification: {
      hashedBytes: budget.hashedBytes,
      hashedObjects: budget.hashedObjects,
      pendingObjects: hashing.pending,
      verifiedArtifacts: checked.reduce((n, c) => n + c.verifiedArtifacts, 0) + hashing.verified,
      archivedArtifacts: checked.reduce((n, c) => n + c.archivedArtifacts, 0),
      seconds: Math.round(budget.seconds * 10) / 10,
    },
  });
  const keys = reportKeys(now);
  await store.put(keys.json, `${JSON.stringify(report, null, 2)}\n`, 'application/json');
  await store.put(keys.html, renderHtml(report), 'text/html; charset=utf-8');
  log.info('verification sweep done', { status: report.status, counts: report.counts, verification: report.verification });

  let published: SweepResult['published'];
  if (report.status !== 'OK' || settings.reportWhenOk || hasNews(plan)) {
    published = summaryMessage(report, plan, keys, settings.bucket);
    await deps.notifier.publish(published.subject, published.body, { kind: 'report', status: report.status });
  }
  return { report, findings: sorted, plan, published, reportKeys: keys };
}

export function summaryMessage(report: Report, plan: AlertPlan, keys: { json: string; html: string }, bucket: string): { subject: string; body: string } {
  const n = report.findings.length;
  const news = [plan.opened.length ? `${plan.opened.length} new` : '', plan.resolved.length ? `${plan.resolved.length} resolved` : ''].filter(Boolean).join(', ');
  const subject = subjectLine(`coldseal report ${report.generatedAt.slice(0, 10)}: ${report.status} - ${plural(n, 'finding')}${news ? ` (${news})` : ''}`);
  const v = report.verification;
  const lines = [
    `coldseal daily verification, ${report.generatedAt}, bucket ${bucket}`,
    `${report.status}: ${report.counts.fail} failing, ${report.counts.warn} warning; ${report.counts.sources} sources, ${report.counts.backups} backups; hashed ${formatBytes(v.hashedBytes)} in ${v.seconds.toFixed(0)} s${v.pendingObjects ? `, ${v.pendingObjects} objects left for the next run` : ''}.`,
    '',
  ];
  // What is said once stays in the full report, not in every day's message.
  const quiet = plan.quiet.map((q) => q.finding).filter((f) => !f.once);
  if (report.pitr?.length) lines.push(...report.pitr.map(pitrSummaryLine), '');
  const targets = targetLines(report);
  if (targets.length) lines.push('Targets missed:', ...targets, '');
  const rep = report.storage?.replica;
  const replicaText = rep?.listed ? `; offsite replica ${formatBytes(rep.rows.reduce((n, r) => n + r.bytes, 0))}${rep.cost ? `, about $${rep.cost.total.toFixed(2)} a month` : ''} in ${rep.region}` : rep ? `; offsite replica not listed (${rep.problem ?? 'no listing'})` : '';
  if (report.storage?.cost) lines.push(`Storage: ${formatBytes(report.storage.rows.reduce((n, r) => n + r.bytes, 0))}, about $${report.storage.cost.total.toFixed(2)} a month (${report.storage.priceOrigin === 'table' ? `price table of ${report.storage.cost.priceAsOf}` : `AWS Price List of ${report.storage.cost.priceAsOf}`})${replicaText}.`, '');
  lines.push(...listBlocks(plan, quiet));
  if (n === 0 && plan.resolved.length === 0) lines.push('Every check passed.');
  lines.push('', `Full report: s3://${bucket}/${keys.html}`, `JSON:        s3://${bucket}/${keys.json}`);
  return { subject, body: `${lines.join('\n')}\n` };
}

/**
 * Each source whose recovery point or estimated recovery time misses its group's target, in one
 * line each: said every day while it lasts (the finding itself is said once), since a missed
 * objective is what the message's reader is asked to answer for.
 */
export function targetLines(report: Report): string[] {
  const lines: string[] = [];
  for (const s of report.sources) {
    const id = `${s.group}/${s.host}/${s.source}`;
    const rp = s.recoveryPoint;
    if (rp?.misses.length) {
      const worst = rp.misses.reduce((w, g) => (g.hours > w.hours ? g : w));
      lines.push(`- rpo-missed ${id}: ${rp.misses.length} gap${rp.misses.length > 1 ? 's' : ''} over the ${rp.rpoHours} h RPO in ${rp.windowDays} days, worst ${worst.hours.toFixed(1)} h from ${worst.from.at} to ${worst.to.at}`);
    }
    const rt = s.recoveryTime;
    if (rt?.estimate && rt.rtoHours !== null && rt.estimate.hours > rt.rtoHours) {
      lines.push(`- rto-exceeded ${id}: restore estimated at ${rt.estimate.hours.toFixed(1)} h, over the ${rt.rtoHours} h RTO (${rt.estimate.dominant} dominates${rt.estimate.retrieval ? `; ${rt.estimate.retrieval.tier} retrieval from ${rt.estimate.retrieval.storageClass} ${rt.estimate.retrieval.wait}` : ''})`);
    }
  }
  return lines;
}

export interface ManifestResult {
  readonly findings: Finding[];
  readonly plan: AlertPlan;
  readonly published: { subject: string; body: string } | undefined;
}

/**
 * Verification of one backup as soon as its manifest lands (S3 event): everything the sweep checks
 * about that backup, plus the size of that source against its history. New problems alert now; a
 * good backup resolves that source's freshness and size problems at once.
 */
export async function verifyNewManifest(deps: VerifierDeps, key: string): Promise<ManifestResult | undefined> {
  const { store, settings, log } = deps;
  const parsed = parseKey(key);
  if (!parsed || parsed.kind !== 'manifest') {
    log.debug('not a manifest key; nothing to verify', { key });
    return undefined;
  }
  const group: GroupSettings | undefined = settings.groups.find((g) => g.name === parsed.group);
  if (!group) {
    log.warn('manifest of a group this verifier is not configured for', { key, group: parsed.group });
    return undefined;
  }
  const now = deps.clock.now();
  const keys = await loadGroupKeys(deps.params, settings.parameterPrefix, group.name);
  const findings: Finding[] = [];
  if (keys.problem) findings.push(keyProblemFinding(keys, settings.bucket, now));
  const listed = (await Promise.all(TIERS.map((tier) => store.list(sourcePrefix({ ...parsed, tier }))))).flat();
  const inventory = buildInventory(listed);
  const backup = inventory.backups.find((b) => b.location.tier === parsed.tier && b.stamp === parsed.stamp && b.manifest?.key === key);
  if (!backup) {
    log.warn('manifest from the event is no longer listed', { key });
    return undefined;
  }
  const newestStamp = inventory.backups.filter((b) => b.manifest).map((b) => b.stamp).sort().pop();
  const records = new Map<string, VerificationRecord>();
  for (const a of backup.artifacts) {
    const text = await store.getText(verificationRecordKey(a.key));
    if (text) records.set(a.key, JSON.parse(text) as VerificationRecord);
  }
  let manifest: Manifest | undefined;
  if (!keys.problem) {
    const checked = await checkBackup({ store, bucket: settings.bucket, keys, records, now, reverifyDays: settings.reverifyDays, retentionDays: group.retentionDays, lockDays: group.lockDays, replica: replicaContext(settings) }, backup, { newest: newestStamp === backup.stamp });
    manifest = checked.manifest;
    findings.push(...checked.findings);
    findings.push(...(await runHashJobs(deps, checked.jobs, budgetFor(deps), now)).findings);
    const recent = inventory.backups.filter((b) => b.manifest && b.stamp <= backup.stamp).slice(-8);
    const history = await historyOf(store, keys, recent);
    if (manifest && history[history.length - 1]?.stamp === backup.stamp) {
      findings.push(...sourceFindings({ group, host: parsed.host, source: parsed.source, history, now, bucket: settings.bucket, sizeDropRatio: settings.sizeDropRatio, expected: true }));
    }
  }
  const subject = `${parsed.group}/${parsed.host}/${parsed.source}`;
  // Only a backup that checked out speaks for its source's freshness and size.
  const plan = await reconcileAlerts(deps, sortFindings(findings), manifest ? (f) => SOURCE_CHECKS.has(f.check) && `${f.group}/${f.host}/${f.source}` === subject : undefined);
  log.info('manifest verified', { key, findings: findings.map((f) => f.id), status: statusOf(findings) });
  const published = plan.opened.length || plan.resolved.length
    ? await publishAlert(deps.notifier, alertMessage({ origin: 'new backup', plan: { ...plan, reminded: [] }, footer: [`Backup: s3://${settings.bucket}/${key}`, 'The daily report lists every open finding.'] }), 'alert')
    : undefined;
  return { findings, plan, published };
}
