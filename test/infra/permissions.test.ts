/**
 * The permission proof: every call the system makes is allowed, every hostile call is denied, by a
 * real IAM engine (@cloud-copilot/iam-simulate) over the synthesized template's identity,
 * bucket, topic, Lambda and KMS key policies. The calls here are written from the code (SDK
 * operation, key layout, headers), one per kind, including ones the end-to-end run cannot make
 * (every tier, Glacier, CloudWatch alarms, S3 logging); the end-to-end test records the requests
 * its actors really send and runs them through the same model (test/e2e/system.test.ts, with
 * test/harness/aws-recorder.ts and recorded-calls.ts).
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ALERT_STATE_PREFIX, DRILLS_PREFIX, REPORTS_PREFIX, TIERS, VERIFIED_PREFIX, artifactKey, drillReceiptKey, groupPrefix, manifestKey, reportKeys, segmentKey } from '../../format/layout';
import { configPartsPath, groupParameters } from '../../format/parameters';
import { buildApp } from '../../infra/lib/build-app';
import { resolveContext } from '../../infra/lib/config';
import type { RetentionSettings } from '../../infra/lib/settings';
import type { AwsCall } from './aws-calls';
import { ROOT, standInExecutables, twoGroupContext } from './fixtures';
import { SSM_MANAGED_INSTANCE_CORE } from './aws-behaviour';
import { allowedCalls, AWS_SSM_KEY, deniedCalls, PermissionModel, unknownActionsAndKeys } from './permissions';
import { serviceCallsOf, type ServiceCall } from './service-calls';
import { FAKE, resourcesOfType, type Template } from './template-tools';

let model: PermissionModel;
let retention: RetentionSettings;
let template: Template;

before(async () => {
  const context = twoGroupContext();
  retention = (await resolveContext(context, ROOT)).retention as RetentionSettings;
  const built = await buildApp({ context, baseDir: ROOT, agentExecutables: standInExecutables(), appProps: { builtinCloudFormationValidation: false } });
  template = built.app.synth().getStackByName(built.stack.stackName).template as Template;
  model = new PermissionModel(template);
});

const parameterArn = (name: string) => `arn:aws:ssm:${FAKE.region}:${FAKE.account}:parameter${name}`;

/** The parameters that hold a group's sources, as the stack names them (format/config-parameter.ts). */
function configParts(group: string): string[] {
  const path = `${configPartsPath(groupParameters(group).config)}/`;
  const names = resourcesOfType(template, 'AWS::SSM::Parameter').map(([, r]) => r.Properties.Name as string).filter((n) => n.startsWith(path));
  if (names.length === 0) throw new Error(`no configuration parts of group ${group} in the template`);
  return names;
}
const until = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();

