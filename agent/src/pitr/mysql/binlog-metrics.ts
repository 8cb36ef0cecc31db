import { CloudWatchClient, PutMetricDataCommand, type MetricDatum } from '@aws-sdk/client-cloudwatch';
import type { AgentConfig } from '../../../../format/agent-config';
import { AGENT_METRICS_NAMESPACE, DIMENSION, METRIC } from '../../../../format/metric-names';

/**
 * What each binlog-push publishes, per group/host/source, for the monitor's alarm on a growing
 * backlog: the closed binary logs on the server still not archived after the run, and the files
 * this run archived (as archive-push does for WAL, ../archiver-metrics.ts). A failure here is the
 * caller's warning, never a failed push.
 */
export function binlogMetricData(where: { group: string; host: string; source: string }, figures: { backlog: number; filesArchived: number }, at: Date): MetricDatum[] {
  const Dimensions = [
    { Name: DIMENSION.group, Value: where.group },
    { Name: DIMENSION.host, Value: where.host },
    { Name: DIMENSION.source, Value: where.source },
  ];
  return [
    { MetricName: METRIC.binlogBacklog, Value: figures.backlog, Unit: 'Count', Timestamp: at, Dimensions },
    { MetricName: METRIC.binlogFilesArchived, Value: figures.filesArchived, Unit: 'Count', Timestamp: at, Dimensions },
  ];
}

export async function publishBinlogMetrics(config: AgentConfig, where: { group: string; host: string; source: string }, figures: { backlog: number; filesArchived: number }, at: Date, signal?: AbortSignal): Promise<void> {
  const client = new CloudWatchClient({ region: config.region, ...(config.endpoint ? { endpoint: config.endpoint } : {}), maxAttempts: 2 });
  try {
    await client.send(new PutMetricDataCommand({ Namespace: AGENT_METRICS_NAMESPACE, MetricData: binlogMetricData(where, figures, at) }), { abortSignal: signal });
  } finally {
    client.destroy();
  }
}
