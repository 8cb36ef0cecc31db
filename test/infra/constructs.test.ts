/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { App, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Alerts } from '../../infra/lib/alerts';
import { BackupSchedules } from '../../infra/lib/schedules';
import { DataVault } from '../../infra/lib/vault';
import { Coldseal } from '../../infra/lib/coldseal';
import { ColdsealStack } from '../../infra/lib/stack';
import { retentionWithDefaults, type RetentionSettings } from '../../infra/lib/settings';
import { EXAMPLE_RECIPIENT, EXAMPLE_SIGNING, standInExecutables } from './fixtures';
import type { AgentExecutable } from '../../format/agent-executables';

/** Each construct on its own, with props other than the defaults: what it builds follows its props. */
const stack = () => new Stack(new App({ builtinCloudFormationValidation: false }), 'S');

describe('DataVault', () => {
  test('lifecycle rules follow a custom retention; the removal policy can be overridden', () => {
    const retention: RetentionSettings = {
      daily: { expireAfterDays: 8, lock: { mode: 'GOVERNANCE', days: 7 } },
      weekly: { expireAfterDays: 60, lock: { mode: 'GOVERNANCE', days: 30 } },
      monthly: { expireAfterDays: 800, lock: { mode: 'COMPLIANCE', days: 365 }, transitions: [{ storageClass: 'GLACIER', afterDays: 10 }, { storageClass: 'DEEP_ARCHIVE', afterDays: 100 }] },
      yearly: { expireAfterDays: 3650, lock: { mode: 'COMPLIANCE', days: 3650 }, transitions: [{ storageClass: 'DEEP_ARCHIVE', afterDays: 0 }] },
    };
    const s = stack();
    new DataVault(s, 'V', { retention, removalPolicy: RemovalPolicy.DESTROY, reportsExpireAfterDays: 30 });
    const template = Template.fromStack(s);
    const bucket = Object.values(template.findResources('AWS::S3::Bucket', { Properties: { ObjectLockEnabled: true } }))[0] as any;
    assert.equal(bucket.DeletionPolicy, 'Delete');
    const rules = bucket.Properties.LifecycleConfiguration.Rules as any[];
    assert.deepEqual(
      rules.find((r) => r.Prefix === 'backups/monthly/'),
      {
        Id: 'tier-monthly',
        Prefix: 'backups/monthly/',
        Status: 'Enabled',
        ExpirationInDays: 800,
        NoncurrentVersionExpiration: { NoncurrentDays: 1 },
        Transitions: [
          { StorageClass: 'GLACIER', TransitionInDays: 10 },
          { StorageClass: 'DEEP_ARCHIVE', TransitionInDays: 100 },
        ],
      },
    );
    assert.equal(rules.find((r) => r.Prefix === 'backups/daily/').ExpirationInDays, 8);
    assert.equal(rules.find((r) => r.Prefix === 'reports/').ExpirationInDays, 30);
  });

  test('incomplete uploads are aborted only after the longest run, with a day to spare; a shorter abort age is refused naming the prop', () => {
    const abortDays = (props: Partial<ConstructorParameters<typeof DataVault>[2]>) => {
      const s = stack();
      new DataVault(s, 'V', { retention: retentionWithDefaults(), ...props });
      const bucket = Object.values(Template.fromStack(s).findResources('AWS::S3::Bucket', { Properties: { ObjectLockEnabled: true } }))[0] as any;
      return (bucket.Properties.LifecycleConfiguration.Rules as any[]).find((r) => r.Id === 'cleanup').AbortIncompleteMultipartUpload.DaysAfterInitiation;
    };
    assert.equal(abortDays({}), 3, '48 h, the longest run the document allows, and a day');
    assert.equal(abortDays({ longestRun: Duration.hours(4) }), 2);
    assert.equal(abortDays({ longestRun: Duration.hours(25) }), 3);
    assert.equal(abortDays({ longestRun: Duration.hours(48), abortIncompleteUploadsAfterDays: 7 }), 7);
    assert.throws(() => abortDays({ longestRun: Duration.hours(48), abortIncompleteUploadsAfterDays: 2 }), /DataVault props\.abortIncompleteUploadsAfterDays \(2 days\) must be at least 3 days: a run may last props\.longestRun \(48 hours\)/);
    assert.throws(() => abortDays({ longestRun: Duration.hours(49) }), /DataVault props\.longestRun \(49 hours\) is longer than the 48 hours/);
  });

  test('a Glacier stay under 90 days is refused in the constructor', () => {
    const retention = {
      daily: { expireAfterDays: 35, lock: { mode: 'GOVERNANCE', days: 30 } },
      weekly: { expireAfterDays: 90, lock: { mode: 'GOVERNANCE', days: 84 } },
      monthly: { expireAfterDays: 100, lock: { mode: 'GOVERNANCE', days: 30 }, transitions: [{ storageClass: 'GLACIER', afterDays: 30 }] },
      yearly: { expireAfterDays: 400, lock: { mode: 'GOVERNANCE', days: 365 } },
    } as const satisfies RetentionSettings;
    assert.throws(() => new DataVault(stack(), 'V', { retention }), /DataVault props\.retention: monthly\.expireAfterDays: monthly backups would stay 70 days in GLACIER/);
  });
});

