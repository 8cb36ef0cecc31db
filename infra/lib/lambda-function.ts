import { join } from 'node:path';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import { DIMENSION, METRICS_NAMESPACE } from '../../format/metric-names';
import { settingsEnvironment, type GroupSettings } from '../../format/lambda-settings';
import { DEFAULT_HOST_TAG_KEY } from '../../format/layout';

/**
 * The stack's Lambda functions (the verifier and the monitor): a bundled Node.js function with its
 * own log group and a role that starts empty (no AWS managed policy), the settings every function
 * gets, and helpers that grant exactly one prefix or parameter at a time.
 */

export const LAMBDAS_DIR = join(__dirname, '..', '..', 'lambdas');

/** The functions' runtime: the same Node major as the agent's executables (format/agent-executables.ts). */
export const LAMBDA_RUNTIME = lambda.Runtime.NODEJS_24_X;

/** What the Lambdas need to know about one group (the stack fills it from its own group settings). */
export type LambdaGroup = Pick<GroupSettings, 'name' | 'sources'> & Partial<Omit<GroupSettings, 'name' | 'sources'>>;

export interface ColdsealLambdaCommonProps {
  /** The data bucket (backups/, drills/, reports/, state/). */
  readonly bucket: s3.IBucket;
  /** The bucket's KMS key. */
  readonly dataKey: kms.IKey;
  /** Where alerts go. */
  readonly topic: sns.ITopic;
  /**
   * The topic's KMS key, when the topic is encrypted: publishing needs it.
   * @default - the topic is not encrypted with a customer managed key
   */
  readonly topicKey?: kms.IKey;
  /** @default '/coldseal' */
  readonly parameterPrefix?: string;
  readonly groups: readonly LambdaGroup[];
  /**
   * Tag whose value names a host's group.
   * @default 'coldseal-group'
   */
  readonly hostTagKey?: string;
  /**
   * The SSM document that runs the agent.
   * @default 'coldseal-backup'
   */
  readonly documentName?: string;
  /**
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
  /** @default RemovalPolicy.RETAIN (the log group) */
  readonly removalPolicy?: RemovalPolicy;
  /** Extra settings (COLDSEAL_* variables, see format/lambda-settings.ts). */
  readonly extraSettings?: Record<string, string>;
  /**
   * Where EventBridge keeps an event it could not deliver to the function after its retries
   * (DeadLetters); the rules' own alarm-less failure otherwise.
   * @default - no dead-letter queue
   */
  readonly deadLetterQueue?: sqs.IQueue;
}

export function functionEnvironment(props: ColdsealLambdaCommonProps, serviceName: string): Record<string, string> {
  return {
    ...settingsEnvironment({
      bucket: props.bucket.bucketName,
      topicArn: props.topic.topicArn,
      parameterPrefix: props.parameterPrefix,
      groups: props.groups.map((g) => ({ ...g })),
      documentName: props.documentName,
      tagKey: props.hostTagKey ?? DEFAULT_HOST_TAG_KEY,
    }),
    ...(props.extraSettings ?? {}),
    POWERTOOLS_SERVICE_NAME: serviceName,
    POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
    POWERTOOLS_LOG_LEVEL: 'INFO',
  };
}

export interface BundledFunctionProps {
  /** The handler's TypeScript file (it exports `handler`). */
  readonly entry: string;
  /** What the function does; the function's and its role's description, after "coldseal: ". */
  readonly description: string;
  readonly environment: Record<string, string>;
  readonly timeout: Duration;
  readonly memorySize: number;
  /** @default logs.RetentionDays.THREE_MONTHS */
  readonly logRetention?: logs.RetentionDays;
  /** @default RemovalPolicy.RETAIN (the log group) */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * A fixed name for the role, when another stack's policy must match it by ARN before it exists.
   * @default - a name CloudFormation generates
   */
  readonly roleName?: string;
}

