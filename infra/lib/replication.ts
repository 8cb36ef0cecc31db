import { ArnFormat, Stack, Token, Validations, type CfnElement } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import {
  DEPLOYMENT_NAME_PATTERN,
  DEPLOYMENT_NAME_RULE,
  REPLICATED_PREFIXES,
  REPLICATION_FAILED_EVENT,
  REPLICATION_MISSED_THRESHOLD_EVENT,
  replicaBucketName,
  replicaKeyAlias,
  replicationRoleName,
  type ReplicaLocation,
} from '../../format/replica';

export interface VaultReplicationProps {
  /** The primary data bucket (versioned, SSE-KMS). */
  readonly bucket: s3.Bucket;
  /** The primary bucket's key: the role decrypts with it to read what it copies. */
  readonly key: kms.IKey;
  /** Deployment name (format/replica.ts): the replica's bucket, alias and this role are named after it. */
  readonly name: string;
  /** Region of the replica. */
  readonly region: string;
  /**
   * Account of the replica; replicas are then owned by it.
   * @default - this stack's account
   */
  readonly account?: string;
  /**
   * S3 Replication Time Control (15-minute threshold, with its events).
   * @default false
   */
  readonly replicationTimeControl?: boolean;
  /** Key of the topic that receives S3's replication events (S3 must be allowed to use it). */
  readonly eventsKey: kms.IKey;
}

/** RTC's fixed threshold: the only value S3 accepts (https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-time-control.html). */
const RTC_MINUTES = 15;

/**
 * S3 replication of backups/ and drills/ from the data bucket into the replica vault: the role S3
 * assumes, one rule per prefix (delete markers not replicated, so neither a lifecycle expiry nor a
 * careless delete at home removes anything offsite; objects re-encrypted with the replica's key;
 * ownership to the replica account when it is another), replication metrics always and RTC when
 * asked, and S3's replication-failure events sent to a topic the monitor subscribes to.
 *
 * The rule is written on the bucket's CloudFormation resource rather than with the L2's
 * replicationRules: the replica is named, not referenced (it lives in another stack, maybe another
 * account), and the L2's role grants more than replication needs.
 */
export class VaultReplication extends Construct {
  readonly role: iam.Role;
  /** Receives S3's replication failure (and, with RTC, missed-threshold) events. */
  readonly eventsTopic: sns.Topic;
  /** The replica's bucket (its name holds the account, maybe a deploy-time value), region and, when another, account. */
  readonly location: ReplicaLocation;
  readonly replicaBucketArn: string;
  readonly replicaKeyAliasArn: string;

