import { CloudWatchClient, PutMetricDataCommand, type MetricDatum } from '@aws-sdk/client-cloudwatch';
import { AGENT_METRICS_NAMESPACE, DIMENSION, METRIC } from '../../../format/metric-names';
import type { AgentConfig } from '../../../format/agent-config';
import { psqlRun, type PgConnection } from '../db/postgres';
import { runTool } from '../pipeline/sink';

/**
 * The figures each archive-push publishes, per group/host/source, for the monitor's alarms on a
 * growing backlog or a failing archiver: the .ready files left after this call, pg_stat_archiver's
 * failed_count (PostgreSQL docs, "The Cumulative Statistics System", pg_stat_archiver), and the
 * files this call archived. A failure here is the caller's warning, never a failed archive.
 */
export interface ArchiverFigures {
  readonly readyBacklog: number;
  readonly filesArchived: number;
  /** undefined when the server could not be asked. */
  readonly failedCount?: number;
}

export async function readArchiverFailedCount(conn: PgConnection): Promise<number> {
  const out = await runTool(psqlRun(conn, 'postgres'), 'reading pg_stat_archiver', 'select failed_count from pg_stat_archiver;');
  const value = Number(out.trim());
  if (!Number.isInteger(value)) throw new Error(`pg_stat_archiver.failed_count reads "${out.trim()}"`);
  return value;
}

export function archiverMetricData(where: { group: string; host: string; source: string }, figures: ArchiverFigures, at: Date): MetricDatum[] {
  const Dimensions = [
    { Name: DIMENSION.group, Value: where.group },
    { Name: DIMENSION.host, Value: where.host },
    { Name: DIMENSION.source, Value: where.source },
  ];
  const datum = (MetricName: string, Value: number): MetricDatum => ({ MetricName, Value, Unit: 'Count', Timestamp: at, Dimensions });
  return [
    datum(METRIC.walReadyBacklog, figures.readyBacklog),
    datum(METRIC.walFilesArchived, figures.filesArchived),
    ...(figures.failedCount === undefined ? [] : [datum(METRIC.walArchiverFailedCount, figures.failedCount)]),
  ];
}

export async function publishArchiverMetrics(config: AgentConfig, where: { group: string; host: string; source: string }, figures: ArchiverFigures, at: Date, signal?: AbortSignal): Promise<void> {
  const client = new CloudWatchClient({ region: config.region, ...(config.endpoint ? { endpoint: config.endpoint } : {}), maxAttempts: 2 });
  try {
    await client.send(new PutMetricDataCommand({ Namespace: AGENT_METRICS_NAMESPACE, MetricData: archiverMetricData(where, figures, at) }), { abortSignal: signal });
  } finally {
    client.destroy();
  }
}
