import { ArnFormat, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as s3assets from 'aws-cdk-lib/aws-s3-assets';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { TIERS, WAL_PREFIX, groupPrefix, type Tier } from '../../format/layout';
import { AGENT_METRICS_NAMESPACE } from '../../format/metric-names';
import type { ObjectLock } from '../../format/agent-config';
import { configPartsPath, type GroupParameters } from '../../format/parameters';
import { acknowledgeGroupObjects, nagEnv } from './nag';
import { checkNameProp } from './settings';

export interface HostAccessProps {
  /** The group whose hosts get this access. */
  readonly group: string;
  /** The group's SSM parameter names (the signing key's SecureString among them). */
  readonly parameters: GroupParameters;
  /** The key of the group's signing-key SecureString (see GroupSigningKey): only this group's hosts may decrypt with it. */
  readonly signingKey: kms.IKey;
  readonly bucket: s3.IBucket;
  readonly key: kms.IKey;
  /** The Object Lock the agent sets on each tier's objects: a host may set exactly that mode, for at most that long. */
  readonly objectLock: Readonly<Record<Tier, Readonly<ObjectLock>>>;
  readonly topic: sns.ITopic;
  /** Key the alert topic is encrypted with. */
  readonly topicKey?: kms.IKey;
  /**
   * The agent executables hosts download (AgentDelivery's assets, one per architecture): the
   * document's download steps read exactly these objects, with the host's role.
   */
  readonly agentExecutables: readonly s3assets.Asset[];
  /** Where SSM Run Command writes the commands' output (hosts write it). */
  readonly commandLogGroup: logs.ILogGroup;
  /**
   * The group has a PostgreSQL source with point-in-time recovery: its hosts archive WAL under
   * wal/<group>/ (new objects only), read it back (restore_command, the duplicate check, a base
   * backup waiting for its WAL) and publish their archiver's figures to CloudWatch.
   * @default false
   */
  readonly walArchive?: boolean;
  /**
   * Also create a role and instance profile for new EC2 hosts of this group (with SSM's core
   * managed policy), besides the managed policy that existing roles attach.
   * @default true
   */
  readonly createInstanceProfile?: boolean;
}

/**
 * What a host of one group may do: write new backups under its group's prefix (conditional
 * writes only: no overwrite), never delete, never read them; with a PITR source, write new WAL
 * under its group's wal/ prefix and read that WAL back (restore_command), and publish its
 * archiver's metrics; read its group's parameters; use the data key only through S3; publish
 * alerts; fetch the agent (its executables' objects, nothing else of the asset bucket); write its command output.
 */
export class HostAccess extends Construct {
  /** Attach this to the hosts' existing roles. */
  readonly policy: iam.ManagedPolicy;
  /** A ready role for new EC2 hosts (this policy + AmazonSSMManagedInstanceCore). */
  readonly role?: iam.Role;
  readonly instanceProfile?: iam.InstanceProfile;

  constructor(scope: Construct, id: string, props: HostAccessProps) {
    super(scope, id);
    checkNameProp('HostAccess props.group', 'group', props.group);
    const stack = Stack.of(this);
    this.policy = new iam.ManagedPolicy(this, 'Policy', {
      description: `coldseal hosts of group ${props.group}: write new backups, read the group's parameters, publish alerts`,
      statements: [
        ...backupWriteStatements(props, stack),
        ...(props.walArchive ? walArchiveStatements(props) : []),
        ...groupParameterStatements(props, stack),
        ...alertStatements(props, stack),
        ...runStatements(props, stack),
      ],
    });
    this.acknowledgeWildcards(props);
    if (props.createInstanceProfile ?? true) {
      this.role = new iam.Role(this, 'Role', {
        description: `coldseal hosts of group ${props.group} (EC2): SSM managed instance + coldseal backups`,
        assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
        managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore'), this.policy],
      });
      Validations.of(this.role).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
        reason: 'AmazonSSMManagedInstanceCore is the policy AWS maintains for the SSM agent to register and receive Run Command; coldseal needs exactly that and should follow its changes.',
      });
      this.instanceProfile = new iam.InstanceProfile(this, 'InstanceProfile', { role: this.role });
    }
  }

  /** The policy's wildcards that cdk-nag flags, each with why it cannot be narrower. */
  private acknowledgeWildcards(props: HostAccessProps): void {
    acknowledgeGroupObjects(this.policy, props.bucket, [...TIERS.map((tier) => `${groupPrefix(tier, props.group)}*`), ...(props.walArchive ? [`${walGroupPrefix(props.group)}*`] : [])]);
    if (props.walArchive) {
      Validations.of(this.policy).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason: `cloudwatch:PutMetricData has no resource type (it is authorized on "*"); the statement allows it only with cloudwatch:namespace = ${AGENT_METRICS_NAMESPACE}, the agent's own namespace.`,
      });
    }
    Validations.of(this.policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ssm:${nagEnv(this).region}:${nagEnv(this).account}:parameter${configPartsPath(props.parameters.config)}/*]`,
      reason: "The parts of this group's configuration: their names carry a digest of the content known only once the configuration changes; the path is this group's alone, and they hold nothing secret.",
    });
    Validations.of(this.policy).acknowledge({
      id: `AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:${nagEnv(this).region}:${nagEnv(this).account}:log-group:*]`,
      reason: 'The SSM agent looks its output log group up with logs:DescribeLogGroups, which lists and cannot be narrowed to one group; it reveals names only, no log data.',
    });

  }
}

/** Writing new backups under the group's prefixes, and nothing else of the bucket. */
function backupWriteStatements(props: HostAccessProps, stack: Stack): iam.PolicyStatement[] {
  const groupObjects = TIERS.map((tier) => props.bucket.arnForObjects(`${groupPrefix(tier, props.group)}*`));
  return [
    // Whole-object writes (PutObject, CompleteMultipartUpload) must carry If-None-Match, so an
    // existing key is never replaced; the multipart steps that cannot carry it are let through.
    new iam.PolicyStatement({
      sid: 'WriteNewBackupsOnly',
      actions: ['s3:PutObject'],
      resources: groupObjects,
      conditions: { Null: { 's3:if-none-match': 'false' } },
    }),
    new iam.PolicyStatement({
      sid: 'MultipartUploadSteps',
      actions: ['s3:PutObject'],
      resources: groupObjects,
      conditions: { Bool: { 's3:ObjectCreationOperation': 'false' } },
    }),
    new iam.PolicyStatement({
      sid: 'BackupObjectSettings',
      actions: ['s3:PutObjectTagging', 's3:AbortMultipartUpload'],
      resources: groupObjects,
    }),
    // A write that carries x-amz-object-lock-* headers (the agent's PutObject and
    // CreateMultipartUpload) needs s3:PutObjectRetention too
    // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-managing.html#object-lock-managing-permissions).
    // Per tier: only that tier's mode, at most its days (+1 for the host's clock and S3's
    // rounding), so a host can neither switch GOVERNANCE to COMPLIANCE nor lock for years.
    // Shortening needs s3:BypassGovernanceRetention, which is not granted.
    ...TIERS.map(
      (tier) =>
        new iam.PolicyStatement({
          sid: `LockAs${tier[0].toUpperCase()}${tier.slice(1)}Tier`,
          actions: ['s3:PutObjectRetention'],
          resources: [props.bucket.arnForObjects(`${groupPrefix(tier, props.group)}*`)],
          conditions: {
            StringEquals: { 's3:object-lock-mode': props.objectLock[tier].mode },
            NumericLessThanEquals: { 's3:object-lock-remaining-retention-days': String(props.objectLock[tier].days + 1) },
          },
        }),
    ),
    // The agent's cleanup after a failed upload finds its own leftover upload by listing. This
    // action has no s3:prefix condition key, so it is the bucket; it lists key names only.
    // https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html
    new iam.PolicyStatement({
      sid: 'FindOwnLeftoverUploads',
      actions: ['s3:ListBucketMultipartUploads'],
      resources: [props.bucket.bucketArn],
    }),
    new iam.PolicyStatement({
      sid: 'DataKeyThroughS3',
      actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
      resources: [props.key.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `s3.${stack.region}.amazonaws.com` } },
    }),
  ];
}

