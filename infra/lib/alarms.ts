import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { AGENT_METRICS_NAMESPACE, DIMENSION, METRIC, METRICS_NAMESPACE, SERVICE } from '../../format/metric-names';
import { DEFAULT_RPO_HOURS } from '../../format/lambda-settings';
import type { LambdaGroup } from './lambda-function';

export interface ColdsealAlarmsProps {
  readonly topic: sns.ITopic;
  readonly verifierFunction: lambda.IFunction;
  readonly monitorFunction: lambda.IFunction;
  /** The monitor's schedule interval: one heartbeat per interval is expected. */
  readonly monitorInterval: Duration;
  /** The groups as the Lambdas see them; an RPO left out is the Lambdas' default (DEFAULT_RPO_HOURS). */
  readonly groups: readonly Pick<LambdaGroup, 'name' | 'rpoHours' | 'pitrSources'>[];
  /**
   * The schedules' and rules' dead-letter queue (DeadLetters): any message in it alarms.
   * @default - no such alarm
   */
  readonly deadLetterQueue?: sqs.IQueue;
  /**
   * Minutes a PITR source's newest archived WAL (binary log) may be older than its archive_timeout
   * (binlog-push interval), the monitor's COLDSEAL_WAL_GRACE_MINUTES: the age alarms' thresholds add it.
   * @default 5
   */
  readonly walGraceMinutes?: number;
}

/**
 * A Metrics Insights query over one PITR source's hosts: the hosts are not known when the stack is
 * built, and a metric alarm needs every dimension, so the alarm aggregates across them (MAX: the
 * worst host) with a query on the metric's exact dimension set (SCHEMA), filtered to the source.
 * https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-metrics-insights-alarms.html
 */
export function walSourceQuery(namespace: string, metric: string, dimensions: readonly string[], group: string, source: string, extra: Record<string, string> = {}): string {
  const filters = Object.entries({ [DIMENSION.group]: group, [DIMENSION.source]: source, ...extra }).map(([k, v]) => `"${k}" = '${v}'`);
  return `SELECT MAX("${metric}") FROM SCHEMA("${namespace}", ${dimensions.map((d) => `"${d}"`).join(', ')}) WHERE ${filters.join(' AND ')}`;
}

