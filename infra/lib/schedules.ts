import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as scheduler from 'aws-cdk-lib/aws-scheduler';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { DEFAULT_MAX_HOSTS, DEFAULT_OFFLINE_GRACE_SECONDS, DELIVERY_TIMEOUT_RANGE_SECONDS, DEFAULT_EXECUTION_TIMEOUT_SECONDS, MAX_EXECUTION_TIMEOUT_SECONDS, runRequest, runSpread, taggedHosts, type RunAction } from '../../format/run-document';
import { checkNameProp, cronProblem, timeZoneProblem } from './settings';
import { nagEnv } from './nag';

export interface ScheduledRun {
  /** Group to run for; also the tag value that selects its hosts. */
  readonly group: string;
  /** EventBridge Scheduler cron expression, e.g. "cron(30 1 * * ? *)". */
  readonly cron: string;
  /** IANA time zone the cron is read in. */
  readonly timeZone: string;
  /**
   * The most hosts the run goes to: the delivery timeout covers their waves (runSpread).
   * @default DEFAULT_MAX_HOSTS (50) for a group, 1 for the drill
   */
  readonly maxHosts?: number;
}

export interface BackupSchedulesProps {
  /** The SSM Command document that runs the agent. */
  readonly document: ssm.CfnDocument;
  /** One backup schedule per group. */
  readonly backups: readonly ScheduledRun[];
  /** Tag key whose value is the group name on each host. */
  readonly hostTagKey: string;
  /**
   * The restore drill's schedule and the tag key that marks the drill host (value: the group).
   * @default - no drill schedule
   */
  readonly drill?: ScheduledRun & { readonly hostTagKey: string };
  /**
   * Hosts of a group that run at once (a number or a percentage).
   * @default '10'
   */
  readonly maxConcurrency?: string;
  /**
   * Failed hosts after which SSM stops sending the command to more hosts. Each failure alerts.
   * @default '100%' - one broken host must not stop the others' backups
   */
  readonly maxErrors?: string;
  /**
   * Time a run may take before SSM stops it.
   * @default Duration.hours(4)
   */
  readonly executionTimeout?: Duration;
  /**
   * Time SSM waits for a host that is offline when its turn comes. The request's delivery timeout
   * adds the waves before the last host's turn (runSpread in format/run-document.ts).
   * @default Duration.hours(1)
   */
  readonly deliveryTimeout?: Duration;
  /**
   * How long command output stays in CloudWatch Logs.
   * @default logs.RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: logs.RetentionDays;
  /** @default RemovalPolicy.RETAIN */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Where a SendCommand that AWS refused is kept (DeadLetters): without it the refusal is only a
   * count in Scheduler's metrics, and nothing alerts until the backup is a day late.
   * @default - no dead-letter queue
   */
  readonly deadLetterQueue?: sqs.IQueue;
}

/**
 * SendCommand through the Scheduler's universal target: no Lambda in between. The partition is the
 * stack's (aws-cn, aws-us-gov have their own).
 * https://docs.aws.amazon.com/scheduler/latest/UserGuide/managing-targets-universal.html
 */
export function sendCommandTarget(scope: Construct): string {
  return `arn:${Stack.of(scope).partition}:scheduler:::aws-sdk:ssm:sendCommand`;
}

/**
 * EventBridge Scheduler schedules that send the agent's SSM document to each group's hosts (by
 * tag), and the log group the commands' output goes to.
 */
export class BackupSchedules extends Construct {
  readonly logGroup: logs.LogGroup;
  readonly role: iam.Role;
  readonly schedules: ReadonlyMap<string, scheduler.CfnSchedule>;
  readonly drillSchedule?: scheduler.CfnSchedule;
  /** How each run spreads over a group's hosts (SendCommand MaxConcurrency, MaxErrors); a run by hand does the same. */
  readonly maxConcurrency: string;
  readonly maxErrors: string;
  /** Per group: the most hosts its schedule's delivery timeout is planned for; a run by hand plans the same. */
  readonly maxHosts: ReadonlyMap<string, number>;

