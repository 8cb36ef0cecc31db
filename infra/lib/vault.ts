import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { DRILLS_PREFIX, REPORTS_PREFIX, STATE_PREFIX, STORAGE_SNAPSHOT_PREFIX, TIERS, tierPrefix, WAL_PREFIX } from '../../format/layout';
import { incompleteUploadAbortDays, MAX_EXECUTION_TIMEOUT_SECONDS } from '../../format/run-document';
import { pitrProblems, retentionProblems, walWindowDays, type RetentionSettings } from './settings';

const ACCESS_LOG_PREFIX = 'data-bucket/';

export interface DataVaultProps {
  /** Lifecycle and Object Lock per tier (see rules.ts for what is refused). */
  readonly retention: RetentionSettings;
  /**
   * Days archived WAL (wal/, point-in-time recovery) is kept: the recovery window (settings.ts
   * PitrSettings says why one window serves every tier, and pitrProblems what is refused).
   * @default the daily tier's expireAfterDays
   */
  readonly walWindowDays?: number;
  /**
   * What happens to the buckets and key when the stack is deleted.
   * @default RemovalPolicy.RETAIN - backups outlive the stack that made them
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Days the verifier's reports and the drill receipts are kept.
   * @default 400
   */
  readonly reportsExpireAfterDays?: number;
  /**
   * Days the S3 server access logs are kept.
   * @default 365
   */
  readonly accessLogsExpireAfterDays?: number;
  /**
   * Send the bucket's object events to EventBridge (the verifier reacts to new manifests). Set as
   * the bucket's own property, without the custom resource CDK would otherwise add.
   * @default true
   */
  readonly eventBridgeNotifications?: boolean;
  /**
   * The longest a backup run may last: every segment's multipart upload stays open until the run
   * ends, so none may be aborted before.
   * @default MAX_EXECUTION_TIMEOUT_SECONDS (48 h): what the document lets a run by hand ask for
   */
  readonly longestRun?: Duration;
  /**
   * Days after which S3 aborts an incomplete multipart upload (a run killed without cleanup).
   * @default incompleteUploadAbortDays(longestRun)
   */
  readonly abortIncompleteUploadsAfterDays?: number;
}


/**
 * The data bucket and everything that protects it: its KMS key, its access-log bucket, Object
 * Lock, TLS-only and encryption-enforcing policy, and one lifecycle rule per tier prefix.
 */