/** Backlog of .ready WAL files that counts as "not keeping up" once it lasts three periods. */
export const WAL_BACKLOG_ALARM_FILES = 32;

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
    const grace = props.walGraceMinutes ?? 5;
    for (const group of props.groups) {
      for (const { source, archiveTimeoutSeconds, engine } of group.pitrSources ?? []) {
        if (engine === 'mysql') this.binlogAlarms(group.name, source, archiveTimeoutSeconds, grace, add);
        else this.walAlarms(group.name, source, archiveTimeoutSeconds, grace, add);
      }
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

  /**
   * Per PITR source: its WAL age (the monitor's metric, every 5 minutes; silence counts as late,
   * since the monitor emits an age for every host that ever archived), and the agent's own
   * figures: a .ready backlog that stays high (archiving does not keep up) and a growing
   * pg_stat_archiver.failed_count (archive_command failing). The agent publishes those with each
   * archive-push, so their silence is not a finding: an idle server pushes nothing.
   */
  private walAlarms(group: string, source: string, archiveTimeoutSeconds: number, graceMinutes: number, add: (alarm: cloudwatch.Alarm) => cloudwatch.Alarm): void {
    const id = `${group}-${source}`;
    const threshold = archiveTimeoutSeconds + graceMinutes * 60;
    const monitorDimensions = [DIMENSION.group, DIMENSION.host, DIMENSION.source, DIMENSION.service];
    const agentDimensions = [DIMENSION.group, DIMENSION.host, DIMENSION.source];
    add(
      new cloudwatch.Alarm(this, `WalAge-${id}`, {
        alarmDescription:
          `coldseal ${group}/${source}: the newest archived WAL of at least one host is older than archive_timeout (${archiveTimeoutSeconds} s) + ${graceMinutes} min, or the WAL check reported nothing: a restore now would lose the writes since. ` +
          `Do: read the monitor's alert for which host; on it, SELECT * FROM pg_stat_archiver and the PostgreSQL log show why archive_command fails; coldseal pitr setup --source ${source} shows the settings. An idle server archives nothing (archive_timeout switches segments only after writes): keep a heartbeat write.`,
        metric: new cloudwatch.MathExpression({
          expression: walSourceQuery(METRICS_NAMESPACE, METRIC.walArchiveAgeSeconds, monitorDimensions, group, source, { [DIMENSION.service]: SERVICE.monitor }),
          usingMetrics: {},
          period: Duration.minutes(10),
          label: `WAL age ${id}`,
        }),
        threshold,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        // Two WAL checks per period: one late run does not empty it; a silent check or a source no
        // host archives is the failure this alarm is for.
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      }),
    );
    add(
      new cloudwatch.Alarm(this, `WalBacklog-${id}`, {
        alarmDescription:
          `coldseal ${group}/${source}: a host has kept more than ${WAL_BACKLOG_ALARM_FILES} WAL files waiting in pg_wal/archive_status (.ready) for 15 minutes: archiving does not keep up with the writes, or fails. ` +
          `Do: on the host, SELECT * FROM pg_stat_archiver and the PostgreSQL log; check its network to S3 and its disk (pg_wal grows until archiving catches up); raise pitr.pushAhead or pitr.concurrency for a write burst.`,
        metric: new cloudwatch.MathExpression({
          expression: walSourceQuery(AGENT_METRICS_NAMESPACE, METRIC.walReadyBacklog, agentDimensions, group, source),
          usingMetrics: {},
          period: Duration.minutes(5),
          label: `WAL backlog ${id}`,
        }),
        threshold: WAL_BACKLOG_ALARM_FILES,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    add(
      new cloudwatch.Alarm(this, `WalArchiverFailures-${id}`, {
        alarmDescription:
          `coldseal ${group}/${source}: pg_stat_archiver.failed_count grew on a host: archive_command failed at least once in the last 5 minutes (PostgreSQL retries; the WAL stays in pg_wal until archived). ` +
          `Do: on the host, SELECT last_failed_wal, last_failed_time FROM pg_stat_archiver and the PostgreSQL log for the agent's error; the WAL age alarm tells whether archiving has stopped.`,
        // DIFF of the worst host's cumulative count: its growth within the period.
        metric: new cloudwatch.MathExpression({
          expression: 'DIFF(failed)',
          usingMetrics: {
            failed: new cloudwatch.MathExpression({ expression: walSourceQuery(AGENT_METRICS_NAMESPACE, METRIC.walArchiverFailedCount, agentDimensions, group, source), usingMetrics: {}, period: Duration.minutes(5) }),
          },
          period: Duration.minutes(5),
          label: `WAL archiver failures ${id}`,
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
  }


  /**
   * Per MySQL/MariaDB PITR source: the age of its newest archived binary log (the monitor's WAL
   * check measures both engines under one metric; silence counts as late), and the agent's
   * BinlogBacklog, the closed binary logs a binlog-push run left behind (published by every run,
   * so a run that cannot upload shows it; a stopped timer shows as the age instead).
   */
  private binlogAlarms(group: string, source: string, intervalSeconds: number, graceMinutes: number, add: (alarm: cloudwatch.Alarm) => cloudwatch.Alarm): void {
    const id = `${group}-${source}`;
    const monitorDimensions = [DIMENSION.group, DIMENSION.host, DIMENSION.source, DIMENSION.service];
    const agentDimensions = [DIMENSION.group, DIMENSION.host, DIMENSION.source];
    add(
      new cloudwatch.Alarm(this, `BinlogAge-${id}`, {
        alarmDescription:
          `coldseal ${group}/${source}: the newest archived binary log of at least one host is older than the binlog-push interval (${intervalSeconds} s) + ${graceMinutes} min, or the WAL check reported nothing: a restore now would lose the writes since. ` +
          `Do: read the monitor's alert for which host; on it, systemctl list-timers 'coldseal*' shows whether the binlog-push timer runs, and coldseal pitr binlog-push --source ${source} by hand shows its error; coldseal pitr setup --source ${source} checks the server's settings. The server keeps closed binary logs only for binlog_expire_logs_seconds: act before that runs out.`,
        metric: new cloudwatch.MathExpression({
          expression: walSourceQuery(METRICS_NAMESPACE, METRIC.walArchiveAgeSeconds, monitorDimensions, group, source, { [DIMENSION.service]: SERVICE.monitor }),
          usingMetrics: {},
          period: Duration.minutes(10),
          label: `binary log age ${id}`,
        }),
        threshold: intervalSeconds + graceMinutes * 60,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      }),
    );
    // One binlog-push run per interval: three runs in a row that left closed files behind.
    const period = Duration.minutes(Math.max(5, Math.ceil(intervalSeconds / 60)));
    add(
      new cloudwatch.Alarm(this, `BinlogBacklog-${id}`, {
        alarmDescription:
          `coldseal ${group}/${source}: three binlog-push runs in a row on a host left closed binary logs not archived: uploads fail or do not keep up with the writes. ` +
          `Do: on the host, journalctl of the binlog-push timer's unit (systemctl list-timers 'coldseal*') for the agent's error; check its network to S3; raise pitr.concurrency for a write burst. Files the server purges before they are archived are lost (the verifier reports the gap).`,
        metric: new cloudwatch.MathExpression({
          expression: walSourceQuery(AGENT_METRICS_NAMESPACE, METRIC.binlogBacklog, agentDimensions, group, source),
          usingMetrics: {},
          period,
          label: `binary log backlog ${id}`,
        }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
  }
}
