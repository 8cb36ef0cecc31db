/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
/**
 * The cloud side of point-in-time recovery in the stack: the recovery-window rules, the wal/
 * lifecycle, the WAL check's schedule, the alarms per PITR source, and the permission proof of
 * the WAL calls (hosts archive, read back and publish metrics; the monitor lists and keeps its
 * watermarks) and of the hostile ones, through the same IAM engine as permissions.test.ts. One
 * synthesis of the two-group fixture (group db's PostgreSQL source has PITR, group web has none),
 * which also goes through cfn-lint (the Metrics Insights alarms are new kinds of resources here).
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template as CdkTemplate } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { ColdsealMonitor } from '../../infra/lib/monitor';
import { AGENT_METRICS_NAMESPACE, METRIC } from '../../format/metric-names';
import { VERIFIED_PREFIX, WAL_PREFIX, WAL_WATERMARK_PREFIX, walObjectKey } from '../../format/layout';
import { loadSettings } from '../../format/lambda-settings';
import { WAL_CHECK_INPUT } from '../../format/scheduled-inputs';
import { buildApp } from '../../infra/lib/build-app';
import { resolveContext } from '../../infra/lib/config';
import { DEFAULT_RETENTION, pitrProblems, pitrSourcesOf, retentionWithDefaults, type RetentionSettings } from '../../infra/lib/settings';
import type { AwsCall } from './aws-calls';
import { ROOT, standInExecutables, twoGroupContext } from './fixtures';
import { allowedCalls, deniedCalls, PermissionModel } from './permissions';
import { translate } from './recorded-calls';
import type { RecordedRequest } from '../harness/aws-recorder';
import { serviceCallsOf } from './service-calls';
import { resourcesOfType, type Template } from './template-tools';

let template: Template;
let assertions: CdkTemplate;
let model: PermissionModel;
let retention: RetentionSettings;
let templateFile: string;

before(async () => {
  const context = twoGroupContext();
  retention = (await resolveContext(context, ROOT)).retention as RetentionSettings;
  const built = await buildApp({ context, baseDir: ROOT, agentExecutables: standInExecutables(), appProps: { builtinCloudFormationValidation: false } });
  template = built.app.synth().getStackByName(built.stack.stackName).template as Template;
  assertions = CdkTemplate.fromJSON(template);
  model = new PermissionModel(template);
  templateFile = join(mkdtempSync(join(tmpdir(), 'coldseal-pitr-')), 'Coldseal.template.json');
  writeFileSync(templateFile, JSON.stringify(template));
});

const until = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();
const segment = '000000010000000000000003';
const ownWal = () => walObjectKey('db', 'h1', 'postgres', segment);
const otherWal = () => walObjectKey('web', 'h2', 'www', segment);

const denied = (calls: AwsCall[]) => deniedCalls(model, calls);
const allowedOnes = (calls: AwsCall[]) => allowedCalls(model, calls);

describe('the recovery window (settings.ts pitrProblems)', () => {
  test('defaults to the daily tier: WAL kept as long as daily base backups', () => {
    assert.deepEqual(pitrProblems({}, DEFAULT_RETENTION), []);
    assertions.hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockEnabled: true,
      LifecycleConfiguration: { Rules: Match.arrayWith([{ Id: 'wal', Prefix: 'wal/', Status: 'Enabled', ExpirationInDays: retention.daily.expireAfterDays, NoncurrentVersionExpiration: { NoncurrentDays: 1 } }]) },
    });
  });

  test('WAL never moves to an archive class', () => {
    const [, bucket] = resourcesOfType(template, 'AWS::S3::Bucket').find(([, r]) => r.Properties.ObjectLockEnabled)!;
    const rule = bucket.Properties.LifecycleConfiguration.Rules.find((r: any) => r.Id === 'wal');
    assert.equal(rule.Transitions, undefined);
    assert.equal(rule.Transition, undefined);
  });

  test('a window shorter than the daily lock, longer than any tier, or not whole is refused, saying what to do', () => {
    const lock = DEFAULT_RETENTION.daily.lock.days;
    assert.match(pitrProblems({ windowDays: lock - 1 }, DEFAULT_RETENTION)[0].message, new RegExp(`kept ${lock - 1} days but each WAL object is locked like the daily tier, for ${lock} days.*raise windowDays to ${lock}`));
    assert.match(pitrProblems({ windowDays: 3000 }, DEFAULT_RETENTION)[0].message, /longer than any base backup is kept \(2557 days, the longest tier\)/);
    assert.match(pitrProblems({ windowDays: 0.5 }, DEFAULT_RETENTION)[0].message, /whole number of days/);
    assert.match(pitrProblems({ graceMinutes: 0 }, DEFAULT_RETENTION)[0].message, /more than 0/);
    assert.deepEqual(pitrProblems({ windowDays: lock }, DEFAULT_RETENTION), []);
    assert.deepEqual(pitrProblems({ windowDays: 90 }, DEFAULT_RETENTION), []);
    // The rule follows the deployment's own daily lock.
    const shortLock = retentionWithDefaults({ daily: { expireAfterDays: 14, lock: { mode: 'GOVERNANCE', days: 7 } } });
    assert.deepEqual(pitrProblems({}, shortLock), []);
    assert.deepEqual(pitrProblems({ windowDays: 7 }, shortLock), []);
    assert.equal(pitrProblems({ windowDays: 6 }, shortLock).length, 1);
  });

  test('the context loader refuses it naming the field', async () => {
    const context = twoGroupContext() as any;
    context.pitr = { windowDays: 10 };
    await assert.rejects(resolveContext(context, ROOT), /coldseal\.pitr\.windowDays: WAL would be kept 10 days but each WAL object is locked like the daily tier, for 30 days/);
    context.pitr = { windowDays: 40, extra: 1 };
    await assert.rejects(resolveContext(context, ROOT), /coldseal\.pitr/);
  });

  test('PITR sources: PostgreSQL sources with pitr.enabled, archive_timeout as the agent sets it; MySQL ones with the binlog-push interval', () => {
    assert.deepEqual(
      pitrSourcesOf([
        { name: 'a', type: 'postgres', pitr: { enabled: true } },
        { name: 'b', type: 'postgres', pitr: { enabled: true, archiveTimeoutSeconds: 30 } },
        { name: 'c', type: 'postgres', pitr: { enabled: false } },
        { name: 'd', type: 'postgres' },
        { name: 'e', type: 'files', paths: ['/srv'] },
        { name: 'f', type: 'mysql', pitr: { enabled: true } },
        { name: 'g', type: 'mysql', pitr: { enabled: true, intervalMinutes: 2 } },
        { name: 'h', type: 'mysql', pitr: { enabled: false } },
        { name: 'i', type: 'mysql' },
      ]),
      [
        { source: 'a', engine: 'postgres', archiveTimeoutSeconds: 60 },
        { source: 'b', engine: 'postgres', archiveTimeoutSeconds: 30 },
        { source: 'f', engine: 'mysql', archiveTimeoutSeconds: 300 },
        { source: 'g', engine: 'mysql', archiveTimeoutSeconds: 120 },
      ],
    );
  });
});

describe('the Lambdas, the schedule and the alarms', () => {
  test("the Lambdas' settings carry group db's PITR source and the grace; group web has none", () => {
    for (const [, fn] of resourcesOfType(template, 'AWS::Lambda::Function').filter(([id]) => /Verifier|Monitor/.test(id) && !/LogRetention/.test(id))) {
      const variables = fn.Properties.Environment.Variables;
      const settings = loadSettings({ ...variables, COLDSEAL_BUCKET: 'bucket-name', COLDSEAL_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:t', COLDSEAL_DOCUMENT_NAME: 'coldseal-backup' });
      assert.deepEqual(settings.groups.find((g) => g.name === 'db')!.pitrSources, [{ source: 'postgres', engine: 'postgres', archiveTimeoutSeconds: 60 }]);
      assert.equal(settings.groups.find((g) => g.name === 'web')!.pitrSources, undefined);
      assert.equal(settings.walGraceMinutes, 5);
    }
  });

  test('the monitor runs the WAL check every 5 minutes, with its own input, retries and dead letters', () => {
    assertions.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(5 minutes)',
      Targets: [Match.objectLike({ Input: JSON.stringify(WAL_CHECK_INPUT), RetryPolicy: Match.objectLike({ MaximumEventAgeInSeconds: 300 }), DeadLetterConfig: Match.anyValue() })],
    });
  });

  test('an alarm per PITR source on the WAL age (threshold archive_timeout + grace, silence breaches), the .ready backlog and archiver failures, to the topic both ways', () => {
    const [topicId] = resourcesOfType(template, 'AWS::SNS::Topic')[0];
    const wal = resourcesOfType(template, 'AWS::CloudWatch::Alarm').filter(([id]) => /Wal/.test(id));
    assert.equal(wal.length, 3, 'three alarms for the one PITR source (db/postgres), none for group web');
    assertions.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 60 + 5 * 60,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'breaching',
      Metrics: [Match.objectLike({ Expression: `SELECT MAX("${METRIC.walArchiveAgeSeconds}") FROM SCHEMA("Coldseal", "Group", "Host", "Source", "service") WHERE "Group" = 'db' AND "Source" = 'postgres' AND "service" = 'coldseal-monitor'`, Period: 600 })],
      AlarmActions: [{ Ref: topicId }],
      OKActions: [{ Ref: topicId }],
    });
    assertions.hasResourceProperties('AWS::CloudWatch::Alarm', {
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      TreatMissingData: 'notBreaching',
      Metrics: [Match.objectLike({ Expression: Match.stringLikeRegexp(`SELECT MAX\\("${METRIC.walReadyBacklog}"\\) FROM SCHEMA\\("${AGENT_METRICS_NAMESPACE}", "Group", "Host", "Source"\\) WHERE "Group" = 'db' AND "Source" = 'postgres'`) })],
    });
    assertions.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      Metrics: Match.arrayWith([Match.objectLike({ Expression: 'DIFF(failed)', ReturnData: true }), Match.objectLike({ Id: 'failed', ReturnData: false, Expression: Match.stringLikeRegexp(METRIC.walArchiverFailedCount) })]),
    });
    for (const [id, alarm] of wal) assert.match(alarm.Properties.AlarmDescription, /Do: /, id);
    assert.match(wal.find(([id]) => /WalAge/.test(id))![1].Properties.AlarmDescription, /idle server archives nothing/);
  });

  test("the dashboard graphs group db's WAL age per host and source, and nothing of WAL for group web", () => {
    const [, dashboard] = resourcesOfType(template, 'AWS::CloudWatch::Dashboard')[0];
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    assert.match(body, /db: age of the newest archived WAL per host and source/);
    assert.match(body, new RegExp(`MetricName=.{0,6}${METRIC.walArchiveAgeSeconds}.{0,6} Group=.{0,6}db`), 'found by SEARCH on the metric name and the group');
    assert.doesNotMatch(body, /web: age of the newest archived WAL/);
  });

  test('the monitor construct refuses a WAL check interval it cannot schedule, naming the prop (before bundling anything)', () => {
    const stack = new Stack(new App(), 'Bare');
    const base = { bucket: new s3.Bucket(stack, 'B'), dataKey: new kms.Key(stack, 'K'), topic: new sns.Topic(stack, 'T'), documentName: 'coldseal-backup' };
    const groups = [{ name: 'db', sources: ['pg'], pitrSources: [{ source: 'pg', engine: 'postgres' as const, archiveTimeoutSeconds: 60 }] }];
    assert.throws(() => new ColdsealMonitor(stack, 'M1', { ...base, groups, walCheckInterval: Duration.hours(2) }), /ColdsealMonitor props\.walCheckInterval must be whole minutes between 1 and 60, got 2 hours/);
    assert.throws(() => new ColdsealMonitor(stack, 'M2', { ...base, groups, walCheckInterval: Duration.seconds(30) }), /walCheckInterval/);
  });

  test('CloudWatch may publish the new alarms to the topic (service-calls.ts)', async () => {
    const calls = serviceCallsOf(template, (arn) => model.nameOfRole(arn)).filter((c) => /alarm .*Wal/.test(c.origin) || /rule .*WalCheck/.test(c.origin));
    assert.equal(calls.length, 3 * 2 + 2, 'ALARM and OK of three alarms, the rule and its dead-letter queue');
    assert.deepEqual(await denied(calls), []);
  });

  test('the template passes cfn-lint', () => {
    const lint = spawnSync('cfn-lint', ['--format', 'parseable', templateFile], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(lint.error, undefined, `cfn-lint could not run: ${String(lint.error)}`);
    assert.equal(lint.status, 0, `cfn-lint:\n${lint.stdout}${lint.stderr}`);
  });
});

/**
 * What agent/src/pitr sends for one WAL file (wal-upload.ts: ONE PutObject with If-None-Match,
 * the record in its metadata, the daily tier's lock, SSE-KMS when configured; a HEAD for the
 * record on 412), what restore_command and a base backup read, and the archiver's metrics.
 */
