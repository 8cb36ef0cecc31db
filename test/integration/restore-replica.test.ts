import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { openDrillReceipt, readPublicKeys, type DeploymentInfo } from '../../format';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { uniqueName } from '../harness/aws';
import { pgContentFingerprint, pgSource, pgUrl, uniqueDbName } from '../../e2e/databases';

/**
 * The offsite copy, proven restorable: moto does not replicate, so a second bucket in another
 * region is filled by copying every replicated object of the primary with its key (as S3
 * replication would), the primary bucket is deleted, and list/status/verify/restore/drill
 * --replica must work from the replica alone (any call to the primary would fail: it is gone).
 */
const REPLICA_REGION = 'eu-west-3';
let rt: RoundTrip;
let sandbox: AgentSandbox;
let configFile: string;
let replica: S3Client;
let replicaBucket: string;
const pgDb = uniqueDbName('cs_xpg');
let workDir: string;
let drillWithPrimaryKey: string;

async function keysOf(s3: S3Client, bucket: string, prefix = ''): Promise<string[]> {
  const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (page.Contents ?? []).map((o) => o.Key!).sort();
}

async function replicate(): Promise<void> {
  for (const prefix of ['backups/', 'drills/']) {
    for (const key of await sandbox.listKeys(prefix)) {
      await replica.send(new PutObjectCommand({ Bucket: replicaBucket, Key: key, Body: await sandbox.getObject(key) }));
    }
  }
}

const flags = () => ['--replica', '--replica-bucket', replicaBucket, '--replica-region', REPLICA_REGION];

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  workDir = rt.tempDir('coldseal-replica-');
  await rt.pgFixture(pgDb, 1500);
  configFile = await rt.backup(sandbox.config({ sources: [pgSource('pg', [pgDb])] }));
  replica = new S3Client({ ...sandbox.account.clientConfig, region: REPLICA_REGION });
  replicaBucket = uniqueName('coldseal-replica');
  await replica.send(new CreateBucketCommand({ Bucket: replicaBucket, CreateBucketConfiguration: { LocationConstraint: REPLICA_REGION } }));
  await replicate();
});

after(() => rt?.cleanup());