describe('Alerts', () => {
  test('without emails: an encrypted topic and no subscription', () => {
    const s = stack();
    new Alerts(s, 'A');
    const template = Template.fromStack(s);
    template.resourceCountIs('AWS::SNS::Subscription', 0);
    template.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: { Statement: Match.arrayWith([Match.objectLike({ Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: ['kms:Decrypt', 'kms:GenerateDataKey*'] })]) },
    });
  });
});

describe('BackupSchedules', () => {
  test("each group's delivery timeout covers its planned hosts' waves; a spread SSM cannot wait for is refused naming the prop", () => {
    const s = stack();
    const document = new ssm.CfnDocument(s, 'D', { documentType: 'Command', content: { schemaVersion: '2.2', mainSteps: [] } });
    const schedules = new BackupSchedules(s, 'B', {
      document,
      backups: [
        { group: 'one', cron: 'cron(0 2 * * ? *)', timeZone: 'UTC', maxHosts: 1 },
        { group: 'ten', cron: 'cron(0 2 * * ? *)', timeZone: 'UTC', maxHosts: 10 },
        { group: 'fifty', cron: 'cron(0 2 * * ? *)', timeZone: 'UTC', maxHosts: 50 },
        { group: 'many', cron: 'cron(0 2 * * ? *)', timeZone: 'UTC', maxHosts: 500 },
      ],
      hostTagKey: 'coldseal-group',
    });
    const timeoutOf = (group: string) => {
      const input = Stack.of(s).resolve(schedules.schedules.get(group)!.target) as { input: { 'Fn::Join': [string, unknown[]] } };
      return JSON.parse(input.input['Fn::Join'][1].map((p) => (typeof p === 'string' ? p : 'X')).join('')).TimeoutSeconds as number;
    };
    assert.deepEqual(['one', 'ten', 'fifty', 'many'].map(timeoutOf), [3600, 3600, 17 * 3600, 197 * 3600]);
    assert.throws(
      () =>
        new BackupSchedules(stack(), 'B', {
          document,
          backups: [{ group: 'many', cron: 'cron(0 2 * * ? *)', timeZone: 'UTC', maxHosts: 500 }],
          hostTagKey: 'k',
          executionTimeout: Duration.hours(48),
        }),
      /BackupSchedules props\.backups\[0\]\.maxHosts: 500 hosts, 10 at a time, take 50 waves/,
    );
  });

  test('concurrency, error threshold, timeouts and log retention follow the props', () => {
    const s = stack();
    const document = new ssm.CfnDocument(s, 'D', { documentType: 'Command', content: { schemaVersion: '2.2', mainSteps: [] } });
    new BackupSchedules(s, 'B', {
      document,
      backups: [{ group: 'db', cron: 'cron(0 2 * * ? *)', timeZone: 'Asia/Tokyo', maxHosts: 40 }],
      hostTagKey: 'backup-group',
      maxConcurrency: '25%',
      maxErrors: '1',
      executionTimeout: Duration.hours(1),
      deliveryTimeout: Duration.minutes(10),
      logRetention: logs.RetentionDays.ONE_YEAR,
    });
    const template = Template.fromStack(s);
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 365 });
    const schedule = Object.values(template.findResources('AWS::Scheduler::Schedule'))[0] as any;
    assert.equal(schedule.Properties.ScheduleExpressionTimezone, 'Asia/Tokyo');
    const input = JSON.parse((schedule.Properties.Target.Input['Fn::Join'][1] as unknown[]).map((p) => (typeof p === 'string' ? p : 'X')).join(''));
    assert.equal(input.MaxConcurrency, '25%');
    assert.equal(input.MaxErrors, '1');
    // 25% of 40 hosts is four waves of up to an hour: three before the last hosts' turn, then their 10 minutes.
    assert.equal(input.TimeoutSeconds, 3 * 3600 + 600);
    assert.deepEqual(input.Parameters.executionTimeout, ['3600']);
    assert.deepEqual(input.Targets, [{ Key: 'tag:backup-group', Values: ['db'] }]);
    assert.throws(
      () => new BackupSchedules(stack(), 'B', { document, backups: [{ group: 'db', cron: 'cron(0 2 * * ? *)', timeZone: 'UTC' }], hostTagKey: 'k', deliveryTimeout: Duration.seconds(5) }),
      /BackupSchedules props\.deliveryTimeout must be 30 s to 30 days/,
    );
  });
});

