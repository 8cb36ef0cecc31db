/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
/**
 * The cloud side of MySQL/MariaDB point-in-time recovery in the stack: group db gets a MariaDB
 * source "shop" with pitr enabled beside its PostgreSQL PITR source. Its binary logs live under
 * the same wal/<group>/ prefix, so the lifecycle rule, the hosts' write-once statements, the
 * drill host's reads and the Lambdas' grants that serve WAL must serve them too: proven here with
 * the calls binlog-push, restore/drill, the verifier and the monitor make on binary log keys, and
 * the hostile ones, through the same IAM engine as permissions.test.ts. The alarms and the
 * dashboard speak of binary logs for it, and the Lambdas' settings carry its engine and interval.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binlogObjectKey, binlogPrefix, VERIFIED_PREFIX, WAL_PREFIX, WAL_WATERMARK_PREFIX } from '../../format/layout';
import { loadSettings } from '../../format/lambda-settings';
import { AGENT_METRICS_NAMESPACE, METRIC } from '../../format/metric-names';
import { buildApp } from '../../infra/lib/build-app';
import { resolveContext } from '../../infra/lib/config';
import type { RetentionSettings } from '../../infra/lib/settings';
import type { AwsCall } from './aws-calls';
import { ROOT, standInExecutables, twoGroupContext } from './fixtures';
import { allowedCalls, deniedCalls, PermissionModel } from './permissions';
import { translate } from './recorded-calls';
import type { RecordedRequest } from '../harness/aws-recorder';
import { resourcesOfType, type Template } from './template-tools';

let template: Template;
let model: PermissionModel;
let retention: RetentionSettings;

/** The two-group fixture, with a MariaDB PITR source "shop" (binlog-push every 10 minutes) in group db. */
function binlogContext(): Record<string, unknown> {
  const context = twoGroupContext();
  const groups = context.groups as Record<string, { sources: Record<string, unknown>[] }>;
  groups.db.sources.push({ name: 'shop', type: 'mysql', databases: ['shop'], socket: '/run/mysqld/mysqld.sock', pitr: { enabled: true, intervalMinutes: 10 } });
  return context;
}

before(async () => {
  const context = binlogContext();
  retention = (await resolveContext(context, ROOT)).retention as RetentionSettings;
  const built = await buildApp({ context, baseDir: ROOT, agentExecutables: standInExecutables(), appProps: { builtinCloudFormationValidation: false } });
  template = built.app.synth().getStackByName(built.stack.stackName).template as Template;
  model = new PermissionModel(template);
});

const until = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();
const ownBinlog = () => binlogObjectKey('db', 'h1', 'shop', 'mariadb-bin.000042');
const otherBinlog = () => binlogObjectKey('web', 'h2', 'shop', 'mariadb-bin.000042');
const denied = (calls: AwsCall[]) => deniedCalls(model, calls);
const allowedOnes = (calls: AwsCall[]) => allowedCalls(model, calls);

