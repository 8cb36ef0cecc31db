import { join } from 'node:path';
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ALERT_STATE_PREFIX, BACKUPS_PREFIX, DRILLS_PREFIX, PRICE_CACHE_PREFIX, REPORTS_PREFIX, STATE_PREFIX, STORAGE_SNAPSHOT_PREFIX, VERIFIED_PREFIX, WAL_PREFIX } from '../../format/layout';
import { DEFAULT_PARAMETER_PREFIX, groupParameters } from '../../format/parameters';
import { SERVICE } from '../../format/metric-names';
import { SWEEP_INPUT } from '../../format/scheduled-inputs';
import {
  BundledFunction,
  functionEnvironment,
  grantKey,
  grantListBucket,
  grantPublish,
  grantRead,
  grantReadRetention,
  grantReadVersions,
  grantWrite,
  LAMBDAS_DIR,
  parameterArn,
  type ColdsealLambdaCommonProps,
} from './lambda-function';
import { acknowledgeObjectPrefixes, acknowledgeOnPolicy } from './nag';
import * as iam from 'aws-cdk-lib/aws-iam';

export interface ColdsealVerifierProps extends ColdsealLambdaCommonProps {
  /**
   * When the daily sweep runs and writes the report (EventBridge schedule, UTC).
   * @default 06:00 UTC every day
   */
  readonly schedule?: events.Schedule;
  /**
   * Memory; hashing is CPU-bound and Lambda gives one full vCPU at 1,769 MB.
   * @default 1769
   */
  readonly memorySize?: number;
  /**
   * @default Duration.minutes(15), the Lambda maximum: the sweep hashes until 90 s before it
   */
  readonly timeout?: Duration;
  /**
   * Set EventBridge notifications on the bucket (needed for "Object Created" events). Only
   * possible for a bucket defined in the same stack; turn off if the bucket already has them.
   * @default true
   */
  readonly enableBucketEvents?: boolean;
  /**
   * The offsite replica, listed once a sweep for the report's storage and cost: its bucket (name
   * and ARN), its region, and the fixed name of this function's role, which the replica's bucket
   * policy names (format/replica.ts replicaListerRoleName).
   * @default - no replica is listed
   */
  readonly replica?: { readonly bucketName: string; readonly bucketArn: string; readonly region: string; readonly roleName: string };
}

export { SWEEP_INPUT };
export const MANIFEST_KEY_PATTERN = `${BACKUPS_PREFIX}*.manifest.json`;

/**
 * The verifier Lambda: every new manifest is verified at once (S3 "Object Created" via
 * EventBridge), and a daily sweep checks everything and writes the report. It reads backups and
 * public keys only; it writes reports/ and its own state/ and nothing else.
 */
export class ColdsealVerifier extends Construct {
  readonly function: BundledFunction;
  readonly manifestRule: events.Rule;
  readonly sweepRule: events.Rule;

