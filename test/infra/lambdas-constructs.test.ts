/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ColdsealAlarms } from '../../infra/lib/alarms';
import { ColdsealDashboard } from '../../infra/lib/dashboard';
import { ColdsealMonitor } from '../../infra/lib/monitor';
import { ColdsealVerifier } from '../../infra/lib/verifier';
import { CHECK_INPUT, SWEEP_INPUT } from '../../format/scheduled-inputs';
import { loadSettings } from '../../format/lambda-settings';
import { METRIC, SERVICE } from '../../format/metric-names';

/**
 * The verifier, monitor, alarms and dashboard constructs in a bare stack of their own (a test
 * bucket, key and topic), synthesized once with cdk-nag; the template also goes through cfn-lint.
 */
let template: Template;
let json: { Resources: Record<string, { Type: string; Properties: any }> };
let assemblyDir: string;
let templateFile: string;
const GROUPS = [
  { name: 'db', sources: ['pg', 'files'], rpoHours: 26, retentionDays: { daily: 35, weekly: 90 }, drillMaxAgeDays: 8 },
  { name: 'web', sources: ['www'], rpoHours: 50, hosts: ['web-onprem'] },
];

function resources(type: string): [string, any][] {
  return Object.entries(json.Resources).filter(([, r]) => r.Type === type).map(([id, r]) => [id, r.Properties]);
}

function statementsOf(roleLogicalIdPrefix: string): any[] {
  const found = resources('AWS::IAM::Policy').find(([id]) => id.startsWith(roleLogicalIdPrefix));
  assert.ok(found, `no policy ${roleLogicalIdPrefix}* in ${resources('AWS::IAM::Policy').map(([id]) => id).join(', ')}`);
  const [, policy] = found;
  return policy.PolicyDocument.Statement;
}

before(() => {
  // Access logs by bucket policy, not ACLs (the stack's vault does the same by hand).
  const app = new App({ builtinCloudFormationValidation: false, context: { '@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy': true } });
  const stack = new Stack(app, 'LambdasTest', { env: { account: '123456789012', region: 'eu-west-1' } });
  const key = new kms.Key(stack, 'DataKey', { enableKeyRotation: true, removalPolicy: RemovalPolicy.DESTROY });
  const logs = new s3.Bucket(stack, 'Logs', { enforceSSL: true, blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL, removalPolicy: RemovalPolicy.DESTROY });
  Validations.of(logs).acknowledge({ id: 'AwsSolutions-S1', reason: 'test stack: the access-log bucket does not log itself' });
  const bucket = new s3.Bucket(stack, 'Data', {
    encryption: s3.BucketEncryption.KMS,
    encryptionKey: key,
    enforceSSL: true,
    versioned: true,
    objectLockEnabled: true,
    blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
    serverAccessLogsBucket: logs,
    removalPolicy: RemovalPolicy.DESTROY,
  });
  const topicKey = new kms.Key(stack, 'TopicKey', { enableKeyRotation: true, removalPolicy: RemovalPolicy.DESTROY });
  const topic = new sns.Topic(stack, 'Alerts', { masterKey: topicKey, enforceSSL: true });
  const common = { bucket, dataKey: key, topic, topicKey, groups: GROUPS, parameterPrefix: '/coldseal', hostTagKey: 'coldseal-group', documentName: 'coldseal-backup-doc' };
  const verifier = new ColdsealVerifier(stack, 'Verifier', common);
  const monitor = new ColdsealMonitor(stack, 'Monitor', { ...common, interval: Duration.hours(4) });
  const alarms = new ColdsealAlarms(stack, 'Alarms', { topic, verifierFunction: verifier.function.fn, monitorFunction: monitor.function.fn, monitorInterval: monitor.interval, groups: GROUPS });
  new ColdsealDashboard(stack, 'Dashboard', { groups: GROUPS, alarms });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  const assembly = app.synth();
  assemblyDir = assembly.directory;
  const artifact = assembly.getStackByName(stack.stackName);
  json = artifact.template;
  templateFile = join(assemblyDir, artifact.templateFile);
  template = Template.fromJSON(json);
});