/** The requests of one scheduled backup of group db on host h1 (agent/src/backup/run.ts, backup/upload/artifact.ts), in every tier. */
function hostBackupCalls(group = 'db', principal = `host:${group}`): AwsCall[] {
  const calls: AwsCall[] = [];
  const sse = { 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': model.dataKeyArn };
  for (const tier of TIERS) {
    const lock = retention[tier].lock;
    const lockHeaders = { 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(lock.days) };
    const tagging = { 'x-amz-tagging': `coldseal%3Agroup=${group}` };
    const base = `${groupPrefix(tier, group)}h1/pg/20261122T010000Z`;
    const data = `${base}.app.sql.zst.pgp`;
    calls.push(
      { principal, operation: 'CreateMultipartUpload', bucket: model.dataBucket, key: data, headers: { ...sse, ...lockHeaders, ...tagging } },
      { principal, operation: 'UploadPart', bucket: model.dataBucket, key: data },
      { principal, operation: 'CompleteMultipartUpload', bucket: model.dataBucket, key: data, headers: { 'if-none-match': '*' } },
      { principal, operation: 'PutObject', bucket: model.dataBucket, key: `${base}.small.sql.zst.pgp`, headers: { ...sse, ...lockHeaders, ...tagging, 'if-none-match': '*' } },
      { principal, operation: 'ListMultipartUploads', bucket: model.dataBucket, query: { prefix: data } },
      { principal, operation: 'AbortMultipartUpload', bucket: model.dataBucket, key: data },
      { principal, operation: 'PutObject', bucket: model.dataBucket, key: `${base}.manifest.json`, headers: { ...sse, ...lockHeaders, ...tagging, 'if-none-match': '*' } },
    );
  }
  const names = groupParameters(group);
  calls.push(
    // The configuration: its head, then its parts in one GetParameters (agent/src/config/load.ts).
    { principal, operation: 'ssm:GetParameters', resource: parameterArn(names.config) },
    ...configParts(group).map((name): AwsCall => ({ principal, operation: 'ssm:GetParameters', resource: parameterArn(name) })),
    { principal, operation: 'ssm:GetParameter', resource: parameterArn(names.config) },
    { principal, operation: 'ssm:GetParameter', resource: parameterArn(names.recipients) },
    { principal, operation: 'ssm:GetParameter', resource: parameterArn(names.signingKey), parameterKeyArn: signingKeyOf(group) },
    { principal, operation: 'sns:Publish', resource: model.topicArn },
  );
  return calls;
}

/** The key that encrypts a group's signing-key SecureString (coldseal keys publish uses it). */
function signingKeyOf(group: string): string {
  return model.signingKeyArn(group);
}

function drillCalls(): AwsCall[] {
  const principal = 'drill';
  const manifest = `${groupPrefix('daily', 'db')}h1/pg/20261122T010000Z.manifest.json`;
  return [
    { principal, operation: 'ListObjectsV2', bucket: model.dataBucket, query: { prefix: `${groupPrefix('daily', 'db')}` } },
    { principal, operation: 'GetObject', bucket: model.dataBucket, key: manifest },
    { principal, operation: 'GetObject', bucket: model.dataBucket, key: manifest.replace('.manifest.json', '.app.sql.zst.pgp'), headers: { range: 'bytes=0-8388607' } },
    // Every read of an object after its first is pinned to the version it saw (runtime/part-reader.ts).
    { principal, operation: 'GetObject', bucket: model.dataBucket, key: manifest.replace('.manifest.json', '.app.sql.zst.pgp'), headers: { range: 'bytes=8388608-16777215' }, query: { versionId: '3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY' } },
    // A listed segment S3 refuses with 403: a listing under its own key tells missing from denied (runtime/s3-presence.ts).
    { principal, operation: 'ListObjectsV2', bucket: model.dataBucket, query: { prefix: segmentKey(manifest.replace('.manifest.json', '.app.sql.zst.pgp'), 2), 'max-keys': '1' } },
    {
      principal,
      operation: 'PutObject',
      bucket: model.dataBucket,
      key: `${DRILLS_PREFIX}db/h1/20261122T060000Z.drill.json`,
      headers: { 'if-none-match': '*', 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': model.dataKeyArn },
    },
  ];
}

/** lambdas/verifier: the sweep, one backup's checks, the report, its state and alert state. */
function verifierCalls(): AwsCall[] {
  const principal = 'verifier';
  const b = model.dataBucket;
  const artifact = `${groupPrefix('monthly', 'web')}h2/www/20261101T030000Z.www.tar.zst.pgp`;
  const report = reportKeys(new Date('2026-11-22T06:00:00Z'));
  return [
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: 'backups/' } },
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: DRILLS_PREFIX } },
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: VERIFIED_PREFIX } },
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: ALERT_STATE_PREFIX } },
    { principal, operation: 'GetObject', bucket: b, key: artifact.replace('.www.tar.zst.pgp', '.manifest.json') },
    { principal, operation: 'HeadObject', bucket: b, key: artifact, readsLock: true },
    { principal, operation: 'GetObject', bucket: b, key: artifact, headers: { range: 'bytes=0-1048575' } },
    // Pinned to the manifest's version (runtime/s3-part-fetcher.ts).
    { principal, operation: 'GetObject', bucket: b, key: artifact, headers: { range: 'bytes=0-1048575' }, query: { versionId: '3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY' } },
    { principal, operation: 'GetObject', bucket: b, key: `${VERIFIED_PREFIX}${artifact}.json`, mayBeMissing: true },
    { principal, operation: 'PutObject', bucket: b, key: `${VERIFIED_PREFIX}${artifact}.json` },
    { principal, operation: 'GetObject', bucket: b, key: `${DRILLS_PREFIX}db/h1/20261122T060000Z.drill.json` },
    { principal, operation: 'PutObject', bucket: b, key: report.json },
    { principal, operation: 'PutObject', bucket: b, key: report.html },
    { principal, operation: 'GetObject', bucket: b, key: `${ALERT_STATE_PREFIX}x.json`, mayBeMissing: true },
    { principal, operation: 'PutObject', bucket: b, key: `${ALERT_STATE_PREFIX}x.json`, headers: { 'if-none-match': '*' } },
    { principal, operation: 'PutObject', bucket: b, key: `${ALERT_STATE_PREFIX}x.json` },
    { principal, operation: 'DeleteObject', bucket: b, key: `${ALERT_STATE_PREFIX}x.json` },
    { principal, operation: 'ssm:GetParameter', resource: parameterArn(groupParameters('web').signingPublicKeys) },
    { principal, operation: 'ssm:GetParameter', resource: parameterArn(groupParameters('web').recipients) },
    { principal, operation: 'sns:Publish', resource: model.topicArn },
  ];
}