/** A Lambda bundled locally by esbuild (never Docker), with its log group and an empty role. */
export class BundledFunction extends Construct {
  readonly fn: nodejs.NodejsFunction;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: BundledFunctionProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `coldseal: ${props.description}`,
      ...(props.roleName ? { roleName: props.roleName } : {}),
    });
    // Only its own log group: no AWSLambdaBasicExecutionRole (which allows every log group).
    this.role.addToPolicy(
      new iam.PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [this.logGroup.logGroupArn] }),
    );
    this.fn = new nodejs.NodejsFunction(this, 'Function', {
      entry: props.entry,
      handler: 'handler',
      description: `coldseal: ${props.description}`,
      runtime: LAMBDA_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      memorySize: props.memorySize,
      timeout: props.timeout,
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      environment: props.environment,
      // A failed asynchronous invocation is retried once; the next scheduled run covers the rest.
      retryAttempts: 1,
      depsLockFilePath: join(__dirname, '..', '..', 'package-lock.json'),
      bundling: {
        forceDockerBundling: false,
        format: nodejs.OutputFormat.CJS,
        target: 'node24',
        minify: true,
        sourceMap: true,
        sourcesContent: false,
        // The SDK is bundled too: the versions tested here are the versions that run.
        externalModules: [],
        logLevel: nodejs.LogLevel.WARNING,
      },
    });
    this.fn.addEnvironment('NODE_OPTIONS', '--enable-source-maps');
    // lambda.Function always DependsOn its role as well as the role's policy; the role half is
    // redundant with the GetAtt, which cfn-lint reports (W3005). The policy half is the one needed.
    (this.fn.node.defaultChild as lambda.CfnFunction).addMetadata('cfn-lint', { config: { ignore_checks: ['W3005'] } });
  }
}

/** Grants of one bucket prefix or parameter at a time: each statement says what it is for. */
export function grantRead(role: iam.IRole, bucket: s3.IBucket, prefixes: readonly string[]): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: prefixes.map((p) => bucket.arnForObjects(`${p}*`)) }));
}

/**
 * Listing without a prefix condition: S3 answers a GET of a missing key with 404 only to a caller
 * allowed s3:ListBucket on the bucket, else 403, and a ListBucket limited by s3:prefix does not
 * count for a GetObject (which has no prefix). The Lambdas read keys that may not exist yet (today's
 * report, de-dup state), so they need the plain permission; it reveals key names only.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html#API_GetObject_RequestSyntax ("Permissions")
 */
export function grantListBucket(role: iam.IRole, bucket: s3.IBucket): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));
}

/**
 * HeadObject and GetObject return the x-amz-object-lock-* headers only to a caller that also has
 * s3:GetObjectRetention; without it a locked object looks unlocked.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html (x-amz-object-lock-mode)
 */
export function grantReadRetention(role: iam.IRole, bucket: s3.IBucket, prefixes: readonly string[]): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObjectRetention'], resources: prefixes.map((p) => bucket.arnForObjects(`${p}*`)) }));
}

/**
 * A read pinned to the version a manifest recorded (runtime/s3-part-fetcher.ts sends VersionId, so
 * a replaced object fails loudly) is authorized as s3:GetObjectVersion, not s3:GetObject.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html ("Permissions": versionId)
 */
export function grantReadVersions(role: iam.IRole, bucket: s3.IBucket, prefixes: readonly string[]): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObjectVersion'], resources: prefixes.map((p) => bucket.arnForObjects(`${p}*`)) }));
}

export function grantWrite(role: iam.IRole, bucket: s3.IBucket, prefixes: readonly string[], withDelete: boolean): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: withDelete ? ['s3:PutObject', 's3:DeleteObject'] : ['s3:PutObject'], resources: prefixes.map((p) => bucket.arnForObjects(`${p}*`)) }));
}

export function grantKey(role: iam.IRole, key: kms.IKey, write: boolean): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: write ? ['kms:Decrypt', 'kms:GenerateDataKey'] : ['kms:Decrypt'], resources: [key.keyArn] }));
}

export function grantPublish(role: iam.IRole, topic: sns.ITopic, topicKey: kms.IKey | undefined): void {
  role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['sns:Publish'], resources: [topic.topicArn] }));
  if (topicKey) role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [topicKey.keyArn] }));
}

export function parameterArn(scope: Construct, name: string): string {
  const stack = Stack.of(scope);
  return stack.formatArn({ service: 'ssm', resource: 'parameter', resourceName: name.replace(/^\//, '') });
}

/** For dashboards and alarms: the metric dimensions a Powertools-emitted metric carries. */
export function metricDimensions(service: string, extra: Record<string, string> = {}): Record<string, string> {
  return { [DIMENSION.service]: service, ...extra };
}
