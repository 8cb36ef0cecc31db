import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { EXIT } from '../../format/exit-codes';
import { settingsEnvironment } from '../../format/lambda-settings';
import { binlogObjectKey } from '../../format/layout';
import { groupParameters } from '../../format/parameters';
import { WAL_CHECK_INPUT } from '../../format/scheduled-inputs';
import type { BinlogPitrRow } from '../../lambdas/verifier/core/binlog-pitr';
import type { SweepResult } from '../../lambdas/verifier/core/verifier';
import type { WalCheckResult } from '../../lambdas/monitor/core/wal-check';
import { createMonitorHandler } from '../../lambdas/monitor/handler';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import type { InstanceDirectory, MetricsSink } from '../../lambdas/shared/ports';
import { createAlertInbox, type AlertInbox } from '../../local-system/alerts';
import { startBinlogSource, type BinlogSource } from '../harness/binlog-source';

/**
 * The cloud side on what the real agent writes: a dump of a MariaDB PITR source (its manifest
 * records the binary log position of its snapshot) and binary logs archived by `coldseal pitr
 * binlog-push`, judged by the verifier (window from the dump's position, a purged file as a FAIL
 * naming the lost range, a changed object) and watched by the monitor (an alert while binlog-push
 * does not run, resolved when it catches up). The Lambdas run in process against the sandbox's
 * moto account, with the group's public keys published as the stack would.
 */
let src: BinlogSource;
let inbox: AlertInbox;
let env: Record<string, string>;
/** The Lambdas' clock: real time plus what the test skips ahead. */
let skew = 0;
const clock = { now: () => new Date(Date.now() + skew) };
const GROUP = { name: 'testgroup', rpoHours: 26, sources: ['shop'], hosts: ['testhost'], retentionDays: { daily: 35 }, drillMaxAgeDays: null, pitrSources: [{ source: 'shop', engine: 'mysql', archiveTimeoutSeconds: 300 }] };

before(async () => {
  src = await startBinlogSource();
  const s = src.sandbox;
  inbox = await createAlertInbox(s.account, { topicName: 'coldseal-alerts', waitSeconds: 2 });
  const prefix = '/coldseal-binlog-verify';
  const { forcePathStyle: _f, ...plain } = s.account.clientConfig;
  const ssm = new SSMClient(plain);
  const names = groupParameters('testgroup', prefix);
  await ssm.send(new PutParameterCommand({ Name: names.signingPublicKeys, Type: 'String', Value: s.signing.publicKey, Overwrite: true }));
  await ssm.send(new PutParameterCommand({ Name: names.recipients, Type: 'String', Value: s.recipient.publicKey, Overwrite: true }));
  env = settingsEnvironment({ bucket: s.bucket, topicArn: inbox.topicArn, parameterPrefix: prefix, groups: [GROUP] as never, documentName: 'coldseal-backup', extra: { COLDSEAL_WAL_GRACE_MINUTES: '5' } as never });
  src.sql('CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB');
});

after(() => src?.close());

async function sweep(): Promise<SweepResult> {
  return (await createVerifierHandler({ env, clientConfig: src.sandbox.account.clientConfig, clock })({ action: 'sweep' })) as SweepResult;
}

const noInstances: InstanceDirectory = { listGroup: async () => [], describe: async () => null };
const noMetrics: MetricsSink = { source() {}, group() {}, heartbeat() {}, walArchive() {} };
async function walCheck(): Promise<WalCheckResult> {
  return (await createMonitorHandler({ env, clientConfig: src.sandbox.account.clientConfig, clock, instances: noInstances, metrics: noMetrics })(WAL_CHECK_INPUT)) as WalCheckResult;
}

const current = () => src.server.sql('SHOW MASTER STATUS').split('\t')[0]!;
const binlogFindings = (r: SweepResult) => r.findings.filter((f) => f.check.startsWith('binlog-') || f.check === 'wal-no-window' || (f.check === 'object-lock' && f.source === 'shop' && /binary log/.test(f.summary)));
const row = (r: SweepResult) => (r.report.pitr ?? []).find((x): x is typeof x & BinlogPitrRow => x.engine === 'mysql')!;