describe('Coldseal in a user app', () => {
  test('secure defaults: retained vault, governance locks, no drill, an instance profile per group', () => {
    const s = stack();
    const coldseal = new Coldseal(s, 'Backups', {
      groups: [{ name: 'db', schedule: 'cron(30 1 * * ? *)', signingPublicKeys: EXAMPLE_SIGNING, sources: [{ name: 'pg', type: 'postgres' }] }],
      recipients: EXAMPLE_RECIPIENT,
      agentExecutables: standInExecutables(),
    });
    assert.equal(coldseal.retention.daily.lock.mode, 'GOVERNANCE');
    assert.equal(coldseal.rpo.toHours(), 26);
    assert.equal(coldseal.drillAccess, undefined);
    assert.equal(coldseal.groups[0].parameters.config, '/coldseal/groups/db/config');
    const template = Template.fromStack(s);
    template.resourceCountIs('AWS::Scheduler::Schedule', 1);
    template.resourceCountIs('AWS::IAM::InstanceProfile', 1);
    for (const bucket of Object.values(template.findResources('AWS::S3::Bucket')) as any[]) assert.equal(bucket.DeletionPolicy, 'Retain');
  });

  test('group names that would share output ids are refused', () => {
    assert.throws(
      () =>
        new ColdsealStack(new App(), 'S', {
          coldseal: {
            groups: ['a-b', 'a_b'].map((name) => ({ name, schedule: 'cron(30 1 * * ? *)', signingPublicKeys: EXAMPLE_SIGNING, sources: [{ name: 'pg', type: 'postgres' }] })),
            recipients: EXAMPLE_RECIPIENT,
            agentExecutables: standInExecutables(),
          },
        }),
      /"a-b" and "a_b" would share output names/,
    );
  });
});

