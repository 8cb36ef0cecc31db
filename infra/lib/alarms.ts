import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DIMENSION, METRIC, METRICS_NAMESPACE, SERVICE } from '../../format/metric-names';
import { DEFAULT_RPO_HOURS } from '../../format/lambda-settings';
import type { LambdaGroup } from './lambda-function';

export interface ColdsealAlarmsProps {
  readonly topic: sns.ITopic;
  readonly verifierFunction: lambda.IFunction;
  readonly monitorFunction: lambda.IFunction;
  /** The monitor's schedule interval: one heartbeat per interval is expected. */
  readonly monitorInterval: Duration;
  /** The groups as the Lambdas see them; an RPO left out is the Lambdas' default (DEFAULT_RPO_HOURS). */
  readonly groups: readonly Pick<LambdaGroup, 'name' | 'rpoHours'>[];
  /**
   * The schedules' and rules' dead-letter queue (DeadLetters): any message in it alarms.
   * @default - no such alarm
   */
  readonly deadLetterQueue?: sqs.IQueue;
}

export function monitorMetric(name: string, group: string | undefined, period: Duration, statistic: string): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: METRICS_NAMESPACE,
    metricName: name,
    dimensionsMap: group ? { [DIMENSION.service]: SERVICE.monitor, [DIMENSION.group]: group } : { [DIMENSION.service]: SERVICE.monitor },
    period,
    statistic,
  });
}

/**
 * Alarms that go to the alert topic, on both transitions (ALARM and back to OK): either Lambda
 * failing, the monitor going silent (missing heartbeats count as breaching: silence is the
 * failure this alarm exists for), and per group the monitor's freshness and verification metrics.
 */
export class ColdsealAlarms extends Construct {
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly heartbeat: cloudwatch.Alarm;
  /** A schedule or rule whose target call AWS refused. */
  readonly undelivered?: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: ColdsealAlarmsProps) {
    super(scope, id);
    const period = Duration.minutes(Math.max(5, Math.ceil(props.monitorInterval.toMinutes() / 5) * 5));
    const add = (alarm: cloudwatch.Alarm) => {
      alarm.addAlarmAction(new actions.SnsAction(props.topic));
      alarm.addOkAction(new actions.SnsAction(props.topic));
      this.alarms.push(alarm);
      return alarm;
    };
    for (const [name, fn] of [['Verifier', props.verifierFunction], ['Monitor', props.monitorFunction]] as const) {
      add(
        new cloudwatch.Alarm(this, `${name}Errors`, {
          alarmDescription: `coldseal ${name.toLowerCase()} Lambda failed. What: an invocation threw (see its log group). Do: read the error in CloudWatch Logs Insights for the function; until fixed, ${name === 'Verifier' ? 'backups are not being verified' : 'failed backups and late sources may go unreported'}.`,
          metric: fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
    // Two empty periods in a row (each as long as the schedule interval) before alarming, so a
    // run that lands late in one period and early in the next is not a false alarm.
    this.heartbeat = add(
      new cloudwatch.Alarm(this, 'MonitorHeartbeat', {
        alarmDescription: `coldseal monitor went silent: no heartbeat for two ${props.monitorInterval.toHumanString()} periods. Do: check the monitor's schedule rule is enabled and its log group for errors; while silent, nothing checks backup freshness.`,
        metric: monitorMetric(METRIC.heartbeat, undefined, period, 'Sum'),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      }),
    );
    if (props.deadLetterQueue) {
      const queue = props.deadLetterQueue;
      // SQS sends its queue metrics every minute (after a quiet spell of hours, the first message
      // may take up to 15 minutes to show). Cleared when the operator has deleted the messages.
      this.undelivered = add(
        new cloudwatch.Alarm(this, 'Undelivered', {
          alarmDescription:
            `coldseal: a schedule or rule could not reach its target (SSM SendCommand refused: throttling, access denied, a document version that does not exist; or a Lambda that could not be invoked), so no backup command, drill, sweep or check ran. The request is kept 14 days in the dead-letter queue. ` +
            `Do: aws sqs receive-message --queue-url ${queue.queueUrl} --attribute-names All --message-attribute-names All --max-number-of-messages 10; the message attributes ERROR_CODE and ERROR_MESSAGE say why, SCHEDULE_ARN or RULE_ARN which one, and the body is the request. Fix the cause, run coldseal trigger --group <group> for a missed backup, then delete each message (aws sqs delete-message) and the alarm clears.`,
          metric: queue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: 'Maximum' }),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
    for (const group of props.groups) {
      const rpo = group.rpoHours ?? DEFAULT_RPO_HOURS;
      add(
        new cloudwatch.Alarm(this, `Late-${group.name}`, {
          alarmDescription: `coldseal group ${group.name}: at least one expected source has no backup younger than the RPO (${rpo} h), or none at all. Do: read the monitor's alert or the daily report for which host and source, then check its SSM Run Command history.`,
          metric: monitorMetric(METRIC.groupSourcesOverRpo, group.name, period, 'Maximum'),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          // The heartbeat alarm speaks for silence; this one only for what the monitor measured.
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
      add(
        new cloudwatch.Alarm(this, `Age-${group.name}`, {
          alarmDescription: `coldseal group ${group.name}: the oldest newest-backup is over the RPO of ${rpo} h. Do: see the dashboard's age graph for which source, then its host's SSM Run Command history.`,
          metric: monitorMetric(METRIC.groupMaxBackupAgeHours, group.name, period, 'Maximum'),
          threshold: rpo,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
      add(
        new cloudwatch.Alarm(this, `Verification-${group.name}`, {
          alarmDescription: `coldseal group ${group.name}: the latest verification report has failing sources (tampering, damage, wrong recipients, failed dumps). Do: open reports/<date>/verification.html in the data bucket and follow each finding's advice.`,
          metric: monitorMetric(METRIC.groupFailedVerifications, group.name, period, 'Maximum'),
          threshold: 1,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          evaluationPeriods: 1,
          treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        }),
      );
    }
  }
}