  constructor(scope: Construct, id: string, props: ColdsealVerifierProps) {
    super(scope, id);
    if (props.groups.length === 0) throw new Error('ColdsealVerifier props.groups: at least one group is needed');
    this.function = new BundledFunction(this, 'Verifier', {
      entry: join(LAMBDAS_DIR, 'verifier', 'handler.ts'),
      description: 'verifies backups (signature, size, SHA-256, recipients, freshness) and writes the daily report',
      environment: {
        ...functionEnvironment(props, SERVICE.verifier),
        ...(props.replica ? { COLDSEAL_REPLICA_BUCKET: props.replica.bucketName, COLDSEAL_REPLICA_REGION: props.replica.region } : {}),
      },
      ...(props.replica ? { roleName: props.replica.roleName } : {}),
      timeout: props.timeout ?? Duration.minutes(15),
      memorySize: props.memorySize ?? 1769,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    const role = this.function.role;
    grantListBucket(role, props.bucket);
    grantRead(role, props.bucket, [BACKUPS_PREFIX, DRILLS_PREFIX, STATE_PREFIX]);
    grantReadRetention(role, props.bucket, [BACKUPS_PREFIX]);
    grantReadVersions(role, props.bucket, [BACKUPS_PREFIX]);
    grantWrite(role, props.bucket, [REPORTS_PREFIX, VERIFIED_PREFIX], false);
    // PITR sources: every WAL object's signed record (HEAD, user metadata), its ciphertext (ranged
    // GETs) and its Object Lock retention (the verifier judges it against the daily tier's term,
    // lambdas/verifier/core/pitr.ts); its progress goes under state/verified/ like the backups'. No
    // version pinning: a WAL object is written once. HeadObject returns the Object Lock headers
    // only to a caller with s3:GetObjectRetention
    // (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html, x-amz-object-lock-mode).
    const pitr = props.groups.some((g) => (g.pitrSources ?? []).length > 0);
    if (pitr) {
      grantRead(role, props.bucket, [WAL_PREFIX]);
      grantReadRetention(role, props.bucket, [WAL_PREFIX]);
    }
    grantWrite(role, props.bucket, [ALERT_STATE_PREFIX], true);
    // The report's storage section: today's snapshot (state/storage/), and the Price List answer it caches (state/prices/,
    // a statement of its own: written only when the Price List answers, which moto never does).
    grantWrite(role, props.bucket, [STORAGE_SNAPSHOT_PREFIX], false);
    role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'PriceCache', actions: ['s3:PutObject'], resources: [props.bucket.arnForObjects(`${PRICE_CACHE_PREFIX}*`)] }));
    // S3 prices for the report's cost (lambdas/shared/price-list.ts). GetProducts has no resource-level
    // permissions: the Service Authorization Reference lists it with resource "*"
    // (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awspricelist.html).
    role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'PriceList', actions: ['pricing:GetProducts'], resources: ['*'] }));
    // The replica's listing (Size and StorageClass of each object; no object read, so no key):
    // the replica's bucket policy allows this role by name, in another account too.
    if (props.replica) role.addToPrincipalPolicy(new iam.PolicyStatement({ sid: 'VerifierListsReplica', actions: ['s3:ListBucket'], resources: [props.replica.bucketArn] }));
    grantKey(role, props.dataKey, true);
    grantPublish(role, props.topic, props.topicKey);
    const prefix = props.parameterPrefix ?? DEFAULT_PARAMETER_PREFIX;
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['ssm:GetParameter'],
        // Public halves only: never the group's signing-key SecureString.
        resources: props.groups.flatMap((g) => {
          const names = groupParameters(g.name, prefix);
          return [parameterArn(this, names.signingPublicKeys), parameterArn(this, names.recipients)];
        }),
      }),
    );

    if (props.enableBucketEvents ?? true) {
      const cfnBucket = props.bucket.node.defaultChild;
      if (!(cfnBucket instanceof s3.CfnBucket)) {
        throw new Error('ColdsealVerifier: the bucket is not defined in this app; enable its EventBridge notifications yourself and set enableBucketEvents: false');
      }
      // A property override, not bucket.enableEventBridgeNotification(), which adds a custom-resource Lambda.
      cfnBucket.addPropertyOverride('NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled', true);
    }
    this.manifestRule = new events.Rule(this, 'ManifestCreated', {
      description: 'coldseal: verify each new backup manifest at once',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: { bucket: { name: [props.bucket.bucketName] }, object: { key: events.Match.wildcard(MANIFEST_KEY_PATTERN) } },
      },
      targets: [new targets.LambdaFunction(this.function.fn, { retryAttempts: 2, maxEventAge: Duration.hours(2), deadLetterQueue: props.deadLetterQueue })],
    });
    this.sweepRule = new events.Rule(this, 'DailySweep', {
      description: 'coldseal: daily verification sweep and report',
      schedule: props.schedule ?? events.Schedule.cron({ minute: '0', hour: '6' }),
      targets: [new targets.LambdaFunction(this.function.fn, { event: events.RuleTargetInput.fromObject(SWEEP_INPUT), retryAttempts: 2, maxEventAge: Duration.hours(6), deadLetterQueue: props.deadLetterQueue })],
    });

    acknowledgeObjectPrefixes(
      role,
      props.bucket,
      [BACKUPS_PREFIX, DRILLS_PREFIX, STATE_PREFIX, REPORTS_PREFIX, VERIFIED_PREFIX, ALERT_STATE_PREFIX, STORAGE_SNAPSHOT_PREFIX, PRICE_CACHE_PREFIX, ...(pitr ? [WAL_PREFIX] : [])],
      'Objects by prefix: the verifier reads every backup, WAL object, drill receipt and its own state (keys carry host, source and time stamp known only at run time), and writes only reports/ and state/.',
    );
    acknowledgeOnPolicy(role, 'AwsSolutions-IAM5[Resource::*]', 'pricing:GetProducts has no resource-level permissions (Service Authorization Reference, AWS Price List): "*" is the only resource it takes; it reads public prices.');
  }
}
