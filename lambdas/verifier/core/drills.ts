import type { DrillReceipt } from '../../../format/manifest';
import { openDrillReceipt, SignedDocumentError } from '../../../runtime/signed-document';
import { makeFinding, type Finding } from '../../shared/findings';
import type { BucketStore } from '../../shared/ports';
import type { GroupSettings } from '../../../format/lambda-settings';
import type { ListedDrill } from './inventory';
import type { GroupKeys } from './keys';

export interface DrillSummary {
  readonly group: string;
  readonly host: string;
  readonly stamp: string;
  readonly key: string;
  readonly ok: boolean;
  readonly finishedAt: string;
  readonly ageDays: number;
  readonly failed: string[];
  /** The offsite replica the drill read from (`s3://bucket (region)`), when it did. */
  readonly readFrom?: string;
  /** The opened receipt: its per-artifact durations and timings measure the group's restore speed (recovery-time.ts). */
  readonly receipt: DrillReceipt;
}

/** The newest drill receipt of a group decides: a drill is proof only as of when it ran. */
export async function drillFindings(input: {
  store: BucketStore;
  bucket: string;
  group: GroupSettings;
  keys: GroupKeys;
  drills: readonly ListedDrill[];
  now: Date;
}): Promise<{ findings: Finding[]; latest: DrillSummary | undefined }> {
  const { group, now } = input;
  const findings: Finding[] = [];
  const mine = input.drills.filter((d) => d.group === group.name).sort((a, b) => a.stamp.localeCompare(b.stamp));
  let latest: DrillSummary | undefined;
  // Newest first; a receipt that fails its signature is a finding and the next older one is used.
  for (const drill of [...mine].reverse()) {
    const text = await input.store.getText(drill.object.key);
    if (text === null || input.keys.problem) continue;
    let receipt: DrillReceipt;
    try {
      receipt = (await openDrillReceipt(text, input.keys.signing)).document;
    } catch (error) {
      if (!(error instanceof SignedDocumentError)) throw error;
      findings.push(makeFinding({ group: group.name, host: drill.host, where: `s3://${input.bucket}/${drill.object.key}`, subject: drill.object.key, check: 'drill-invalid', severity: 'fail', since: drill.object.lastModified.toISOString(), summary: 'drill receipt does not pass its signature check, so it proves nothing', detail: error.message, action: `Find who wrote this receipt; run a new drill: coldseal trigger --group ${group.name} --host ${drill.host} --drill.` }));
      continue;
    }
    const failed = receipt.results.filter((r) => !r.ok).map((r) => `${r.source}/${r.artifact}: ${r.checks.filter((c) => !c.ok).map((c) => `${c.name} (${c.detail})`).join('; ') || 'failed'}`);
    latest = { group: group.name, host: drill.host, stamp: receipt.stamp, key: drill.object.key, ok: receipt.ok && failed.length === 0, finishedAt: receipt.finishedAt, ageDays: (now.getTime() - Date.parse(receipt.finishedAt)) / 86_400_000, failed, receipt, ...(receipt.readFrom ? { readFrom: `s3://${receipt.readFrom.bucket} (${receipt.readFrom.region})` } : {}) };
    break;
  }
  if (group.drillMaxAgeDays === null) return { findings, latest };
  const trigger = `coldseal trigger --group ${group.name} --drill`;
  if (!latest) {
    findings.push(makeFinding({ group: group.name, where: `s3://${input.bucket}/drills/${group.name}/`, subject: group.name, check: 'drill-stale', severity: 'warn', since: now.toISOString(), summary: `group ${group.name} has no restore drill receipt: no backup was ever proven restorable`, action: `Run a drill on the designated host (${trigger}) and check its schedule.` }));
    return { findings, latest };
  }
  const where = `s3://${input.bucket}/${latest.key}`;
  if (!latest.ok) {
    findings.push(makeFinding({ group: group.name, host: latest.host, where, subject: group.name, check: 'drill-failed', severity: 'fail', since: latest.finishedAt, summary: `latest restore drill (${latest.stamp} on ${latest.host}) failed: ${latest.failed.length} of the restored dumps did not check out`, detail: latest.failed.join('\n'), action: `A backup that does not restore is not a backup: read the receipt, restore the failing dump by hand (coldseal restore) to see why, fix it, then ${trigger}.` }));
  }
  if (latest.ageDays > group.drillMaxAgeDays) {
    findings.push(makeFinding({ group: group.name, host: latest.host, where, subject: `${group.name}/age`, check: 'drill-stale', severity: 'warn', since: new Date(Date.parse(latest.finishedAt) + group.drillMaxAgeDays * 86_400_000).toISOString(), summary: `latest restore drill ran ${latest.ageDays.toFixed(1)} days ago (${latest.stamp}); at most ${group.drillMaxAgeDays} days are allowed`, action: `Check the drill schedule and the drill host ${latest.host} (SSM Run Command history); then ${trigger}.` }));
  }
  return { findings, latest };
}