/** lambdas/monitor: today's report (absent before the sweep), newest manifests, alert state, SSM. */
function monitorCalls(): AwsCall[] {
  const principal = 'monitor';
  const b = model.dataBucket;
  return [
    { principal, operation: 'GetObject', bucket: b, key: reportKeys(new Date()).json, mayBeMissing: true },
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: 'backups/' } },
    { principal, operation: 'GetObject', bucket: b, key: `${groupPrefix('daily', 'db')}h1/pg/20261122T010000Z.manifest.json` },
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: ALERT_STATE_PREFIX } },
    { principal, operation: 'GetObject', bucket: b, key: `${ALERT_STATE_PREFIX}y.json`, mayBeMissing: true },
    { principal, operation: 'PutObject', bucket: b, key: `${ALERT_STATE_PREFIX}y.json`, headers: { 'if-none-match': '*' } },
    { principal, operation: 'DeleteObject', bucket: b, key: `${ALERT_STATE_PREFIX}y.json` },
    { principal, operation: 'ssm:DescribeInstanceInformation', resource: '*' },
    { principal, operation: 'ssm:GetCommandInvocation', resource: '*' },
    { principal, operation: 'ssm:ListCommands', resource: '*' },
    { principal, operation: 'sns:Publish', resource: model.topicArn },
  ];
}

/**
 * The SSM document's aws:downloadContent steps, run by the SSM Agent with the host's role
 * (aws/amazon-ssm-agent agent/plugins/downloadcontent/s3resource/s3resource.go): the bucket's
 * region by an unauthenticated request (no IAM), ListObjects with Prefix "<key>/" and Delimiter
 * "/" (agent/fileutil/artifact/artifact.go ListS3Folders), then GetObject of the key (s3Download).
 */
function agentDownloadCalls(principals = ['host:db', 'host:web', 'drill']): AwsCall[] {
  return principals.flatMap((principal) =>
    model.agentDownloads.flatMap(({ bucket, key }): AwsCall[] => [
      { principal, operation: 'ListObjects', bucket, query: { prefix: `${key}/`, delimiter: '/' } },
      { principal, operation: 'GetObject', bucket, key },
    ]),
  );
}

/** Services acting on the stack's behalf: what service-calls.ts derives from the schedules, rules, alarms and logging, and Run Command's output. */
function serviceCalls(): AwsCall[] {
  const calls: AwsCall[] = [...serviceCallsOf(template, (arn) => model.nameOfRole(arn))];
  // SSM Run Command's output, written by the SSM agent with the host's role.
  const [logGroupId] = resourcesOfType(template, 'AWS::Logs::LogGroup').find(([id]) => id.includes('CommandOutput'))!;
  for (const operation of ['logs:CreateLogStream', 'logs:PutLogEvents']) {
    calls.push({ principal: 'host:db', operation, resource: `arn:aws:logs:${FAKE.region}:${FAKE.account}:log-group:${logGroupId}:log-stream:cmd/i-0123/aws-runShellScript/stdout` });
  }
  return calls;
}

/**
 * A target call that AWS refused is kept in the dead-letter queue: Scheduler sends it with its
 * execution role, EventBridge as its service principal for the rule that failed (both derived
 * from the template's targets by service-calls.ts). Every schedule and rule target has one.
 */