describe('AgentDelivery', () => {
  const props = (agentExecutables: readonly AgentExecutable[]) => ({
    groups: [{ name: 'db', schedule: 'cron(30 1 * * ? *)', signingPublicKeys: EXAMPLE_SIGNING, sources: [{ name: 'pg' as const, type: 'postgres' as const }] }],
    recipients: EXAMPLE_RECIPIENT,
    agentExecutables,
  });
  const build = (agentExecutables: readonly AgentExecutable[]) => new Coldseal(stack(), 'C', props(agentExecutables));
  const [x64, arm64] = standInExecutables();
  /** A copy of the x64 stand-in's files somewhere else, with `data` as its .gz. */
  const otherX64 = (data: Buffer): AgentExecutable => {
    const dir = mkdtempSync(join(tmpdir(), 'coldseal-infra-'));
    const compressedPath = join(dir, 'coldseal-agent-linux-x64.gz');
    writeFileSync(compressedPath, data);
    return { ...x64, compressedPath, compressedSha256: createHash('sha256').update(data).digest('hex'), compressedBytes: data.length };
  };

  test('exposes each architecture\'s asset and SHA-256s, in AGENT_PLATFORMS order whatever the order given', () => {
    const coldseal = build([arm64, x64]);
    assert.deepEqual(
      coldseal.delivery.executables.map((e) => [e.arch, e.sha256, e.compressedSha256, e.downloadPath]),
      [
        ['x64', x64.sha256, x64.compressedSha256, '/var/lib/coldseal/download/coldseal-agent-linux-x64.gz'],
        ['arm64', arm64.sha256, arm64.compressedSha256, '/var/lib/coldseal/download/coldseal-agent-linux-arm64.gz'],
      ],
    );
    for (const e of coldseal.delivery.executables) assert.match(e.asset.s3ObjectKey, /\.gz$/);
  });

  test('bad executables throw, naming the prop', () => {
    assert.throws(() => build([x64]), /AgentDelivery props\.agentExecutables: there is no executable for arm64 \(Linux aarch64 \(Graviton\)\); every host architecture needs one/);
    assert.throws(() => build([x64, arm64, x64]), /AgentDelivery props\.agentExecutables: x64 is given 2 times/);
    assert.throws(() => build([x64, { ...arm64, arch: 'riscv64' as never }]), /AgentDelivery props\.agentExecutables\[1\]\.arch "riscv64" is not one of x64, arm64/);
    assert.throws(() => build([{ ...x64, sha256: 'abc' }, arm64]), /AgentDelivery props\.agentExecutables\[0\]\.sha256 "abc" is not a SHA-256 hex digest/);
    assert.throws(() => build([x64, { ...arm64, compressedPath: '/nonexistent/coldseal-agent-linux-arm64.gz' }]), /AgentDelivery props\.agentExecutables\[1\] \(arm64\)\.compressedPath: \/nonexistent\/coldseal-agent-linux-arm64\.gz does not exist \(run `npm run build:agent`\)/);
    assert.throws(() => build([{ ...x64, compressedPath: arm64.compressedPath, compressedSha256: arm64.compressedSha256 }, arm64]), /AgentDelivery props\.agentExecutables\[0\] \(x64\)\.compressedPath: .*coldseal-agent-linux-arm64\.gz is not a coldseal-agent-linux-x64\.gz/);
    assert.throws(() => build([{ ...x64, compressedSha256: arm64.compressedSha256 }, arm64]), new RegExp(`AgentDelivery props\\.agentExecutables\\[0\\] \\(x64\\)\\.compressedSha256: .* has SHA-256 ${x64.compressedSha256}, not ${arm64.compressedSha256}`));
    assert.throws(() => build([{ ...x64, sha256: arm64.sha256 }, arm64]), new RegExp(`AgentDelivery props\\.agentExecutables\\[0\\] \\(x64\\)\\.sha256: .* decompresses to an executable of SHA-256 ${x64.sha256}, not ${arm64.sha256}`));
    assert.throws(() => build([otherX64(Buffer.from('not gzip')), arm64]), /AgentDelivery props\.agentExecutables\[0\] \(x64\)\.compressedPath: .* is not gzip data/);
    assert.throws(() => build([otherX64(gzipSync('another executable')), arm64]), /AgentDelivery props\.agentExecutables\[0\] \(x64\)\.sha256: .* decompresses to an executable of SHA-256/);
    assert.ok(build([otherX64(gzipSync(readFileSync(x64.path))), arm64]), 'the same executable from another file is fine');
  });
});
