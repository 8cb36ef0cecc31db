import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CloudWatchClient, GetMetricStatisticsCommand, ListMetricsCommand } from '@aws-sdk/client-cloudwatch';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../format/exit-codes';
import { binlogObjectKey, binlogPrefix } from '../../format/layout';
import { AGENT_METRICS_NAMESPACE, METRIC } from '../../format/metric-names';
import { openBinlogRecord } from '../../runtime/binlog-record';
import { readPublicKeys, type PublicKey } from '../../runtime/pgp';
import { motoEndpoint } from '../harness/aws';
import { startBinlogSource, type BinlogSource } from '../harness/binlog-source';
import { startS3Proxy, type S3Proxy } from '../harness/s3-proxy';

/**
 * binlog-push under faults: killed (SIGKILL) in the middle of a file, then run again; S3
 * unreachable for a while. Nothing is lost, no object is half written, every file is archived
 * once, and the failing runs say why and report the backlog.
 */
let src: BinlogSource;
let proxy: S3Proxy;
let dropping = false;
/** Set when a conditional PUT reaches the proxy (before its body is read): the push is mid-upload. */
let putStarted = false;
/** Milliseconds the proxy holds each PUT: a slow upload, so that a signal sent once one started lands mid-upload. */
let putDelayMs = 0;
let signingKeys: PublicKey[];

before(async () => {
  proxy = await startS3Proxy(motoEndpoint(), {
    delayMs: (method) => (method === 'PUT' ? putDelayMs : 0),
    drop: (method) => {
      if (method === 'PUT') putStarted = true;
      return dropping;
    },
  });
  src = await startBinlogSource({ config: { endpoint: proxy.url }, pitr: { concurrency: 2 } });
  signingKeys = await readPublicKeys(src.sandbox.signing.publicKey, 'signing');
  src.sql('CREATE TABLE big (id INT PRIMARY KEY, v VARCHAR(300)) ENGINE=InnoDB');
});

after(async () => {
  await src?.close();
  await proxy?.close();
});

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const prefix = () => binlogPrefix('testgroup', 'testhost', 'shop');

function closedFiles(): string[] {
  const names = src.server
    .sql('SHOW BINARY LOGS')
    .split('\n')
    .map((l) => l.split('\t')[0]!);
  return names.slice(0, -1);
}

/** Every object under the prefix is whole: its signed record opens and describes the server's file. */
async function assertWholeObjects(): Promise<string[]> {
  const keys = await src.sandbox.listKeys(prefix());
  for (const key of keys) {
    const head = await src.sandbox.s3.send(new HeadObjectCommand({ Bucket: src.sandbox.bucket, Key: key }));
    const { record } = await openBinlogRecord(head.Metadata, signingKeys, key);
    assert.equal(record.ciphertextSha256, sha256(await src.sandbox.getObject(key)), key);
    assert.equal(record.plaintextSha256, sha256(readFileSync(join(src.server.binlogDir, record.binlogFile))), key);
  }
  assert.deepEqual(await src.sandbox.openMultipartUploads(), []);
  return keys;
}

/** Rows of ~290 bytes (256 hex digits) (compressible about half): `mb` megabytes of binary log. */
function write(mb: number, from: number): void {
  const rows = Math.round((mb * 1024 * 1024) / 290);
  src.sql(`INSERT INTO big SELECT seq, CONCAT(SHA2(RAND(), 512), SHA2(RAND(), 512)) FROM seq_${from}_to_${from + rows - 1}`);
}

test('killed (SIGKILL) in the middle of a file: no half object; the next run archives everything', async () => {
  write(12, 1);
  src.flush();
  write(12, 100_000);
  src.flush();
  write(12, 200_000);
  const spool = join(src.stateDir, 'spool');
  putStarted = false;
  // Killed once the first upload is on the wire (the second file is still being encoded beside it).
  const killed = await src.push([], {}, { name: 'SIGKILL', when: async () => putStarted });
  assert.equal(killed.code, null, `killed run exited by itself: ${killed.log}`);
  const partial = await assertWholeObjects();
  assert.ok(partial.length < closedFiles().length, 'the kill came before every file was archived');
  assert.ok(existsSync(join(src.stateDir, 'binlog-push.lock')), 'the killed run left its lock');

  const rerun = await src.push();
  assert.equal(rerun.code, EXIT.OK, rerun.log);
  const keys = await assertWholeObjects();
  assert.deepEqual(keys, closedFiles().map((f) => binlogObjectKey('testgroup', 'testhost', 'shop', f)).sort());
  assert.ok(!existsSync(join(src.stateDir, 'binlog-push.lock')));
  assert.deepEqual(readdirSync(spool), []);
});

