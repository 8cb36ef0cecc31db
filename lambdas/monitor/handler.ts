import type { Context } from 'aws-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { plainConfig, s3Config, S3BucketStore, SnsNotifier, SsmCommandHistory, SsmInstanceDirectory, type ClientOptions } from '../shared/aws';
import { systemClock, type BucketStore, type Clock, type KeyListing, type CommandHistory, type InstanceDirectory, type MetricsSink, type Notifier } from '../shared/ports';
import { PowertoolsMetricsSink, powertools, SERVICE } from '../shared/runtime';
import { loadSettings } from '../../format/lambda-settings';
import { isWalCheck, type CheckInput, type WalCheckInput } from '../../format/scheduled-inputs';
import { COMMAND_STATUS_DETAIL_TYPE_NAME, type CommandStatusDetail } from '../../format/command-status';
import { handleCommandStatus, handleReplicationEvents, runMonitor, type MonitorDeps, type MonitorResult } from './core/monitor';
import { isSnsEvent, type SnsLambdaEvent } from './core/replication-failure';
import { runWalCheck, type WalCheckResult } from './core/wal-check';

/**
 * The monitor Lambda. Four triggers: SSM command status-change events for the backup document
 * (alert within minutes), S3 replication-failure events through the replication topic (SNS), a
 * schedule every few hours (freshness, SSM reachability, metrics, heartbeat), and, when a group
 * has a PITR source, a schedule every few minutes for the age of each archived WAL stream.
 */
const { logger, metrics } = powertools(SERVICE.monitor);

export const COMMAND_STATUS_DETAIL_TYPE = COMMAND_STATUS_DETAIL_TYPE_NAME;

export type MonitorEvent =
  | { source: 'aws.ssm'; 'detail-type': typeof COMMAND_STATUS_DETAIL_TYPE; detail: CommandStatusDetail }
  | SnsLambdaEvent
  | CheckInput
  | WalCheckInput
  | { 'detail-type': 'Scheduled Event'; source: string };

export interface MonitorOverrides {
  env?: Record<string, string | undefined>;
  clientConfig?: ClientOptions;
  clock?: Clock;
  store?: BucketStore & KeyListing;
  notifier?: Notifier;
  instances?: InstanceDirectory;
  commands?: CommandHistory;
  metrics?: MetricsSink;
}

export function createMonitorHandler(overrides: MonitorOverrides = {}) {
  let deps: MonitorDeps | undefined;
  const setup = (): MonitorDeps => {
    if (!deps) {
      const settings = loadSettings(overrides.env ?? process.env);
      const config = overrides.clientConfig ?? {};
      const ssm = new SSMClient(plainConfig(config));
      deps = {
        settings,
        store: overrides.store ?? new S3BucketStore(new S3Client(s3Config(config)), settings.bucket),
        notifier: overrides.notifier ?? new SnsNotifier(new SNSClient(plainConfig(config)), settings.topicArn),
        instances: overrides.instances ?? new SsmInstanceDirectory(ssm),
        commands: overrides.commands ?? new SsmCommandHistory(ssm),
        metrics: overrides.metrics ?? new PowertoolsMetricsSink(metrics),
        clock: overrides.clock ?? systemClock,
        log: logger,
      };
    }
    return deps;
  };
  return async (event: MonitorEvent, context?: Context): Promise<MonitorResult | WalCheckResult | undefined> => {
    if (context) logger.addContext(context);
    const d = setup();
    if ('detail-type' in event && event['detail-type'] === COMMAND_STATUS_DETAIL_TYPE) {
      logger.appendKeys({ commandId: event.detail['command-id'], instanceId: event.detail['instance-id'] });
      try {
        return await handleCommandStatus(d, event.detail);
      } finally {
        logger.removeKeys(['commandId', 'instanceId']);
      }
    }
    // SNS delivers only the replication topic's messages to this function: never a freshness run.
    if (isSnsEvent(event)) return handleReplicationEvents(d, event);
    // The frequent WAL check (PITR sources) is not a freshness run: no heartbeat, no SSM reachability.
    if (isWalCheck(event)) return runWalCheck(d);
    return runMonitor(d);
  };
}

export const handler = createMonitorHandler();