function deadLetterCalls(): ServiceCall[] {
  for (const [id, schedule] of resourcesOfType(template, 'AWS::Scheduler::Schedule')) assert.ok(schedule.Properties.Target.DeadLetterConfig, `${id} has a dead-letter queue`);
  for (const [id, rule] of resourcesOfType(template, 'AWS::Events::Rule')) {
    assert.ok(rule.Properties.Targets.every((t: { DeadLetterConfig?: unknown }) => t.DeadLetterConfig), `${id} has a dead-letter queue`);
  }
  return serviceCallsOf(template, (arn) => model.nameOfRole(arn)).filter((c) => c.origin.endsWith('dead-letter queue'));
}

const denied = (calls: AwsCall[]) => deniedCalls(model, calls);
const allowedOnes = (calls: AwsCall[]) => allowedCalls(model, calls);

describe('every call the system makes is allowed', () => {
  test('hosts: a multipart and a single-part backup with SSE-KMS, Object Lock and tags, cleanup, parameters, alerts (both groups)', async () => {
    assert.deepEqual(await denied([...hostBackupCalls('db'), ...hostBackupCalls('web')]), []);
  });
  test("the document's downloads, as the SSM Agent makes them with the host's role: each executable's key listed as a folder, then read (both groups and the drill host)", async () => {
    assert.deepEqual(
      model.agentDownloads.map((d) => d.step),
      ['downloadAgentX64', 'downloadAgentArm64'],
    );
    assert.deepEqual(await denied(agentDownloadCalls()), []);
  });
  test('the drill host: list, read its group (version-pinned after the first read), write its receipt', async () => {
    assert.deepEqual(await denied(drillCalls()), []);
  });
  test('the verifier: lists, HEAD with the lock headers shown, ranged reads, absent state answers 404, report, alert state, public keys', async () => {
    assert.deepEqual(await denied(verifierCalls()), []);
  });
  test('the monitor: an absent report answers 404, manifests, alert state, SSM listings, alerts', async () => {
    assert.deepEqual(await denied(monitorCalls()), []);
  });
  test('services: Scheduler sends the document to tagged hosts, CloudWatch alarms publish, EventBridge invokes the Lambdas, S3 logs, Run Command output', async () => {
    assert.deepEqual(await denied(serviceCalls()), []);
  });
  test('every rule target and every alarm action is derived from the rule or alarm, not from its permission', () => {
    const derived = serviceCallsOf(template, (arn) => model.nameOfRole(arn));
    const rules = resourcesOfType(template, 'AWS::Events::Rule').flatMap(([, r]) => r.Properties.Targets ?? []);
    const alarmActions = resourcesOfType(template, 'AWS::CloudWatch::Alarm').flatMap(([, a]) => [...(a.Properties.AlarmActions ?? []), ...(a.Properties.OKActions ?? []), ...(a.Properties.InsufficientDataActions ?? [])]);
    assert.ok(rules.length >= 4 && alarmActions.length >= 6, `${rules.length} rule targets, ${alarmActions.length} alarm actions`);
    assert.equal(derived.filter((c) => c.origin.startsWith('rule ') && !c.origin.endsWith('dead-letter queue')).length, rules.length);
    assert.equal(derived.filter((c) => c.origin.startsWith('alarm ')).length, alarmActions.length);
    assert.ok(derived.filter((c) => /^(rule|alarm) /.test(c.origin)).every((c) => c.context?.['aws:SourceArn']), 'each call carries the source ARN the service sends');
    assert.ok(derived.some((c) => c.origin.startsWith('schedule ') && c.resource?.includes('managed-instance')), 'schedules reach on-premises hosts too');
  });
  test("a rule whose function lost its invoke permission, or an alarm the topic policy does not name, is refused", async () => {
    const broken = JSON.parse(JSON.stringify(template)) as Template;
    const [permissionId] = resourcesOfType(broken, 'AWS::Lambda::Permission').find(([id]) => /Verifier.*ManifestCreated|ManifestCreated.*Verifier/.test(id))!;
    delete broken.Resources[permissionId];
    const [, topicPolicy] = resourcesOfType(broken, 'AWS::SNS::TopicPolicy')[0];
    for (const st of topicPolicy.Properties.PolicyDocument.Statement) if (st.Principal?.Service === 'cloudwatch.amazonaws.com') st.Condition.ArnLike['aws:SourceArn'] = `arn:aws:cloudwatch:${FAKE.region}:${FAKE.account}:alarm:someone-else-*`;
    const brokenModel = new PermissionModel(broken);
    const refused: string[] = [];
    for (const call of serviceCallsOf(broken, (arn) => brokenModel.nameOfRole(arn))) if (!(await brokenModel.decide(call)).allowed) refused.push(call.origin);
    assert.ok(refused.some((o) => /^rule .*ManifestCreated/.test(o)), refused.join('\n'));
    assert.equal(refused.filter((o) => o.startsWith('alarm ')).length, serviceCallsOf(broken, (arn) => brokenModel.nameOfRole(arn)).filter((c) => c.origin.startsWith('alarm ')).length, refused.join('\n'));
  });
  test('dead letters: Scheduler (its role) and EventBridge (for each rule) put a refused target call into the queue', async () => {
    const calls = deadLetterCalls();
    assert.equal(calls.length, resourcesOfType(template, 'AWS::Scheduler::Schedule').length + resourcesOfType(template, 'AWS::Events::Rule').length, 'every schedule and every rule');
    assert.ok(calls.length >= 6, `${calls.length} dead-letter sends`);
    assert.deepEqual(await denied(calls), []);
  });
});

