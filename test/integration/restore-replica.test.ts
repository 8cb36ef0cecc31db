import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, ListObjectsV2Command, PutBucketVersioningCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { groupParameters, type DeploymentInfo } from '../../format/parameters';
import { readPublicKeys } from '../../runtime/pgp';
import { openDrillReceipt } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { uniqueName } from '../harness/aws';
import { pgContentFingerprint, pgQuery, pgSource, pgUrl, uniqueDbName } from '../../local-system/databases';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { startRecorder, type RecordedRequest, type Recorder } from '../harness/aws-recorder';
import { motoEndpoint } from '../harness/aws';
import { questionsFor } from '../infra/aws-calls';
import { translate } from '../infra/recorded-calls';
import { REPLICA as REPLICA_SITE, synthWithReplica } from '../infra/replica-fixtures';
import { FAKE, bucketNameOf, render, resourcesOfType } from '../infra/template-tools';

/**
 * The offsite copy, proven restorable: moto does not replicate, so a second bucket in another
 * region is filled by copying every replicated object of the primary with its key (as S3
 * replication would), the primary bucket is deleted, and list/status/verify/restore/drill
 * --replica must work from the replica alone. Their requests go through a recording proxy: none
 * names the primary bucket (a call to it that failed quietly would otherwise pass unseen), and
 * each is allowed by the replica stack's reader policy, through a real IAM engine (moto
 * evaluates no policy); replica-permissions.test.ts shows the primary refuses that reader.
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
let recorder: Recorder;
/** The same configuration, with its endpoint at the recorder: what the --replica commands run with. */
let recordedConfig: string;
/** Every request of a --replica command, kept for the permission check at the end. */
const replicaRequests: RecordedRequest[] = [];

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

/** The bucket a recorded S3 request names (path style). */
const bucketOf = (r: RecordedRequest) => decodeURIComponent(r.path.split('/')[1] ?? '');
function describe1(r: RecordedRequest): string {
  const query = Object.keys(r.query).filter((k) => !k.startsWith('X-Amz-'));
  const operation = r.headers['x-amz-target'] ?? new URLSearchParams(r.body ?? '').get('Action') ?? '';
  return `${r.service ?? 'unsigned'} ${operation} ${r.method} ${r.path}${query.length > 0 ? `?${query.join('&')}` : ''}`.replace(/ {2}/g, ' ');
}

/**
 * The one request a drill without --signing-public-key sends elsewhere: the group's trusted
 * signing keys, from its SSM parameter (agent/src/restore/select.ts loadTrustedKeys; README:
 * with the primary region gone, give the key as a file). Neither the data bucket nor its key.
 */
function trustedKeysRead(r: RecordedRequest): boolean {
  return r.service === 'ssm' && r.headers['x-amz-target'] === 'AmazonSSM.GetParameter' && JSON.parse(r.body || '{}').Name === groupParameters('testgroup').signingPublicKeys;
}

/** Runs a --replica command with the recorded configuration and returns what it sent. */
async function recorded(args: string[]): Promise<{ result: Awaited<ReturnType<AgentSandbox['runCli']>>; requests: RecordedRequest[] }> {
  const from = recorder.requests.length;
  const result = await sandbox.runCli(args.map((a) => (a === configFile ? recordedConfig : a)));
  const requests = recorder.requests.slice(from);
  replicaRequests.push(...requests);
  return { result, requests };
}

