import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { DIMENSION, METRIC, METRICS_NAMESPACE } from '../../format/metric-names';
import type { GroupMetrics, MetricsSink, SourceMetrics, WalArchiveMetrics } from './ports';

export { METRICS_NAMESPACE, METRIC, DIMENSION, SERVICE } from '../../format/metric-names';

export function powertools(serviceName: string): { logger: Logger; metrics: Metrics } {
  return {
    logger: new Logger({ serviceName }),
    metrics: new Metrics({ namespace: METRICS_NAMESPACE, serviceName }),
  };
}

/**
 * Metrics as EMF log lines (Powertools): one flush per source so that each carries its own
 * dimensions; CloudWatch turns them into metrics without PutMetricData calls or permissions.
 */
export class PowertoolsMetricsSink implements MetricsSink {
  constructor(private readonly metrics: Metrics) {}

  source(v: SourceMetrics): void {
    this.metrics.addDimensions({ [DIMENSION.group]: v.group, [DIMENSION.host]: v.host, [DIMENSION.source]: v.source });
    if (v.ageHours !== undefined) this.metrics.addMetric(METRIC.backupAgeHours, MetricUnit.Count, round(v.ageHours));
    if (v.sizeBytes !== undefined) this.metrics.addMetric(METRIC.backupSizeBytes, MetricUnit.Bytes, v.sizeBytes);
    if (v.durationSeconds !== undefined) this.metrics.addMetric(METRIC.backupDurationSeconds, MetricUnit.Seconds, round(v.durationSeconds));
    if (v.verificationStatus !== undefined) this.metrics.addMetric(METRIC.verificationStatus, MetricUnit.Count, v.verificationStatus);
    if (this.metrics.hasStoredMetrics()) this.metrics.publishStoredMetrics();
  }

  group(v: GroupMetrics): void {
    this.metrics.addDimensions({ [DIMENSION.group]: v.group });
    this.metrics.addMetric(METRIC.groupMaxBackupAgeHours, MetricUnit.Count, round(v.maxAgeHours));
    this.metrics.addMetric(METRIC.groupSourcesOverRpo, MetricUnit.Count, v.sourcesOverRpo);
    this.metrics.addMetric(METRIC.groupFailedVerifications, MetricUnit.Count, v.failedVerifications);
    this.metrics.publishStoredMetrics();
  }

  walArchive(v: WalArchiveMetrics): void {
    this.metrics.addDimensions({ [DIMENSION.group]: v.group, [DIMENSION.host]: v.host, [DIMENSION.source]: v.source });
    this.metrics.addMetric(METRIC.walArchiveAgeSeconds, MetricUnit.Seconds, Math.round(v.ageSeconds));
    this.metrics.publishStoredMetrics();
  }

  heartbeat(): void {
    this.metrics.addMetric(METRIC.heartbeat, MetricUnit.Count, 1);
    this.metrics.publishStoredMetrics();
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
