import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { binlogFileName } from '../../format/binlog';
import { binlogObjectKey } from '../../format/layout';
import { WAL_CHECK_INPUT } from '../../format/scheduled-inputs';
import { createMonitorHandler } from '../../lambdas/monitor/handler';
import { watermarkKey, type WalCheckResult } from '../../lambdas/monitor/core/wal-check';
import { S3BucketStore } from '../../lambdas/shared/aws';
import type { InstanceDirectory, ListedObject, MetricsSink, WalArchiveMetrics } from '../../lambdas/shared/ports';
import { newMotoAccount, type MotoAccount } from '../harness/aws';
import { drainInbox, newWorld, putObject, type World } from './fixtures';

/**
 * The monitor's lag check on MySQL/MariaDB binary log archives (lambdas/monitor/core/wal-check.ts,
 * engine "mysql") through its handler against moto: objects under wal/<g>/<h>/<s>/binlog/ as
 * binlog-push writes them, the watermark in the bucket's state, alerts from the topic's SQS
 * subscription. The monitor reads no object, so a "binary log" here is a few bytes.
 */

const MINUTE = 60_000;
/** binlog-push every 5 minutes, grace 5 minutes: late after 10. */
const GROUP = { name: 'web', rpoHours: 26, sources: ['shop', 'pg'], hosts: ['maria-1'], retentionDays: { daily: 35 }, pitrSources: [{ source: 'shop', engine: 'mysql', archiveTimeoutSeconds: 300 }] };

class NoInstances implements InstanceDirectory {
  async listGroup() {
    return [];
  }
  async describe() {
    return null;
  }
}

class RecordedMetrics implements MetricsSink {
  wal: WalArchiveMetrics[] = [];
  source(): void {}
  group(): void {}
  heartbeat(): void {}
  walArchive(values: WalArchiveMetrics): void {
    this.wal.push(values);
  }
}

/** The real S3 adapter, recording the listings the check makes. */
class CountingStore extends S3BucketStore {
  listings: { prefix: string; startAfter?: string; keys: string[] }[] = [];
  override async listAfter(prefix: string, startAfter?: string): Promise<ListedObject[]> {
    const out = await super.listAfter(prefix, startAfter);
    this.listings.push({ prefix, startAfter, keys: out.map((o) => o.key) });
    return out;
  }
}

let account: MotoAccount;
before(async () => {
  account = await newMotoAccount();
});

function checker(world: World) {
  const store = new CountingStore(world.s3, world.bucket);
  const metrics = new RecordedMetrics();
  const handler = createMonitorHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock, instances: new NoInstances(), metrics, store });
  return { store, metrics, run: async () => (await handler(WAL_CHECK_INPUT)) as WalCheckResult };
}

async function push(world: World, n: number): Promise<string> {
  const key = binlogObjectKey('web', 'maria-1', 'shop', binlogFileName('mariadb-bin', n));
  await putObject(world, key, Buffer.from(`ciphertext of binary log ${n}`), { lock: false });
  return key;
}