describe('functions', () => {
  test('two Node.js 24 functions bundled by local esbuild, with the settings the handlers validate', () => {
    const fns = resources('AWS::Lambda::Function');
    assert.equal(fns.length, 2);
    for (const [, fn] of fns) {
      assert.equal(fn.Runtime, 'nodejs24.x');
      assert.deepEqual(fn.Architectures, ['arm64']);
      assert.equal(fn.LoggingConfig.LogFormat, 'JSON');
      // The asset is a local esbuild bundle: index.js (no Docker image, no node_modules).
      const asset = join(assemblyDir, `asset.${fn.Code.S3Key.replace(/\.zip$/, '')}`);
      assert.ok(existsSync(join(asset, 'index.js')), `bundle at ${asset}`);
      assert.ok(!existsSync(join(asset, 'node_modules')));
      const env = fn.Environment.Variables;
      const settings = loadSettings({ ...env, COLDSEAL_BUCKET: 'coldseal-data-bucket', COLDSEAL_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:alerts' });
      assert.deepEqual(settings.groups.map((g) => [g.name, g.rpoHours, g.sources, g.hosts]), [['db', 26, ['pg', 'files'], []], ['web', 50, ['www'], ['web-onprem']]]);
      assert.equal(settings.documentName, 'coldseal-backup-doc');
      assert.equal(settings.tagKey, 'coldseal-group');
      assert.deepEqual(env.COLDSEAL_BUCKET, { Ref: Object.keys(json.Resources).find((id) => id.startsWith('Data') && json.Resources[id].Type === 'AWS::S3::Bucket') });
    }
    template.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: SERVICE.verifier }) }, MemorySize: 1769, Timeout: 900 });
    template.hasResourceProperties('AWS::Lambda::Function', { Environment: { Variables: Match.objectLike({ POWERTOOLS_SERVICE_NAME: SERVICE.monitor }) }, MemorySize: 512, Timeout: 120 });
  });

  test('the bundle was built with forceDockerBundling off (esbuild found locally)', () => {
    const bundle = readFileSync(join(assemblyDir, `asset.${resources('AWS::Lambda::Function')[0][1].Code.S3Key.replace(/\.zip$/, '')}`, 'index.js'), 'utf8');
    assert.ok(bundle.length > 100_000, 'SDK and Powertools bundled in');
    assert.match(bundle, /coldseal Lambda settings are invalid/);
  });
});

describe('event rules and schedules', () => {
  test('each new manifest in the data bucket triggers the verifier; the bucket sends events to EventBridge', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: { bucket: { name: [{ Ref: Match.stringLikeRegexp('^Data') }] }, object: { key: [{ wildcard: 'backups/*.manifest.json' }] } },
      },
      State: 'ENABLED',
      Targets: [Match.objectLike({ RetryPolicy: { MaximumRetryAttempts: 2, MaximumEventAgeInSeconds: 7200 } })],
    });
    template.hasResourceProperties('AWS::S3::Bucket', { ObjectLockEnabled: true, NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } } });
  });

  test('the daily sweep and the monitor check run on schedules with their inputs', () => {
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'cron(0 6 * * ? *)', Targets: [Match.objectLike({ Input: JSON.stringify(SWEEP_INPUT) })] });
    template.hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: 'rate(4 hours)', Targets: [Match.objectLike({ Input: JSON.stringify(CHECK_INPUT) })] });
  });

  test('failed, timed-out and cancelled runs of the coldseal document trigger the monitor', () => {
    template.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.ssm'],
        'detail-type': ['EC2 Command Invocation Status-change Notification'],
        detail: { 'document-name': ['coldseal-backup-doc'], status: ['Failed', 'TimedOut', 'Cancelled'] },
      },
    });
    // Each rule may invoke its function, and nothing else may.
    const permissions = resources('AWS::Lambda::Permission');
    assert.equal(permissions.length, 4);
    for (const [, p] of permissions) {
      assert.equal(p.Principal, 'events.amazonaws.com');
      assert.ok(p.SourceArn['Fn::GetAtt'][0].match(/Rule|Sweep|Created|Failed|Check/), JSON.stringify(p.SourceArn));
    }
  });
});

