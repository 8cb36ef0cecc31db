import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { DIMENSION, METRIC, METRICS_NAMESPACE, SERVICE } from '../../format/metric-names';
import { DEFAULT_RPO_HOURS } from '../../format/lambda-settings';
import type { LambdaGroup } from './lambda-function';
import type { ColdsealAlarms } from './alarms';

export interface ColdsealDashboardProps {
  /** The groups as the Lambdas see them; an RPO left out is the Lambdas' default (DEFAULT_RPO_HOURS). */
  readonly groups: readonly Pick<LambdaGroup, 'name' | 'rpoHours' | 'pitrSources'>[];
  /** @default 'coldseal' */
  readonly dashboardName?: string;
  /** Shown as alarm status widgets at the top. */
  readonly alarms?: ColdsealAlarms;
}

/** One line per (host, source) of a group, found by SEARCH: hosts come and go without a redeploy. */
export function perSourceSearch(metricName: string, group: string, statistic: string, period: Duration): string {
  const dims = `{${METRICS_NAMESPACE},${DIMENSION.group},${DIMENSION.host},${DIMENSION.source},${DIMENSION.service}}`;
  return `SEARCH('${dims} MetricName="${metricName}" ${DIMENSION.group}="${group}" ${DIMENSION.service}="${SERVICE.monitor}"', '${statistic}', ${period.toSeconds()})`;
}

/** Size and age per source over time, per group, with the RPO as a line; alarm states on top. */
export class ColdsealDashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: ColdsealDashboardProps) {
    super(scope, id);
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: props.dashboardName ?? 'coldseal',
      defaultInterval: Duration.days(14),
    });
    if (props.alarms) {
      this.dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'coldseal alarms', alarms: props.alarms.alarms, width: 24, height: 3 }));
    }
    const period = Duration.hours(1);
    for (const group of props.groups) {
      const search = (metric: string, label: string, statistic = 'Maximum') =>
        new cloudwatch.MathExpression({ expression: perSourceSearch(metric, group.name, statistic, period), label, period });
      this.dashboard.addWidgets(
        new cloudwatch.GraphWidget({
          title: `${group.name}: backup age per source (hours)`,
          left: [search(METRIC.backupAgeHours, 'age')],
          leftAnnotations: [{ value: group.rpoHours ?? DEFAULT_RPO_HOURS, label: 'RPO', color: '#d62728' }],
          leftYAxis: { min: 0, showUnits: false },
          width: 12,
        }),
        new cloudwatch.GraphWidget({
          title: `${group.name}: backup size per source (bytes, compressed)`,
          left: [search(METRIC.backupSizeBytes, 'size')],
          leftYAxis: { min: 0 },
          width: 12,
        }),
      );
      this.dashboard.addWidgets(
        new cloudwatch.GraphWidget({
          // The verifier's daily sweep: every tier and class, the PITR archive and drill receipts of the group.
          title: `${group.name}: bytes stored in the data bucket`,
          left: [new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: METRIC.groupStoredBytes, dimensionsMap: { [DIMENSION.group]: group.name, [DIMENSION.service]: SERVICE.verifier }, statistic: 'Maximum', period: Duration.days(1), label: 'stored' })],
          leftYAxis: { min: 0 },
          width: 24,
        }),
      );
      this.dashboard.addWidgets(
        new cloudwatch.GraphWidget({ title: `${group.name}: backup duration per source (seconds)`, left: [search(METRIC.backupDurationSeconds, 'duration')], leftYAxis: { min: 0 }, width: 12 }),
        new cloudwatch.GraphWidget({
          title: `${group.name}: verification status per source (0 OK, 1 WARN, 2 FAIL)`,
          left: [search(METRIC.verificationStatus, 'status')],
          leftYAxis: { min: 0, max: 2 },
          width: 12,
        }),
      );
      if ((group.pitrSources ?? []).length > 0) {
        // The recovery point achieved: one line per host and PITR source, every WAL check (5 minutes).
        // PostgreSQL WAL and MySQL/MariaDB binary logs share the metric: the title names what the group archives.
        const walPeriod = Duration.minutes(5);
        const engines = new Set((group.pitrSources ?? []).map((p) => (p.engine === 'mysql' ? 'binary log' : 'WAL')));
        const what = [...engines].sort().join(' or ');
        this.dashboard.addWidgets(
          new cloudwatch.GraphWidget({
            title: `${group.name}: age of the newest archived ${what} per host and source (seconds)`,
            left: [new cloudwatch.MathExpression({ expression: perSourceSearch(METRIC.walArchiveAgeSeconds, group.name, 'Maximum', walPeriod), label: `${what} age`, period: walPeriod })],
            leftAnnotations: (group.pitrSources ?? []).map((p) => ({ value: p.archiveTimeoutSeconds, label: `${p.engine === 'mysql' ? 'binlog-push interval' : 'archive_timeout'} ${p.source}`, color: '#ff7f0e' })),
            leftYAxis: { min: 0, showUnits: false },
            width: 24,
          }),
        );
      }
    }
  }
}
