import { TIERS, type Tier } from '../../../format/layout';
import type { Manifest } from '../../../format/manifest';
import { formatBytes } from '../../../runtime/byte-size';
import { makeFinding, type Finding } from '../../shared/findings';
import { freshnessFindings, hours, sourceSubject, type FreshnessInput } from '../../shared/freshness';
import type { GroupSettings } from '../../../format/lambda-settings';
import type { ListedBackup } from './inventory';

/**
 * Checks across backups: freshness against the RPO (lambdas/shared/freshness.ts), size against the
 * recent median, copies per tier against retention, orphans. They use only backups whose manifest
 * checked out.
 */

export interface HistoryEntry {
  readonly stamp: string;
  readonly tier: Tier;
  readonly manifestKey: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly durationSeconds: number;
  /** Compressed bytes of all artifacts: what the dump produced, before encryption overhead. */
  readonly bytes: number;
  readonly ciphertextBytes: number;
  readonly empty: boolean;
  readonly emptyArtifacts: string[];
}

export function historyEntry(backup: ListedBackup, manifest: Manifest): HistoryEntry {
  const emptyArtifacts = manifest.artifacts.filter((a) => a.compressedBytes === 0 || a.uncompressedBytes === 0).map((a) => a.name);
  return {
    stamp: backup.stamp,
    tier: backup.location.tier,
    manifestKey: backup.manifest!.key,
    startedAt: manifest.startedAt,
    finishedAt: manifest.finishedAt,
    durationSeconds: Math.max(0, (Date.parse(manifest.finishedAt) - Date.parse(manifest.startedAt)) / 1000),
    bytes: manifest.artifacts.reduce((n, a) => n + a.compressedBytes, 0),
    ciphertextBytes: manifest.artifacts.reduce((n, a) => n + a.ciphertextBytes, 0),
    empty: emptyArtifacts.length > 0,
    emptyArtifacts,
  };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Backups a source's size is compared with. Fewer than MIN_HISTORY: no size judgement yet. */
const SIZE_WINDOW = 7;
const MIN_HISTORY = 3;

export interface SourceFleetInput extends Omit<FreshnessInput, 'newest'> {
  /** Valid backups of this source, all tiers, oldest first. */
  readonly history: readonly HistoryEntry[];
  readonly sizeDropRatio: number;
}

/** Freshness (lambdas/shared/freshness.ts), then the newest backup's size: empty, or well below the recent median. */
export function sourceFindings(input: SourceFleetInput): Finding[] {
  const { host, source, history } = input;
  const newest = history[history.length - 1];
  const findings = freshnessFindings({ ...input, newest });
  if (!newest) return findings;
  const { at, subject, trigger } = sourceSubject(input);
  if (newest.empty) {
    findings.push(makeFinding({ ...at, tier: newest.tier, where: `s3://${input.bucket}/${newest.manifestKey}`, subject, check: 'empty-dump', severity: 'fail', since: newest.finishedAt, summary: `newest backup (${newest.stamp}) holds an empty dump: ${newest.emptyArtifacts.join(', ')} is 0 bytes`, action: `The dump tool produced nothing: check the database is up, the credentials, and the source's databases list on ${host}; then run ${trigger}.` }));
  } else {
    const previous = history.slice(0, -1).slice(-SIZE_WINDOW).filter((e) => !e.empty);
    if (previous.length >= MIN_HISTORY) {
      const typical = median(previous.map((e) => e.bytes));
      if (typical > 0 && newest.bytes < typical * (1 - input.sizeDropRatio)) {
        const drop = Math.round((1 - newest.bytes / typical) * 100);
        findings.push(makeFinding({ ...at, tier: newest.tier, where: `s3://${input.bucket}/${newest.manifestKey}`, subject, check: 'size-drop', severity: 'warn', since: newest.finishedAt, summary: `newest backup (${newest.stamp}) is ${formatBytes(newest.bytes)}, ${drop}% below the median of the previous ${previous.length} (${formatBytes(typical)})`, action: `Check whether data was deleted on ${host} or the dump skipped databases or tables (source "${source}" config, excludes); if the drop is expected, it becomes the new normal in ${SIZE_WINDOW} backups.` }));
      }
    }
  }
  return findings;
}

const PERIOD_DAYS: Record<Tier, number> = { daily: 1, weekly: 7, monthly: 30.44, yearly: 365.25 };
/** Lifecycle runs about once a day and S3 may take a day or two more to act. */
const LIFECYCLE_SLACK_DAYS = 2;

export function retentionFindings(input: { group: GroupSettings; host: string; source: string; history: readonly HistoryEntry[]; now: Date; bucket: string }): Finding[] {
  const findings: Finding[] = [];
  const { group, host, source, history, now } = input;
  if (history.length === 0) return findings;
  const firstMs = Math.min(...history.map((e) => Date.parse(e.finishedAt)));
  const lived = (now.getTime() - firstMs) / 86_400_000;
  for (const tier of TIERS) {
    const days = group.retentionDays[tier];
    if (days === undefined) continue;
    const inTier = history.filter((e) => e.tier === tier);
    const where = `s3://${input.bucket}/backups/${tier}/${group.name}/${host}/${source}/`;
    const at = { group: group.name, host, source, tier, where, subject: `${group.name}/${host}/${source}/${tier}` };
    const expired = inTier.filter((e) => (now.getTime() - Date.parse(e.finishedAt)) / 86_400_000 > days + LIFECYCLE_SLACK_DAYS);
    if (expired.length > 0) {
      findings.push(makeFinding({ ...at, check: 'retention-count', severity: 'warn', since: new Date(Date.parse(expired[expired.length - 1].finishedAt) + days * 86_400_000).toISOString(), summary: `${expired.length} ${tier} copies are older than the ${days}-day retention (oldest ${expired[0].stamp}): lifecycle is not expiring them`, action: `Check the bucket's lifecycle rule for backups/${tier}/ (cdk diff) and that Object Lock retention does not outlast it.` }));
      continue;
    }
    // A daily copy is missing on days the calendar promotes to another tier; allow that and a day.
    const window = Math.min(days, lived);
    const perPeriod = tier === 'daily' ? 6 / 7 : 1;
    const expected = Math.floor((window / PERIOD_DAYS[tier]) * perPeriod);
    const tolerance = 1 + Math.floor(expected * 0.1);
    if (inTier.length < expected - tolerance) {
      findings.push(makeFinding({ ...at, check: 'retention-count', severity: 'warn', since: now.toISOString(), summary: `${inTier.length} ${tier} copies kept where retention (${days} days) and history (${lived.toFixed(0)} days) expect about ${expected}`, action: `Look for missed runs in the SSM Run Command history of ${host} and for deletions in S3 access logs.` }));
    }
  }
  return findings;
}

export function orphanFindings(backups: readonly ListedBackup[], now: Date, orphanMinutes: number, bucket: string, referenced: ReadonlySet<string>): Finding[] {
  const findings: Finding[] = [];
  for (const backup of backups) {
    for (const object of backup.artifacts) {
      const ageMs = now.getTime() - object.lastModified.getTime();
      if (referenced.has(object.key) || ageMs < orphanMinutes * 60_000) continue;
      const loc = backup.location;
      const why = backup.manifest ? 'is not named by the manifest next to it' : 'has no manifest';
      findings.push(makeFinding({ group: loc.group, host: loc.host, source: loc.source, tier: loc.tier, where: `s3://${bucket}/${object.key}`, subject: object.key, check: 'orphan', severity: 'warn', since: object.lastModified.toISOString(), summary: `ciphertext (${formatBytes(object.size)}) ${why}, ${hours(ageMs)} after it was written: the run that wrote it did not finish`, action: `Look at the agent's output for ${backup.stamp} on ${loc.host} (SSM Run Command history). The object cannot be restored safely without a signed manifest; it expires with the tier's lifecycle.` }));
    }
  }
  return findings;
}