test('SIGTERM (systemd stopping the unit) mid-upload: INTERRUPTED, lock released, what finished kept', async () => {
  write(8, 400_000);
  src.flush();
  write(8, 500_000);
  putStarted = false;
  putDelayMs = 3_000;
  const stopped = await src.push([], {}, { name: 'SIGTERM', when: async () => putStarted }).finally(() => (putDelayMs = 0));
  assert.equal(stopped.code, EXIT.INTERRUPTED, stopped.log);
  assert.match(stopped.log, /interrupted by SIGTERM: \d of 2 closed binary log\(s\) archived, \d left for the next run/);
  assert.ok(!existsSync(join(src.stateDir, 'binlog-push.lock')));
  await assertWholeObjects();
  const rerun = await src.push();
  assert.equal(rerun.code, EXIT.OK, rerun.log);
  assert.deepEqual(await assertWholeObjects(), closedFiles().map((f) => binlogObjectKey('testgroup', 'testhost', 'shop', f)).sort());
});

test('S3 unreachable: the run fails saying so and reports the backlog; once back, every file is archived once', async () => {
  const archivedBefore = (await src.sandbox.listKeys(prefix())).length;
  const seenBefore = proxy.seen.length;
  write(1, 300_000);
  src.flush();
  write(1, 310_000);
  dropping = true;
  const down = await src.push();
  dropping = false;
  assert.equal(down.code, EXIT.STORAGE, down.log);
  assert.match(down.log, /2 of 2 closed binary log\(s\) not archived \(mariadb-bin\.\d+, mariadb-bin\.\d+\): upload to s3:\/\/\S+ failed/);
  assert.match(down.log, /the next run \(the timer\) archives them/);
  assert.ok(proxy.dropped() > 0);
  assert.equal((await src.sandbox.listKeys(prefix())).length, archivedBefore);

  const back = await src.push();
  assert.equal(back.code, EXIT.OK, back.log);
  const keys = await assertWholeObjects();
  assert.deepEqual(keys, closedFiles().map((f) => binlogObjectKey('testgroup', 'testhost', 'shop', f)).sort());
  // The two files of the failed run and the (empty) one this run's FLUSH closed, each written by
  // exactly one PutObject that reached S3; nothing archived before was sent again.
  const puts = proxy.seen.slice(seenBefore).filter((r) => r.method === 'PUT' && r.headers['if-none-match'] === '*');
  assert.equal(keys.length, archivedBefore + 3);
  assert.equal(puts.length, 3, `${puts.length} conditional PUTs reached S3 for 3 new objects`);

  // The backlog while S3 was down, then none (the monitor's alarm reads it).
  const cloudwatch = new CloudWatchClient(src.sandbox.account.clientConfig);
  const stats = await cloudwatch.send(
    new GetMetricStatisticsCommand({
      Namespace: AGENT_METRICS_NAMESPACE,
      MetricName: METRIC.binlogBacklog,
      Dimensions: [
        { Name: 'Group', Value: 'testgroup' },
        { Name: 'Host', Value: 'testhost' },
        { Name: 'Source', Value: 'shop' },
      ],
      StartTime: new Date(Date.now() - 3600_000),
      EndTime: new Date(Date.now() + 60_000),
      Period: 60,
      Statistics: ['Maximum', 'Minimum'],
    }),
  );
  const points = stats.Datapoints ?? [];
  assert.ok(points.length > 0, 'BinlogBacklog was published');
  assert.equal(Math.min(...points.map((p) => p.Minimum!)), 0);
  const metrics = await cloudwatch.send(new ListMetricsCommand({ Namespace: AGENT_METRICS_NAMESPACE }));
  const names = new Set((metrics.Metrics ?? []).filter((m) => m.Dimensions?.some((d) => d.Name === 'Source' && d.Value === 'shop')).map((m) => m.MetricName));
  for (const name of [METRIC.binlogBacklog, METRIC.binlogFilesArchived]) assert.ok(names.has(name), `${name} in ${[...names].join(', ')}`);
});