function hostWalCalls(): AwsCall[] {
  const principal = 'host:db';
  const b = model.dataBucket;
  const lock = retention.daily.lock;
  const sse = { 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': model.dataKeyArn };
  const lockHeaders = { 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(lock.days) };
  return [
    { principal, operation: 'PutObject', bucket: b, key: ownWal(), headers: { 'if-none-match': '*', ...lockHeaders } },
    { principal, operation: 'PutObject', bucket: b, key: walObjectKey('db', 'h1', 'postgres', '00000002.history'), headers: { 'if-none-match': '*', ...sse, ...lockHeaders } },
    { principal, operation: 'HeadObject', bucket: b, key: ownWal() },
    { principal, operation: 'GetObject', bucket: b, key: ownWal() },
    { principal, operation: 'cloudwatch:PutMetricData', resource: '*', context: { 'cloudwatch:namespace': AGENT_METRICS_NAMESPACE } },
  ];
}

/**
 * What `coldseal drill --pitr` on the drill host reads of its group's WAL (drill-access.ts): the
 * archive listed for the recovery window, each object, and a listing under a key's own name to
 * tell "not in the archive" from "denied" (runtime/s3-presence.ts).
 */
function drillWalCalls(): AwsCall[] {
  const principal = 'drill';
  const b = model.dataBucket;
  return [
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: 'wal/db/h1/postgres/', delimiter: '/' } },
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: 'wal/db/h1/postgres/00000001/' } },
    { principal, operation: 'GetObject', bucket: b, key: ownWal() },
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: walObjectKey('db', 'h1', 'postgres', '000000010000000000000004') } },
  ];
}