/** Asserts that every request went to the replica bucket, in its region (none to the primary), but those `allowed` lets through. */
function onlyTheReplica(requests: RecordedRequest[], what: string, allowed: (r: RecordedRequest) => boolean = () => false): void {
  assert.ok(requests.some((r) => bucketOf(r) === replicaBucket), `${what} read the replica`);
  const elsewhere = requests.filter((r) => !allowed(r) && (r.service !== 's3' || bucketOf(r) !== replicaBucket));
  assert.deepEqual(elsewhere.map(describe1), [], `${what} sent requests elsewhere than the replica s3://${replicaBucket}`);
  for (const r of requests.filter((x) => bucketOf(x) === replicaBucket)) assert.match(r.headers.authorization ?? '', new RegExp(`/${REPLICA_REGION}/s3/aws4_request`), `${describe1(r)} is signed for the replica's region`);
}

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  workDir = rt.tempDir('coldseal-replica-');
  await rt.pgFixture(pgDb, 1500);
  // 1 KiB of random bytes a row, which zstd cannot shrink: about 11 MiB of ciphertext, so 3 parts
  // of 5 MiB in 2 segments, and a restore's reads after the first are pinned to a version.
  await pgQuery(pgDb, `create table noise as select g as id, (select decode(string_agg(md5(random()::text || g::text || s::text), ''), 'hex') from generate_series(1, 64) s) as payload from generate_series(1, 11000) g`);
  configFile = await rt.backup(sandbox.config({ sources: [pgSource('pg', [pgDb])], upload: { partSizeMiB: 5, segmentParts: 2 } }));
  replica = new S3Client({ ...sandbox.account.clientConfig, region: REPLICA_REGION });
  replicaBucket = uniqueName('coldseal-replica');
  await replica.send(new CreateBucketCommand({ Bucket: replicaBucket, CreateBucketConfiguration: { LocationConstraint: REPLICA_REGION } }));
  // A replica bucket is versioned (replication needs it), so every object read has a version id.
  await replica.send(new PutBucketVersioningCommand({ Bucket: replicaBucket, VersioningConfiguration: { Status: 'Enabled' } }));
  await replicate();
  recorder = await startRecorder(motoEndpoint());
  recordedConfig = join(workDir, 'recorded-config.json');
  writeFileSync(recordedConfig, JSON.stringify({ ...JSON.parse(readFileSync(configFile, 'utf8')), endpoint: recorder.url }));
});

after(async () => {
  await recorder?.close();
  await rt?.cleanup();
});

