import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '@aws-lambda-powertools/metrics';
import { WAL_WATERMARK_PREFIX, walObjectKey } from '../../format/layout';
import { WAL_CHECK_INPUT } from '../../format/scheduled-inputs';
import { createMonitorHandler } from '../../lambdas/monitor/handler';
import type { WalCheckResult } from '../../lambdas/monitor/core/wal-check';
import { watermarkKey } from '../../lambdas/monitor/core/wal-check';
import { S3BucketStore } from '../../lambdas/shared/aws';
import type { InstanceDirectory, ListedObject, ManagedInstance, MetricsSink, WalArchiveMetrics } from '../../lambdas/shared/ports';
import { PowertoolsMetricsSink, METRIC } from '../../lambdas/shared/runtime';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { drainInbox, newWorld, putObject, type World } from './fixtures';

/**
 * The monitor's WAL check (lambdas/monitor/core/wal-check.ts) through its handler, against moto:
 * WAL objects laid out as the agent writes them (format/layout.ts walObjectKey), the watermark in
 * the bucket's state, alerts read from the topic's SQS subscription. moto has no managed-instance
 * inventory with tags, so the tagged instances are a fake of the narrow interface.
 */

const MINUTE = 60_000;
const GROUP = { name: 'web', rpoHours: 26, sources: ['pg', 'www'], hosts: ['web-1'], retentionDays: { daily: 35 }, pitrSources: [{ source: 'pg', archiveTimeoutSeconds: 60 }] };

class Instances implements InstanceDirectory {
  constructor(public instances: ManagedInstance[] = []) {}
  async listGroup(_tagKey: string, group: string) {
    return this.instances.filter((i) => i.group === group);
  }
  async describe(instanceId: string) {
    return this.instances.find((i) => i.instanceId === instanceId) ?? null;
  }
}

class RecordedMetrics implements MetricsSink {
  wal: WalArchiveMetrics[] = [];
  heartbeats = 0;
  source(): void {}
  group(): void {}
  heartbeat(): void {
    this.heartbeats++;
  }
  walArchive(values: WalArchiveMetrics): void {
    this.wal.push(values);
  }
}

/** The real S3 adapter, counting the listings the check makes (the point of the watermark). */
class CountingStore extends S3BucketStore {
  listings: { prefix: string; startAfter?: string; delimiter?: boolean; keys: string[] }[] = [];
  /** Prefixes listed from their start (the alert state's is, every run). */
  fullLists: string[] = [];
  override async listAfter(prefix: string, startAfter?: string): Promise<ListedObject[]> {
    if (startAfter === undefined) this.fullLists.push(prefix);
    const out = await super.listAfter(prefix, startAfter);
    this.listings.push({ prefix, startAfter, keys: out.map((o) => o.key) });
    return out;
  }
  override async listPrefixes(prefix: string): Promise<string[]> {
    const out = await super.listPrefixes(prefix);
    this.listings.push({ prefix, delimiter: true, keys: out });
    return out;
  }
}

let account: MotoAccount;
before(async () => {
  account = await newMotoAccount();
});

function checker(world: World, options: { instances?: Instances; metrics?: MetricsSink } = {}) {
  const store = new CountingStore(world.s3, world.bucket);
  const metrics = options.metrics ?? new RecordedMetrics();
  const handler = createMonitorHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock, instances: options.instances ?? new Instances(), metrics, store });
  return { store, metrics, run: async () => (await handler(WAL_CHECK_INPUT)) as WalCheckResult };
}

async function archive(world: World, host: string, walFile: string): Promise<string> {
  const key = walObjectKey('web', host, 'pg', walFile);
  await putObject(world, key, Buffer.from(`ciphertext of ${walFile}`), { lock: false });
  return key;
}