/** lambdas/monitor/core/wal-check.ts: hosts and timelines by Delimiter listings, the newest after the watermark, the watermark. */
function monitorWalCalls(): AwsCall[] {
  const principal = 'monitor';
  const b = model.dataBucket;
  const watermark = `${WAL_WATERMARK_PREFIX}db/h1/postgres.json`;
  return [
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: 'wal/db/' } },
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: 'wal/db/h1/postgres/' } },
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: 'wal/db/h1/postgres/00000001/' } },
    { principal, operation: 'GetObject', bucket: b, key: watermark, mayBeMissing: true },
    { principal, operation: 'PutObject', bucket: b, key: watermark },
  ];
}

/** lambdas/verifier (PITR sources): list the archive, HEAD each object for its signed record, hash it by ranged reads, keep progress under state/verified/. */
function verifierWalCalls(): AwsCall[] {
  const principal = 'verifier';
  const b = model.dataBucket;
  const progress = `${VERIFIED_PREFIX}${WAL_PREFIX}db/h1/postgres.json`;
  return [
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: WAL_PREFIX } },
    { principal, operation: 'HeadObject', bucket: b, key: ownWal() },
    { principal, operation: 'GetObject', bucket: b, key: ownWal(), headers: { range: 'bytes=0-4095' } },
    { principal, operation: 'GetObject', bucket: b, key: progress, mayBeMissing: true },
    { principal, operation: 'PutObject', bucket: b, key: progress },
  ];
}