describe('restore and drill from the replica', () => {
  test('drill --replica while the primary is there: reads the replica, writes its receipt to the data bucket, recording the replica', async () => {
    const { result, requests } = await recorded(['drill', '--config', configFile, '--key', sandbox.recipient.privateFile, ...flags(), '--json']);
    assert.equal(result.code, EXIT.OK, result.stderr);
    // The receipt is written where receipts live (the data bucket's drills/); nothing else goes there.
    const receiptWrite = (r: RecordedRequest) => r.method === 'PUT' && bucketOf(r) === sandbox.bucket && r.path.startsWith(`/${sandbox.bucket}/drills/`);
    onlyTheReplica(requests, 'drill --replica', (r) => receiptWrite(r) || trustedKeysRead(r));
    assert.equal(requests.filter(receiptWrite).length, 1, 'one receipt written');
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

    const { result: list, requests: listed } = await recorded(['list', '--config', configFile, ...flags(), '--json']);
    assert.equal(list.code, EXIT.OK, list.stderr);
    onlyTheReplica(listed, 'list --replica');
    const rows = JSON.parse(list.stdout) as { source: string; complete: boolean; drill?: { ok: boolean } }[];
    assert.deepEqual(rows.map((r) => [r.source, r.complete, r.drill?.ok]), [['pg', true, true]]);

    const { result: status, requests: statused } = await recorded(['status', '--config', configFile, ...flags(), '--json']);
    assert.equal(status.code, EXIT.OK, status.stderr);
    onlyTheReplica(statused, 'status --replica');
    assert.deepEqual((JSON.parse(status.stdout) as { source: string; incomplete: number }[]).map((s) => [s.source, s.incomplete]), [['pg', 0]]);

    const { result: verify, requests: verified } = await recorded(['verify', '--config', configFile, ...flags(), '--source', 'pg', '--signing-public-key', sandbox.signing.publicFile]);
    assert.equal(verify.code, EXIT.OK, verify.stdout + verify.stderr);
    onlyTheReplica(verified, 'verify --replica');
    for (const check of ['signature', 'object', 'checksum']) assert.match(verify.stdout, new RegExp(`ok\\s+${check}: `));
  });

  test('restore --replica into a new PostgreSQL database gives the original data', async () => {
    const target = rt.newPgDatabase('cs_xrs');
    const { result, requests } = await recorded(['restore', '--config', configFile, ...flags(), '--source', 'pg', '--key', sandbox.recipient.privateFile, '--signing-public-key', sandbox.signing.publicFile, '--target', pgUrl(target)]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    onlyTheReplica(requests, 'restore --replica');
    assert.match(result.stdout, /every check passed/);
    assert.match(result.log, new RegExp(`reading from the offsite replica s3://${replicaBucket} \\(${REPLICA_REGION}\\)`));
    assert.deepEqual(await pgContentFingerprint(target), await pgContentFingerprint(pgDb));
  });

  test('drill --replica with the primary gone: --receipt-file keeps the signed receipt locally; without it the receipt is kept and the failed write named', async () => {
    const file = join(workDir, 'drill.json');
    const { result, requests } = await recorded(['drill', '--config', configFile, '--key', sandbox.recipient.privateFile, ...flags(), '--receipt-file', file]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    assert.match(result.stdout, new RegExp(`receipt: ${file}`));
    onlyTheReplica(requests, 'drill --replica --receipt-file', trustedKeysRead);
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

  test('every request the --replica commands sent is allowed by the replica stack\'s reader policy (IAM engine)', async () => {
    assert.ok(replicaRequests.length > 10, 'the commands above were recorded');
    // The reader's policy and the replica's bucket and key policies as the replica stack synthesizes them.
    const { replica: template } = await synthWithReplica({}, true);
    const [bucketId] = resourcesOfType(template, 'AWS::S3::Bucket').find(([, r]) => r.Properties.ObjectLockEnabled)!;
    const [keyId, key] = resourcesOfType(template, 'AWS::KMS::Key')[0];
    const [, reader] = resourcesOfType(template, 'AWS::IAM::ManagedPolicy').find(([, r]) => /restore from the offsite replica/.test(r.Properties.Description))!;
    const [, bucketPolicy] = resourcesOfType(template, 'AWS::S3::BucketPolicy').find(([, r]) => r.Properties.Bucket.Ref === bucketId)!;
    const keyArn = render(template, { 'Fn::GetAtt': [keyId, 'Arn'] }) as string;
    const modelBucket = bucketNameOf(bucketId);
    const policies = { identity: render(template, reader.Properties.PolicyDocument), bucket: render(template, bucketPolicy.Properties.PolicyDocument), key: render(template, key.Properties.KeyPolicy) };
    // The replica commands' own requests (the drill's receipt to the data bucket is the drill host's, proven in the e2e).
    const toReplica = replicaRequests.filter((r) => bucketOf(r) === replicaBucket);
    const { calls, problems } = translate(toReplica, new Map([[sandbox.account.credentials.accessKeyId, 'reader']]), {
      template,
      physical: new Map([[bucketId, replicaBucket]]),
      accountId: sandbox.account.accountId,
      secureStringKeys: new Map(),
    });
    assert.deepEqual(problems, []);
    const operations = new Set<string>();
    for (const call of calls) {
      operations.add(call.operation + (call.query?.versionId ? ' (versionId)' : ''));
      const questions = questionsFor(call, { region: REPLICA_SITE.region, account: FAKE.account, bucketKeyArn: (b) => (b === modelBucket ? keyArn : undefined), topicKeyArn: () => undefined });
      for (const question of questions) {
        const result = await runSimulation(
          {
            request: {
              principal: `arn:aws:iam::${FAKE.account}:role/Restorer`,
              action: question.action,
              resource: { resource: question.resource, accountId: FAKE.account },
              contextVariables: { ...question.context, 'aws:PrincipalAccount': FAKE.account, 'aws:PrincipalArn': `arn:aws:iam::${FAKE.account}:role/Restorer` },
            },
            identityPolicies: [{ name: 'reader', policy: policies.identity }],
            serviceControlPolicies: [],
            resourceControlPolicies: [],
            resourcePolicy: question.resource.startsWith('arn:aws:kms:') ? policies.key : policies.bucket,
          },
          {},
        );
        assert.equal(result.resultType === 'error' ? JSON.stringify(result.errors) : result.overallResult, 'Allowed', `${call.wire}: ${question.action} on ${question.resource} (${question.because})`);
      }
    }
    // The reads a restore takes from a segmented, versioned replica: listed, read, pinned to a version, decrypted.
    for (const operation of ['ListObjectsV2', 'GetObject', 'GetObject (versionId)', 'HeadObject']) assert.ok(operations.has(operation), `${operation} was recorded: ${[...operations].join(', ')}`);
  });
});