describe('the stack knows the MySQL PITR source', () => {
  test('the template passes cfn-lint (the binary log alarms are new resources)', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'coldseal-binlog-')), 'Coldseal.template.json');
    writeFileSync(file, JSON.stringify(template));
    const lint = spawnSync('cfn-lint', ['--format', 'parseable', file], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(lint.error, undefined, `cfn-lint could not run: ${String(lint.error)}`);
    assert.equal(lint.status, 0, `cfn-lint:\n${lint.stdout}${lint.stderr}`);
  });

  test("the Lambdas' settings carry its engine and binlog-push interval", () => {
    const functions = resourcesOfType(template, 'AWS::Lambda::Function').filter(([id]) => /Verifier|Monitor/.test(id) && !/LogRetention/.test(id));
    assert.equal(functions.length, 2);
    for (const [, fn] of functions) {
      const settings = loadSettings({ ...fn.Properties.Environment.Variables, COLDSEAL_BUCKET: 'bucket-name', COLDSEAL_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:t', COLDSEAL_DOCUMENT_NAME: 'coldseal-backup' });
      assert.deepEqual(settings.groups.find((g) => g.name === 'db')!.pitrSources, [
        { source: 'postgres', engine: 'postgres', archiveTimeoutSeconds: 60 },
        { source: 'shop', engine: 'mysql', archiveTimeoutSeconds: 600 },
      ]);
    }
  });

  test('the context loader refuses a binlog-push interval the timer and the alarms cannot hold, naming the field', async () => {
    for (const [intervalMinutes, why] of [[0, />=1/], [90, /<=60/], [2.5, /int/]] as const) {
      const context = binlogContext();
      const shop = (context.groups as Record<string, { sources: Record<string, any>[] }>).db.sources.find((x) => x.name === 'shop')!;
      shop.pitr = { enabled: true, intervalMinutes };
      await assert.rejects(resolveContext(context, ROOT), (e: Error) => /coldseal\.groups\.db\.sources\.1\.pitr\.intervalMinutes/.test(e.message) && why.test(e.message), String(intervalMinutes));
    }
  });

  test('the wal lifecycle rule covers binary log keys (same prefix, never an archive class)', () => {
    const bucket = resourcesOfType(template, 'AWS::S3::Bucket').find(([, r]) => r.Properties.LifecycleConfiguration?.Rules?.some((x: any) => x.Id === 'wal'))![1];
    const rule = bucket.Properties.LifecycleConfiguration.Rules.find((r: any) => r.Id === 'wal');
    assert.ok(ownBinlog().startsWith(rule.Prefix), `${ownBinlog()} under ${rule.Prefix}`);
    assert.equal(rule.ExpirationInDays, retention.daily.expireAfterDays);
    assert.equal(rule.Transitions, undefined);
    // No other rule that moves or expires objects (a tier's) matches a binary log key; the bucket-wide cleanup only aborts uploads and drops old markers.
    const others = bucket.Properties.LifecycleConfiguration.Rules.filter((r: any) => r.Id !== 'wal' && (r.Transitions || r.ExpirationInDays) && (r.Prefix === undefined || ownBinlog().startsWith(r.Prefix)));
    assert.deepEqual(others.map((r: any) => r.Id), []);
  });

  test('alarms for it speak of binary logs: age over interval + grace (silence breaches) and a backlog three runs long; the PostgreSQL ones stay', () => {
    const alarms = resourcesOfType(template, 'AWS::CloudWatch::Alarm');
    const binlog = alarms.filter(([id]) => /^.*Binlog/.test(id));
    assert.equal(binlog.length, 2, binlog.map(([id]) => id).join());
    const age = binlog.find(([id]) => /BinlogAge/.test(id))![1].Properties;
    assert.equal(age.Threshold, 600 + 5 * 60);
    assert.equal(age.TreatMissingData, 'breaching');
    assert.match(age.Metrics[0].Expression, new RegExp(`SELECT MAX\\("${METRIC.walArchiveAgeSeconds}"\\) .* WHERE "Group" = 'db' AND "Source" = 'shop' AND "service" = 'coldseal-monitor'`));
    assert.match(age.AlarmDescription, /newest archived binary log .* binlog-push interval \(600 s\) \+ 5 min/);
    assert.match(age.AlarmDescription, /coldseal pitr binlog-push --source shop/);
    assert.doesNotMatch(age.AlarmDescription, /pg_stat_archiver|archive_timeout/);
    const backlog = binlog.find(([id]) => /BinlogBacklog/.test(id))![1].Properties;
    assert.match(backlog.Metrics[0].Expression, new RegExp(`SELECT MAX\\("${METRIC.binlogBacklog}"\\) FROM SCHEMA\\("${AGENT_METRICS_NAMESPACE}", "Group", "Host", "Source"\\) WHERE "Group" = 'db' AND "Source" = 'shop'`));
    assert.equal(backlog.Metrics[0].Period, 600, 'one period per binlog-push run');
    assert.equal(backlog.EvaluationPeriods, 3);
    // The PostgreSQL alarms are for the PostgreSQL source only.
    const wal = alarms.filter(([id]) => /Wal/.test(id));
    assert.equal(wal.length, 3);
    for (const [, a] of wal) assert.doesNotMatch(JSON.stringify(a.Properties.Metrics ?? a.Properties), /'shop'/);
  });

  test('the dashboard graphs both logs for group db, with each source its own line label', () => {
    const [, dashboard] = resourcesOfType(template, 'AWS::CloudWatch::Dashboard')[0];
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    assert.match(body, /db: age of the newest archived WAL or binary log per host and source/);
    assert.match(body, /binlog-push interval shop/);
    assert.match(body, /archive_timeout postgres/);
  });
});