describe('least-privilege roles', () => {
  const objectArn = (s: any) => JSON.stringify(s.Resource);
  test('the verifier reads backups, drills and public keys only, writes reports/ and state/ only', () => {
    const statements = statementsOf('VerifierRoleDefaultPolicy');
    const actions = statements.flatMap((s) => [s.Action].flat());
    assert.deepEqual([...new Set(actions)].sort(), ['kms:Decrypt', 'kms:GenerateDataKey', 'logs:CreateLogStream', 'logs:PutLogEvents', 'pricing:GetProducts', 's3:DeleteObject', 's3:GetObject', 's3:GetObjectRetention', 's3:GetObjectVersion', 's3:ListBucket', 's3:PutObject', 'sns:Publish', 'ssm:GetParameter'].sort());
    const retention = statements.find((s) => [s.Action].flat().includes('s3:GetObjectRetention'));
    assert.match(objectArn(retention), /backups\/\*/, 'reads Object Lock headers of backups (HeadObject hides them otherwise)');
    const versions = statements.filter((s) => [s.Action].flat().includes('s3:GetObjectVersion')).map(objectArn);
    assert.deepEqual(versions.map((arn) => /\/backups\/\*"/.test(arn) && !/drills|reports|state/.test(arn)), [true], `version-pinned reads of backups only: ${versions.join(' ')}`);
    const put = statements.filter((s) => [s.Action].flat().includes('s3:PutObject'));
    assert.ok(put.every((s) => /\/(reports|state\/verified|state\/alerts|state\/storage|state\/prices)\/\*/.test(objectArn(s))), objectArn(put));
    assert.ok(!put.some((s) => /backups/.test(objectArn(s))), 'never writes backups');
    const del = statements.find((s) => [s.Action].flat().includes('s3:DeleteObject'));
    assert.match(objectArn(del), /state\/alerts\/\*/);
    assert.doesNotMatch(objectArn(del), /backups|reports/);
    const params = statements.find((s) => s.Action === 'ssm:GetParameter');
    const names = JSON.stringify(params.Resource);
    for (const g of ['db', 'web']) {
      assert.ok(names.includes(`parameter/coldseal/groups/${g}/signing-public-keys`));
      assert.ok(names.includes(`parameter/coldseal/groups/${g}/recipients`));
    }
    assert.doesNotMatch(names, /signing-key"|\*/, 'never the signing private key, no wildcard');
    // "*" only for the Price List, which has no resource-level permissions.
    assert.deepEqual(statements.filter((s) => s.Resource === '*').map((s) => s.Action), ['pricing:GetProducts']);
    assert.ok(!actions.some((a) => a.includes('*')));
  });

  test('the monitor reads manifests (never ciphertext) and reports, manages state/alerts/, and reads SSM command and instance status', () => {
    const statements = statementsOf('MonitorRoleDefaultPolicy');
    const reads = statements.filter((s) => [s.Action].flat().includes('s3:GetObject')).map(objectArn).join(' ');
    assert.match(reads, /backups\/\*\.manifest\.json/);
    assert.doesNotMatch(reads, /backups\/\*"/, 'not every object under backups/');
    const star = statements.filter((s) => s.Resource === '*');
    assert.deepEqual(star.map((s) => s.Action), [['ssm:DescribeInstanceInformation', 'ssm:GetCommandInvocation', 'ssm:ListCommands']]);
    const put = statements.filter((s) => [s.Action].flat().includes('s3:PutObject'));
    assert.equal(put.length, 1);
    assert.match(objectArn(put[0]), /state\/alerts\/\*/);
    assert.doesNotMatch(JSON.stringify(statements), /ssm:GetParameter|ssm:SendCommand|cloudwatch:PutMetricData/);
  });

  test('no role uses an AWS managed policy', () => {
    for (const [, role] of resources('AWS::IAM::Role')) assert.equal(role.ManagedPolicyArns, undefined);
  });
});

describe('alarms and dashboard', () => {
  test('the heartbeat alarm treats missing data as breaching and needs two silent periods', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: METRIC.heartbeat,
      Namespace: 'Coldseal',
      Dimensions: [{ Name: 'service', Value: SERVICE.monitor }],
      Statistic: 'Sum',
      Period: 4 * 3600,
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 1,
      EvaluationPeriods: 2,
      DatapointsToAlarm: 2,
      TreatMissingData: 'breaching',
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^Alerts') }],
      OKActions: [{ Ref: Match.stringLikeRegexp('^Alerts') }],
    });
  });

  test('errors of either Lambda and per-group freshness and verification alarms go to the alert topic', () => {
    const alarms = resources('AWS::CloudWatch::Alarm');
    assert.equal(alarms.length, 3 + 3 * GROUPS.length);
    for (const [, a] of alarms) {
      assert.deepEqual(a.AlarmActions, [{ Ref: Object.keys(json.Resources).find((id) => json.Resources[id].Type === 'AWS::SNS::Topic') }]);
      assert.match(a.AlarmDescription, /Do: /, 'every alarm says what to do');
    }
    assert.equal(alarms.filter(([, a]) => a.MetricName === 'Errors' && a.Namespace === 'AWS/Lambda').length, 2);
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: METRIC.groupMaxBackupAgeHours, Dimensions: Match.arrayWith([{ Name: 'Group', Value: 'web' }]), Threshold: 50, ComparisonOperator: 'GreaterThanThreshold' });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: METRIC.groupSourcesOverRpo, Dimensions: Match.arrayWith([{ Name: 'Group', Value: 'db' }]), Threshold: 1 });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: METRIC.groupFailedVerifications, Dimensions: Match.arrayWith([{ Name: 'Group', Value: 'db' }]) });
  });

  test('the dashboard graphs size and age per source of each group by SEARCH', () => {
    const [, dashboard] = resources('AWS::CloudWatch::Dashboard')[0];
    const body = JSON.stringify(dashboard.DashboardBody);
    for (const g of ['db', 'web']) {
      for (const metric of [METRIC.backupAgeHours, METRIC.backupSizeBytes]) {
        assert.ok(body.includes(`MetricName=\\\\\\"${metric}\\\\\\" Group=\\\\\\"${g}\\\\\\"`), `${metric} of ${g}`);
      }
    }
  });
});

describe('checks', () => {
  test('cdk-nag AwsSolutions: nothing unacknowledged', () => {
    // An unacknowledged error makes app.synth() in before() throw; warnings would land in the report.
    assert.ok(assemblyDir);
    const report = join(assemblyDir, 'validation-report.json');
    if (existsSync(report)) {
      const parsed = JSON.parse(readFileSync(report, 'utf8')) as { pluginReports: { violations?: unknown[] }[] };
      assert.deepEqual(parsed.pluginReports.flatMap((r) => r.violations ?? []), []);
    }
  });

  test('cfn-lint passes on the synthesized template', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'coldseal-lambdas-')), 'template.json');
    writeFileSync(file, readFileSync(templateFile));
    const lint = spawnSync('cfn-lint', ['--format', 'parseable', file], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(lint.error, undefined, `cfn-lint could not run: ${String(lint.error)}`);
    assert.equal(lint.status, 0, `cfn-lint:\n${lint.stdout}${lint.stderr}`);
  });
});
