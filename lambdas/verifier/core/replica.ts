import { makeFinding, type Finding } from '../../shared/findings';

/**
 * Is each backup in the offsite replica? Checked, not assumed: S3 keeps the answer on the source
 * object, as x-amz-replication-status on HeadObject
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-status.html): PENDING until
 * the copy is made, then COMPLETED, or FAILED (S3 does not retry a failed object; only S3 Batch
 * Replication copies it again). No status at all means no rule applied when the object was
 * written (before replication was set up): live replication never copies such an object.
 *
 * One finding per backup (its manifest and every ciphertext segment), so that a backup whose
 * objects all failed alerts once:
 * - replica-missing (FAIL): an object FAILED, has no status an hour after it was written, or is
 *   still PENDING after the replica's maxPendingHours;
 * - replica-pending (WARN): still PENDING after an hour, within maxPendingHours.
 * The first hour is not reported at all: replication of a fresh backup takes minutes (15 with
 * RTC), and the per-manifest verification runs seconds after the manifest is written, when
 * every object is PENDING by definition.
 */
export const REPLICA_GRACE_MS = 3_600_000;

export interface ReplicaObject {
  readonly key: string;
  readonly status: string | undefined;
  readonly lastModified: Date;
}

/** The report's replica column, per backup. */
export type ReplicaState = 'replicated' | 'pending' | 'missing';

export interface ReplicaCheck {
  readonly state: ReplicaState;
  readonly finding: Finding | undefined;
}

type Reason = 'failed' | 'unreplicated' | 'overdue' | 'pending' | 'young';

function reasonOf(object: ReplicaObject, now: Date, maxPendingMs: number): Reason | undefined {
  const age = now.getTime() - object.lastModified.getTime();
  // REPLICA: the object is itself a replica (a two-way rule); it is not ours to copy.
  if (object.status === 'COMPLETED' || object.status === 'REPLICA') return undefined;
  if (object.status === 'FAILED') return 'failed';
  if (age < REPLICA_GRACE_MS) return 'young';
  if (object.status === 'PENDING') return age > maxPendingMs ? 'overdue' : 'pending';
  return 'unreplicated';
}

const name = (key: string) => key.slice(key.lastIndexOf('/') + 1);

export function replicaCheck(input: {
  readonly at: { group: string; host: string; source: string; tier: string };
  readonly manifestKey: string;
  readonly bucket: string;
  readonly objects: readonly ReplicaObject[];
  readonly now: Date;
  readonly maxPendingHours: number;
}): ReplicaCheck {
  const maxPendingMs = input.maxPendingHours * 3_600_000;
  const byReason = new Map<Reason, ReplicaObject[]>();
  for (const object of input.objects) {
    const reason = reasonOf(object, input.now, maxPendingMs);
    if (reason) byReason.set(reason, [...(byReason.get(reason) ?? []), object]);
  }
  const failing = (['failed', 'unreplicated', 'overdue'] as const).filter((r) => byReason.has(r));
  const state: ReplicaState = failing.length ? 'missing' : byReason.size ? 'pending' : 'replicated';
  const where = `s3://${input.bucket}/${input.manifestKey}`;
  const list = (objects: readonly ReplicaObject[]) => objects.map((o) => name(o.key)).join(', ');
  const oldest = (objects: readonly ReplicaObject[]) => Math.min(...objects.map((o) => o.lastModified.getTime()));
  if (failing.length) {
    const parts: string[] = [];
    const actions: string[] = [];
    const failed = byReason.get('failed');
    const unreplicated = byReason.get('unreplicated');
    const overdue = byReason.get('overdue');
    if (failed) {
      parts.push(`S3 reports replication FAILED for ${list(failed)}`);
      actions.push('Find the reason in the monitor\'s "Replication failed" alert (or the bucket\'s replication metrics): the replication role, the replica key\'s policy, the replica bucket\'s versioning or Object Lock. S3 does not retry a failed object: after the fix, copy it with S3 Batch Replication (aws s3control create-job with a replication manifest), or rely on the next backup.');
    }
    if (unreplicated) {
      parts.push(`no replication rule applied to ${list(unreplicated)} (no replication status)`);
      actions.push('These objects were written before replication was set up (or the rule was changed): live replication never copies them. Copy them with S3 Batch Replication, or rely on newer backups.');
    }
    if (overdue) {
      parts.push(`replication of ${list(overdue)} is still pending after more than ${input.maxPendingHours} h`);
      actions.push('Check the replication metrics (OperationsPendingReplication, ReplicationLatency) in CloudWatch and the replica region\'s health; a large backlog or an outage there delays every copy.');
    }
    const since = failed ? oldest(failed) : unreplicated ? oldest(unreplicated) + REPLICA_GRACE_MS : oldest(overdue!) + maxPendingMs;
    return {
      state,
      finding: makeFinding({ ...input.at, where, subject: input.manifestKey, check: 'replica-missing', severity: 'fail', since: new Date(since).toISOString(), summary: `backup has no offsite copy: ${parts.join('; ')}`, action: `Until fixed, this backup exists in one region only. ${actions.join(' ')}` }),
    };
  }
  const pending = byReason.get('pending');
  if (pending) {
    return {
      state,
      finding: makeFinding({ ...input.at, where, subject: input.manifestKey, check: 'replica-pending', severity: 'warn', since: new Date(oldest(pending) + REPLICA_GRACE_MS).toISOString(), summary: `replication of ${list(pending)} to the replica is still pending (it becomes a FAIL after ${input.maxPendingHours} h)`, action: 'Usually it completes by itself; if it stays, check the replication metrics (OperationsPendingReplication) in CloudWatch and the replica region\'s health.' }),
    };
  }
  return { state, finding: undefined };
}