export class DataVault extends Construct {
  /** Encrypts every backup (SSE-KMS); hosts may use it only through S3. */
  readonly key: kms.Key;
  readonly bucket: s3.Bucket;
  /** Receives the data bucket's server access logs. */
  readonly logBucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: DataVaultProps) {
    super(scope, id);
    const problems = retentionProblems(props.retention);
    if (problems.length > 0) {
      throw new Error(`DataVault props.retention: ${problems.map((p) => `${p.path.join('.')}: ${p.message}`).join('; ')}`);
    }
    for (const tier of TIERS) {
      if (!props.retention[tier]) throw new Error(`DataVault props.retention.${tier} is missing: every tier needs a retention`);
    }
    const walProblems = pitrProblems({ windowDays: props.walWindowDays }, props.retention);
    if (walProblems.length > 0) throw new Error(`DataVault props.walWindowDays: ${walProblems.map((p) => p.message).join('; ')}`);
    const walDays = walWindowDays({ windowDays: props.walWindowDays }, props.retention);
    const reportsDays = props.reportsExpireAfterDays ?? 400;
    const logDays = props.accessLogsExpireAfterDays ?? 365;
    if (!Number.isInteger(reportsDays) || reportsDays < 1) throw new Error(`DataVault props.reportsExpireAfterDays must be a whole number ≥ 1, got ${reportsDays}`);
    if (!Number.isInteger(logDays) || logDays < 1) throw new Error(`DataVault props.accessLogsExpireAfterDays must be a whole number ≥ 1, got ${logDays}`);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const longestRun = props.longestRun ?? Duration.seconds(MAX_EXECUTION_TIMEOUT_SECONDS);
    if (longestRun.toSeconds() > MAX_EXECUTION_TIMEOUT_SECONDS) {
      throw new Error(`DataVault props.longestRun (${longestRun.toSeconds() / 3600} hours) is longer than the ${MAX_EXECUTION_TIMEOUT_SECONDS / 3600} hours the SSM document allows a run: give at most that`);
    }
    const minimumAbortDays = incompleteUploadAbortDays(longestRun.toSeconds());
    const abortDays = props.abortIncompleteUploadsAfterDays ?? minimumAbortDays;
    if (!Number.isInteger(abortDays) || abortDays < minimumAbortDays) {
      throw new Error(
        `DataVault props.abortIncompleteUploadsAfterDays (${abortDays} days) must be at least ${minimumAbortDays} days: a run may last props.longestRun (${longestRun.toSeconds() / 3600} hours) with its uploads open to the end, and S3 may abort an upload as soon as that many days have passed since it began. Leave it out to derive it, or give a whole number of days of at least ${minimumAbortDays}`,
      );
    }

    this.key = new kms.Key(this, 'Key', {
      description: 'coldseal: encrypts the backups in the data bucket',
      enableKeyRotation: true,
      removalPolicy,
    });

    this.logBucket = accessLogBucket(this, 'AccessLogs', logDays, removalPolicy);

    const tierRules = tierLifecycleRules(props.retention);

    this.bucket = new s3.Bucket(this, 'Data', {
      ...lockedBucketProps(this.key, removalPolicy),
      lifecycleRules: [
        ...tierRules,
        // The WAL archive: kept for the recovery window, never moved to an archive class (restore
        // and restore_command read it object by object, at once); the agent locks each object like
        // the daily tier, and the window is never shorter than that lock (settings.ts pitrProblems).
        { id: 'wal', prefix: WAL_PREFIX, expiration: Duration.days(walDays), noncurrentVersionExpiration: Duration.days(1) },
        { id: 'drill-receipts', prefix: DRILLS_PREFIX, expiration: Duration.days(reportsDays), noncurrentVersionExpiration: Duration.days(1) },
        { id: 'reports', prefix: REPORTS_PREFIX, expiration: Duration.days(reportsDays), noncurrentVersionExpiration: Duration.days(1) },
        // The Lambdas rewrite their state objects on every run; on a versioned bucket each rewrite
        // would keep the old version forever without this.
        { id: 'lambda-state', prefix: STATE_PREFIX, noncurrentVersionExpiration: Duration.days(1) },
        // The verifier's daily storage snapshots (one small object a day): the report compares with 30 days ago and
        // draws the last 90; kept as long as the reports that cite them.
        { id: 'storage-snapshots', prefix: STORAGE_SNAPSHOT_PREFIX, expiration: Duration.days(reportsDays), noncurrentVersionExpiration: Duration.days(1) },
        // Never before the longest run has ended: its segments' uploads are open until then.
        { id: 'cleanup', abortIncompleteMultipartUploadAfter: Duration.days(abortDays), expiredObjectDeleteMarker: true },
      ],
    });

    if (props.eventBridgeNotifications ?? true) {
      (this.bucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = { eventBridgeConfiguration: { eventBridgeEnabled: true } };
    }

    logInto(this.bucket, this.logBucket, ACCESS_LOG_PREFIX);

    // The bucket's default encryption applies this key to every write that names none, so these
    // refuse only a writer that names another encryption or key. A Deny must not use
    // ...IfExists here: with a Deny, a negated IfExists operator is true when the key is absent,
    // and UploadPart, CompleteMultipartUpload and the Lambdas' plain PutObject carry no encryption
    // header (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists).
    // So each Deny fires only when the header is present (Null false) and different.
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'DenyOtherEncryption',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:PutObject'],
        resources: [this.bucket.arnForObjects('*')],
        conditions: {
          Null: { 's3:x-amz-server-side-encryption': 'false' },
          StringNotEquals: { 's3:x-amz-server-side-encryption': 'aws:kms' },
        },
      }),
    );
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'DenyOtherKmsKey',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:PutObject'],
        resources: [this.bucket.arnForObjects('*')],
        conditions: {
          Null: { 's3:x-amz-server-side-encryption-aws-kms-key-id': 'false' },
          StringNotEquals: { 's3:x-amz-server-side-encryption-aws-kms-key-id': this.key.keyArn },
        },
      }),
    );
  }
}

