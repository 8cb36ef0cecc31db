/**
 * What the report's recovery and cost figures need from the stack: the group settings the
 * verifier reads (rtoHours, calendar, runs per day, transitions, the price override),
 * pricing:GetProducts for the verifier and its place in the recorded-calls proof, the lifecycle
 * rule of state/storage/, the writes of the snapshot and the price cache, and the stored-bytes
 * metric on the dashboard. One synthesis of the two-group fixture with an RTO on group db.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Match, Template as CdkTemplate } from 'aws-cdk-lib/assertions';
import { METRIC, SERVICE } from '../../format/metric-names';
import { PRICE_CACHE_PREFIX, REPORTS_PREFIX, STATE_PREFIX, STORAGE_SNAPSHOT_PREFIX } from '../../format/layout';
import { groupSettingsSchema } from '../../format/lambda-settings';
import { buildApp } from '../../infra/lib/build-app';
import { runsPerDayOf } from '../../infra/lib/settings';
import type { RecordedRequest } from '../harness/aws-recorder';
import type { AwsCall } from './aws-calls';
import { ROOT, standInExecutables, twoGroupContext } from './fixtures';
import { allowedCalls, deniedCalls, PermissionModel } from './permissions';
import { translate } from './recorded-calls';
import { resourcesOfType, type Template } from './template-tools';

let template: Template;
let assertions: CdkTemplate;
let model: PermissionModel;

before(async () => {
  const context = twoGroupContext();
  (context.groups as Record<string, Record<string, unknown>>).db.rtoHours = 4;
  context.prices = { storagePerGbMonth: { GLACIER: 0.003 } };
  const built = await buildApp({ context, baseDir: ROOT, agentExecutables: standInExecutables(), appProps: { builtinCloudFormationValidation: false } });
  template = built.app.synth().getStackByName(built.stack.stackName).template as Template;
  assertions = CdkTemplate.fromJSON(template);
  model = new PermissionModel(template);
});

function verifierEnvironment(): Record<string, unknown> {
  const fns = resourcesOfType(template, 'AWS::Lambda::Function').map(([, r]) => r);
  const verifier = fns.find((f) => f.Properties.Environment?.Variables?.POWERTOOLS_SERVICE_NAME === SERVICE.verifier);
  assert.ok(verifier, 'the verifier function');
  return verifier.Properties.Environment.Variables;
}

describe('the report settings reach the verifier', () => {
  test('each group carries its RTO, the agents calendar in its time zone, its runs per day and the transitions; the price override is passed whole', () => {
    const env = verifierEnvironment();
    const groups = (JSON.parse(env.COLDSEAL_GROUPS as string) as unknown[]).map((g) => groupSettingsSchema.parse(g));
    const db = groups.find((g) => g.name === 'db')!;
    const web = groups.find((g) => g.name === 'web')!;
    assert.equal(db.rtoHours, 4);
    assert.equal(web.rtoHours, undefined);
    assert.equal(web.calendar?.timeZone, 'America/New_York');
    assert.deepEqual(web.calendar && { yearly: web.calendar.yearly, monthly: web.calendar.monthly, weekly: web.calendar.weekly }, { yearly: { month: 1, day: 1 }, monthly: { day: 1 }, weekly: { weekday: 'sunday' } });
    assert.equal(web.runsPerDay, 1);
    // The default retention: monthly to Glacier at 30 days, yearly to Deep Archive at 1 day.
    assert.deepEqual(db.transitionAfterDays, { GLACIER: 30, DEEP_ARCHIVE: 1 });
    assert.deepEqual(JSON.parse(env.COLDSEAL_PRICE_OVERRIDE as string), { storagePerGbMonth: { GLACIER: 0.003 } });
  });

  test('runs per day from the schedule: minutes times hours', () => {
    assert.deepEqual(['cron(30 1 * * ? *)', 'cron(0 1,13 * * ? *)', 'cron(0 */6 * * ? *)', 'cron(0/15 * * * ? *)', 'cron(0 9-17 ? * MON-FRI *)'].map(runsPerDayOf), [1, 2, 4, 96, 9]);
  });
});

