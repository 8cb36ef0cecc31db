import { join } from 'node:path';
import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ALERT_STATE_PREFIX, REPORTS_PREFIX, WAL_WATERMARK_PREFIX } from '../../format/layout';
import { SERVICE } from '../../format/metric-names';
import { COMMAND_STATUS_DETAIL_TYPE_NAME, FAILED_STATUSES } from '../../format/command-status';
import { CHECK_INPUT, WAL_CHECK_INPUT } from '../../format/scheduled-inputs';
import { MANIFEST_KEY_PATTERN } from './verifier';
import { BundledFunction, functionEnvironment, grantKey, grantListBucket, grantPublish, grantRead, grantWrite, LAMBDAS_DIR, type ColdsealLambdaCommonProps } from './lambda-function';
import { acknowledgeObjectPattern, acknowledgeObjectPrefixes, acknowledgeOnPolicy } from './nag';

export interface ColdsealMonitorProps extends ColdsealLambdaCommonProps {
  /** The SSM document that runs the agent: its failed runs alert. */
  readonly documentName: string;
  /**
   * How often freshness is checked and metrics are emitted. The heartbeat alarm expects a run in
   * every such period.
   * @default Duration.hours(4)
   */
  readonly interval?: Duration;
  /** @default Duration.minutes(2) */
  readonly timeout?: Duration;
  /**
   * How often the age of each PITR source's archived WAL is checked, when a group has one. The
   * alert comes at most this long after archive_timeout + grace has passed.
   * @default Duration.minutes(5)
   */
  readonly walCheckInterval?: Duration;
}

export { CHECK_INPUT, WAL_CHECK_INPUT };

/**
 * The monitor Lambda: alerts within minutes when a run of the backup document fails, times out or
 * is cancelled, and every few hours checks that every expected source is fresh and every tagged
 * instance still reports to SSM, emitting the metrics the alarms and the dashboard use.
 */
export class ColdsealMonitor extends Construct {
  readonly function: BundledFunction;
  readonly commandRule: events.Rule;
  readonly scheduleRule: events.Rule;
  readonly interval: Duration;
  /** The WAL check's schedule: only when a group has a PITR source. */
  readonly walCheckRule?: events.Rule;
  readonly walCheckInterval?: Duration;

  constructor(scope: Construct, id: string, props: ColdsealMonitorProps) {
    super(scope, id);
    if (props.groups.length === 0) throw new Error('ColdsealMonitor props.groups: at least one group is needed');
    this.interval = props.interval ?? Duration.hours(4);
    if (this.interval.toMinutes() < 15 || this.interval.toHours({ integral: false }) > 12) {
      throw new Error(`ColdsealMonitor props.interval must be between 15 minutes and 12 hours, got ${this.interval.toHumanString()}`);
    }
    const walInterval = props.groups.some((g) => (g.pitrSources ?? []).length > 0) ? (props.walCheckInterval ?? Duration.minutes(5)) : undefined;
    if (walInterval && (walInterval.toSeconds() < 60 || walInterval.toSeconds() > 3600 || walInterval.toSeconds() % 60 !== 0)) {
      throw new Error(`ColdsealMonitor props.walCheckInterval must be whole minutes between 1 and 60, got ${walInterval.toHumanString()}`);
    }
    this.function = new BundledFunction(this, 'Monitor', {
      entry: join(LAMBDAS_DIR, 'monitor', 'handler.ts'),
      description: 'alerts on failed backup commands; checks freshness and SSM reachability; emits metrics',
      environment: functionEnvironment(props, SERVICE.monitor),
      timeout: props.timeout ?? Duration.minutes(2),
      memorySize: 512,
      logRetention: props.logRetention,
      removalPolicy: props.removalPolicy,
    });
    const role = this.function.role;
    grantListBucket(role, props.bucket);
    // Manifests only (small, signed, in STANDARD): never the ciphertext of a backup.
    role.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [props.bucket.arnForObjects(MANIFEST_KEY_PATTERN)] }));
    grantRead(role, props.bucket, [REPORTS_PREFIX, ALERT_STATE_PREFIX]);
    grantWrite(role, props.bucket, [ALERT_STATE_PREFIX], true);
    grantKey(role, props.dataKey, true);
    grantPublish(role, props.topic, props.topicKey);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        // None of these supports resource-level permissions: they are read-only listings.
        actions: ['ssm:DescribeInstanceInformation', 'ssm:GetCommandInvocation', 'ssm:ListCommands'],
        resources: ['*'],
      }),
    );

    this.commandRule = new events.Rule(this, 'CommandFailed', {
      description: 'coldseal: a backup command failed, timed out or was cancelled',
      eventPattern: {
        source: ['aws.ssm'],
        detailType: [COMMAND_STATUS_DETAIL_TYPE_NAME],
        detail: { 'document-name': [props.documentName], status: [...FAILED_STATUSES] },
      },
      targets: [new targets.LambdaFunction(this.function.fn, { retryAttempts: 2, maxEventAge: Duration.hours(1), deadLetterQueue: props.deadLetterQueue })],
    });
    if (walInterval) {
      this.walCheckInterval = walInterval;
      // Its watermarks: the newest archived WAL seen per source, so that each run lists only what is new.
      grantRead(role, props.bucket, [WAL_WATERMARK_PREFIX]);
      grantWrite(role, props.bucket, [WAL_WATERMARK_PREFIX], false);
      this.walCheckRule = new events.Rule(this, 'WalCheck', {
        description: 'coldseal: age of the newest archived WAL of each PITR source',
        schedule: events.Schedule.rate(walInterval),
        targets: [new targets.LambdaFunction(this.function.fn, { event: events.RuleTargetInput.fromObject(WAL_CHECK_INPUT), retryAttempts: 1, maxEventAge: walInterval, deadLetterQueue: props.deadLetterQueue })],
      });
      acknowledgeObjectPrefixes(role, props.bucket, [WAL_WATERMARK_PREFIX], "Objects by prefix: the monitor's WAL watermarks, one per PITR source and host (names known only at run time), under state/wal-watermarks/ only.");
    }
    this.scheduleRule = new events.Rule(this, 'Check', {
      description: 'coldseal: freshness, SSM reachability, metrics, heartbeat',
      schedule: events.Schedule.rate(this.interval),
      // A check older than the interval is superseded by the next one.
      targets: [new targets.LambdaFunction(this.function.fn, { event: events.RuleTargetInput.fromObject(CHECK_INPUT), retryAttempts: 2, maxEventAge: this.interval, deadLetterQueue: props.deadLetterQueue })],
    });

    acknowledgeObjectPrefixes(
      role,
      props.bucket,
      [REPORTS_PREFIX, ALERT_STATE_PREFIX],
      'Objects by prefix: the monitor reads the reports (keys carry the date) and manages its alert state under state/alerts/ only.',
    );
    acknowledgeObjectPattern(role, props.bucket, MANIFEST_KEY_PATTERN, 'Manifests only, never ciphertext: their keys carry group, host, source and a time stamp known only at run time.');
    acknowledgeOnPolicy(role, 'AwsSolutions-IAM5[Resource::*]', 'ssm:DescribeInstanceInformation, ssm:GetCommandInvocation and ssm:ListCommands do not support resource-level permissions; all three only read.');
  }
}
