import type { Context } from 'aws-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { MetricUnit } from '@aws-lambda-powertools/metrics';
import { plainConfig, s3Config, S3BucketStore, SnsNotifier, SsmParameterStore, type ClientOptions } from '../shared/aws';
import { systemClock, type BucketStore, type Clock, type Notifier, type ParameterStore } from '../shared/ports';
import { DIMENSION, METRIC, powertools, SERVICE } from '../shared/runtime';
import { SdkPriceList, type PriceListPort } from '../shared/price-list';
import { loadSettings, type Settings } from '../../format/lambda-settings';
import type { SweepInput } from '../../format/scheduled-inputs';
import { runSweep, verifyNewManifest, type ManifestResult, type SweepResult, type VerifierDeps } from './core/verifier';

/**
 * The verifier Lambda. Two triggers: S3 "Object Created" events (via EventBridge) for each new
 * manifest, verified at once; and a daily schedule that sweeps the bucket and writes the report.
 */
const { logger, metrics } = powertools(SERVICE.verifier);

export type VerifierEvent =
  | { 'detail-type': 'Object Created'; source: 'aws.s3'; detail: { bucket: { name: string }; object: { key: string } } }
  | SweepInput
  | { action: 'verify'; key: string }
  | { 'detail-type': 'Scheduled Event'; source: string };

export interface VerifierOverrides {
  env?: Record<string, string | undefined>;
  /** SDK client config (endpoint, credentials…) for every client. */
  clientConfig?: ClientOptions;
  clock?: Clock;
  store?: BucketStore;
  notifier?: Notifier;
  params?: ParameterStore;
  /** The Price List port; by default the SDK client (with clientConfig), when the settings allow asking it. */
  priceList?: PriceListPort;
  /** Lists the offsite replica; by default an S3 client in the replica's region (clientConfig's endpoint and credentials). */
  replicaStore?: Pick<BucketStore, 'list'>;
}

export function createVerifierHandler(overrides: VerifierOverrides = {}) {
  let deps: Omit<VerifierDeps, 'remainingMs'> | undefined;
  let settings: Settings | undefined;
  const setup = () => {
    if (!deps) {
      settings = loadSettings(overrides.env ?? process.env);
      const config = overrides.clientConfig ?? {};
      deps = {
        settings,
        store: overrides.store ?? new S3BucketStore(new S3Client(s3Config(config)), settings.bucket),
        notifier: overrides.notifier ?? new SnsNotifier(new SNSClient(plainConfig(config)), settings.topicArn),
        params: overrides.params ?? new SsmParameterStore(new SSMClient(plainConfig(config))),
        clock: overrides.clock ?? systemClock,
        log: logger,
        priceList: overrides.priceList ?? (settings.priceList ? SdkPriceList.create(plainConfig(config)) : undefined),
        region: settings.region ?? (typeof config.region === 'string' ? config.region : undefined),
        // The replica is listed with a client in its own region: S3 answers a bucket's listing only
        // in the bucket's region (a request elsewhere is a 301 PermanentRedirect,
        // https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html and "Virtual hosting of buckets").
        ...(settings.replica
          ? { replica: { bucket: settings.replica.bucket, region: settings.replica.region, store: overrides.replicaStore ?? new S3BucketStore(new S3Client(s3Config({ ...config, region: settings.replica.region })), settings.replica.bucket) } }
          : {}),
      };
    }
    return deps;
  };
  return async (event: VerifierEvent, context?: Context): Promise<SweepResult | ManifestResult | undefined> => {
    if (context) logger.addContext(context);
    const base = setup();
    const margin = base.settings.timeMarginSeconds * 1000;
    const remainingMs = context ? () => context.getRemainingTimeInMillis() - margin : () => Number.POSITIVE_INFINITY;
    const d: VerifierDeps = { ...base, remainingMs };
    try {
      if ('detail-type' in event && event['detail-type'] === 'Object Created') {
        if (event.detail.bucket.name !== base.settings.bucket) {
          logger.warn('event for another bucket ignored', { bucket: event.detail.bucket.name });
          return undefined;
        }
        // Manifest keys hold only characters that need no URL-encoding (format/layout.ts), so the key is used as delivered.
        const result = await verifyNewManifest(d, event.detail.object.key);
        metrics.addMetric(METRIC.findings, MetricUnit.Count, result?.findings.length ?? 0);
        return result;
      }
      if ('action' in event && event.action === 'verify') return await verifyNewManifest(d, event.key);
      const result = await runSweep(d);
      metrics.addMetric(METRIC.findings, MetricUnit.Count, result.findings.length);
      metrics.addMetric(METRIC.hashedBytes, MetricUnit.Bytes, result.report.verification.hashedBytes);
      metrics.publishStoredMetrics();
      // One flush per group, so that each carries its own Group dimension (EMF: no PutMetricData call, no permission).
      for (const g of result.report.storage?.trend.groups ?? []) {
        if (!base.settings.groups.some((x) => x.name === g.group)) continue;
        metrics.addDimensions({ [DIMENSION.group]: g.group });
        metrics.addMetric(METRIC.groupStoredBytes, MetricUnit.Bytes, g.bytes);
        metrics.publishStoredMetrics();
      }
      return result;
    } finally {
      if (metrics.hasStoredMetrics()) metrics.publishStoredMetrics();
    }
  };
}

export const handler = createVerifierHandler();