describe('the WAL calls are allowed', () => {
  test('the verifier: the archive listed, each object HEAD and ranged reads, its progress', async () => {
    assert.deepEqual(await denied(verifierWalCalls()), []);
  });

  test('hosts of a PITR group: new WAL objects with the daily lock, their record and content read back by name, metrics in Coldseal/Agent', async () => {
    assert.deepEqual(await denied(hostWalCalls()), []);
  });

  test("the drill host of a PITR group: its group's WAL listed and read (drill --pitr)", async () => {
    assert.deepEqual(await denied(drillWalCalls()), []);
  });

  test('the monitor: Delimiter listings of the archive, its watermarks (absent ones answer 404)', async () => {
    assert.deepEqual(await denied(monitorWalCalls()), []);
  });
});

describe('the hostile WAL calls are denied', () => {
  test('a host overwrites, deletes, re-locks or unlocks WAL, or writes, reads or lists another group', async () => {
    const b = model.dataBucket;
    const lock = retention.daily.lock;
    const lockHeaders = { 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(lock.days) };
    const calls: AwsCall[] = [];
    for (const principal of ['host:db', 'drill']) {
      calls.push(
        // An overwrite: the same write without the condition.
        { principal, operation: 'PutObject', bucket: b, key: ownWal(), headers: lockHeaders },
        { principal, operation: 'PutObject', bucket: b, key: ownWal(), headers: { ...lockHeaders, 'x-amz-server-side-encryption': 'aws:kms' } },
        { principal, operation: 'CreateMultipartUpload', bucket: b, key: ownWal() },
        { principal, operation: 'CompleteMultipartUpload', bucket: b, key: ownWal() },
        { principal, operation: 'DeleteObject', bucket: b, key: ownWal() },
        { principal, operation: 'DeleteObject', bucket: b, key: ownWal(), query: { versionId: '3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY' } },
        { principal, operation: 'PutObjectRetention', bucket: b, key: ownWal(), headers: { 'x-amz-object-lock-mode': lock.mode === 'GOVERNANCE' ? 'COMPLIANCE' : 'GOVERNANCE', 'x-amz-object-lock-retain-until-date': until(lock.days) } },
        { principal, operation: 'PutObjectRetention', bucket: b, key: ownWal(), headers: { 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(lock.days + 3650) } },
        { principal, operation: 'PutObjectLegalHold', bucket: b, key: ownWal() },
        { principal, operation: 'PutObject', bucket: b, key: otherWal(), headers: { 'if-none-match': '*', ...lockHeaders } },
        { principal, operation: 'GetObject', bucket: b, key: otherWal() },
        { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: 'wal/web/' } },
        ...(principal === 'drill' ? [] : [{ principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: 'wal/db/' } } as AwsCall]),
        { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: 'wal/' } },
        { principal, operation: 'ListObjectsV2', bucket: b },
        // Metrics in another namespace: the Lambdas' own, where a host could fake a WAL age.
        { principal, operation: 'cloudwatch:PutMetricData', resource: '*', context: { 'cloudwatch:namespace': 'Coldseal' } },
        { principal, operation: 'cloudwatch:PutMetricData', resource: '*' },
      );
    }
    // A group without a PITR source gets no WAL access at all.
    calls.push(
      { principal: 'host:web', operation: 'PutObject', bucket: b, key: otherWal(), headers: { 'if-none-match': '*', ...lockHeaders } },
      { principal: 'host:web', operation: 'GetObject', bucket: b, key: otherWal() },
      { principal: 'host:web', operation: 'cloudwatch:PutMetricData', resource: '*', context: { 'cloudwatch:namespace': AGENT_METRICS_NAMESPACE } },
    );
    assert.deepEqual(await allowedOnes(calls), []);
  });

  test('a host of a PITR group still cannot read backups, and its WAL grants reach nothing outside wal/<group>/', async () => {
    const b = model.dataBucket;
    const calls: AwsCall[] = [
      { principal: 'host:db', operation: 'GetObject', bucket: b, key: 'backups/daily/db/h1/postgres/20261122T010000Z.manifest.json' },
      { principal: 'host:db', operation: 'ListObjectsV2', bucket: b, query: { prefix: 'backups/daily/db/' } },
      { principal: 'host:db', operation: 'PutObject', bucket: b, key: `${WAL_WATERMARK_PREFIX}db/h1/postgres.json`, headers: { 'if-none-match': '*' } },
      { principal: 'host:db', operation: 'PutObject', bucket: b, key: 'walx/db/h1/x', headers: { 'if-none-match': '*' } },
      // The 404 of a missing WAL key would need ListBucket on the whole bucket: not granted (recorded-calls.ts REFUSAL_MEANS_ABSENT).
      { principal: 'host:db', operation: 'HeadObject', bucket: b, key: ownWal(), mayBeMissing: true },
    ];
    assert.deepEqual(await allowedOnes(calls), []);
  });

  test('the monitor cannot write, delete or read WAL objects, nor delete its watermarks; the verifier cannot write or delete WAL', async () => {
    const b = model.dataBucket;
    const calls: AwsCall[] = [
      { principal: 'verifier', operation: 'PutObject', bucket: b, key: ownWal(), headers: { 'if-none-match': '*' } },
      { principal: 'verifier', operation: 'DeleteObject', bucket: b, key: ownWal() },
      { principal: 'verifier', operation: 'PutObjectRetention', bucket: b, key: ownWal(), headers: { 'x-amz-object-lock-mode': 'GOVERNANCE', 'x-amz-object-lock-retain-until-date': until(1) } },
      { principal: 'monitor', operation: 'PutObject', bucket: b, key: ownWal(), headers: { 'if-none-match': '*' } },
      { principal: 'monitor', operation: 'DeleteObject', bucket: b, key: ownWal() },
      { principal: 'monitor', operation: 'GetObject', bucket: b, key: ownWal() },
      { principal: 'monitor', operation: 'DeleteObject', bucket: b, key: `${WAL_WATERMARK_PREFIX}db/h1/postgres.json` },
      { principal: 'monitor', operation: 'cloudwatch:PutMetricData', resource: '*', context: { 'cloudwatch:namespace': AGENT_METRICS_NAMESPACE } },
    ];
    assert.deepEqual(await allowedOnes(calls), []);
  });
});