  constructor(scope: Construct, id: string, props: VaultReplicationProps) {
    super(scope, id);
    const stack = Stack.of(this);
    if (!DEPLOYMENT_NAME_PATTERN.test(props.name)) throw new Error(`VaultReplication props.name "${props.name}" must be ${DEPLOYMENT_NAME_RULE}`);
    if (Token.isUnresolved(stack.region)) {
      throw new Error('VaultReplication needs the stack\'s region (env.region): it names the replication role and must differ from the replica\'s');
    }
    const crossAccount = props.account !== undefined && props.account !== stack.account;
    if (props.region === stack.region && !crossAccount) {
      throw new Error(`VaultReplication props.region: the replica would be in the primary's own region (${stack.region}) and account; choose another region, or another account`);
    }
    const replicaAccount = props.account ?? stack.account;
    const bucketName = replicaBucketName(props.name, replicaAccount, props.region);
    this.replicaBucketArn = stack.formatArn({ service: 's3', region: '', account: '', resource: bucketName, arnFormat: ArnFormat.NO_RESOURCE_NAME });
    this.replicaKeyAliasArn = stack.formatArn({ service: 'kms', region: props.region, account: replicaAccount, resource: replicaKeyAlias(props.name), arnFormat: ArnFormat.NO_RESOURCE_NAME });
    this.location = { bucket: bucketName, region: props.region, ...(crossAccount ? { account: props.account } : {}) };

    this.role = new iam.Role(this, 'Role', {
      roleName: replicationRoleName(props.name, stack.region),
      description: 'coldseal: S3 replicates the backups into the offsite replica vault with this role',
      assumedBy: new iam.ServicePrincipal('s3.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': stack.account } } }),
    });
    // Exactly the permissions of https://docs.aws.amazon.com/AmazonS3/latest/userguide/setting-repl-config-perm-overview.html
    // for KMS-encrypted, Object Lock objects; no s3:ReplicateDelete (delete markers stay home).
    const sourceObjects = REPLICATED_PREFIXES.map((prefix) => props.bucket.arnForObjects(`${prefix}*`));
    const replicaObjects = REPLICATED_PREFIXES.map((prefix) => `${this.replicaBucketArn}/${prefix}*`);
    this.role.addToPolicy(new iam.PolicyStatement({ sid: 'ReadReplicationConfiguration', actions: ['s3:GetReplicationConfiguration', 's3:ListBucket'], resources: [props.bucket.bucketArn] }));
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ReadSourceVersions',
        actions: ['s3:GetObjectVersionForReplication', 's3:GetObjectVersionAcl', 's3:GetObjectVersionTagging', 's3:GetObjectRetention', 's3:GetObjectLegalHold'],
        resources: sourceObjects,
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'WriteReplicas',
        actions: crossAccount ? ['s3:ReplicateObject', 's3:ReplicateTags', 's3:ObjectOwnerOverrideToBucketOwner'] : ['s3:ReplicateObject', 's3:ReplicateTags'],
        resources: replicaObjects,
      }),
    );
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'DecryptSource',
        actions: ['kms:Decrypt'],
        resources: [props.key.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `s3.${stack.region}.amazonaws.com` } },
      }),
    );
    // The replica's key is known by its alias only (it is created in the other stack); the
    // condition pins the key the alias points to. (No kms:EncryptionContext condition here or on
    // the keys: both keys serve one bucket each, and the IAM simulator that proves these policies
    // cannot evaluate context keys with colons in their names.)
    this.role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'EncryptReplicas',
        actions: ['kms:Encrypt', 'kms:GenerateDataKey'],
        resources: [stack.formatArn({ service: 'kms', region: props.region, account: replicaAccount, resource: 'key', resourceName: '*', arnFormat: ArnFormat.SLASH_RESOURCE_NAME })],
        conditions: {
          'ForAnyValue:StringEquals': { 'kms:ResourceAliases': replicaKeyAlias(props.name) },
          StringEquals: { 'kms:ViaService': `s3.${props.region}.amazonaws.com` },
        },
      }),
    );
    const policy = this.role.node.findChild('DefaultPolicy');
    const sourceLogicalId = stack.getLogicalId(props.bucket.node.defaultChild as CfnElement);
    const replicaNagArn = `arn:<AWS::Partition>:s3:::${replicaBucketName(props.name, Token.isUnresolved(replicaAccount) ? '<AWS::AccountId>' : replicaAccount, props.region)}`;
    const wildcards = [
      ...REPLICATED_PREFIXES.map((prefix) => `<${sourceLogicalId}.Arn>/${prefix}*`),
      ...REPLICATED_PREFIXES.map((prefix) => `${replicaNagArn}/${prefix}*`),
    ];
    for (const resource of wildcards) {
      Validations.of(policy).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${resource}]`,
        reason: 'Replication copies every object under backups/ and drills/, in the source and into the replica, so the objects are named by prefix; nothing else of either bucket is reachable.',
      });
    }
    Validations.of(policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:${props.region}:${Token.isUnresolved(replicaAccount) ? '<AWS::AccountId>' : replicaAccount}:key/*]`,
      reason: 'The replica key is created by the replica stack, so its id is not known here; the statement is pinned to that key by its alias, to S3 in that region and to the replica bucket in the encryption context.',
    });

    this.eventsTopic = new sns.Topic(this, 'Events', { displayName: 'coldseal replication events', masterKey: props.eventsKey, enforceSSL: true });
    // The topic's policy cannot name the bucket (the bucket's notification needs the policy first);
    // the account condition keeps other accounts' buckets out.
    this.eventsTopic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'S3ReplicationEvents',
        principals: [new iam.ServicePrincipal('s3.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.eventsTopic.topicArn],
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    );
    props.eventsKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowPublishFroms3',
        principals: [new iam.ServicePrincipal('s3.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'aws:SourceAccount': stack.account } },
      }),
    );

    const cfn = props.bucket.node.defaultChild as s3.CfnBucket;
    const rtc = props.replicationTimeControl ?? false;
    cfn.replicationConfiguration = {
      role: this.role.roleArn,
      rules: REPLICATED_PREFIXES.map((prefix, index) => ({
        id: `replicate-${prefix.replace(/\/$/, '')}`,
        status: 'Enabled',
        priority: index + 1,
        filter: { prefix },
        // A delete marker (lifecycle expiry, or a delete at home) stays home: the replica expires by its own lifecycle.
        deleteMarkerReplication: { status: 'Disabled' },
        sourceSelectionCriteria: { sseKmsEncryptedObjects: { status: 'Enabled' } },
        destination: {
          bucket: this.replicaBucketArn,
          encryptionConfiguration: { replicaKmsKeyId: this.replicaKeyAliasArn },
          ...(crossAccount ? { account: props.account, accessControlTranslation: { owner: 'Destination' } } : {}),
          // Metrics are what makes S3 send OperationFailedReplication events
          // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-metrics-events.html).
          metrics: { status: 'Enabled', ...(rtc ? { eventThreshold: { minutes: RTC_MINUTES } } : {}) },
          ...(rtc ? { replicationTime: { status: 'Enabled', time: { minutes: RTC_MINUTES } } } : {}),
        },
      })),
    };
    const notifications = (cfn.notificationConfiguration ?? {}) as s3.CfnBucket.NotificationConfigurationProperty;
    const events = rtc ? [REPLICATION_FAILED_EVENT, REPLICATION_MISSED_THRESHOLD_EVENT] : [REPLICATION_FAILED_EVENT];
    cfn.notificationConfiguration = {
      ...notifications,
      topicConfigurations: [...((notifications.topicConfigurations as s3.CfnBucket.TopicConfigurationProperty[] | undefined) ?? []), ...events.map((event) => ({ event, topic: this.eventsTopic.topicArn }))],
    };
    // S3 checks that it may publish when the notification is set.
    const topicPolicy = this.eventsTopic.node.tryFindChild('Policy');
    if (topicPolicy) cfn.node.addDependency(topicPolicy);
  }
}
