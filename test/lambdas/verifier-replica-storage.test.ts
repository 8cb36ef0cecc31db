import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3BucketStore } from '../../lambdas/shared/aws';
import { createVerifierHandler } from '../../lambdas/verifier/handler';
import type { SweepResult } from '../../lambdas/verifier/core/verifier';
import { storageSnapshotKey, type StorageSnapshot } from '../../lambdas/verifier/core/storage-cost';
import { reportSchema } from '../../format/verification-report';
import { newMotoAccount, uniqueName, type MotoAccount } from '../harness/aws';
import { DAY, HOUR, drainInbox, newWorld, putBackup, putObject, type World } from './fixtures';

/**
 * The offsite replica's storage in the report: a replica bucket in another region of moto (what S3
 * replication would have filled: the same keys, the ciphertext archived sooner), listed by the real
 * handler with its own S3 client in that region, priced at that region's prices, kept in the trend
 * snapshot and drawn beside the data bucket's bar. A refused listing comes from a stub of S3 at the
 * HTTP level answering 403 AccessDenied, as S3 does without s3:ListBucket.
 */

const REPLICA_REGION = 'eu-central-1';
let account: MotoAccount;
let denying: Server;
let denyingEndpoint: string;
before(async () => {
  account = await newMotoAccount();
  denying = createServer((_req, res) => {
    res.writeHead(403, { 'content-type': 'application/xml', 'x-amz-request-id': 'stub' });
    res.end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>stub</RequestId></Error>');
  });
  await new Promise<void>((resolve) => denying.listen(0, '127.0.0.1', resolve));
  denyingEndpoint = `http://127.0.0.1:${(denying.address() as AddressInfo).port}`;
});
after(() => denying.close());

const GROUPS = [{ name: 'web', rpoHours: 200, sources: ['pg'], hosts: ['web-1'], retentionDays: { daily: 35 } }];

async function replicaWorld(): Promise<{ world: World; replica: S3Client; replicaBucket: string }> {
  const replicaBucket = uniqueName('coldseal-replica');
  const world = await newWorld({
    account,
    groups: GROUPS,
    extraEnv: { COLDSEAL_REPLICA_MAX_PENDING_HOURS: '24', COLDSEAL_REPLICA_BUCKET: replicaBucket, COLDSEAL_REPLICA_REGION: REPLICA_REGION, COLDSEAL_PRICE_LIST: 'false' },
  });
  const replica = new S3Client({ ...world.account.clientConfig, region: REPLICA_REGION });
  await replica.send(new CreateBucketCommand({ Bucket: replicaBucket, CreateBucketConfiguration: { LocationConstraint: REPLICA_REGION }, ObjectLockEnabledForBucket: true }));
  return { world, replica, replicaBucket };
}

async function readText(world: World, key: string): Promise<string> {
  return (await world.s3.send(new GetObjectCommand({ Bucket: world.bucket, Key: key }))).Body!.transformToString();
}