  constructor(scope: Construct, id: string, props: BackupSchedulesProps) {
    super(scope, id);
    const check = (run: ScheduledRun, where: string): void => {
      checkNameProp(`BackupSchedules props.${where}.group`, 'group', run.group);
      const cron = cronProblem(run.cron);
      if (cron) throw new Error(`BackupSchedules props.${where}.cron: ${cron}`);
      const zone = timeZoneProblem(run.timeZone);
      if (zone) throw new Error(`BackupSchedules props.${where}.timeZone: ${zone}`);
    };
    props.backups.forEach((run, index) => check(run, `backups[${index}]`));
    if (props.drill) check(props.drill, 'drill');
    const seen = new Set<string>();
    for (const run of props.backups) {
      if (seen.has(run.group)) throw new Error(`BackupSchedules props.backups: group "${run.group}" has two schedules`);
      seen.add(run.group);
    }
    const executionTimeout = props.executionTimeout?.toSeconds() ?? DEFAULT_EXECUTION_TIMEOUT_SECONDS;
    if (executionTimeout < 60 || executionTimeout > MAX_EXECUTION_TIMEOUT_SECONDS) {
      throw new Error(`BackupSchedules props.executionTimeout must be between 1 minute and 48 hours (${MAX_EXECUTION_TIMEOUT_SECONDS} s), got ${executionTimeout} s`);
    }
    this.maxConcurrency = props.maxConcurrency ?? '10';
    this.maxErrors = props.maxErrors ?? '100%';
    const offlineGrace = (props.deliveryTimeout ?? Duration.seconds(DEFAULT_OFFLINE_GRACE_SECONDS)).toSeconds();
    if (offlineGrace < DELIVERY_TIMEOUT_RANGE_SECONDS[0] || offlineGrace > DELIVERY_TIMEOUT_RANGE_SECONDS[1]) {
      throw new Error(`BackupSchedules props.deliveryTimeout must be 30 s to 30 days, got ${offlineGrace} s`);
    }
    const deliveryTimeoutOf = (run: ScheduledRun, where: string, defaultHosts: number): number => {
      try {
        return runSpread({ hosts: run.maxHosts ?? defaultHosts, maxConcurrency: this.maxConcurrency, executionTimeoutSeconds: executionTimeout, offlineGraceSeconds: offlineGrace }).deliveryTimeoutSeconds;
      } catch (error) {
        throw new Error(`BackupSchedules props.${where}.maxHosts: ${(error as Error).message} (props.maxConcurrency, props.executionTimeout)`, { cause: error });
      }
    };
    const deliveryTimeouts = new Map(props.backups.map((run, index) => [run, deliveryTimeoutOf(run, `backups[${index}]`, DEFAULT_MAX_HOSTS)]));
    if (props.drill) deliveryTimeouts.set(props.drill, deliveryTimeoutOf(props.drill, 'drill', 1));
    this.maxHosts = new Map(props.backups.map((run) => [run.group, run.maxHosts ?? DEFAULT_MAX_HOSTS]));

    this.logGroup = new logs.LogGroup(this, 'CommandOutput', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    const stack = Stack.of(this);
    this.role = new iam.Role(this, 'Role', {
      description: 'coldseal: lets EventBridge Scheduler send the agent document to tagged hosts',
      assumedBy: new iam.ServicePrincipal('scheduler.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': stack.account } } }),
    });
    const documentArn = stack.formatArn({ service: 'ssm', resource: 'document', resourceName: props.document.ref });
    this.role.addToPolicy(new iam.PolicyStatement({ sid: 'SendTheAgentDocument', actions: ['ssm:SendCommand'], resources: [documentArn] }));
    // Instance ids are not known in advance; the tag condition is what limits the targets.
    const tagConditions: Record<string, string[]> = { [`ssm:resourceTag/${props.hostTagKey}`]: [...seen] };
    if (props.drill) tagConditions[`ssm:resourceTag/${props.drill.hostTagKey}`] = [props.drill.group];
    const instanceArns = [
      stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' }),
      stack.formatArn({ service: 'ssm', resource: 'managed-instance', resourceName: '*' }),
    ];
    for (const [key, values] of Object.entries(tagConditions)) {
      this.role.addToPolicy(
        new iam.PolicyStatement({
          actions: ['ssm:SendCommand'],
          resources: instanceArns,
          conditions: { StringEquals: { [key]: values } },
        }),
      );
    }
    if (props.deadLetterQueue) {
      // Scheduler writes the dead letter with the schedule's execution role.
      // https://docs.aws.amazon.com/scheduler/latest/UserGuide/configuring-schedule-dlq.html
      this.role.addToPolicy(new iam.PolicyStatement({ sid: 'KeepRefusedRequests', actions: ['sqs:SendMessage'], resources: [props.deadLetterQueue.queueArn] }));
    }
    const policy = this.role.node.findChild('DefaultPolicy');
    const { region, account } = nagEnv(this);
    for (const arn of [`Resource::arn:<AWS::Partition>:ec2:${region}:${account}:instance/*`, `Resource::arn:<AWS::Partition>:ssm:${region}:${account}:managed-instance/*`]) {
      Validations.of(policy).acknowledge({
        id: `AwsSolutions-IAM5[${arn}]`,
        reason: 'Hosts are chosen by tag at run time, so instance ids cannot be listed; the ssm:resourceTag condition on the statement limits SendCommand to hosts tagged for coldseal.',
      });
    }

    const schedule = (id: string, run: ScheduledRun, tagKey: string, action: RunAction, description: string): scheduler.CfnSchedule =>
      new scheduler.CfnSchedule(this, id, {
        description,
        scheduleExpression: run.cron,
        scheduleExpressionTimezone: run.timeZone,
        flexibleTimeWindow: { mode: 'OFF' },
        state: 'ENABLED',
        target: {
          arn: sendCommandTarget(this),
          roleArn: this.role.roleArn,
          // Throttling and other passing errors are retried for an hour; a refusal that lasts goes to the queue.
          retryPolicy: { maximumRetryAttempts: 3, maximumEventAgeInSeconds: 3600 },
          ...(props.deadLetterQueue ? { deadLetterConfig: { arn: props.deadLetterQueue.queueArn } } : {}),
          input: stack.toJsonString(
            runRequest({
              documentName: props.document.ref,
              comment: `coldseal scheduled ${action}: ${run.group}`,
              target: taggedHosts(tagKey, run.group),
              group: run.group,
              action,
              executionTimeoutSeconds: executionTimeout,
              maxConcurrency: this.maxConcurrency,
              maxErrors: this.maxErrors,
              timeoutSeconds: deliveryTimeouts.get(run)!,
              logGroup: this.logGroup.logGroupName,
            }),
          ),
        },
      });

    const schedules = new Map<string, scheduler.CfnSchedule>();
    for (const run of props.backups) {
      schedules.set(run.group, schedule(`Backup-${run.group}`, run, props.hostTagKey, 'backup', `coldseal: back up group ${run.group}`));
    }
    this.schedules = schedules;
    if (props.drill) {
      this.drillSchedule = schedule('Drill', props.drill, props.drill.hostTagKey, 'drill', `coldseal: restore drill of group ${props.drill.group}`);
    }
  }
}