describe('the stack holds what the storage and cost section needs', () => {
  test('the verifier may ask the Price List (GetProducts on *) and write its snapshot and price cache', () => {
    assertions.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Sid: 'PriceList', Effect: 'Allow', Action: 'pricing:GetProducts', Resource: '*' })]) },
      Roles: Match.arrayWith([Match.objectLike({ Ref: Match.stringLikeRegexp('Verifier') })]),
    });
  });

  test('a lifecycle rule expires the storage snapshots with the reports, and drops their old versions', () => {
    assertions.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: { Rules: Match.arrayWith([Match.objectLike({ Id: 'storage-snapshots', Prefix: STORAGE_SNAPSHOT_PREFIX, Status: 'Enabled', ExpirationInDays: 400, NoncurrentVersionExpiration: { NoncurrentDays: 1 } })]) },
    });
  });

  test('the dashboard draws each group\'s stored bytes from the verifier\'s metric', () => {
    const dashboards = resourcesOfType(template, 'AWS::CloudWatch::Dashboard').map(([, r]) => r);
    assert.equal(dashboards.length, 1);
    const body = JSON.stringify(dashboards[0].Properties.DashboardBody);
    for (const group of ['db', 'web']) {
      assert.ok(body.includes(`\\"Coldseal\\",\\"${METRIC.groupStoredBytes}\\",\\"Group\\",\\"${group}\\",\\"service\\",\\"${SERVICE.verifier}\\"`), `GroupStoredBytes of ${group} on the dashboard: ${body.slice(0, 400)}`);
      assert.ok(body.includes(`${group}: bytes stored in the data bucket`));
    }
  });

  test('the IAM engine allows the sweep\'s new calls and still refuses what the verifier must not do', async () => {
    const b = model.dataBucket;
    const today = `${STORAGE_SNAPSHOT_PREFIX}2026-12-06.json`;
    const allowed: AwsCall[] = [
      { principal: 'verifier', operation: 'pricing:GetProducts', resource: '*' },
      { principal: 'verifier', operation: 'PutObject', bucket: b, key: today },
      { principal: 'verifier', operation: 'GetObject', bucket: b, key: today },
      { principal: 'verifier', operation: 'PutObject', bucket: b, key: `${PRICE_CACHE_PREFIX}us-east-1.json` },
      { principal: 'verifier', operation: 'ListObjectsV2', bucket: b, query: { prefix: REPORTS_PREFIX } },
      { principal: 'verifier', operation: 'ListObjectsV2', bucket: b, query: { prefix: STATE_PREFIX } },
    ];
    assert.deepEqual(await deniedCalls(model, allowed), []);
    const hostile: AwsCall[] = [
      { principal: 'verifier', operation: 'DeleteObject', bucket: b, key: today },
      { principal: 'host:db', operation: 'pricing:GetProducts', resource: '*' },
      { principal: 'monitor', operation: 'pricing:GetProducts', resource: '*' },
    ];
    assert.deepEqual(await allowedCalls(model, hostile), []);
  });

  test('the recorded-calls proof reads a GetProducts request (AWS JSON 1.1) as pricing:GetProducts on *', async () => {
    const requests: RecordedRequest[] = [
      {
        accessKeyId: 'AKIDVERIFIER',
        service: 'pricing',
        method: 'POST',
        path: '/',
        query: {},
        headers: { 'x-amz-target': 'AWSPriceListService.GetProducts', 'content-type': 'application/x-amz-json-1.1' },
        body: JSON.stringify({ ServiceCode: 'AmazonS3', FormatVersion: 'aws_v1', MaxResults: 100, Filters: [{ Type: 'TERM_MATCH', Field: 'regionCode', Value: 'us-east-1' }] }),
        status: 404,
      },
      { accessKeyId: 'AKIDVERIFIER', service: 'pricing', method: 'POST', path: '/', query: {}, headers: { 'x-amz-target': 'AWSPriceListService.DescribeServices' }, body: '{}', status: 404 },
    ];
    const { calls, problems } = translate(requests, new Map([['AKIDVERIFIER', 'verifier']]), { template, physical: new Map(), accountId: '123456789012', secureStringKeys: new Map() });
    assert.deepEqual(problems, ['verifier: Price List operation with no entry in the table: pricing DescribeServices POST / → 404']);
    assert.deepEqual(calls.map((c) => [c.principal, c.operation, c.resource]), [['verifier', 'pricing:GetProducts', '*']]);
    assert.deepEqual(await deniedCalls(model, calls), []);
  });
});