/**
 * What binlog-push sends for one binary log (agent/src/pitr/mysql/binlog-upload.ts: ONE PutObject
 * with If-None-Match, its record in the metadata, the daily tier's lock, SSE-KMS when configured;
 * a HEAD for the record on 412) and its figures; what a restore on the host reads back.
 */
function hostBinlogCalls(): AwsCall[] {
  const principal = 'host:db';
  const b = model.dataBucket;
  const lock = retention.daily.lock;
  const sse = { 'x-amz-server-side-encryption': 'aws:kms', 'x-amz-server-side-encryption-aws-kms-key-id': model.dataKeyArn };
  const lockHeaders = { 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(lock.days) };
  return [
    { principal, operation: 'PutObject', bucket: b, key: ownBinlog(), headers: { 'if-none-match': '*', ...sse, ...lockHeaders } },
    { principal, operation: 'PutObject', bucket: b, key: ownBinlog(), headers: { 'if-none-match': '*', ...lockHeaders } },
    { principal, operation: 'HeadObject', bucket: b, key: ownBinlog() },
    { principal, operation: 'GetObject', bucket: b, key: ownBinlog() },
    { principal, operation: 'cloudwatch:PutMetricData', resource: '*', context: { 'cloudwatch:namespace': AGENT_METRICS_NAMESPACE } },
  ];
}

/** `coldseal drill --pitr` / `restore --to-time` on the drill host: the binlog folder listed for the window, each file read, a listing under a key's own name (runtime/s3-presence.ts). */
function drillBinlogCalls(): AwsCall[] {
  const principal = 'drill';
  const b = model.dataBucket;
  return [
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: binlogPrefix('db', 'h1', 'shop') } },
    { principal, operation: 'GetObject', bucket: b, key: ownBinlog() },
    { principal, operation: 'HeadObject', bucket: b, key: ownBinlog() },
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: binlogObjectKey('db', 'h1', 'shop', 'mariadb-bin.000043') } },
  ];
}

/** lambdas/verifier (binlog-pitr.ts): the group's archive listed, each object's HEAD (with its lock) and reads, its progress. */
function verifierBinlogCalls(): AwsCall[] {
  const principal = 'verifier';
  const b = model.dataBucket;
  const progress = `${VERIFIED_PREFIX}${WAL_PREFIX}db/h1/shop.json`;
  return [
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: `${WAL_PREFIX}db/` } },
    { principal, operation: 'HeadObject', bucket: b, key: ownBinlog(), readsLock: true },
    { principal, operation: 'GetObjectRetention', bucket: b, key: ownBinlog() },
    { principal, operation: 'GetObject', bucket: b, key: ownBinlog() },
    { principal, operation: 'GetObject', bucket: b, key: ownBinlog(), headers: { range: 'bytes=0-4095' } },
    { principal, operation: 'GetObject', bucket: b, key: progress, mayBeMissing: true },
    { principal, operation: 'PutObject', bucket: b, key: progress },
  ];
}

/** lambdas/monitor/core/wal-check.ts on a binlog source: hosts by a Delimiter listing, the binlog folder after the watermark, the watermark. */
function monitorBinlogCalls(): AwsCall[] {
  const principal = 'monitor';
  const b = model.dataBucket;
  const watermark = `${WAL_WATERMARK_PREFIX}db/h1/shop.json`;
  return [
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: 'wal/db/', delimiter: '/' } },
    { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: binlogPrefix('db', 'h1', 'shop'), 'start-after': ownBinlog() } },
    { principal, operation: 'GetObject', bucket: b, key: watermark, mayBeMissing: true },
    { principal, operation: 'PutObject', bucket: b, key: watermark },
  ];
}