const segment = (n: number, timeline = 1) => `${timeline.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;

test('a host archiving on time: its age as a metric, a watermark, no alert; the next run lists only what is new', async () => {
  const world = await newWorld({ account, groups: [GROUP], extraEnv: { COLDSEAL_WAL_GRACE_MINUTES: '5' } });
  for (let n = 1; n <= 4; n++) await archive(world, 'web-1', segment(n));
  const { store, metrics, run } = checker(world);
  world.clock.advance(30_000);

  const first = await run();
  assert.deepEqual(first.findings, []);
  assert.equal(first.published, undefined);
  assert.equal(first.sources.length, 1, 'one expected host (pinned) x one PITR source; www has no PITR');
  const wal = (metrics as RecordedMetrics).wal;
  assert.equal(wal.length, 1);
  assert.equal(wal[0].group, 'web');
  assert.equal(wal[0].host, 'web-1');
  assert.equal(wal[0].source, 'pg');
  assert.ok(wal[0].ageSeconds >= 25 && wal[0].ageSeconds < 60, `age ${wal[0].ageSeconds} s`);
  assert.equal((metrics as RecordedMetrics).heartbeats, 0, "the WAL check is not the full run: the heartbeat is the full run's");
  assert.deepEqual(store.fullLists, ['wal/web/web-1/pg/00000001/', 'state/alerts/'], 'without a watermark, the newest timeline is listed from its start, once');
  const watermark = JSON.parse((await store.getText(watermarkKey('web', 'web-1', 'pg')))!);
  assert.equal(watermark.newestKey, walObjectKey('web', 'web-1', 'pg', segment(4)));
  assert.equal(watermark.timeline, 1);
  assert.ok(watermarkKey('web', 'web-1', 'pg').startsWith(WAL_WATERMARK_PREFIX));

  // Nothing new: one listing of timelines, one of the newest timeline after the watermark, which returns nothing.
  store.listings = [];
  store.fullLists = [];
  await run();
  assert.deepEqual(store.fullLists, ['state/alerts/'], 'with a watermark the archive is never listed in full: only the alert state is');
  const sourceListings = store.listings.filter((l) => l.prefix.startsWith('wal/web/web-1/'));
  assert.deepEqual(
    sourceListings.map((l) => [l.prefix, l.startAfter ?? null, l.keys.length]),
    [
      ['wal/web/web-1/pg/', null, 1],
      ['wal/web/web-1/pg/00000001/', walObjectKey('web', 'web-1', 'pg', segment(4)), 0],
    ],
  );

  // Two new segments: only they are listed.
  await archive(world, 'web-1', segment(5));
  await archive(world, 'web-1', segment(6));
  store.listings = [];
  const third = await run();
  const after = store.listings.find((l) => l.prefix === 'wal/web/web-1/pg/00000001/')!;
  assert.deepEqual(after.keys, [walObjectKey('web', 'web-1', 'pg', segment(5)), walObjectKey('web', 'web-1', 'pg', segment(6))]);
  assert.equal(third.sources[0].newest?.newestKey, walObjectKey('web', 'web-1', 'pg', segment(6)));
  assert.equal(third.sources[0].listRequests, 2);
});

test('late archiving: one alert naming what, where, since and what to do (idle servers included), quiet while open, resolved when WAL arrives', async () => {
  const world = await newWorld({ account, groups: [GROUP], extraEnv: { COLDSEAL_WAL_GRACE_MINUTES: '5' } });
  const newest = await archive(world, 'web-1', segment(7));
  const { run } = checker(world);
  await drainInbox(world);

  world.clock.advance(5 * MINUTE);
  assert.deepEqual((await run()).findings, [], '5 minutes is under archive_timeout (60 s) + 5 min');

  world.clock.advance(2 * MINUTE);
  const late = await run();
  assert.deepEqual(late.findings.map((f) => f.id), ['wal-archive-late:web/web-1/pg']);
  const finding = late.findings[0];
  assert.equal(finding.severity, 'fail');
  assert.match(finding.where, new RegExp(`^s3://${world.bucket}/${newest.replace(/\//g, '\\/')}$`));
  assert.match(finding.summary, /reached S3 7 min ago .*more than archive_timeout \(60 s\) \+ 5 min grace/);
  assert.match(finding.action, /pg_stat_archiver/);
  assert.match(finding.action, /coldseal pitr setup --source pg/);
  assert.match(finding.action, /reaches S3/);
  assert.match(finding.action, /idle server/);
  // since: when the newest WAL stopped being fresh enough.
  const newestAt = Date.parse(late.sources[0].newest!.newestAt);
  assert.equal(Date.parse(finding.since), newestAt + (60 + 300) * 1000);
  const alerts = await drainInbox(world);
  assert.equal(alerts.length, 1);
  assert.match(alerts[0].subject, /^coldseal FAIL: 1 new \(monitor, WAL check\) - WAL archive late on web\/web-1\/pg/);
  assert.match(alerts[0].message, /do: +On web-1/);

  // Still late five minutes later: no second message.
  world.clock.advance(5 * MINUTE);
  const again = await run();
  assert.equal(again.findings.length, 1);
  assert.equal(again.published, undefined);
  assert.deepEqual(await drainInbox(world), []);

  // WAL arrives again: the problem is closed, once.
  await archive(world, 'web-1', segment(8));
  world.clock.ms = Date.now();
  const resolved = await run();
  assert.deepEqual(resolved.findings, []);
  assert.equal(resolved.plan.resolved.length, 1);
  const closing = await drainInbox(world);
  assert.equal(closing.length, 1);
  assert.match(closing[0].subject, /^coldseal RESOLVED: 1 resolved/);
});