/** One lifecycle rule per tier prefix: expiry and archive transitions (shared with the replica vault). */
/**
 * What the data bucket and its replica share: SSE-KMS with their own key and the bucket key, no
 * public access, TLS only, objects owned by the bucket's account whoever wrote them (no ACLs),
 * versioned, Object Lock enabled.
 */
export function lockedBucketProps(key: kms.IKey, removalPolicy: RemovalPolicy): s3.BucketProps {
  return {
    encryption: s3.BucketEncryption.KMS,
    encryptionKey: key,
    bucketKeyEnabled: true,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    versioned: true,
    // No bucket-wide default retention: each tier has its own, set by the agent per object.
    objectLockEnabled: true,
    // Manifests are a few KB; this keeps them in STANDARD, readable at once, when their tier moves to Glacier.
    transitionDefaultMinimumObjectSize: s3.TransitionDefaultMinimumObjectSize.ALL_STORAGE_CLASSES_128_K,
    removalPolicy,
  };
}

export function tierLifecycleRules(retention: RetentionSettings): s3.LifecycleRule[] {
  return TIERS.map((tier) => {
    const r = retention[tier];
    return {
      id: `tier-${tier}`,
      prefix: tierPrefix(tier),
      expiration: Duration.days(r.expireAfterDays),
      transitions: (r.transitions ?? []).map((t) => ({
        storageClass: t.storageClass === 'GLACIER' ? s3.StorageClass.GLACIER : s3.StorageClass.DEEP_ARCHIVE,
        transitionAfter: Duration.days(t.afterDays),
      })),
      // Expiry on a versioned bucket only hides the object behind a delete marker; this removes
      // the hidden version once Object Lock lets it go.
      noncurrentVersionExpiration: Duration.days(1),
    };
  });
}

/** A bucket for S3 server access logs (shared with the replica vault). */
export function accessLogBucket(scope: Construct, id: string, expireAfterDays: number, removalPolicy: RemovalPolicy): s3.Bucket {
  // S3 server access logs can only be delivered to a bucket encrypted with SSE-S3.
  const logBucket = new s3.Bucket(scope, id, {
    encryption: s3.BucketEncryption.S3_MANAGED,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    enforceSSL: true,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    versioned: true,
    removalPolicy,
    lifecycleRules: [
      {
        id: 'expire-access-logs',
        expiration: Duration.days(expireAfterDays),
        noncurrentVersionExpiration: Duration.days(1),
        abortIncompleteMultipartUploadAfter: Duration.days(1),
      },
    ],
  });
  Validations.of(logBucket).acknowledge({
    id: 'AwsSolutions-S1',
    reason: 'This is the access-log bucket of the data bucket; logging its own accesses would log into itself or need a third bucket with the same question.',
  });
  return logBucket;
}

/** Sends a bucket's server access logs to logBucket under prefix. */
export function logInto(bucket: s3.Bucket, logBucket: s3.Bucket, prefix: string): void {
  // Wired by hand, not with serverAccessLogsBucket: without an app-level feature flag that
  // falls back to ACLs, and this construct must be secure in whatever app it is added to.
  (bucket.node.defaultChild as s3.CfnBucket).loggingConfiguration = { destinationBucketName: logBucket.bucketName, logFilePrefix: prefix };
  logBucket.addToResourcePolicy(
    new iam.PolicyStatement({
      sid: 'S3ServerAccessLogs',
      principals: [new iam.ServicePrincipal('logging.s3.amazonaws.com')],
      actions: ['s3:PutObject'],
      resources: [logBucket.arnForObjects(`${prefix}*`)],
      conditions: {
        ArnLike: { 'aws:SourceArn': bucket.bucketArn },
        StringEquals: { 'aws:SourceAccount': Stack.of(bucket).account },
      },
    }),
  );
}