describe('the binary log calls are allowed', () => {
  test('hosts of the group: new binary log objects (If-None-Match, the daily lock, SSE-KMS), their record and content read back on 412, BinlogBacklog in Coldseal/Agent', async () => {
    assert.deepEqual(await denied(hostBinlogCalls()), []);
  });
  test("the drill host: its group's binary logs listed and read", async () => {
    assert.deepEqual(await denied(drillBinlogCalls()), []);
  });
  test('the verifier: the archive listed, each object HEAD with its retention, hashed, its progress', async () => {
    assert.deepEqual(await denied(verifierBinlogCalls()), []);
  });
  test('the monitor: the binlog folder after its watermark, its watermark', async () => {
    assert.deepEqual(await denied(monitorBinlogCalls()), []);
  });
});

describe('the hostile binary log calls are denied', () => {
  test("a host overwrites, deletes, shortens or changes the lock of a binary log, or writes, reads or lists another group's", async () => {
    const b = model.dataBucket;
    const lock = retention.daily.lock;
    const lockHeaders = { 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(lock.days) };
    const calls: AwsCall[] = [];
    for (const principal of ['host:db', 'drill']) {
      calls.push(
        // An overwrite: the same write without the condition (as the WAL statements enforce: WriteNewWalOnly).
        { principal, operation: 'PutObject', bucket: b, key: ownBinlog(), headers: lockHeaders },
        { principal, operation: 'PutObject', bucket: b, key: ownBinlog(), headers: { ...lockHeaders, 'x-amz-server-side-encryption': 'aws:kms' } },
        { principal, operation: 'CreateMultipartUpload', bucket: b, key: ownBinlog() },
        { principal, operation: 'CompleteMultipartUpload', bucket: b, key: ownBinlog() },
        { principal, operation: 'DeleteObject', bucket: b, key: ownBinlog() },
        { principal, operation: 'DeleteObject', bucket: b, key: ownBinlog(), query: { versionId: '3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY' }, headers: { 'x-amz-bypass-governance-retention': 'true' } },
        // Shortening a GOVERNANCE lock needs the bypass; a COMPLIANCE one, or a much longer one, is another mode or term.
        { principal, operation: 'PutObjectRetention', bucket: b, key: ownBinlog(), headers: { 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(1), 'x-amz-bypass-governance-retention': 'true' } },
        { principal, operation: 'PutObjectRetention', bucket: b, key: ownBinlog(), headers: { 'x-amz-object-lock-mode': lock.mode === 'GOVERNANCE' ? 'COMPLIANCE' : 'GOVERNANCE', 'x-amz-object-lock-retain-until-date': until(lock.days) } },
        { principal, operation: 'PutObjectRetention', bucket: b, key: ownBinlog(), headers: { 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(lock.days + 3650) } },
        { principal, operation: 'PutObjectLegalHold', bucket: b, key: ownBinlog() },
        { principal, operation: 'PutObject', bucket: b, key: otherBinlog(), headers: { 'if-none-match': '*', ...lockHeaders } },
        { principal, operation: 'GetObject', bucket: b, key: otherBinlog() },
        { principal, operation: 'ListObjectsV2', bucket: b, query: { prefix: binlogPrefix('web', 'h2', 'shop') } },
      );
    }
    calls.push(
      // The verifier and the monitor never write, delete or re-lock a binary log; the monitor never reads one.
      { principal: 'verifier', operation: 'PutObject', bucket: b, key: ownBinlog(), headers: { 'if-none-match': '*' } },
      { principal: 'verifier', operation: 'DeleteObject', bucket: b, key: ownBinlog() },
      { principal: 'verifier', operation: 'PutObjectRetention', bucket: b, key: ownBinlog(), headers: { 'x-amz-object-lock-mode': 'GOVERNANCE', 'x-amz-object-lock-retain-until-date': until(1) } },
      { principal: 'monitor', operation: 'GetObject', bucket: b, key: ownBinlog() },
      { principal: 'monitor', operation: 'PutObject', bucket: b, key: ownBinlog(), headers: { 'if-none-match': '*' } },
      // A group without a PITR source gets no access to any log archive.
      { principal: 'host:web', operation: 'PutObject', bucket: b, key: otherBinlog(), headers: { 'if-none-match': '*', ...lockHeaders } },
      { principal: 'host:web', operation: 'GetObject', bucket: b, key: otherBinlog() },
    );
    assert.deepEqual(await allowedOnes(calls), []);
  });

  test('the bypass header is what the proof asks about: without it the same shortening is a PutObjectRetention within the lock bounds (S3 itself refuses to shorten a GOVERNANCE lock without the bypass)', async () => {
    const b = model.dataBucket;
    const lock = retention.daily.lock;
    const plain: AwsCall = { principal: 'host:db', operation: 'PutObjectRetention', bucket: b, key: ownBinlog(), headers: { 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(1) } };
    assert.deepEqual(await denied([plain]), [], 'the agent re-locks within the term it was given (LockWalAsDailyTier)');
    assert.equal((await allowedOnes([{ ...plain, headers: { ...plain.headers, 'x-amz-bypass-governance-retention': 'true' } }])).length, 0);
  });
});