test('a tagged host that never archived alerts; hosts found in the archive are checked too; a new timeline moves the watermark', async () => {
  const world = await newWorld({ account, groups: [GROUP], extraEnv: { COLDSEAL_WAL_GRACE_MINUTES: '5' } });
  const instances = new Instances([
    { instanceId: 'i-0aaaaaaaaaaaaaaaa', computerName: 'web-7.ec2.internal', pingStatus: 'Online', lastPingAt: new Date(world.clock.ms), group: 'web' },
  ]);
  await archive(world, 'web-1', segment(1));
  // A host neither tagged nor pinned, that archived once: still watched (its age is a fact).
  await archive(world, 'web-9', segment(1));
  const metrics = new RecordedMetrics();
  const { run } = checker(world, { instances, metrics });
  await drainInbox(world);

  const result = await run();
  assert.deepEqual(result.sources.map((s) => s.host), ['web-1', 'web-7', 'web-9']);
  assert.deepEqual(result.findings.map((f) => f.id), ['wal-never-archived:web/web-7/pg']);
  const never = result.findings[0];
  assert.match(never.summary, /web-7 is expected to archive the WAL of pg .* but no WAL file of it was ever archived/);
  assert.match(never.where, /instance i-0aaaaaaaaaaaaaaaa \(web-7\.ec2\.internal\), tag coldseal-group=web/);
  assert.match(never.action, /coldseal pitr setup --source pg --apply/);
  assert.deepEqual(metrics.wal.map((m) => m.host), ['web-1', 'web-9'], 'no age for a host that never archived');
  const alerts = await drainInbox(world);
  assert.equal(alerts.length, 1);
  assert.match(alerts[0].subject, /WAL never archived on web\/web-7\/pg/);

  // web-1 is promoted: timeline 2 starts with its .history file, then segments on it.
  await archive(world, 'web-1', '00000002.history');
  let next = await run();
  assert.equal(next.sources.find((s) => s.host === 'web-1')!.newest!.timeline, 2);
  assert.equal(next.sources.find((s) => s.host === 'web-1')!.newest!.newestKey, walObjectKey('web', 'web-1', 'pg', '00000002.history'));
  await archive(world, 'web-1', segment(2, 2));
  next = await run();
  assert.equal(next.sources.find((s) => s.host === 'web-1')!.newest!.newestKey, walObjectKey('web', 'web-1', 'pg', segment(2, 2)));
});

test('the metric as CloudWatch ingests it: WalArchiveAgeSeconds in seconds, dimensions Group, Host, Source (and service)', async () => {
  const world = await newWorld({ account, groups: [GROUP], extraEnv: { COLDSEAL_WAL_GRACE_MINUTES: '5' } });
  await archive(world, 'web-1', segment(3));
  world.clock.advance(90_000);
  const lines: string[] = [];
  const original = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    const text = chunk.toString();
    if (!text.includes('"_aws"')) return original(chunk, ...(rest as []));
    lines.push(...text.split('\n').filter((l) => l.includes('"_aws"')));
    return true;
  }) as typeof process.stdout.write;
  try {
    await checker(world, { metrics: new PowertoolsMetricsSink(new Metrics({ namespace: 'Coldseal', serviceName: 'coldseal-monitor' })) }).run();
  } finally {
    process.stdout.write = original;
  }
  const emf = lines.map((l) => JSON.parse(l) as { _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] }; [k: string]: unknown });
  const wal = emf.filter((e) => e._aws.CloudWatchMetrics[0].Metrics.some((m) => m.Name === METRIC.walArchiveAgeSeconds));
  assert.equal(wal.length, 1);
  const [entry] = wal;
  assert.equal(entry._aws.CloudWatchMetrics[0].Namespace, 'Coldseal');
  assert.deepEqual([...entry._aws.CloudWatchMetrics[0].Dimensions[0]].sort(), ['Group', 'Host', 'Source', 'service']);
  assert.deepEqual(entry._aws.CloudWatchMetrics[0].Metrics, [{ Name: METRIC.walArchiveAgeSeconds, Unit: 'Seconds' }]);
  assert.equal(entry.Group, 'web');
  assert.equal(entry.Host, 'web-1');
  assert.equal(entry.Source, 'pg');
  assert.ok((entry[METRIC.walArchiveAgeSeconds] as number) >= 88 && (entry[METRIC.walArchiveAgeSeconds] as number) < 120);
});

test('a group without PITR sources costs nothing: no listing, no finding', async () => {
  const world = await newWorld({ account, groups: [{ ...GROUP, pitrSources: undefined }] });
  const { store, run } = checker(world);
  const result = await run();
  assert.deepEqual(result.sources, []);
  assert.deepEqual(result.findings, []);
  assert.deepEqual(store.listings.filter((l) => l.prefix.startsWith('wal/')), []);
});
