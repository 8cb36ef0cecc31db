import { ArnFormat, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { BACKUPS_PREFIX, DRILLS_PREFIX, TIERS, type Tier } from '../../format/layout';
import { ACCOUNT_PATTERN, REPLICATED_PREFIXES, replicaBucketName, replicaKeyAlias, replicaListerRoleName, replicationRoleName, DEPLOYMENT_NAME_PATTERN, DEPLOYMENT_NAME_RULE } from '../../format/replica';
import { replicaProblems, replicaRetention, retentionProblems, type RetentionSettings } from './settings';
import { acknowledgeObjectPrefixes } from './nag';
import { accessLogBucket, lockedBucketProps, logInto, tierLifecycleRules } from './vault';

const ACCESS_LOG_PREFIX = 'replica-bucket/';

/**
 * What principals of the primary account must never do to a replica: remove it (a delete marker
 * hides it from a restore's listing too), shorten or lift its lock, or take its key away.
 */
export const REPLICA_OBJECT_DESTRUCTIVE_ACTIONS = ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:PutObjectRetention', 's3:BypassGovernanceRetention', 's3:PutObjectLegalHold'] as const;
/**
 * Denied to the primary account only when the replica is in another account: in the same account
 * these are CloudFormation's own calls when it updates the replica stack.
 */
export const REPLICA_BUCKET_DESTRUCTIVE_ACTIONS = ['s3:PutLifecycleConfiguration', 's3:PutBucketPolicy', 's3:DeleteBucketPolicy', 's3:PutBucketObjectLockConfiguration'] as const;
/** Key calls denied to the primary account: always the ones that take the key away; across accounts, any use or change. */
export const REPLICA_KEY_DENIED = ['kms:ScheduleKeyDeletion', 'kms:DisableKey'] as const;
export const REPLICA_KEY_DENIED_ACROSS_ACCOUNTS = ['kms:PutKeyPolicy', 'kms:Decrypt', 'kms:ReEncryptFrom', 'kms:CreateGrant'] as const;

export interface ReplicaVaultProps {
  /** Deployment name (format/replica.ts): part of the bucket, alias and role names. */
  readonly name: string;
  /** Account of the primary vault, whose replication role writes here. */
  readonly primaryAccount: string;
  /** Region of the primary vault (part of the replication role's name). */
  readonly primaryRegion: string;
  /** The primary's retention per tier: the replica expires each tier on the same day. */
  readonly retention: RetentionSettings;
  /**
   * Archive each listed tier on this day instead of the primary's first transition.
   * @default - the primary's transitions
   */
  readonly archiveAfterDays?: Partial<Record<Tier, number>>;
  /**
   * Days the replicated drill receipts are kept.
   * @default 400
   */
  readonly drillReceiptsExpireAfterDays?: number;
  /**
   * @default 365
   */
  readonly accessLogsExpireAfterDays?: number;
  /**
   * @default RemovalPolicy.RETAIN - the offsite copy outlives its stack
   */
  readonly removalPolicy?: RemovalPolicy;
}

/**
 * The replica bucket in the second region (and possibly account): versioned, Object Lock, SSE-KMS
 * with its own key in that region, TLS-only, no public access, a lifecycle per tier, access logs.
 * Its policy lets the primary's replication role replicate into backups/ and drills/ and nothing
 * else, and denies every principal of the primary account the calls that would delete a replica
 * or shorten its lock (in the same account, that is every principal: an early clean-up then
 * starts by changing this policy, which CloudTrail records).
 *
 * Each replica arrives with its source object's Object Lock mode and retain-until date, so the
 * per-tier locks hold here too; the bucket needs Object Lock enabled to receive them
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-managing.html, "Using Object
 * Lock with S3 Replication").
 */
export class ReplicaVault extends Construct {
  readonly bucket: s3.Bucket;
  readonly key: kms.Key;
  readonly logBucket: s3.Bucket;
  /** The primary's replication role, by ARN (it is created by the primary stack). */
  readonly replicationRoleArn: string;
  /** The primary's verifier role, by ARN: it lists this bucket for the report's storage and cost. */
  readonly listerRoleArn: string;
  /** What a restore from the replica needs, for the replica account's restore role or user to attach. */
  readonly readerPolicy: iam.ManagedPolicy;

  constructor(scope: Construct, id: string, props: ReplicaVaultProps) {
    super(scope, id);
    if (!DEPLOYMENT_NAME_PATTERN.test(props.name)) throw new Error(`ReplicaVault props.name "${props.name}" must be ${DEPLOYMENT_NAME_RULE}`);
    if (!Token.isUnresolved(props.primaryAccount) && !ACCOUNT_PATTERN.test(props.primaryAccount)) {
      throw new Error(`ReplicaVault props.primaryAccount "${props.primaryAccount}" is not a 12-digit AWS account id`);
    }
    if (Token.isUnresolved(props.primaryRegion)) throw new Error('ReplicaVault props.primaryRegion must be a region name, not a deploy-time value: it is part of the replication role\'s name');
    const stack = Stack.of(this);
    const crossAccount = !Token.isUnresolved(props.primaryAccount) && !Token.isUnresolved(stack.account) && props.primaryAccount !== stack.account;
    if (Token.isUnresolved(stack.region)) throw new Error('ReplicaVault must be in a stack with an explicit region (env.region): the replica\'s region is the point of it');
    const problems = [
      ...retentionProblems(props.retention).map((p) => `retention.${p.path.join('.')}: ${p.message}`),
      ...replicaProblems({ region: stack.region, archiveAfterDays: props.archiveAfterDays }, props.retention).map((p) => `${p.path.join('.')}: ${p.message}`),
    ];
    if (problems.length > 0) throw new Error(`ReplicaVault props: ${problems.join('; ')}`);
    const drillDays = props.drillReceiptsExpireAfterDays ?? 400;
    if (!Number.isInteger(drillDays) || drillDays < 1) throw new Error(`ReplicaVault props.drillReceiptsExpireAfterDays must be a whole number ≥ 1, got ${drillDays}`);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const retention = replicaRetention(props.retention, props.archiveAfterDays);
    for (const tier of TIERS) if (!retention[tier]) throw new Error(`ReplicaVault props.retention.${tier} is missing: every tier needs a retention`);

    this.replicationRoleArn = stack.formatArn({
      service: 'iam',
      region: '',
      account: props.primaryAccount,
      resource: 'role',
      resourceName: replicationRoleName(props.name, props.primaryRegion),
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });

    this.listerRoleArn = stack.formatArn({
      service: 'iam',
      region: '',
      account: props.primaryAccount,
      resource: 'role',
      resourceName: replicaListerRoleName(props.name, props.primaryRegion),
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    });

    this.key = new kms.Key(this, 'Key', {
      description: 'coldseal: encrypts the offsite replicas of the backups',
      enableKeyRotation: true,
      alias: replicaKeyAlias(props.name),
      removalPolicy,
    });
    this.logBucket = accessLogBucket(this, 'AccessLogs', props.accessLogsExpireAfterDays ?? 365, removalPolicy);

    this.bucket = new s3.Bucket(this, 'Replica', {
      bucketName: replicaBucketName(props.name, stack.account, stack.region),
      // The replica account owns every replica, whoever wrote it.
      ...lockedBucketProps(this.key, removalPolicy),
      lifecycleRules: [
        ...tierLifecycleRules(retention),
        { id: 'drill-receipts', prefix: DRILLS_PREFIX, expiration: Duration.days(drillDays), noncurrentVersionExpiration: Duration.days(1) },
        { id: 'cleanup', abortIncompleteMultipartUploadAfter: Duration.days(1), expiredObjectDeleteMarker: true },
      ],
    });
    logInto(this.bucket, this.logBucket, ACCESS_LOG_PREFIX);

    // The role is named in a condition, not as the principal: this stack deploys before the
    // primary's, so the role does not exist yet, and S3 and KMS refuse a policy naming a principal
    // that does not exist ("Invalid principal in policy",
    // https://aws.amazon.com/premiumsupport/knowledge-center/s3-invalid-principal-in-policy-error/;
    // MalformedPolicyDocumentException, https://repost.aws/knowledge-center/kms-policy-error-invalid-principals).
    // And a role principal, once saved, is kept as the role's unique id, so a role recreated with
    // the primary stack would silently stop matching ("IAM role principals",
    // https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html).
    // The account principal needs no such thing; aws:PrincipalArn is the role's ARN for a session
    // of the role, matched by name whenever the role was made
    // (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn).
    // Across accounts, the account principal grants only what the primary's IAM also grants; the
    // condition keeps every other principal of that account out.
    const primaryAccount = new iam.AccountPrincipal(props.primaryAccount);
    const onlyTheRole = { ArnEquals: { 'aws:PrincipalArn': this.replicationRoleArn } };
    const replicaWrites = ['s3:ReplicateObject', 's3:ReplicateTags', 's3:ObjectOwnerOverrideToBucketOwner'];
    // What the replication role needs at the destination
    // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/setting-repl-config-perm-overview.html).
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'ReplicateFromPrimary',
        principals: [primaryAccount],
        actions: replicaWrites,
        resources: REPLICATED_PREFIXES.map((prefix) => this.bucket.arnForObjects(`${prefix}*`)),
        conditions: onlyTheRole,
      }),
    );
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'ReplicationChecksDestination',
        principals: [primaryAccount],
        actions: ['s3:GetBucketVersioning', 's3:GetBucketObjectLockConfiguration', 's3:List*'],
        resources: [this.bucket.bucketArn],
        conditions: onlyTheRole,
      }),
    );
    // The primary's verifier lists the replica (each object's size and storage class, for the
    // report's storage and cost) and reads nothing of it; named like the replication role above,
    // by aws:PrincipalArn, since it too is created after this stack
    // (ListObjectsV2 needs s3:ListBucket, https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html).
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'VerifierListsReplica',
        principals: [primaryAccount],
        actions: ['s3:ListBucket'],
        resources: [this.bucket.bucketArn],
        conditions: { ArnEquals: { 'aws:PrincipalArn': this.listerRoleArn } },
      }),
    );
    // Replicas are written by the replication role alone, whatever another principal's own IAM
    // grants it (in the same account, an allow there would be enough without this).
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'DenyReplicationByOthers',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: replicaWrites,
        resources: [this.bucket.arnForObjects('*')],
        conditions: { ArnNotEquals: { 'aws:PrincipalArn': this.replicationRoleArn } },
      }),
    );
    this.bucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'DenyPrimaryAccountDestruction',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: crossAccount ? [...REPLICA_OBJECT_DESTRUCTIVE_ACTIONS, ...REPLICA_BUCKET_DESTRUCTIVE_ACTIONS] : [...REPLICA_OBJECT_DESTRUCTIVE_ACTIONS],
        resources: [this.bucket.bucketArn, this.bucket.arnForObjects('*')],
        conditions: { StringEquals: { 'aws:PrincipalAccount': props.primaryAccount } },
      }),
    );

    // The role encrypts each replica with this key, through S3 in this region only (the key serves
    // this bucket alone).
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'ReplicationEncrypts',
        principals: [primaryAccount],
        actions: ['kms:Encrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
        conditions: { StringEquals: { 'kms:ViaService': `s3.${stack.region}.amazonaws.com` }, ...onlyTheRole },
      }),
    );
    this.key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'DenyPrimaryAccountKeyRemoval',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: crossAccount ? [...REPLICA_KEY_DENIED, ...REPLICA_KEY_DENIED_ACROSS_ACCOUNTS] : [...REPLICA_KEY_DENIED],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:PrincipalAccount': props.primaryAccount } },
      }),
    );

    // What list, status, verify, restore and drill --replica need (their requests are recorded in
    // test/integration/restore-replica.test.ts), and nothing of any other bucket or key.
    this.readerPolicy = new iam.ManagedPolicy(this, 'Reader', {
      description: 'coldseal: restore from the offsite replica (list and read backups/ and drills/, decrypt through S3); attach it to whoever restores',
      statements: [
        // The catalog lists; a HEAD of an absent key answers 404 rather than 403 only with ListBucket.
        new iam.PolicyStatement({ sid: 'ListReplica', actions: ['s3:ListBucket'], resources: [this.bucket.bucketArn] }),
        // Every ranged read after the first is pinned to the version first read (runtime/s3-part-fetcher.ts),
        // which S3 authorizes as s3:GetObjectVersion (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
        new iam.PolicyStatement({ sid: 'ReadReplicas', actions: ['s3:GetObject', 's3:GetObjectVersion'], resources: REPLICATED_PREFIXES.map((prefix) => this.bucket.arnForObjects(`${prefix}*`)) }),
        // The replica may archive a tier sooner than the primary (archiveAfterDays): restore asks S3 for a copy back.
        new iam.PolicyStatement({ sid: 'RestoreArchivedReplicas', actions: ['s3:RestoreObject'], resources: [this.bucket.arnForObjects(`${BACKUPS_PREFIX}*`)] }),
        new iam.PolicyStatement({
          sid: 'DecryptThroughS3',
          actions: ['kms:Decrypt'],
          resources: [this.key.keyArn],
          conditions: { StringEquals: { 'kms:ViaService': `s3.${stack.region}.amazonaws.com` } },
        }),
      ],
    });
    acknowledgeObjectPrefixes(this.readerPolicy, this.bucket, REPLICATED_PREFIXES, 'A restore reads whichever backup (and drill receipt) is asked for: keys carry group, host, source and a time stamp; nothing outside backups/ and drills/ of the replica is reachable.');
  }
}
