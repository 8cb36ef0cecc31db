import { manifestKey, parseKey } from '../../../format/layout';
import { REPLICATION_FAILED_EVENT } from '../../../format/replica';
import { makeFinding, type Finding } from '../../shared/findings';

/**
 * S3 replication failures reach the monitor as S3 event notifications published to an SNS topic
 * (infra/lib/replication.ts); the Lambda receives SNS's envelope, whose Message is S3's event
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html,
 * replication events in https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-metrics-events.html).
 */
export interface SnsLambdaEvent {
  readonly Records: readonly { readonly EventSource?: string; readonly Sns: { readonly Message: string; readonly TopicArn?: string; readonly Timestamp?: string } }[];
}

export interface S3ReplicationRecord {
  readonly eventName: string;
  readonly eventTime?: string;
  readonly awsRegion?: string;
  readonly s3: { readonly bucket: { readonly name: string }; readonly object: { readonly key: string; readonly size?: number; readonly versionId?: string } };
  readonly replicationEventData?: {
    readonly replicationRuleId?: string;
    readonly destinationBucket?: string;
    readonly s3Operation?: string;
    readonly requestTime?: string;
    readonly failureReason?: string;
  };
}

export function isSnsEvent(event: unknown): event is SnsLambdaEvent {
  const records = (event as { Records?: unknown }).Records;
  return Array.isArray(records) && records.length > 0 && records.every((r) => typeof (r as { Sns?: { Message?: unknown } }).Sns?.Message === 'string');
}

/** S3 event records in the SNS messages; S3's test message (sent when the notification is set) and other shapes hold none. */
export function s3Records(event: SnsLambdaEvent): S3ReplicationRecord[] {
  const out: S3ReplicationRecord[] = [];
  for (const record of event.Records) {
    let body: unknown;
    try {
      body = JSON.parse(record.Sns.Message);
    } catch {
      continue;
    }
    const records = (body as { Records?: unknown }).Records;
    if (!Array.isArray(records)) continue;
    for (const r of records) if (typeof (r as S3ReplicationRecord).eventName === 'string' && typeof (r as S3ReplicationRecord).s3?.object?.key === 'string') out.push(r as S3ReplicationRecord);
  }
  return out;
}

/** The event's name drops the configuration's "s3:" prefix (Replication:OperationFailedReplication). */
export function isReplicationFailure(record: S3ReplicationRecord): boolean {
  return `s3:${record.eventName}` === REPLICATION_FAILED_EVENT || record.eventName === REPLICATION_FAILED_EVENT;
}

/** Keys in S3 events are URL-encoded, a space as "+" (notification-content-structure.html). */
export function eventKey(encoded: string): string {
  return decodeURIComponent(encoded.replace(/\+/g, ' '));
}

/**
 * What to do for the failure reasons S3 gives
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-failure-codes.html).
 */
function adviceFor(reason: string | undefined): string {
  if (!reason) return 'Check the replication role, the replica bucket and its key in the replica region.';
  if (/^AssumeRole/.test(reason)) return 'S3 cannot assume the replication role: check that the role exists and trusts s3.amazonaws.com (redeploy the stack).';
  if (/^DstBucket(NotFound|InvalidRegion)/.test(reason)) return 'The replica bucket is gone or elsewhere: deploy the replica stack (cdk deploy --all) in the replica account and region.';
  if (/^DstBucket(Unversioned|ObjectLock)/.test(reason)) return 'The replica bucket lost versioning or Object Lock: redeploy the replica stack; such a bucket cannot hold these backups.';
  if (/KMS|Kms/.test(reason)) return 'A KMS key refused the copy: check the replica key\'s policy lets the replication role encrypt (and the primary key lets it decrypt), and that neither key is disabled or pending deletion.';
  if (/AccessDenied|Permission|Forbidden/i.test(reason)) return 'A policy denied the copy: check the replication role\'s policy and the replica bucket\'s policy (another account must allow the role).';
  return 'Look the reason up in the S3 replication failure reasons and fix its cause.';
}

/**
 * One finding per backup (all its objects' failures alert once), or per object outside the backup
 * layout (drill receipts). Like a failed command: what, where, since when, why, what to do.
 */
export function replicationFailureFinding(record: S3ReplicationRecord, receivedAt: Date): Finding {
  const key = eventKey(record.s3.object.key);
  const bucket = record.s3.bucket.name;
  const data = record.replicationEventData ?? {};
  const parsed = parseKey(key);
  const backup = parsed && parsed.kind !== 'drill-receipt' && parsed.kind !== 'wal' && parsed.kind !== 'binlog' ? parsed : undefined;
  const subject = backup ? manifestKey(backup, backup.stamp) : key;
  const reason = data.failureReason;
  const destination = data.destinationBucket?.replace(/^arn:aws[a-z-]*:s3:::/, '');
  const what = backup ? `backup ${backup.stamp} of ${backup.group}/${backup.host}/${backup.source} (${backup.tier})` : key;
  return makeFinding({
    ...(backup
      ? { group: backup.group, host: backup.host, source: backup.source, tier: backup.tier }
      : parsed?.kind === 'wal' || parsed?.kind === 'binlog'
        ? { group: parsed.group, host: parsed.host, source: parsed.source }
        : parsed?.kind === 'drill-receipt'
          ? { group: parsed.group, host: parsed.host }
          : {}),
    where: `s3://${bucket}/${key}${record.s3.object.versionId ? ` (version ${record.s3.object.versionId})` : ''}${destination ? ` -> replica s3://${destination}` : ''}`,
    subject,
    check: 'replication-failed',
    severity: 'fail',
    since: data.requestTime ?? record.eventTime ?? receivedAt.toISOString(),
    summary: `S3 could not copy ${what} to the offsite replica${reason ? `: ${reason}` : ''}`,
    detail: [reason ? `failure reason: ${reason}` : 'S3 gave no failure reason', data.replicationRuleId ? `rule: ${data.replicationRuleId}` : '', data.s3Operation ? `operation: ${data.s3Operation}` : '', record.awsRegion ? `source region: ${record.awsRegion}` : ''].filter(Boolean).join('\n'),
    action: `${adviceFor(reason)} S3 does not retry a failed object: once fixed, copy it with S3 Batch Replication, or rely on the next backup. Until then this backup exists in one region only; the daily report lists it as replica-missing and closes this alert once it is replicated.`,
  });
}