test('the replica bucket is listed in its region: bytes per group, tier and class marked replica, priced there, in the snapshot, trend, picture and summary', async () => {
  const { world, replica, replicaBucket } = await replicaWorld();
  const backups = [];
  for (const k of [2, 1, 0]) backups.push(await putBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - HOUR - k * DAY), payloadBytes: 30_000 }));
  // The replica holds the same keys; its lifecycle archived the ciphertext already.
  for (const b of backups) {
    await replica.send(new PutObjectCommand({ Bucket: replicaBucket, Key: b.artifactKey, Body: b.ciphertext, StorageClass: 'GLACIER' }));
    await replica.send(new PutObjectCommand({ Bucket: replicaBucket, Key: b.manifestKey, Body: b.manifestText }));
  }
  const then = new Date(world.clock.ms - 30 * DAY);
  const old: StorageSnapshot = {
    schema: 'coldseal-storage-snapshot/1',
    takenAt: then.toISOString(),
    rows: [{ group: 'web', tier: 'daily', storageClass: 'STANDARD', objects: 2, bytes: 10_000, billableBytes: 10_000, standardOverheadBytes: 0, monitoredObjects: 0 }],
    monthlyCost: 0.01,
    replica: { rows: [{ group: 'web', tier: 'daily', storageClass: 'GLACIER', objects: 2, bytes: 20_000, billableBytes: 20_000, standardOverheadBytes: 0, monitoredObjects: 0 }], monthlyCost: 0.02 },
  };
  await putObject(world, storageSnapshotKey(then), JSON.stringify(old), { lock: false });

  const handler = createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock });
  const result = (await handler({ action: 'sweep' })) as SweepResult;
  assert.deepEqual(result.findings.filter((f) => f.check === 'replica-unlisted'), []);
  const report = reportSchema.parse(JSON.parse(await readText(world, result.reportKeys.json)));
  const storage = report.storage!;
  assert.equal(storage.replicaNote, undefined, 'the replica is listed, so no note says it is not');
  const rep = storage.replica!;
  assert.equal(rep.bucket, replicaBucket);
  assert.equal(rep.region, REPLICA_REGION);
  assert.equal(rep.listed, true);
  const cipherBytes = backups.reduce((n, b) => n + b.ciphertext.length, 0);
  const manifestBytes = backups.reduce((n, b) => n + Buffer.byteLength(b.manifestText), 0);
  assert.deepEqual(rep.rows, [
    { group: 'web', tier: 'daily', storageClass: 'GLACIER', objects: 3, bytes: cipherBytes },
    { group: 'web', tier: 'daily', storageClass: 'STANDARD', objects: 3, bytes: manifestBytes },
  ]);
  // The committed table's eu-central-1 prices (moto has no Price List; the settings do not ask it).
  assert.equal(rep.priceOrigin, 'table');
  assert.match(rep.priceNote, /^the price table committed in coldseal \(https:\/\/aws\.amazon\.com\/s3\/pricing\/, as of \d{4}-\d\d-\d\d\)$/);
  assert.ok(rep.cost, 'the replica is priced');
  assert.deepEqual(Object.keys(rep.cost.byClass).sort(), ['GLACIER', 'STANDARD']);
  // Its cost is its own: the data bucket's total does not include it.
  assert.equal(storage.cost!.byClass.GLACIER, undefined);
  // Trend against the replica's rows of 30 days ago.
  const trend = rep.trend.groups.find((g) => g.group === 'web')!;
  assert.deepEqual({ bytes: trend.bytes, bytesThen: trend.bytesThen }, { bytes: cipherBytes + manifestBytes, bytesThen: 20_000 });
  assert.equal(rep.trend.monthlyCost.then, 0.02);
  assert.deepEqual(rep.history.map((h) => [h.date, h.bytes.web]), [
    [then.toISOString().slice(0, 10), { GLACIER: 20_000 }],
    [report.generatedAt.slice(0, 10), { GLACIER: cipherBytes, STANDARD: manifestBytes }],
  ]);
  const today = JSON.parse(await readText(world, storageSnapshotKey(world.clock.now()))) as StorageSnapshot;
  assert.deepEqual(today.replica?.rows.map((r) => [r.storageClass, r.bytes]), [['GLACIER', cipherBytes], ['STANDARD', manifestBytes]]);

  const html = await readText(world, result.reportKeys.html);
  assert.ok(html.includes(`<p class="replica"><b>Offsite replica</b> s3://${replicaBucket} in ${REPLICA_REGION}: `), 'the replica paragraph');
  assert.match(html, /<tr class="replica"><td>replica<\/td><td>daily<\/td><td>GLACIER<\/td><td>3<\/td>/);
  assert.ok((html.match(/<rect class="stored replica"/g)?.length ?? 0) >= 2, 'the replica\'s bars in the picture');
  assert.match(html, /right bar: replica/);
  const [mail] = await drainInbox(world);
  assert.match(mail.message, new RegExp(`\\nStorage: .+, about \\$\\d+\\.\\d\\d a month \\(price table of [\\d-]+\\); offsite replica .+, about \\$\\d+\\.\\d\\d a month in ${REPLICA_REGION}\\.\\n`));
});

test('a refused listing is a WARN naming s3:ListBucket, the sweep still writes its report, and the WARN resolves once the listing works', async () => {
  const { world, replicaBucket } = await replicaWorld();
  await putBackup(world, { host: 'web-1', finishedAt: new Date(world.clock.ms - HOUR), payloadBytes: 10_000 });
  const credentials = world.account.clientConfig.credentials;
  const refusing = new S3BucketStore(new S3Client({ endpoint: denyingEndpoint, region: REPLICA_REGION, forcePathStyle: true, credentials, maxAttempts: 1 }), replicaBucket);
  const refused = (await createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock, replicaStore: refusing })({ action: 'sweep' })) as SweepResult;
  // (moto sets no replication status: past the first hour the backup itself is replica-missing, which is not this test's concern.)
  assert.deepEqual(refused.findings.map((f) => [f.check, f.severity]), [['replica-unlisted', 'warn']]);
  const warning = refused.findings[0];
  assert.equal(warning.where, `s3://${replicaBucket} (${REPLICA_REGION})`);
  assert.match(warning.summary, /its storage and cost are not in the report \(access denied: s3:ListBucket\)$/);
  assert.ok(warning.action.includes(`Allow s3:ListBucket on arn:aws:s3:::${replicaBucket} to the verifier's role`), warning.action);
  const rep = reportSchema.parse(JSON.parse(await readText(world, refused.reportKeys.json))).storage!.replica!;
  assert.equal(rep.listed, false);
  assert.match(rep.problem!, /^listing refused \(s3:ListBucket on arn:aws:s3:::\S+ is not allowed to the verifier\): /);
  assert.deepEqual(rep.rows, []);
  const html = await readText(world, refused.reportKeys.html);
  assert.ok(html.includes('not listed, listing refused'), 'the HTML says the replica was not listed');
  const [mail] = await drainInbox(world);
  assert.ok(mail.message.includes('NEW WARN Replica not listed'), mail.message);

  const listed = (await createVerifierHandler({ env: world.env, clientConfig: world.account.clientConfig, clock: world.clock })({ action: 'sweep' })) as SweepResult;
  assert.deepEqual(listed.findings, []);
  assert.deepEqual(listed.plan.resolved.map((r) => r.finding.check), ['replica-unlisted']);
  assert.equal(listed.report.storage!.replica!.listed, true);
  await drainInbox(world);
});