describe('restore and drill from the replica', () => {
  test('drill --replica while the primary is there: reads the replica, writes its receipt to the data bucket, recording the replica', async () => {
    const result = await sandbox.runCli(['drill', '--config', configFile, '--key', sandbox.recipient.privateFile, ...flags(), '--json']);
    assert.equal(result.code, EXIT.OK, result.stderr);
    const { receiptKey, receipt } = JSON.parse(result.stdout) as { receiptKey: string; receipt: { ok: boolean; readFrom?: unknown } };
    assert.ok(receipt.ok);
    assert.deepEqual(receipt.readFrom, { bucket: replicaBucket, region: REPLICA_REGION });
    drillWithPrimaryKey = receiptKey;
    // Signed: the replica's origin cannot be edited out of (or into) a receipt afterwards.
    const opened = await openDrillReceipt((await sandbox.getObject(receiptKey)).toString('utf8'), await readPublicKeys(sandbox.signing.publicKey, 'signing'));
    assert.deepEqual(opened.document.readFrom, { bucket: replicaBucket, region: REPLICA_REGION });
    assert.deepEqual(await keysOf(replica, replicaBucket, 'drills/'), [], 'nothing is written to the replica but by replication');
    await replicate();
  });

  test('with the primary bucket deleted, list, status and verify --replica read the replica alone', async () => {
    for (const key of await sandbox.listKeys()) await sandbox.s3.send(new DeleteObjectCommand({ Bucket: sandbox.bucket, Key: key }));
    await sandbox.s3.send(new DeleteBucketCommand({ Bucket: sandbox.bucket }));
    await assert.rejects(sandbox.s3.send(new HeadBucketCommand({ Bucket: sandbox.bucket })));

    const plain = await sandbox.runCli(['list', '--config', configFile]);
    assert.equal(plain.code, EXIT.STORAGE, 'without --replica the data bucket is read, and it is gone');

    const list = await sandbox.runCli(['list', '--config', configFile, ...flags(), '--json']);
    assert.equal(list.code, EXIT.OK, list.stderr);
    const rows = JSON.parse(list.stdout) as { source: string; complete: boolean; drill?: { ok: boolean } }[];
    assert.deepEqual(rows.map((r) => [r.source, r.complete, r.drill?.ok]), [['pg', true, true]]);

    const status = await sandbox.runCli(['status', '--config', configFile, ...flags(), '--json']);
    assert.equal(status.code, EXIT.OK, status.stderr);
    assert.deepEqual((JSON.parse(status.stdout) as { source: string; incomplete: number }[]).map((s) => [s.source, s.incomplete]), [['pg', 0]]);

    const verify = await sandbox.runCli(['verify', '--config', configFile, ...flags(), '--source', 'pg', '--signing-public-key', sandbox.signing.publicFile]);
    assert.equal(verify.code, EXIT.OK, verify.stdout + verify.stderr);
    for (const check of ['signature', 'object', 'checksum']) assert.match(verify.stdout, new RegExp(`ok\\s+${check}: `));
  });

  test('restore --replica into a new PostgreSQL database gives the original data', async () => {
    const target = rt.newPgDatabase('cs_xrs');
    const result = await sandbox.runCli(['restore', '--config', configFile, ...flags(), '--source', 'pg', '--key', sandbox.recipient.privateFile, '--signing-public-key', sandbox.signing.publicFile, '--target', pgUrl(target)]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    assert.match(result.stdout, /every check passed/);
    assert.match(result.log, new RegExp(`reading from the offsite replica s3://${replicaBucket} \\(${REPLICA_REGION}\\)`));
    assert.deepEqual(await pgContentFingerprint(target), await pgContentFingerprint(pgDb));
  });

  test('drill --replica with the primary gone: --receipt-file keeps the signed receipt locally; without it the receipt is kept and the failed write named', async () => {
    const file = join(workDir, 'drill.json');
    const result = await sandbox.runCli(['drill', '--config', configFile, '--key', sandbox.recipient.privateFile, ...flags(), '--receipt-file', file]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    assert.match(result.stdout, new RegExp(`receipt: ${file}`));
    const opened = await openDrillReceipt(readFileSync(file, 'utf8'), await readPublicKeys(sandbox.signing.publicKey, 'signing'));
    assert.ok(opened.document.ok);
    assert.deepEqual(opened.document.readFrom, { bucket: replicaBucket, region: REPLICA_REGION });
    assert.notEqual(`drills/${opened.document.group}/${opened.document.host}/${opened.document.stamp}.drill.json`, drillWithPrimaryKey);

    const again = await sandbox.runCli(['drill', '--config', configFile, '--key', sandbox.recipient.privateFile, ...flags(), '--receipt-file', file]);
    assert.equal(again.code, EXIT.CONFIG, 'an existing receipt file is never overwritten');
    assert.match(again.log, /cannot write the drill receipt to .*drill\.json: EEXIST/);

    const lost = await sandbox.runCli(['drill', '--config', configFile, '--key', sandbox.recipient.privateFile, ...flags()]);
    assert.equal(lost.code, EXIT.STORAGE, lost.stderr);
    const kept = /the signed receipt is kept in (\S+\.drill\.json)/.exec(lost.log)?.[1];
    assert.ok(kept, lost.log);
    assert.match(lost.log, new RegExp(`the drill from the replica ran \\(every check passed\\), but writing the drill receipt s3://${sandbox.bucket}/drills/\\S+: the bucket does not exist`));
    assert.match(lost.log, new RegExp(`aws s3 cp ${kept.replace(/[.]/g, '\\.')} s3://${sandbox.bucket}/drills/`));
    try {
      assert.ok((await openDrillReceipt(readFileSync(kept, 'utf8'), await readPublicKeys(sandbox.signing.publicKey, 'signing'))).document.ok);
    } finally {
      rmSync(kept, { force: true });
    }
    assert.ok(!existsSync(kept));
  });

  test('--replica finds the replica in the deployment parameter; bad replica options are refused before any AWS call', async () => {
    const ssm = new SSMClient({ ...sandbox.account.clientConfig });
    const info: DeploymentInfo = { formatVersion: 1, documentName: 'doc', region: sandbox.account.clientConfig.region, hostTagKey: 'coldseal-group', groups: ['testgroup'], executionTimeoutSeconds: 3600, maxConcurrency: '10', maxErrors: '0', replica: { bucket: replicaBucket, region: REPLICA_REGION } };
    await ssm.send(new PutParameterCommand({ Name: '/coldseal/deployment', Type: 'String', Value: JSON.stringify(info), Overwrite: true }));
    const list = await sandbox.runCli(['list', '--config', configFile, '--replica', '--json']);
    assert.equal(list.code, EXIT.OK, list.stderr);
    assert.deepEqual((JSON.parse(list.stdout) as { source: string }[]).map((r) => r.source), ['pg']);

    const { replica: _none, ...withoutReplica } = info;
    await ssm.send(new PutParameterCommand({ Name: '/coldseal/deployment', Type: 'String', Value: JSON.stringify(withoutReplica), Overwrite: true }));
    const none = await sandbox.runCli(['status', '--config', configFile, '--replica']);
    assert.equal(none.code, EXIT.CONFIG);
    assert.match(none.log, /--replica: the deployment \(parameter \/coldseal\/deployment in \S+\) has no offsite replica/);

    const cases: [string[], RegExp][] = [
      [['--replica-bucket', replicaBucket], /--replica-bucket and --replica-region only apply with --replica/],
      [['--replica', '--replica-bucket', replicaBucket], /--replica-region is missing: give both --replica-bucket and --replica-region, or neither/],
      [['--replica', '--replica-bucket', 'Bad_Bucket', '--replica-region', REPLICA_REGION], /--replica-bucket "Bad_Bucket" must be an S3 bucket name/],
      [['--replica', '--replica-bucket', replicaBucket, '--replica-region', 'Paris'], /--replica-region "Paris" must be an AWS region/],
    ];
    for (const [args, message] of cases) {
      const r = await sandbox.runCli(['list', '--config', configFile, ...args]);
      assert.equal(r.code, EXIT.USAGE, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.log, message);
    }
    // The replica is read with GetObject only; its own bucket answers in its own region.
    const object = await replica.send(new GetObjectCommand({ Bucket: replicaBucket, Key: (await keysOf(replica, replicaBucket, 'backups/'))[0] }));
    assert.ok(object.ContentLength! > 0);
  });
});
