import { z } from 'zod';
import { BACKUPS_PREFIX, bucketNameSchema, DRILLS_PREFIX } from './layout';

/**
 * The offsite replica vault: a second bucket in another region (optionally another account) that
 * S3 replication fills with every backup and drill receipt. Its names are derived, not looked up,
 * so that the primary stack (which writes the replication rule), the replica stack (which creates
 * the bucket) and the CLI (which restores from it when the primary is gone) agree without any
 * cross-stack reference and without reaching the primary's region.
 */

/** What is replicated: backups (ciphertext and manifests) and drill receipts. Reports and state stay home. */
export const REPLICATED_PREFIXES = [BACKUPS_PREFIX, DRILLS_PREFIX] as const;

/** A deployment name becomes part of bucket, key alias and role names: lower case, short. */
export const DEPLOYMENT_NAME_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?$/;
export const DEPLOYMENT_NAME_RULE = '1-20 characters: lower-case letters, digits and "-", not starting or ending with "-"';

/** AWS region names as they appear in ARNs and endpoints (us-east-1, eu-west-3, ap-southeast-2, us-gov-west-1). */
export const REGION_PATTERN = /^[a-z]{2}(?:-[a-z]+)+-\d$/;
export const ACCOUNT_PATTERN = /^\d{12}$/;

/** Turns a CloudFormation stack name into the deployment name used in replica names. */
export function deploymentNameOf(stackName: string): string {
  const name = stackName.toLowerCase().replace(/[^a-z0-9-]/g, '-').replace(/^-+|-+$/g, '').slice(0, 20).replace(/-+$/, '');
  if (!DEPLOYMENT_NAME_PATTERN.test(name)) throw new Error(`stack name "${stackName}" gives no usable deployment name: use ${DEPLOYMENT_NAME_RULE}`);
  return name;
}

/**
 * `<name>-replica-<account>-<region>`: unique worldwide (account and region are in it) and at most
 * 20 + 9 + 12 + 1 + 14 = 56 characters, under S3's 63. Account and region may be CloudFormation
 * tokens in the stacks; the CLI has them as text.
 */
export function replicaBucketName(name: string, account: string, region: string): string {
  return `${name}-replica-${account}-${region}`;
}

/** The replica key's alias: the replication rule names the key by it (S3 accepts an alias ARN). */
export function replicaKeyAlias(name: string): string {
  return `alias/${name}-replica`;
}

/** The replication role in the primary account; named so that the replica's policies can match it (aws:PrincipalArn) before it exists. */
export function replicationRoleName(name: string, primaryRegion: string): string {
  return `${name}-replication-${primaryRegion}`;
}

/**
 * The verifier's role in the primary account, named for the same reason as the replication role:
 * the replica's bucket policy lets it list the replica (the report's storage and cost) by
 * aws:PrincipalArn, before the primary stack creates it.
 */
export function replicaListerRoleName(name: string, primaryRegion: string): string {
  return `${name}-verifier-${primaryRegion}`;
}

/** Where the replica is: what `coldseal … --replica` needs, and what the deployment parameter records. */
export const replicaLocationSchema = z
  .object({
    bucket: bucketNameSchema,
    region: z.string().regex(REGION_PATTERN, 'must be an AWS region, e.g. eu-west-3'),
    /** Set when the replica is in another account: restores then need that account's credentials. */
    account: z.string().regex(ACCOUNT_PATTERN, 'must be a 12-digit AWS account id').optional(),
  })
  .strict();
export type ReplicaLocation = z.infer<typeof replicaLocationSchema>;

/**
 * x-amz-replication-status of a source object, as HeadObject returns it
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-status.html). Absent when no
 * rule applied to the object (written before replication was set up, or outside the prefixes).
 */
export const REPLICATION_STATUSES = ['PENDING', 'COMPLETED', 'FAILED', 'REPLICA'] as const;
export type ReplicationStatus = (typeof REPLICATION_STATUSES)[number];

/** The S3 event notification type for an object that could not be replicated. */
export const REPLICATION_FAILED_EVENT = 's3:Replication:OperationFailedReplication';
/** With Replication Time Control: replication took longer than its 15-minute threshold. */
export const REPLICATION_MISSED_THRESHOLD_EVENT = 's3:Replication:OperationMissedThreshold';