describe('every hostile call is denied', () => {
  const b = () => model.dataBucket;
  const own = () => `${groupPrefix('daily', 'db')}h1/pg/20261122T010000Z.app.sql.zst.pgp`;
  const other = () => `${groupPrefix('daily', 'web')}h2/www/20261122T030000Z.www.tar.zst.pgp`;

  test('a host deletes, overwrites, reads, re-locks or unlocks its own or another group backups', async () => {
    const lock = retention.daily.lock;
    const calls: AwsCall[] = [];
    for (const principal of ['host:db', 'drill']) {
      calls.push(
        { principal, operation: 'DeleteObject', bucket: b(), key: own() },
        { principal, operation: 'DeleteObject', bucket: b(), key: other() },
        { principal, operation: 'PutObject', bucket: b(), key: own(), headers: { 'x-amz-server-side-encryption': 'aws:kms' } },
        { principal, operation: 'CompleteMultipartUpload', bucket: b(), key: own() },
        { principal, operation: 'PutObject', bucket: b(), key: other(), headers: { 'if-none-match': '*' } },
        { principal, operation: 'GetObject', bucket: b(), key: other() },
        { principal, operation: 'PutObjectRetention', bucket: b(), key: own(), headers: { 'x-amz-object-lock-mode': lock.mode === 'GOVERNANCE' ? 'COMPLIANCE' : 'GOVERNANCE', 'x-amz-object-lock-retain-until-date': until(lock.days) } },
        { principal, operation: 'PutObjectRetention', bucket: b(), key: own(), headers: { 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(lock.days + 3650) } },
        { principal, operation: 'PutObjectRetention', bucket: b(), key: other(), headers: { 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(lock.days) } },
        { principal, operation: 'PutObjectLegalHold', bucket: b(), key: own() },
        { principal, operation: 'PutObject', bucket: b(), key: `${REPORTS_PREFIX}2026-11-22/verification.json`, headers: { 'if-none-match': '*' } },
      );
    }
    calls.push({ principal: 'host:db', operation: 'GetObject', bucket: b(), key: own() });
    assert.deepEqual(await allowedOnes(calls), []);
  });

  test('no written key kind can be written without If-None-Match, overwritten or deleted: manifests, segments, single-part ciphertexts, drill receipts', async () => {
    const stamp = '20261122T010000Z';
    const sse = { 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': model.dataKeyArn };
    const calls: AwsCall[] = [];
    for (const tier of TIERS) {
      const base = `${groupPrefix(tier, 'db')}h1/pg/${stamp}`;
      const ciphertext = artifactKey({ tier, group: 'db', host: 'h1', source: 'pg' }, stamp, 'app', 'sql.zst');
      const written = [manifestKey({ tier, group: 'db', host: 'h1', source: 'pg' }, stamp), ciphertext, segmentKey(ciphertext, 2), `${base}.small.sql.zst.pgp`];
      for (const principal of ['host:db', 'drill']) {
        for (const key of written) {
          const lock = { 'x-amz-object-lock-mode': retention[tier].lock.mode, 'x-amz-object-lock-retain-until-date': until(retention[tier].lock.days) };
          calls.push(
            // A write the agent's own would be, but without the condition: it would replace an existing key.
            { principal, operation: 'PutObject', bucket: b(), key, headers: { ...sse, ...lock } },
            { principal, operation: 'CompleteMultipartUpload', bucket: b(), key },
            { principal, operation: 'DeleteObject', bucket: b(), key },
            { principal, operation: 'DeleteObject', bucket: b(), key, query: { versionId: '3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY' } },
          );
        }
      }
    }
    const receipt = drillReceiptKey('db', 'h1', stamp);
    for (const principal of ['drill', 'host:db', 'verifier', 'monitor']) {
      calls.push(
        { principal, operation: 'PutObject', bucket: b(), key: receipt, headers: sse },
        { principal, operation: 'DeleteObject', bucket: b(), key: receipt },
      );
    }
    // Another group's keys, even with the condition.
    calls.push({ principal: 'drill', operation: 'PutObject', bucket: b(), key: drillReceiptKey('web', 'h2', stamp), headers: { ...sse, 'if-none-match': '*' } });
    calls.push({ principal: 'host:db', operation: 'PutObject', bucket: b(), key: manifestKey({ tier: 'daily', group: 'web', host: 'h2', source: 'www' }, stamp), headers: { ...sse, 'if-none-match': '*' } });
    assert.deepEqual(await allowedOnes(calls), []);
    // The same writes with If-None-Match are the agent's own, and allowed: the probes above differ only in the condition.
    const own = calls.filter((c) => c.operation === 'PutObject' && c.principal === 'host:db' && c.key?.startsWith('backups/') && c.key.includes('/db/'));
    assert.ok(own.length >= 16);
    assert.deepEqual(await denied(own.map((c) => ({ ...c, headers: { ...c.headers, 'if-none-match': '*' } }))), []);
  });

  test('a host lists the asset bucket other than as the SSM Agent does, reads any other object there, or writes there', async () => {
    const [x64, arm64] = model.agentDownloads;
    assert.equal(x64.bucket, arm64.bucket, 'both executables are in the bootstrap asset bucket');
    const assets = x64.bucket;
    const calls: AwsCall[] = [];
    for (const principal of ['host:db', 'host:web', 'drill']) {
      calls.push(
        { principal, operation: 'ListObjectsV2', bucket: assets },
        { principal, operation: 'ListObjects', bucket: assets, query: { prefix: '' } },
        { principal, operation: 'ListObjects', bucket: assets, query: { prefix: x64.key } },
        { principal, operation: 'ListObjects', bucket: assets, query: { prefix: x64.key.slice(0, 8) } },
        { principal, operation: 'ListObjects', bucket: assets, query: { prefix: `${x64.key}/x` } },
        { principal, operation: 'ListObjectsV2', bucket: assets, query: { prefix: 'assets/' } },
        // Another asset of the account (a Lambda's code, another stack's file), and near misses of the executables' keys.
        { principal, operation: 'GetObject', bucket: assets, key: `${'0'.repeat(64)}.zip` },
        { principal, operation: 'GetObject', bucket: assets, key: `${x64.key}.old` },
        { principal, operation: 'GetObject', bucket: assets, key: `${x64.key}/` },
        { principal, operation: 'GetObject', bucket: assets, key: x64.key, query: { versionId: 'v1' } },
        { principal, operation: 'PutObject', bucket: assets, key: x64.key },
        { principal, operation: 'PutObject', bucket: assets, key: `${'0'.repeat(64)}.gz` },
        { principal, operation: 'DeleteObject', bucket: assets, key: arm64.key },
        { principal, operation: 'ListObjectVersions', bucket: assets, query: { prefix: `${x64.key}/` } },
        // The executables' listings are for the asset bucket only.
        { principal, operation: 'ListObjects', bucket: model.dataBucket, query: { prefix: `${x64.key}/` } },
      );
    }
    assert.deepEqual(await allowedOnes(calls), []);
  });

  test("a host reads another group's signing key: SSM hands out the parameter (AmazonSSMManagedInstanceCore), KMS refuses the group key", async () => {
    const read = (principal: string, group: string, parameterKeyArn: string): AwsCall => ({
      principal,
      operation: 'ssm:GetParameter',
      resource: parameterArn(groupParameters(group).signingKey),
      parameterKeyArn,
    });
    assert.deepEqual(await allowedOnes([read('host:web', 'db', signingKeyOf('db')), read('host:db', 'web', signingKeyOf('web')), read('verifier', 'db', signingKeyOf('db')), read('monitor', 'web', signingKeyOf('web'))]), []);
    // The reason for the group key: under aws/ssm, as before, the same read is allowed.
    assert.equal((await model.decide(read('host:web', 'db', AWS_SSM_KEY))).allowed, true);
  });

  test("nobody the stack makes writes or deletes a group's configuration, its head or its parts (it decides where and what a host backs up)", async () => {
    const calls: AwsCall[] = [];
    for (const principal of ['host:db', 'host:web', 'drill', 'verifier', 'monitor']) {
      for (const name of [groupParameters('db').config, ...configParts('db'), `${configPartsPath(groupParameters('db').config)}/0123456789abcdef/1`]) {
        calls.push({ principal, operation: 'ssm:PutParameter', resource: parameterArn(name) }, { principal, operation: 'ssm:DeleteParameter', resource: parameterArn(name) });
      }
    }
    assert.deepEqual(await allowedOnes(calls), []);
  });

  test("coldseal's own host policy grants a group's configuration parts to that group only; AmazonSSMManagedInstanceCore reads any plain parameter, as before (the configuration holds no secret)", async () => {
    // The group's policy alone, as on a role that gets SSM's permissions some other way.
    for (const group of ['db', 'web']) {
      const host = model.identities.get(`host:${group}`)!;
      const own = host.policies.filter((p) => JSON.stringify(p.Statement) !== JSON.stringify(SSM_MANAGED_INSTANCE_CORE));
      assert.equal(own.length, host.policies.length - 1, 'the managed policy is modelled and taken away');
      model.identities.set(`coldseal-only:${group}`, { arn: `${host.arn}-coldseal-only`, policies: own });
    }
    const read = (principal: string, group: string): AwsCall[] =>
      // What the agent sends (agent/src/config/load.ts): GetParameters for the head, then its parts.
      [groupParameters(group).config, ...configParts(group)].map((name): AwsCall => ({ principal, operation: 'ssm:GetParameters', resource: parameterArn(name) }));
    assert.deepEqual(await denied([...read('coldseal-only:db', 'db'), ...read('coldseal-only:web', 'web')]), []);
    assert.deepEqual(await allowedOnes([...read('coldseal-only:web', 'db'), ...read('coldseal-only:db', 'web')]), []);
    // What AmazonSSMManagedInstanceCore adds: the read of another group's configuration, as for its head today.
    assert.equal((await model.decide(read('host:web', 'db')[1])).allowed, true);
  });

  test('a lock with another encryption or key is refused by the bucket, for every principal', async () => {
    const calls: AwsCall[] = ['host:db', 'verifier'].flatMap((principal): AwsCall[] => [
      { principal, operation: 'PutObject', bucket: b(), key: principal === 'verifier' ? `${REPORTS_PREFIX}x.json` : `${groupPrefix('daily', 'db')}h1/pg/x.manifest.json`, headers: { 'if-none-match': '*', 'x-amz-server-side-encryption': 'AES256' } },
      { principal, operation: 'CreateMultipartUpload', bucket: b(), key: principal === 'verifier' ? `${REPORTS_PREFIX}x.json` : `${groupPrefix('daily', 'db')}h1/pg/x.pgp`, headers: { 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': `arn:aws:kms:${FAKE.region}:${FAKE.account}:key/another` } },
    ]);
    assert.deepEqual(await allowedOnes(calls), []);
  });

  test('the verifier and the monitor cannot write, delete or re-lock under backups/; the monitor reads no ciphertext', async () => {
    const calls: AwsCall[] = ['verifier', 'monitor'].flatMap((principal): AwsCall[] => [
      { principal, operation: 'PutObject', bucket: b(), key: own(), headers: { 'if-none-match': '*' } },
      { principal, operation: 'DeleteObject', bucket: b(), key: own() },
      { principal, operation: 'PutObjectRetention', bucket: b(), key: own(), headers: { 'x-amz-object-lock-mode': 'GOVERNANCE', 'x-amz-object-lock-retain-until-date': until(1) } },
      { principal, operation: 'ssm:GetParameter', resource: parameterArn(groupParameters('db').signingKey) },
    ]);
    calls.push({ principal: 'monitor', operation: 'GetObject', bucket: b(), key: own() });
    assert.deepEqual(await allowedOnes(calls), []);
  });

  test('nobody is served without TLS', async () => {
    const calls: AwsCall[] = [
      ...hostBackupCalls('db').filter((c) => c.bucket).slice(0, 4),
      ...verifierCalls().filter((c) => c.bucket).slice(0, 6),
      { principal: 'cloudwatch.amazonaws.com', operation: 'sns:Publish', resource: model.topicArn, context: { 'aws:SourceAccount': FAKE.account } },
      { principal: 'host:db', operation: 'sns:Publish', resource: model.topicArn },
    ].map((c) => ({ ...c, insecure: true }));
    assert.deepEqual(await allowedOnes(calls), []);
  });

  test('other sources cannot use the services: another account alarm, a SendCommand to untagged or other-tagged hosts, another document', async () => {
    const instance = `arn:aws:ec2:${FAKE.region}:${FAKE.account}:instance/i-0123456789abcdef0`;
    const calls: AwsCall[] = [
      { principal: 'cloudwatch.amazonaws.com', operation: 'sns:Publish', resource: model.topicArn, context: { 'aws:SourceAccount': '210987654321', 'aws:SourceArn': `arn:aws:cloudwatch:${FAKE.region}:210987654321:alarm:x` } },
      { principal: 'scheduler', operation: 'ssm:SendCommand', resource: instance, context: { 'ssm:resourceTag/coldseal-group': 'other' } },
      { principal: 'scheduler', operation: 'ssm:SendCommand', resource: instance },
      { principal: 'scheduler', operation: 'ssm:SendCommand', resource: `arn:aws:ssm:${FAKE.region}:${FAKE.account}:document/SomeOtherDocument` },
    ];
    assert.deepEqual(await allowedOnes(calls), []);
  });
});

describe('the dead-letter queue keeps failed requests for the operator only', () => {
  test('hosts, the drill host, the Lambdas and the scheduler cannot read, delete or purge it; hosts cannot fill it; another rule or account cannot send; nothing without TLS', async () => {
    const queue = model.deadLetterQueueArn!;
    const calls: AwsCall[] = [];
    for (const principal of ['host:db', 'host:web', 'drill', 'verifier', 'monitor', 'scheduler']) {
      for (const operation of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:PurgeQueue']) calls.push({ principal, operation, resource: queue });
    }
    calls.push(
      { principal: 'host:db', operation: 'sqs:SendMessage', resource: queue },
      { principal: 'events.amazonaws.com', operation: 'sqs:SendMessage', resource: queue, context: { 'aws:SourceArn': `arn:aws:events:${FAKE.region}:${FAKE.account}:rule/SomeoneElsesRule`, 'aws:SourceAccount': FAKE.account } },
      { principal: 'events.amazonaws.com', operation: 'sqs:SendMessage', resource: queue, context: { 'aws:SourceArn': `arn:aws:events:${FAKE.region}:210987654321:rule/x`, 'aws:SourceAccount': '210987654321' } },
      ...deadLetterCalls().map((c) => ({ ...c, insecure: true })),
    );
    assert.deepEqual(await allowedOnes(calls), []);
  });
});

describe('the template itself', () => {
  test('every action exists and every condition key is one AWS evaluates for its action (iam-data)', async () => {
    assert.deepEqual(await unknownActionsAndKeys(model), []);
  });

  test('the check does run: a misspelt condition key and a made-up action are named', async () => {
    const broken = JSON.parse(JSON.stringify(template)) as Template;
    const [, policy] = resourcesOfType(broken, 'AWS::IAM::ManagedPolicy').find(([, r]) => /group db:/.test(r.Properties.Description))!;
    policy.Properties.PolicyDocument.Statement.push(
      { Effect: 'Allow', Action: 's3:PutObject', Resource: '*', Condition: { Null: { 's3:if-none-matches': 'false' } } },
      { Effect: 'Allow', Action: 's3:PutObjects', Resource: '*' },
    );
    assert.deepEqual(await unknownActionsAndKeys(new PermissionModel(broken)), ['s3:PutObject: condition key s3:if-none-matches is not one AWS evaluates for it', 's3:PutObjects is not an IAM action']);
  });
});