/** The group's WAL archive (format/layout.ts walPrefix): wal/<group>/. */
export function walGroupPrefix(group: string): string {
  return `${WAL_PREFIX}${group}/`;
}

/**
 * The WAL archive of point-in-time recovery (agent/src/pitr): each WAL file is ONE PutObject with
 * If-None-Match: * (format/wal-record.ts), so, as for backups, a whole-object write without the
 * condition is not allowed and nothing here deletes. Unlike backups, hosts read their group's
 * WAL objects by name (never list them): archive-push reads the record of an object already there
 * to tell a retry from a conflict, and a base backup waits for its last WAL (a 403 for a key not
 * there yet is "not yet"). Restoring to a point in time reads base backups, which hosts cannot:
 * it runs on the drill host (drill-access.ts) or with an operator's credentials.
 */
function walArchiveStatements(props: HostAccessProps): iam.PolicyStatement[] {
  const walObjects = props.bucket.arnForObjects(`${walGroupPrefix(props.group)}*`);
  const lock = props.objectLock.daily;
  return [
    // The Null test, not a negated ...IfExists in a Deny: with a Deny, StringNotEqualsIfExists is
    // true when the key is absent, and a Deny would then catch the write it means to let through
    // (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html#Conditions_IfExists).
    // No multipart statement: a WAL file is at most 64 MiB and goes in one PutObject.
    new iam.PolicyStatement({
      sid: 'WriteNewWalOnly',
      actions: ['s3:PutObject'],
      resources: [walObjects],
      conditions: { Null: { 's3:if-none-match': 'false' } },
    }),
    // WAL serves base backups of every tier; the agent locks it like the daily tier, the shortest
    // (agent config objectLock.daily), and the bucket keeps it for the recovery window, which is
    // never shorter than that lock (settings.ts pitrProblems). Same bounds as a tier's lock.
    new iam.PolicyStatement({
      sid: 'LockWalAsDailyTier',
      actions: ['s3:PutObjectRetention'],
      resources: [walObjects],
      conditions: {
        StringEquals: { 's3:object-lock-mode': lock.mode },
        NumericLessThanEquals: { 's3:object-lock-remaining-retention-days': String(lock.days + 1) },
      },
    }),
    // HeadObject and GetObject (both s3:GetObject); no s3:GetObjectVersion (WAL is never pinned
    // to a version: it is written once) and no s3:GetObjectRetention (the agent reads no lock headers).
    new iam.PolicyStatement({
      sid: 'ReadGroupWal',
      actions: ['s3:GetObject'],
      resources: [walObjects],
    }),
    // The archiver's figures (pg_stat_archiver, the .ready backlog) for the stack's alarms, in the
    // agent's own namespace only: PutMetricData has no resource, its namespace is the boundary
    // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatch.html).
    new iam.PolicyStatement({
      sid: 'PublishAgentMetrics',
      actions: ['cloudwatch:PutMetricData'],
      resources: ['*'],
      conditions: { StringEquals: { 'cloudwatch:namespace': AGENT_METRICS_NAMESPACE } },
    }),
  ];
}