describe('the recorded-calls proof reads binlog-push and the verifier as AWS authorizes them (recorded-calls.ts)', () => {
  test("binlog-push's conditional PUT (and its 412 answered by a HEAD), a restore's HEAD of a key not archived, BinlogBacklog, and the verifier's HEAD with a lock", async () => {
    const b = model.dataBucket;
    const lock = retention.daily.lock;
    const put = { 'if-none-match': '*', 'x-amz-object-lock-mode': lock.mode, 'x-amz-object-lock-retain-until-date': until(lock.days) };
    const requests: RecordedRequest[] = [
      { accessKeyId: 'AKIDHOST', service: 's3', method: 'PUT', path: `/${b}/${ownBinlog()}`, query: { 'x-id': 'PutObject' }, headers: put, status: 200 },
      { accessKeyId: 'AKIDHOST', service: 's3', method: 'PUT', path: `/${b}/${ownBinlog()}`, query: { 'x-id': 'PutObject' }, headers: put, status: 412 },
      { accessKeyId: 'AKIDHOST', service: 's3', method: 'HEAD', path: `/${b}/${ownBinlog()}`, query: {}, headers: {}, status: 200 },
      { accessKeyId: 'AKIDHOST', service: 's3', method: 'HEAD', path: `/${b}/${binlogObjectKey('db', 'h1', 'shop', 'mariadb-bin.000043')}`, query: {}, headers: {}, status: 404 },
      {
        accessKeyId: 'AKIDHOST',
        service: 'monitoring',
        method: 'POST',
        path: '/',
        query: {},
        headers: { 'x-amz-target': 'GraniteServiceVersion20100801.PutMetricData', 'content-type': 'application/x-amz-json-1.0' },
        body: JSON.stringify({ Namespace: AGENT_METRICS_NAMESPACE, MetricData: [{ MetricName: METRIC.binlogBacklog, Value: 0 }] }),
        status: 200,
      },
      { accessKeyId: 'AKIDVERIFIER', service: 's3', method: 'HEAD', path: `/${b}/${ownBinlog()}`, query: {}, headers: {}, status: 200, responseHeaders: { 'x-amz-object-lock-mode': lock.mode } },
    ];
    const principals = new Map([
      ['AKIDHOST', 'host:db'],
      ['AKIDVERIFIER', 'verifier'],
    ]);
    const { calls, problems } = translate(requests, principals, { template, physical: new Map(), accountId: '123456789012', secureStringKeys: new Map() });
    assert.deepEqual(problems, []);
    assert.deepEqual(
      calls.map((c) => [c.principal, c.operation, c.headers?.['if-none-match'] ?? '', c.mayBeMissing ?? false, c.readsLock ?? false]),
      [
        ['host:db', 'PutObject', '*', false, false],
        ['host:db', 'PutObject', '*', false, false],
        ['host:db', 'HeadObject', '', false, false],
        // A 404 the agent takes for "not archived" needs no ListBucket on the bucket (REFUSAL_MEANS_ABSENT covers wal/, binlog keys included).
        ['host:db', 'HeadObject', '', false, false],
        ['host:db', 'cloudwatch:PutMetricData', '', false, false],
        ['verifier', 'HeadObject', '', false, true],
      ],
    );
    assert.deepEqual(await denied(calls), []);
  });
});