test('binary logs archived on time, then binlog-push stops: an alert naming the newest file, its age and what to check while the lag exceeds interval + grace; cleared when it catches up', async () => {
  const world = await newWorld({ account, groups: [GROUP], extraEnv: { COLDSEAL_WAL_GRACE_MINUTES: '5' } });
  for (let n = 1; n <= 3; n++) await push(world, n);
  const { store, metrics, run } = checker(world);
  world.clock.advance(MINUTE);

  const first = await run();
  assert.deepEqual(first.findings, []);
  assert.equal(first.published, undefined);
  assert.deepEqual(first.sources.map((s) => [s.host, s.source, s.engine, s.thresholdSeconds]), [['maria-1', 'shop', 'mysql', 600]]);
  assert.equal(metrics.wal.length, 1);
  assert.ok(metrics.wal[0].ageSeconds >= 55 && metrics.wal[0].ageSeconds < 120, `age ${metrics.wal[0].ageSeconds} s`);
  const watermark = JSON.parse((await store.getText(watermarkKey('web', 'maria-1', 'shop')))!);
  assert.equal(watermark.newestKey, binlogObjectKey('web', 'maria-1', 'shop', 'mariadb-bin.000003'));
  assert.equal(watermark.timeline, 0);
  // One listing of the binlog folder; the next run starts after the watermark.
  const binlogListings = () => store.listings.filter((l) => l.prefix.startsWith('wal/'));
  assert.deepEqual(binlogListings().map((l) => [l.prefix, l.startAfter ?? null, l.keys.length]), [['wal/web/maria-1/shop/binlog/', null, 3]]);

  // binlog-push stops (the process killed, or S3 unreachable): 12 minutes without a new file.
  store.listings = [];
  world.clock.advance(11 * MINUTE);
  await drainInbox(world);
  const late = await run();
  assert.deepEqual(binlogListings().map((l) => [l.prefix, l.startAfter ?? null, l.keys.length]), [['wal/web/maria-1/shop/binlog/', watermark.newestKey, 0]], 'only what sorts after the watermark is listed');
  assert.equal(late.findings.length, 1);
  const [finding] = late.findings;
  assert.equal(finding.check, 'binlog-archive-late');
  assert.equal(finding.severity, 'fail');
  assert.match(finding.summary, /^the newest archived binary log of shop on maria-1, mariadb-bin\.000003, reached S3 12 min ago \(at .+\), more than the binlog-push interval \(300 s\) \+ 5 min grace: a restore now would lose everything written since$/);
  assert.match(finding.action, /systemctl list-timers 'coldseal\*'/);
  assert.match(finding.action, /coldseal pitr binlog-push --source shop by hand/);
  assert.match(finding.action, /binlog_expire_logs_seconds/);
  assert.equal(finding.where, `s3://${world.bucket}/${watermark.newestKey}`);
  const alerts = await drainInbox(world);
  assert.equal(alerts.length, 1);
  assert.match(alerts[0].subject, /^coldseal FAIL: 1 new \(monitor, WAL check\) - Binary log archive late on web\/maria-1\/shop/);
  assert.ok(alerts[0].message.includes('mariadb-bin.000003'), alerts[0].message);

  // Still late a run later: not announced again (the repeat interval is hours).
  world.clock.advance(MINUTE);
  const still = await run();
  assert.equal(still.findings.length, 1);
  assert.equal(still.published, undefined);

  // binlog-push is back and catches up: files 4 to 6 land, the alert's end is announced.
  for (let n = 4; n <= 6; n++) await push(world, n);
  // moto stamps LastModified with the real clock: the check runs half a minute after these uploads.
  world.clock.ms = Date.now() + 30_000;
  const caughtUp = await run();
  assert.deepEqual(caughtUp.findings, []);
  assert.equal(caughtUp.plan.resolved.length, 1);
  const resolved = await drainInbox(world);
  assert.equal(resolved.length, 1);
  assert.match(resolved[0].message, /RESOLVED Binary log archive late - web\/maria-1\/shop/);
  const moved = JSON.parse((await store.getText(watermarkKey('web', 'maria-1', 'shop')))!);
  assert.equal(moved.newestKey, binlogObjectKey('web', 'maria-1', 'shop', 'mariadb-bin.000006'));
});

test('an expected host that never archived a binary log: a FAIL saying so, with the binlog folder and the checks', async () => {
  const world = await newWorld({ account, groups: [{ ...GROUP, hosts: ['maria-1', 'maria-2'] }], extraEnv: { COLDSEAL_WAL_GRACE_MINUTES: '5' } });
  await push(world, 1);
  const result = await checker(world).run();
  assert.deepEqual(result.findings.map((f) => [f.check, f.host]), [['binlog-never-archived', 'maria-2']]);
  assert.match(result.findings[0].summary, /^maria-2 is expected to archive the binary logs of shop .* but no binary log of it was ever archived$/);
  assert.ok(result.findings[0].where.startsWith(`s3://${world.bucket}/wal/web/maria-2/shop/binlog/ (host maria-2 pinned`), result.findings[0].where);
  assert.match(result.published!.subject, /Binary log never archived on web\/maria-2\/shop/);
});