describe('the recorded-calls proof reads the WAL requests as AWS authorizes them (recorded-calls.ts)', () => {
  test("PutMetricData in either protocol becomes cloudwatch:PutMetricData with its namespace; a host's WAL HEAD answered 404 does not ask for ListBucket on the bucket", async () => {
    const b = model.dataBucket;
    const requests: RecordedRequest[] = [
      {
        accessKeyId: 'AKIDHOST',
        service: 'monitoring',
        method: 'POST',
        path: '/',
        query: {},
        headers: { 'x-amz-target': 'GraniteServiceVersion20100801.PutMetricData', 'content-type': 'application/x-amz-json-1.0' },
        body: JSON.stringify({ Namespace: AGENT_METRICS_NAMESPACE, MetricData: [{ MetricName: METRIC.walReadyBacklog, Value: 0 }] }),
        status: 200,
      },
      { accessKeyId: 'AKIDHOST', service: 'monitoring', method: 'POST', path: '/', query: {}, headers: {}, body: 'Action=PutMetricData&Version=2010-08-01&Namespace=Coldseal', status: 200 },
      { accessKeyId: 'AKIDHOST', service: 's3', method: 'HEAD', path: `/${b}/${ownWal()}`, query: {}, headers: {}, status: 404 },
      { accessKeyId: 'AKIDMONITOR', service: 's3', method: 'GET', path: `/${b}/${WAL_WATERMARK_PREFIX}db/h1/postgres.json`, query: { 'x-id': 'GetObject' }, headers: {}, status: 404 },
    ];
    const principals = new Map([
      ['AKIDHOST', 'host:db'],
      ['AKIDMONITOR', 'monitor'],
    ]);
    const { calls, problems } = translate(requests, principals, { template, physical: new Map(), accountId: '123456789012', secureStringKeys: new Map() });
    assert.deepEqual(problems, []);
    assert.deepEqual(
      calls.map((c) => [c.principal, c.operation, c.context?.['cloudwatch:namespace'] ?? c.key, c.mayBeMissing ?? false]),
      [
        ['host:db', 'cloudwatch:PutMetricData', AGENT_METRICS_NAMESPACE, false],
        ['host:db', 'cloudwatch:PutMetricData', 'Coldseal', false],
        ['host:db', 'HeadObject', ownWal(), false],
        ['monitor', 'GetObject', `${WAL_WATERMARK_PREFIX}db/h1/postgres.json`, true],
      ],
    );
    assert.deepEqual(await allowedOnes(calls), ['host:db cloudwatch:PutMetricData *', `host:db HeadObject s3://${b}/${ownWal()}`, `monitor GetObject s3://${b}/${WAL_WATERMARK_PREFIX}db/h1/postgres.json`]);
  });
});