/** Reading the group's configuration and keys from SSM, and only this group's signing key. */
function groupParameterStatements(props: HostAccessProps, stack: Stack): iam.PolicyStatement[] {
  const parameterArn = (name: string) => stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name.replace(/^\//, '') });
  const keyParameterArns = Object.entries(props.parameters).filter(([name]) => name !== 'config').map(([, value]) => parameterArn(value));
  const configParts = parameterArn(`${configPartsPath(props.parameters.config)}/*`);
  return [
    // The agent reads its configuration, the head and then its parts, with GetParameters
    // (agent/src/config/load.ts), and each key parameter with GetParameter (secrets.ts).
    // The parts' names carry a digest of the content (format/config-parameter.ts), so each
    // change makes new ones: a path, not a list of names, so that a stack update never has a
    // head naming parts this policy does not grant yet.
    new iam.PolicyStatement({
      sid: 'ReadGroupConfiguration',
      actions: ['ssm:GetParameters'],
      resources: [parameterArn(props.parameters.config), configParts],
    }),
    new iam.PolicyStatement({
      sid: 'ReadGroupParameters',
      actions: ['ssm:GetParameter'],
      resources: keyParameterArns,
    }),
    // The signing-key SecureString is encrypted with the group's own key, which nothing else
    // grants: this is what keeps another group's host out, since AmazonSSMManagedInstanceCore
    // lets every host call ssm:GetParameter on every parameter.
    new iam.PolicyStatement({
      sid: 'SigningKeyThroughSsm',
      actions: ['kms:Decrypt'],
      resources: [props.signingKey.keyArn],
      conditions: { StringEquals: { 'kms:ViaService': `ssm.${stack.region}.amazonaws.com` } },
    }),
  ];
}

/** Publishing alerts to the topic (through its key). */
function alertStatements(props: HostAccessProps, stack: Stack): iam.PolicyStatement[] {
  return [
    new iam.PolicyStatement({
      sid: 'PublishAlerts',
      actions: ['sns:Publish'],
      resources: [props.topic.topicArn],
    }),
    ...(props.topicKey
      ? [
          new iam.PolicyStatement({
            sid: 'AlertKeyThroughSns',
            actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
            resources: [props.topicKey.keyArn],
            conditions: { StringEquals: { 'kms:ViaService': `sns.${stack.region}.amazonaws.com` } },
          }),
        ]
      : []),
  ];
}

/** Fetching the agent and writing the command's output, as SSM Run Command does on the host. */
function runStatements(props: HostAccessProps, stack: Stack): iam.PolicyStatement[] {
  return [
    // The document's aws:downloadContent steps (agent-delivery.ts), run by the SSM Agent with
    // this role: each lists its key as a folder first (ListObjects, Prefix "<key>/"), and fails if
    // that listing is refused; finding nothing under it, it GETs the object
    // (aws/amazon-ssm-agent agent/plugins/downloadcontent/s3resource/s3resource.go,
    // agent/fileutil/artifact/artifact.go ListS3Directory and s3Download). So: each asset object,
    // and a listing of exactly "<key>/" (empty: no key of the asset bucket starts so), nothing else.
    new iam.PolicyStatement({
      sid: 'FetchAgent',
      actions: ['s3:GetObject'],
      resources: props.agentExecutables.map((asset) => asset.bucket.arnForObjects(asset.s3ObjectKey)),
    }),
    ...props.agentExecutables.map(
      (asset, index) =>
        new iam.PolicyStatement({
          sid: `ListAgentAsFolder${index + 1}`,
          actions: ['s3:ListBucket'],
          resources: [asset.bucket.bucketArn],
          conditions: { StringEquals: { 's3:prefix': `${asset.s3ObjectKey}/` } },
        }),
    ),
    new iam.PolicyStatement({
      sid: 'WriteCommandOutput',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
      resources: [props.commandLogGroup.logGroupArn],
    }),
    new iam.PolicyStatement({
      sid: 'FindCommandLogGroup',
      actions: ['logs:DescribeLogGroups'],
      resources: [stack.formatArn({ service: 'logs', resource: 'log-group', resourceName: '*', arnFormat: ArnFormat.COLON_RESOURCE_NAME })],
    }),
  ];
}