test('a dump and binary logs as the agent writes them: the window from the dump to the newest file; a purged file is a FAIL naming the lost range; a changed object is a FAIL', async () => {
  src.sql("INSERT INTO t VALUES (1, 'before dump')");
  const backup = await src.sandbox.runCli(['backup', '--config', src.configPath, '--tier', 'daily']);
  assert.equal(backup.code, EXIT.OK, backup.log);
  src.sql("INSERT INTO t VALUES (2, 'after dump')");
  src.flush();
  src.sql("INSERT INTO t VALUES (3, 'next file')");
  const pushed = await src.push();
  assert.equal(pushed.code, EXIT.OK, pushed.log);

  const healthy = await sweep();
  // The sandbox's agent locks nothing (no objectLock in its config): that finding is the only one about the archive.
  assert.deepEqual(binlogFindings(healthy).map((f) => f.check), ['object-lock'], healthy.findings.map((f) => `${f.check}: ${f.summary}`).join(' | '));
  const ok = row(healthy);
  assert.equal(ok.dumps, 1);
  assert.ok(ok.window, JSON.stringify(ok));
  assert.equal(ok.gaps.length, 0);
  assert.equal(ok.objects.failed, 0);
  assert.equal(ok.objects.checked, ok.objects.total);
  const newestArchived = src.server.sql('SHOW BINARY LOGS').split('\n').at(-2)!.split('\t')[0]!;
  assert.equal(ok.window.to.file, newestArchived, 'the window reaches the newest archived file');
  assert.equal(ok.recoveryPoint?.file, newestArchived);

  // Two files rotated and purged on the server before binlog-push saw them.
  src.sql("INSERT INTO t VALUES (4, 'lost')");
  const lostFirst = src.flush();
  src.sql("INSERT INTO t VALUES (5, 'lost too')");
  const lostLast = src.flush();
  const survivor = current();
  // MariaDB keeps a file until InnoDB's redo log has its transactions (its binlog checkpoint), so the purge is retried.
  for (let i = 0; i < 50 && src.server.sql('SHOW BINARY LOGS').split('\t')[0] !== survivor; i++) {
    src.server.sql(`PURGE BINARY LOGS TO '${survivor}'`);
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(src.server.sql('SHOW BINARY LOGS').split('\t')[0], survivor, 'the two files were purged');
  src.sql("INSERT INTO t VALUES (6, 'after the hole')");
  const afterPurge = await src.push();
  assert.equal(afterPurge.code, EXIT.INTEGRITY, afterPurge.log);

  // One object's bytes changed in place (its record kept): what a writer with S3 access but no signing key can do.
  const tampered = binlogObjectKey('testgroup', 'testhost', 'shop', survivor);
  const head = await src.sandbox.s3.send(new HeadObjectCommand({ Bucket: src.sandbox.bucket, Key: tampered }));
  const body = Buffer.from(await (await src.sandbox.s3.send(new GetObjectCommand({ Bucket: src.sandbox.bucket, Key: tampered }))).Body!.transformToByteArray());
  body[body.length - 20] ^= 0xff;
  await src.sandbox.s3.send(new PutObjectCommand({ Bucket: src.sandbox.bucket, Key: tampered, Body: body, Metadata: head.Metadata }));

  const broken = await sweep();
  const checks = binlogFindings(broken).map((f) => f.check).sort();
  assert.deepEqual(checks, ['binlog-gap', 'binlog-sha256', 'object-lock'], broken.findings.map((f) => `${f.check}: ${f.summary}`).join(' | '));
  // The tampered survivor is the newest object: no good file after it shows the purged ones as a gap, the tail finding does.
  const gap = broken.findings.find((f) => f.check === 'binlog-gap')!;
  assert.equal(gap.severity, 'fail');
  assert.equal(gap.summary, `binary log archive of testhost/shop: nothing after the end of ${ok.window.to.file} (${ok.window.to.time}) can be replayed: ${survivor} failed its checks; ${lostFirst}–${lostLast} are not in the archive at all`);
  assert.ok(broken.findings.find((f) => f.check === 'binlog-sha256')!.summary.startsWith(`binary log ${survivor} of testhost/shop does not match the SHA-256 in its signed record`));
  const failed = row(broken);
  assert.equal(failed.status, 'FAIL');
  assert.equal(failed.window?.to.file, ok.window.to.file, 'the window still ends where the archive is whole');

  // The next run archives a good file after the bad one: now the hole is a gap between two good files, naming the range and the dump it stops.
  src.sql("INSERT INTO t VALUES (7, 'after the bad file')");
  assert.equal((await src.push()).code, EXIT.OK);
  const later = await sweep();
  const gaps = later.findings.filter((f) => f.check === 'binlog-gap');
  assert.equal(gaps.length, 1, later.findings.map((f) => `${f.check}: ${f.summary}`).join(' | '));
  assert.ok(gaps[0].summary.includes(`binary log ${lostFirst}–${survivor} are not in the archive: transactions committed between ${ok.window.to.time}`), gaps[0].summary);
  assert.match(gaps[0].summary, /cannot be replayed; replay from dump \d{8}T\d{6}Z stops at the end of/);
  assert.deepEqual(row(later).gaps.map((g) => g.missing), [[lostFirst, survivor]]);
});

test('binlog-push stopped: the monitor alerts with the newest file and its age once the lag passes interval + grace, and says it is over when binlog-push catches up', async () => {
  src.sql("INSERT INTO t VALUES (10, 'x')");
  assert.notEqual((await src.push()).code, null);
  await inbox.receive();
  const onTime = await walCheck();
  assert.deepEqual(onTime.findings, []);
  const newest = onTime.sources[0].newest!.newestKey;

  // 11 minutes without a run: past 5 min interval + 5 min grace.
  skew = 11 * 60_000;
  const late = await walCheck();
  assert.deepEqual(late.findings.map((f) => f.check), ['binlog-archive-late']);
  assert.ok(late.findings[0].summary.startsWith(`the newest archived binary log of shop on testhost, ${newest.split('/').pop()!.replace(/\.pgp$/, '')}, reached S3 11 min ago`), late.findings[0].summary);
  const alerts = await inbox.receive();
  assert.equal(alerts.length, 1);
  assert.match(alerts[0].subject, /Binary log archive late on testgroup\/testhost\/shop/);

  // binlog-push runs again; the check a minute later sees a fresh file.
  skew = 0;
  src.sql("INSERT INTO t VALUES (11, 'y')");
  assert.notEqual((await src.push()).code, null);
  skew = 60_000;
  const back = await walCheck();
  assert.deepEqual(back.findings, []);
  assert.equal(back.plan.resolved.length, 1);
  const resolved = await inbox.receive();
  assert.ok(resolved.some((a) => /RESOLVED Binary log archive late/.test(a.message)), resolved.map((a) => a.message).join('\n'));
});
