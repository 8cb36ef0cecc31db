/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates and contexts are untyped JSON */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validations, type App } from 'aws-cdk-lib';
import { Match, Template as CdkTemplate } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { agentConfigSchema } from '../../format/agent-config';
import { cachedExecutableName, type AgentExecutable } from '../../format/agent-executables';
import { joinConfig, sourcesReferenceOf } from '../../format/config-parameter';
import { DRILLS_PREFIX, REPORTS_PREFIX, STATE_PREFIX, TIERS, groupPrefix, tierPrefix } from '../../format/layout';
import { deploymentInfoSchema, deploymentParameter, groupParameters } from '../../format/parameters';
import { DEFAULT_MAX_HOSTS, MAX_EXECUTION_TIMEOUT_SECONDS, runSpread } from '../../format/run-document';
import { buildApp } from '../../infra/lib/build-app';
import { resolveContext } from '../../infra/lib/config';
import { buildAgentExecutablesSync } from '../../scripts/build-agent';
import type { RetentionSettings } from '../../infra/lib/settings';
import { ROOT, standInExecutables, twoGroupContext } from './fixtures';
import { PermissionModel } from './permissions';
import { allows, bucketNameOf, denies, render, resourcesOfType, type Statement, type Template } from './template-tools';

/**
 * One synthesis (two groups, drill, cdk-nag on, CloudFormation validation off for speed; the gate
 * test runs it) shared by every assertion in this file.
 */
let template: Template;
let assertions: CdkTemplate;
let retention: RetentionSettings;
let assemblyDir: string;
let app: App;
let dataBucket: string;
let dataKey: string;
let logBucket: string;
let executables: AgentExecutable[];
let stackArtifactId: string;

const sha256OfFile = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

before(async () => {
  const context = twoGroupContext();
  retention = (await resolveContext(context, ROOT)).retention as RetentionSettings;
  // The real executables: the document must carry their SHA-256s (built once, reused after).
  executables = buildAgentExecutablesSync();
  const built = await buildApp({ context, baseDir: ROOT, agentExecutables: executables, appProps: { builtinCloudFormationValidation: false } });
  app = built.app;
  const stack = built.stack;
  stackArtifactId = stack.artifactId;
  const assembly = app.synth();
  assemblyDir = assembly.directory;
  template = assembly.getStackByName(stack.stackName).template as Template;
  assertions = CdkTemplate.fromJSON(template);
  dataBucket = resourcesOfType(template, 'AWS::S3::Bucket').find(([, r]) => r.Properties.ObjectLockEnabled)![0];
  logBucket = resourcesOfType(template, 'AWS::S3::Bucket').find(([id]) => id !== dataBucket)![0];
  dataKey = template.Resources[dataBucket].Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.KMSMasterKeyID['Fn::GetAtt'][0];
});

describe('cdk-nag', () => {
  test('AwsSolutions finds nothing left unacknowledged', () => {
    // Synth throws on an unacknowledged error; warnings would be in the report.
    const report = JSON.parse(readFileSync(join(assemblyDir, 'validation-report.json'), 'utf8')) as { pluginReports: { violations?: unknown[] }[] };
    assert.deepEqual(report.pluginReports.flatMap((r) => r.violations ?? []), []);
  });

  test('every acknowledgement says why in words', () => {
    const acknowledged = new Map<string, string>();
    for (const construct of app.node.findAll()) {
      for (const entry of construct.node.metadata.filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)) {
        for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) acknowledged.set(`${construct.node.path} ${id}`, reason);
      }
    }
    assert.ok(acknowledged.size >= 5);
    for (const [id, reason] of acknowledged) {
      assert.match(id, /AwsSolutions-(IAM4|IAM5|S1|SQS3)/);
      assert.ok(reason.split(/\s+/).length >= 12, `${id}: "${reason}" is not a reason`);
    }
  });

  test('the checks do run: an unprotected bucket added to the stack fails synth', async () => {
    const built = await buildApp({ context: twoGroupContext(), baseDir: ROOT, agentExecutables: standInExecutables(), appProps: { builtinCloudFormationValidation: false } });
    new s3.Bucket(built.stack, 'Careless');
    let message = '';
    assert.throws(() => {
      try {
        built.app.synth();
      } catch (error) {
        message = (error as Error).message;
        throw error;
      }
    }, /Validation failed/);
    const reportFile = /found in: (\S+validation-report\.json)/.exec(message)?.[1];
    assert.ok(reportFile, message);
    const report = readFileSync(reportFile, 'utf8');
    assert.match(report, /AwsSolutions-S1/);
    assert.match(report, /Careless/);
  });
});

describe('data vault', () => {
  test('the data bucket is versioned, Object Lock enabled, SSE-KMS with the stack key, private, logged, retained', () => {
    assertions.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      Properties: Match.objectLike({
        ObjectLockEnabled: true,
        VersioningConfiguration: { Status: 'Enabled' },
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [
            { BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [dataKey, 'Arn'] } } },
          ],
        },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
        LoggingConfiguration: { DestinationBucketName: { Ref: logBucket }, LogFilePrefix: 'data-bucket/' },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        NotificationConfiguration: { EventBridgeConfiguration: { EventBridgeEnabled: true } },
      }),
    });
    // No bucket-wide default retention: the agent sets each tier's own.
    assert.equal(template.Resources[dataBucket].Properties.ObjectLockConfiguration, undefined);
    assert.equal(template.Resources[logBucket].DeletionPolicy, 'Retain');
  });

  test('the key rotates and is retained', () => {
    assertions.hasResource('AWS::KMS::Key', { DeletionPolicy: 'Retain', Properties: Match.objectLike({ EnableKeyRotation: true }) });
    assert.equal(template.Resources[dataKey].Properties.EnableKeyRotation, true);
  });

  test('one lifecycle rule per tier prefix, matching the configured retention', () => {
    const rules = template.Resources[dataBucket].Properties.LifecycleConfiguration.Rules as any[];
    for (const tier of TIERS) {
      const rule = rules.find((r) => r.Prefix === tierPrefix(tier));
      assert.ok(rule, `no rule for ${tier}`);
      assert.equal(rule.Status, 'Enabled');
      assert.equal(rule.ExpirationInDays, retention[tier].expireAfterDays);
      assert.deepEqual(rule.NoncurrentVersionExpiration, { NoncurrentDays: 1 });
      assert.deepEqual(
        rule.Transitions ?? [],
        (retention[tier].transitions ?? []).map((t) => ({ StorageClass: t.storageClass, TransitionInDays: t.afterDays })),
      );
    }
    const monthly = rules.find((r) => r.Prefix === 'backups/monthly/');
    assert.deepEqual(monthly.Transitions, [{ StorageClass: 'GLACIER', TransitionInDays: 30 }]);
    assert.equal(monthly.ExpirationInDays, 400);
    assert.deepEqual(rules.find((r) => r.Prefix === 'backups/yearly/').Transitions, [{ StorageClass: 'DEEP_ARCHIVE', TransitionInDays: 1 }]);
    const cleanup = rules.find((r) => r.Id === 'cleanup');
    // A run may last the document's longest execution timeout (48 h) with its uploads open to the
    // end; S3 aborts no earlier than DaysAfterInitiation days after the upload began.
    assert.ok(cleanup.AbortIncompleteMultipartUpload.DaysAfterInitiation * 86_400 > MAX_EXECUTION_TIMEOUT_SECONDS, 'the abort age exceeds the longest run the document allows');
    assert.deepEqual(cleanup.AbortIncompleteMultipartUpload, { DaysAfterInitiation: 3 });
    assert.equal(cleanup.ExpiredObjectDeleteMarker, true);
    assert.equal(cleanup.Prefix, undefined, 'cleanup covers the whole bucket');
    assert.ok(rules.some((r) => r.Prefix === DRILLS_PREFIX && r.ExpirationInDays === 400));
    assert.ok(rules.some((r) => r.Prefix === REPORTS_PREFIX && r.ExpirationInDays === 400));
    const state = rules.find((r) => r.Prefix === STATE_PREFIX);
    assert.deepEqual(state.NoncurrentVersionExpiration, { NoncurrentDays: 1 }, 'old versions of the Lambdas state do not pile up');
    assert.equal(state.ExpirationInDays, undefined, 'current state is never expired');
    assert.equal(template.Resources[dataBucket].Properties.LifecycleConfiguration.TransitionDefaultMinimumObjectSize, 'all_storage_classes_128K');
  });

  test('the bucket policy denies non-TLS requests and writes with another encryption or key', () => {
    const [, policy] = resourcesOfType(template, 'AWS::S3::BucketPolicy').find(([, r]) => r.Properties.Bucket.Ref === dataBucket)!;
    const statements = render(template, policy.Properties.PolicyDocument.Statement) as Statement[];
    const objectArn = `arn:aws:s3:::${bucketNameOf(dataBucket)}/backups/daily/db/h/pg/x`;
    const tls = statements.find((s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false');
    assert.ok(tls, 'no TLS-only statement');
    assert.equal(tls.Action, 's3:*');
    assert.deepEqual(new Set(tls.Resource), new Set([`arn:aws:s3:::${bucketNameOf(dataBucket)}`, `arn:aws:s3:::${bucketNameOf(dataBucket)}/*`]));
    const sse = statements.find((s) => s.Sid === 'DenyOtherEncryption')!;
    assert.equal(sse.Effect, 'Deny');
    // Fires only when the header is there and wrong: IfExists in a Deny would refuse UploadPart (permissions.test.ts proves it).
    assert.deepEqual(sse.Condition, { Null: { 's3:x-amz-server-side-encryption': 'false' }, StringNotEquals: { 's3:x-amz-server-side-encryption': 'aws:kms' } });
    assert.ok([sse.Resource].flat().some((r) => objectArn.startsWith(r.replace('*', ''))));
    const key = statements.find((s) => s.Sid === 'DenyOtherKmsKey')!;
    assert.deepEqual(key.Condition, {
      Null: { 's3:x-amz-server-side-encryption-aws-kms-key-id': 'false' },
      StringNotEquals: { 's3:x-amz-server-side-encryption-aws-kms-key-id': `arn:aws:kms:us-east-1:123456789012:key/${dataKey}` },
    });
  });

  test('the access-log bucket takes logs from the data bucket only, by bucket policy (no ACLs)', () => {
    const [, policy] = resourcesOfType(template, 'AWS::S3::BucketPolicy').find(([, r]) => r.Properties.Bucket.Ref === logBucket)!;
    const statements = render(template, policy.Properties.PolicyDocument.Statement) as any[];
    const logging = statements.find((s) => s.Principal?.Service === 'logging.s3.amazonaws.com');
    assert.deepEqual(logging.Condition.ArnLike, { 'aws:SourceArn': `arn:aws:s3:::${bucketNameOf(dataBucket)}` });
    assert.equal(template.Resources[logBucket].Properties.AccessControl, undefined);
    assert.equal(template.Resources[logBucket].Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, 'AES256');
  });
});

describe('alerts', () => {
  test('the topic is KMS-encrypted with a rotating key, SSL-only, with the configured email subscription', () => {
    const [topicId, topic] = resourcesOfType(template, 'AWS::SNS::Topic')[0];
    const keyId = topic.Properties.KmsMasterKeyId['Fn::GetAtt'][0];
    assert.equal(template.Resources[keyId].Properties.EnableKeyRotation, true);
    assert.notEqual(keyId, dataKey);
    assertions.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com', TopicArn: { Ref: topicId } });
    const [, policy] = resourcesOfType(template, 'AWS::SNS::TopicPolicy')[0];
    const statements = policy.Properties.PolicyDocument.Statement as any[];
    assert.ok(statements.some((s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false'));
  });
});

describe('agent delivery', () => {
  test('the SSM document is a schema 2.2 Command document with the run parameters and defaults for a scheduled run', () => {
    const [, doc] = resourcesOfType(template, 'AWS::SSM::Document')[0];
    assert.equal(doc.Properties.DocumentType, 'Command');
    assert.equal(doc.Properties.DocumentFormat, 'JSON');
    const content = doc.Properties.Content;
    assert.equal(content.schemaVersion, '2.2');
    assert.deepEqual(Object.keys(content.parameters).sort(), ['action', 'executionTimeout', 'group', 'sources', 'tier']);
    assert.equal(content.parameters.tier.default, 'auto');
    assert.equal(content.parameters.sources.default, 'all');
    assert.equal(content.parameters.action.default, 'backup');
    assert.equal(content.parameters.group.default, undefined, 'a run must name its group');
  });

  test('the document downloads both executables with the SSM Agent (aws:downloadContent from the assets), then runs the shell step', () => {
    const content = resourcesOfType(template, 'AWS::SSM::Document')[0][1].Properties.Content;
    const steps = render(template, content.mainSteps) as { action: string; name: string; precondition: unknown; inputs: Record<string, string> }[];
    assert.deepEqual(
      steps.map((s) => [s.action, s.name]),
      [
        ['aws:downloadContent', 'downloadAgentX64'],
        ['aws:downloadContent', 'downloadAgentArm64'],
        ['aws:runShellScript', 'runColdsealAgent'],
      ],
    );
    for (const step of steps) assert.deepEqual(step.precondition, { StringEquals: ['platformType', 'Linux'] });
    // Each download is the asset of that architecture's .gz: the staged file (what `cdk deploy`
    // uploads to that key) is the real one, byte for byte.
    const manifest = JSON.parse(readFileSync(join(assemblyDir, `${stackArtifactId}.assets.json`), 'utf8')) as { files: Record<string, { source: { path: string }; destinations: Record<string, { bucketName: string; objectKey: string }> }> };
    for (const [index, e] of executables.entries()) {
      const inputs = steps[index].inputs;
      assert.deepEqual(Object.keys(inputs).sort(), ['destinationPath', 'onFailure', 'sourceInfo', 'sourceType']);
      assert.equal(inputs.sourceType, 'S3');
      assert.equal(inputs.onFailure, 'exit');
      assert.equal(inputs.destinationPath, `/var/lib/coldseal/download/coldseal-agent-linux-${e.arch}.gz`);
      const { path } = JSON.parse(inputs.sourceInfo) as { path: string };
      const url = /^https:\/\/s3\.us-east-1\.amazonaws\.com\/(cdk-[a-z0-9]+-assets-123456789012-us-east-1)\/([0-9a-f]{64}\.gz)$/.exec(path);
      assert.ok(url, path);
      const file = Object.values(manifest.files).find((f) => Object.values(f.destinations).some((d) => d.objectKey === url[2]));
      assert.ok(file, `the assets manifest publishes ${url[2]}`);
      assert.equal(sha256OfFile(join(assemblyDir, file.source.path)), e.compressedSha256, `${url[2]} is dist/agent's ${e.arch} .gz`);
    }
    assert.equal(steps[2].inputs.timeoutSeconds, '{{ executionTimeout }}');
  });

  test("the shell step checks the real files' SHA-256s, needs no Node and no AWS CLI, and runs the executable", () => {
    const content = resourcesOfType(template, 'AWS::SSM::Document')[0][1].Properties.Content;
    const script = (render(template, content.mainSteps[2].inputs.runCommand) as string[]).join('\n');
    const x64 = executables.find((e) => e.arch === 'x64')!;
    const arm64 = executables.find((e) => e.arch === 'arm64')!;
    for (const [machines, e] of [['x86_64', x64], ['aarch64 | arm64', arm64]] as const) {
      assert.ok(script.includes(`  ${machines}) ARCH=${e.arch}; SHA256=${e.sha256}; COMPRESSED_SHA256=${e.compressedSha256}; AGENT_FILE=${cachedExecutableName(e.sha256)} ;;`), `${e.arch}: ${machines}`);
      assert.equal(sha256OfFile(e.path), e.sha256);
      assert.equal(sha256OfFile(e.compressedPath), e.compressedSha256);
    }
    assert.match(script, /DOWNLOADS="\$\{COLDSEAL_DOWNLOADS:-\/var\/lib\/coldseal\/download\}"/);
    assert.doesNotMatch(script, /\bnode\b|\baws\s|s3:\/\//, 'no Node.js, no AWS CLI');
    assert.match(script, /export AWS_REGION='us-east-1' AWS_DEFAULT_REGION='us-east-1'/);
    assert.match(script, /--config-parameter "\/coldseal\/groups\/\$GROUP\/config"/);
    assert.match(script, /\nexec "\$AGENT" "\$@"$/);
  });

  test('each group gets its configuration (valid for the agent), recipients and signing public keys, and nothing else', () => {
    const params = resourcesOfType(template, 'AWS::SSM::Parameter').map(([, r]) => r.Properties);
    const partNames: string[] = [];
    for (const group of ['db', 'web']) {
      const names = groupParameters(group);
      const config = params.find((p) => p.Name === names.config);
      assert.equal(config.Type, 'String');
      // The head and the parts that hold its sources, joined as the agent joins them (format/config-parameter.ts).
      const head = JSON.parse(render(template, config.Value)) as Record<string, unknown>;
      const reference = sourcesReferenceOf(head)!;
      partNames.push(...reference.parameters);
      const joined = joinConfig(head, reference, reference.parameters.map((n) => params.find((p) => p.Name === n)?.Value ?? null));
      assert.ok('config' in joined, JSON.stringify(joined));
      const parsed = agentConfigSchema.parse(joined.config);
      assert.equal(config.Tier, 'Standard');
      assert.equal(parsed.group, group);
      assert.equal(parsed.bucket, bucketNameOf(dataBucket));
      assert.equal(parsed.upload.kmsKeyId, `arn:aws:kms:us-east-1:123456789012:key/${dataKey}`);
      assert.deepEqual(parsed.recipients, { parameter: names.recipients });
      assert.deepEqual(parsed.signingKey, { parameter: names.signingKey });
      assert.match(parsed.alertTopicArn ?? '', /^arn:aws:sns:/);
      for (const tier of TIERS) assert.deepEqual(parsed.objectLock[tier], { mode: retention[tier].lock.mode, days: retention[tier].lock.days });
      assert.equal(parsed.calendar.timeZone, group === 'db' ? 'Europe/Paris' : 'America/New_York');
      assert.match(params.find((p) => p.Name === names.recipients).Value, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
      assert.match(params.find((p) => p.Name === names.signingPublicKeys).Value, /^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
      assert.equal(params.find((p) => p.Name === names.signingKey), undefined, "the signing private key is the user's to publish, never the stack's");
    }
    assert.equal(partNames.length, 2, 'two small groups: one part each');
    assert.deepEqual(params.map((p) => p.Name).filter((n) => n !== deploymentParameter() && !partNames.includes(n)).length, 6);
  });

  test('no private key material anywhere in the template or the assembly', () => {
    const text = JSON.stringify(template);
    assert.doesNotMatch(text, /PRIVATE KEY/);
    assert.doesNotMatch(text, /SecureString/);
    for (const file of readdirSync(assemblyDir)) {
      const path = join(assemblyDir, file);
      if (file.endsWith('.json')) assert.doesNotMatch(readFileSync(path, 'utf8'), /BEGIN PGP PRIVATE KEY/, file);
    }
  });
});

describe('deployment information', () => {
  test('one String parameter tells coldseal trigger the document (by Ref), tag keys, groups and log group', () => {
    const [, parameter] = resourcesOfType(template, 'AWS::SSM::Parameter').find(([, r]) => r.Properties.Name === deploymentParameter())!;
    assert.equal(parameter.Properties.Type, 'String');
    const [docId] = resourcesOfType(template, 'AWS::SSM::Document')[0];
    const [logGroupId] = resourcesOfType(template, 'AWS::Logs::LogGroup').find(([id]) => id.includes('CommandOutput'))!;
    // The document's name is generated at deploy time: the value must refer to it, not copy it.
    assert.ok(JSON.stringify(parameter.Properties.Value).includes(JSON.stringify({ Ref: docId })));
    const info = deploymentInfoSchema.parse(JSON.parse(render(template, parameter.Properties.Value)));
    assert.deepEqual(info, {
      formatVersion: 1,
      documentName: docId,
      region: 'us-east-1',
      hostTagKey: 'coldseal-group',
      drill: { group: 'db', hostTagKey: 'coldseal-drill' },
      groups: ['db', 'web'],
      commandLogGroup: logGroupId,
      executionTimeoutSeconds: 4 * 3600,
      maxConcurrency: '10',
      maxErrors: '100%',
      // No group names its count: each is planned for the default, as coldseal trigger plans it too.
      maxHosts: { db: DEFAULT_MAX_HOSTS, web: DEFAULT_MAX_HOSTS },
      signingKeys: {
        db: 'arn:aws:kms:us-east-1:123456789012:key/ColdsealSigningKeydbKey163BFC37',
        web: 'arn:aws:kms:us-east-1:123456789012:key/ColdsealSigningKeywebKey370C746F',
      },
    });
    // Each schedule sends the same spread and failure tolerance a run by hand will use.
    for (const [, schedule] of resourcesOfType(template, 'AWS::Scheduler::Schedule')) {
      const input = JSON.parse(render(template, schedule.Properties.Target.Input));
      assert.equal(input.MaxConcurrency, info.maxConcurrency);
      assert.equal(input.MaxErrors, info.maxErrors);
      assert.equal(input.DocumentName, info.documentName);
      const group = input.Parameters.group[0] as string;
      if (input.Parameters.action[0] === 'backup') {
        assert.equal(input.TimeoutSeconds, runSpread({ hosts: info.maxHosts![group], maxConcurrency: info.maxConcurrency, executionTimeoutSeconds: info.executionTimeoutSeconds }).deliveryTimeoutSeconds);
      }
    }
  });
});

describe('schedules', () => {
  test('one schedule per group: cron in its time zone, SSM SendCommand of the document to hosts by tag', () => {
    const [docId] = resourcesOfType(template, 'AWS::SSM::Document')[0];
    const [logGroupId] = resourcesOfType(template, 'AWS::Logs::LogGroup')[0];
    const schedules = resourcesOfType(template, 'AWS::Scheduler::Schedule').map(([, r]) => r.Properties);
    const expected = { db: ['cron(30 1 * * ? *)', 'Europe/Paris'], web: ['cron(0 3 ? * MON-FRI *)', 'America/New_York'] };
    for (const [group, [cron, zone]] of Object.entries(expected)) {
      const schedule = schedules.find((s) => s.Description === `coldseal: back up group ${group}`);
      assert.equal(schedule.ScheduleExpression, cron);
      assert.equal(schedule.ScheduleExpressionTimezone, zone);
      assert.equal(schedule.State, 'ENABLED');
      assert.equal(render(template, schedule.Target.Arn), 'arn:aws:scheduler:::aws-sdk:ssm:sendCommand');
      assert.match(JSON.stringify(schedule.Target.Arn), /AWS::Partition/, 'the partition is the stack\'s, not always "aws"');
      const input = JSON.parse(render(template, schedule.Target.Input));
      assert.equal(input.DocumentName, docId);
      assert.equal(input.DocumentVersion, '$LATEST', 'a redeploy adds a document version that is not the default');
      assert.deepEqual(input.Targets, [{ Key: 'tag:coldseal-group', Values: [group] }]);
      assert.deepEqual(input.Parameters, { group: [group], action: ['backup'], executionTimeout: ['14400'] });
      assert.equal(input.MaxConcurrency, '10');
      assert.equal(input.MaxErrors, '100%');
      // No group names its host count: planned for DEFAULT_MAX_HOSTS, 5 waves of 10, each up to 4 h, then an hour's grace.
      assert.equal(input.TimeoutSeconds, runSpread({ hosts: DEFAULT_MAX_HOSTS, maxConcurrency: '10', executionTimeoutSeconds: 14400 }).deliveryTimeoutSeconds);
      assert.equal(input.TimeoutSeconds, 17 * 3600);
      assert.deepEqual(input.CloudWatchOutputConfig, { CloudWatchOutputEnabled: true, CloudWatchLogGroupName: logGroupId });
    }
    const drill = schedules.find((s) => s.Description === 'coldseal: restore drill of group db');
    assert.equal(drill.ScheduleExpression, 'cron(0 6 ? * SAT *)');
    const drillInput = JSON.parse(render(template, drill.Target.Input));
    assert.deepEqual(drillInput.Targets, [{ Key: 'tag:coldseal-drill', Values: ['db'] }]);
    assert.deepEqual(drillInput.Parameters.action, ['drill']);
    assert.equal(drillInput.TimeoutSeconds, 3600, 'the drill host is one host: its turn comes at once');
    assertions.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  });

  test('every schedule and every rule target has a retry policy and the dead-letter queue; the queue is encrypted, TLS-only, keeps a failed request 14 days; its alarm tells the topic within minutes what to do', () => {
    const queues = resourcesOfType(template, 'AWS::SQS::Queue');
    assert.equal(queues.length, 1, 'one dead-letter queue for every schedule and rule');
    const [queueId, queue] = queues[0];
    const queueArn = { 'Fn::GetAtt': [queueId, 'Arn'] };
    assert.equal(queue.Properties.SqsManagedSseEnabled, true);
    assert.equal(queue.Properties.MessageRetentionPeriod, 14 * 86_400);
    const schedules = resourcesOfType(template, 'AWS::Scheduler::Schedule');
    assert.equal(schedules.length, 3, 'two groups and the drill');
    for (const [id, schedule] of schedules) {
      assert.deepEqual(schedule.Properties.Target.DeadLetterConfig, { Arn: queueArn }, id);
      assert.ok(schedule.Properties.Target.RetryPolicy.MaximumRetryAttempts >= 1, id);
    }
    const rules = resourcesOfType(template, 'AWS::Events::Rule');
    assert.equal(rules.length, 5, "the verifier's sweep and manifest rules, the monitor's check, WAL check (group db has a PITR source) and command-failure rules");
    for (const [id, rule] of rules) {
      for (const target of rule.Properties.Targets) {
        assert.deepEqual(target.DeadLetterConfig, { Arn: queueArn }, id);
        assert.ok(target.RetryPolicy.MaximumRetryAttempts >= 1, id);
      }
    }
    const [, queuePolicy] = resourcesOfType(template, 'AWS::SQS::QueuePolicy')[0];
    const statements = queuePolicy.Properties.PolicyDocument.Statement as any[];
    assert.ok(statements.some((st) => st.Effect === 'Deny' && st.Condition?.Bool?.['aws:SecureTransport'] === 'false'), 'TLS only');
    const alarms = resourcesOfType(template, 'AWS::CloudWatch::Alarm').filter(([, a]) => JSON.stringify(a.Properties.Dimensions ?? []).includes(queueId));
    assert.equal(alarms.length, 1, 'one alarm on the queue');
    const [alarmId, alarm] = alarms[0];
    assert.equal(alarm.Properties.MetricName, 'ApproximateNumberOfMessagesVisible');
    assert.equal(alarm.Properties.Namespace, 'AWS/SQS');
    assert.ok(alarm.Properties.Period <= 300, 'within minutes');
    assert.equal(alarm.Properties.Threshold, 1);
    assert.equal(alarm.Properties.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
    const topic = resourcesOfType(template, 'AWS::SNS::Topic')[0][0];
    assert.deepEqual(alarm.Properties.AlarmActions, [{ Ref: topic }]);
    assert.deepEqual(alarm.Properties.OKActions, [{ Ref: topic }]);
    const description = render(template, alarm.Properties.AlarmDescription) as string;
    for (const words of ['aws sqs receive-message', 'ERROR_CODE', 'ERROR_MESSAGE', 'coldseal trigger', 'delete']) assert.ok(description.includes(words), `${words}: ${description}`);
    const [, dashboard] = resourcesOfType(template, 'AWS::CloudWatch::Dashboard')[0];
    assert.ok(JSON.stringify(dashboard.Properties.DashboardBody).includes(alarmId), 'the dashboard shows the alarm');
  });

  test('the scheduler role can send only this document, only to hosts tagged for coldseal', async () => {
    const [docId] = resourcesOfType(template, 'AWS::SSM::Document')[0];
    const [, policy] = resourcesOfType(template, 'AWS::IAM::Policy').find(([id]) => id.includes('Schedules'))!;
    const statements = render(template, policy.Properties.PolicyDocument.Statement) as Statement[];
    const doc = `arn:aws:ssm:us-east-1:123456789012:document/${docId}`;
    const instance = 'arn:aws:ec2:us-east-1:123456789012:instance/i-0123456789abcdef0';
    assert.ok(await allows(statements, 'ssm:SendCommand', doc), "allows(statements, 'ssm:SendCommand', doc)");
    assert.ok(await denies(statements, 'ssm:SendCommand', 'arn:aws:ssm:us-east-1:123456789012:document/SomeOtherDocument'), "denies(statements, 'ssm:SendCommand', 'arn:aws:ssm:us-east-1:123456789012:document/SomeOtherDocument')");
    assert.ok(await allows(statements, 'ssm:SendCommand', instance, { 'ssm:resourceTag/coldseal-group': 'db' }), "allows(statements, 'ssm:SendCommand', instance, { 'ssm:resourceTag/coldseal-group': 'db' })");
    assert.ok(await allows(statements, 'ssm:SendCommand', instance, { 'ssm:resourceTag/coldseal-drill': 'db' }), "allows(statements, 'ssm:SendCommand', instance, { 'ssm:resourceTag/coldseal-drill': 'db' })");
    assert.ok(await denies(statements, 'ssm:SendCommand', instance, { 'ssm:resourceTag/coldseal-group': 'other' }), "denies(statements, 'ssm:SendCommand', instance, { 'ssm:resourceTag/coldseal-group': 'other' })");
    assert.ok(await denies(statements, 'ssm:SendCommand', instance, {}), "denies(statements, 'ssm:SendCommand', instance, {})");
    const [, role] = resourcesOfType(template, 'AWS::IAM::Role').find(([id]) => id.includes('Schedules'))!;
    assert.equal(role.Properties.AssumeRolePolicyDocument.Statement[0].Principal.Service, 'scheduler.amazonaws.com');
  });
});

describe('instance policy', () => {
  let db: Statement[];
  const bucketObject = (key: string) => `arn:aws:s3:::${bucketNameOf(dataBucket)}/${key}`;
  const created = { 's3:if-none-match': '*', 's3:ObjectCreationOperation': true };

  before(() => {
    const policies = resourcesOfType(template, 'AWS::IAM::ManagedPolicy');
    const [, dbPolicy] = policies.find(([, r]) => /group db:/.test(r.Properties.Description))!;
    db = render(template, dbPolicy.Properties.PolicyDocument.Statement) as Statement[];
  });

  test('writes new objects under its own group prefix, in every tier', async () => {
    for (const tier of TIERS) {
      const key = `${groupPrefix(tier, 'db')}host1/pg/20261122T010000Z.manifest.json`;
      assert.ok(await allows(db, 's3:PutObject', bucketObject(key), created), tier);
      // multipart steps carry no If-None-Match: CreateMultipartUpload and UploadPart
      assert.ok(await allows(db, 's3:PutObject', bucketObject(key), { 's3:ObjectCreationOperation': false }), tier);
      assert.ok(await allows(db, 's3:AbortMultipartUpload', bucketObject(key)), "allows(db, 's3:AbortMultipartUpload', bucketObject(key))");
      const lock = retention[tier].lock;
      const asConfigured = { 's3:object-lock-mode': lock.mode, 's3:object-lock-remaining-retention-days': String(lock.days) };
      assert.ok(await allows(db, 's3:PutObjectRetention', bucketObject(key), asConfigured), tier);
      assert.ok(await denies(db, 's3:PutObjectRetention', bucketObject(key), { ...asConfigured, 's3:object-lock-remaining-retention-days': String(lock.days + 400) }), `${tier}: a longer lock`);
      assert.ok(await denies(db, 's3:PutObjectRetention', bucketObject(key), { ...asConfigured, 's3:object-lock-mode': lock.mode === 'GOVERNANCE' ? 'COMPLIANCE' : 'GOVERNANCE' }), `${tier}: another mode`);
    }
  });

  test('cannot overwrite: a whole-object write without If-None-Match is not allowed', async () => {
    const key = bucketObject(`${groupPrefix('daily', 'db')}host1/pg/20261122T010000Z.manifest.json`);
    assert.ok(await denies(db, 's3:PutObject', key, { 's3:ObjectCreationOperation': true }), "denies(db, 's3:PutObject', key, { 's3:ObjectCreationOperation': true })");
  });

  test('cannot delete, read, or write anything of another group or outside backups/ and its own wal/', async () => {
    const own = bucketObject(`${groupPrefix('daily', 'db')}host1/pg/x.pgp`);
    const other = bucketObject(`${groupPrefix('daily', 'web')}host2/www/x.pgp`);
    for (const action of ['s3:DeleteObject', 's3:DeleteObjectVersion', 's3:BypassGovernanceRetention', 's3:PutObjectLegalHold']) {
      assert.ok(await denies(db, action, own), action);
    }
    for (const action of ['s3:PutLifecycleConfiguration', 's3:PutBucketPolicy', 's3:PutBucketObjectLockConfiguration']) {
      assert.ok(await denies(db, action, `arn:aws:s3:::${bucketNameOf(dataBucket)}`), action);
    }
    for (const action of ['s3:GetObject', 's3:GetObjectVersion', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:PutObjectRetention']) {
      assert.ok(await denies(db, action, other, created), `${action} on another group`);
    }
    assert.ok(await denies(db, 's3:GetObject', own), 'hosts do not read backups back');
    assert.ok(await denies(db, 's3:ListBucket', `arn:aws:s3:::${bucketNameOf(dataBucket)}`), "denies(db, 's3:ListBucket', `arn:aws:s3:::${bucketNameOf(dataBucket)}`)");
    // Group db archives WAL: it reads its WAL objects by name and lists none (the drill host lists them; pitr-stack.test.ts proves the WAL grants).
    assert.ok(await denies(db, 's3:ListBucket', `arn:aws:s3:::${bucketNameOf(dataBucket)}`, { 's3:prefix': 'wal/db/h1/postgres/' }), 'lists no WAL');
    assert.ok(await denies(db, 's3:ListBucket', `arn:aws:s3:::${bucketNameOf(dataBucket)}`, { 's3:prefix': 'wal/web/' }), "lists no other group's WAL");
    assert.ok(await denies(db, 's3:ListBucket', `arn:aws:s3:::${bucketNameOf(dataBucket)}`, { 's3:prefix': 'backups/' }), 'lists no backups');
    assert.ok(await denies(db, 's3:PutObject', bucketObject(`${REPORTS_PREFIX}2026-11-22/verification.json`), created), "denies(db, 's3:PutObject', bucketObject(`${REPORTS_PREFIX}2026-11-22/verification.json`), created)");
    assert.ok(await denies(db, 's3:PutObject', bucketObject(`${DRILLS_PREFIX}db/host1/x.drill.json`), created), "denies(db, 's3:PutObject', bucketObject(`${DRILLS_PREFIX}db/host1/x.drill.json`), created)");
    const s3Actions = db.flatMap((s) => [s.Action].flat()).filter((a) => a.startsWith('s3:'));
    assert.deepEqual([...new Set(s3Actions)].sort(), ['s3:AbortMultipartUpload', 's3:GetObject', 's3:ListBucket', 's3:ListBucketMultipartUploads', 's3:PutObject', 's3:PutObjectRetention', 's3:PutObjectTagging']);
    const reads = db.filter((s) => [s.Action].flat().includes('s3:GetObject')).flatMap((s) => [s.Resource].flat());
    assert.equal(reads.length, 3);
    assert.equal(reads.filter((r) => /^arn:aws:s3:::cdk-[a-z0-9]+-assets-123456789012-us-east-1\/[0-9a-f]{64}\.gz$/.test(r)).length, 2, 'the two agent executables');
    // The only listing: each executable's key as a folder (the SSM Agent's ListObjects before its GET), on the asset bucket.
    const lists = db.filter((s) => [s.Action].flat().includes('s3:ListBucket'));
    assert.deepEqual(
      lists.map((s) => [s.Resource, s.Condition]),
      reads.filter((r) => r.endsWith('.gz')).map((r) => [r.slice(0, r.lastIndexOf('/')), { StringEquals: { 's3:prefix': `${r.slice(r.lastIndexOf('/') + 1)}/` } }]),
    );
    assert.ok(reads.includes(`arn:aws:s3:::${bucketNameOf(dataBucket)}/wal/db/*`), "and its own group's WAL (restore_command), nothing else");
    // Group web has no PITR source: its hosts read nothing of the bucket and list nothing.
    const [, webPolicy] = resourcesOfType(template, 'AWS::IAM::ManagedPolicy').find(([, r]) => /group web:/.test(r.Properties.Description))!;
    const web = render(template, webPolicy.Properties.PolicyDocument.Statement) as Statement[];
    assert.deepEqual(web.filter((st) => [st.Action].flat().some((a) => ['s3:GetObject', 's3:ListBucket', 'cloudwatch:PutMetricData'].includes(a))).map((st) => st.Sid), ['FetchAgent', 'ListAgentAsFolder1', 'ListAgentAsFolder2']);
  });

  test('uses the data key only through S3, reads only its group parameters, publishes to the topic', async () => {
    // KMS needs the key policy as well as the identity policy, so these go through the full model.
    // https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html
    const model = new PermissionModel(template);
    const keyArn = `arn:aws:kms:us-east-1:123456789012:key/${dataKey}`;
    const kms = (action: string, context: Record<string, string>) => model.ask('host:db', { action, resource: keyArn, context, because: 'template test' });
    assert.equal(await kms('kms:GenerateDataKey', { 'kms:ViaService': 's3.us-east-1.amazonaws.com' }), 'Allowed', 'GenerateDataKey through S3');
    assert.equal(await kms('kms:Decrypt', { 'kms:ViaService': 's3.us-east-1.amazonaws.com' }), 'Allowed', 'Decrypt through S3');
    assert.notEqual(await kms('kms:Decrypt', {}), 'Allowed', 'direct use of the key');
    assert.notEqual(await kms('kms:Decrypt', { 'kms:ViaService': 'ssm.us-east-1.amazonaws.com' }), 'Allowed', 'the data key through SSM');
    const parameterArn = (name: string) => `arn:aws:ssm:us-east-1:123456789012:parameter${name}`;
    // The configuration's head with GetParameters (agent/src/config/load.ts), the keys with GetParameter (secrets.ts).
    const readOf = (name: string) => (name === groupParameters('db').config || name === groupParameters('web').config ? 'ssm:GetParameters' : 'ssm:GetParameter');
    for (const name of Object.values(groupParameters('db'))) assert.ok(await allows(db, readOf(name), parameterArn(name)), name);
    for (const name of Object.values(groupParameters('web'))) assert.ok(await denies(db, readOf(name), parameterArn(name)), name);
    for (const name of Object.values(groupParameters('web'))) assert.ok(await denies(db, 'ssm:GetParameters', parameterArn(name)), name);
    assert.ok(await denies(db, 'ssm:PutParameter', parameterArn(groupParameters('db').signingKey)), "denies(db, 'ssm:PutParameter', parameterArn(groupParameters('db').signingKey))");
    const [topicId] = resourcesOfType(template, 'AWS::SNS::Topic')[0];
    assert.ok(await allows(db, 'sns:Publish', `arn:aws:sns:us-east-1:123456789012:${topicId}`), "allows(db, 'sns:Publish', `arn:aws:sns:us-east-1:123456789012:${topicId}`)");
    // The one "*": PutMetricData, which has no resource, bounded by its namespace.
    const wildcards = db.filter((st) => [st.Resource].flat().includes('*'));
    assert.deepEqual(wildcards.map((st) => [st.Action, st.Condition]), [['cloudwatch:PutMetricData', { StringEquals: { 'cloudwatch:namespace': 'Coldseal/Agent' } }]]);
  });

  test('an instance profile role with SSM core and the group policy is offered for new hosts', () => {
    const roles = resourcesOfType(template, 'AWS::IAM::Role').filter(([id]) => id.includes('Hosts'));
    assert.equal(roles.length, 2);
    const [roleId, role] = roles.find(([id]) => id.includes('Hostsdb'))!;
    assert.equal(role.Properties.AssumeRolePolicyDocument.Statement[0].Principal.Service, 'ec2.amazonaws.com');
    const managed = render(template, role.Properties.ManagedPolicyArns) as string[];
    assert.ok(managed.includes('arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore'));
    assertions.hasResourceProperties('AWS::IAM::InstanceProfile', { Roles: [{ Ref: roleId }] });
  });

  test('the drill host reads its group backups and writes receipts under drills/<group>/ only', async () => {
    const [, drill] = resourcesOfType(template, 'AWS::IAM::ManagedPolicy').find(([, r]) => /restore-drill/.test(r.Properties.Description))!;
    const statements = render(template, drill.Properties.PolicyDocument.Statement) as Statement[];
    assert.ok(await allows(statements, 's3:GetObject', bucketObject(`${groupPrefix('weekly', 'db')}h/pg/x.pgp`)), "allows(statements, 's3:GetObject', bucketObject(`${groupPrefix('weekly', 'db')}h/pg/x.pgp`))");
    assert.ok(await denies(statements, 's3:GetObject', bucketObject(`${groupPrefix('weekly', 'web')}h/www/x.pgp`)), "denies(statements, 's3:GetObject', bucketObject(`${groupPrefix('weekly', 'web')}h/www/x.pgp`))");
    assert.ok(await allows(statements, 's3:PutObject', bucketObject(`${DRILLS_PREFIX}db/h/20261122T010000Z.drill.json`), created), "allows(statements, 's3:PutObject', bucketObject(`${DRILLS_PREFIX}db/h/20261122T010000Z.drill.json`), created)");
    assert.ok(await denies(statements, 's3:PutObject', bucketObject(`${DRILLS_PREFIX}web/h/20261122T010000Z.drill.json`), created), "denies(statements, 's3:PutObject', bucketObject(`${DRILLS_PREFIX}web/h/20261122T010000Z.drill.json`), created)");
    assert.ok(await denies(statements, 's3:DeleteObject', bucketObject(`${DRILLS_PREFIX}db/h/x`)), "denies(statements, 's3:DeleteObject', bucketObject(`${DRILLS_PREFIX}db/h/x`))");
    assert.ok(await allows(statements, 's3:ListBucket', `arn:aws:s3:::${bucketNameOf(dataBucket)}`, { 's3:prefix': 'backups/daily/db/h/' }), "allows(statements, 's3:ListBucket', `arn:aws:s3:::${bucketNameOf(dataBucket)}`, { 's3:prefix': 'backups/daily/db/h/' })");
    assert.ok(await denies(statements, 's3:ListBucket', `arn:aws:s3:::${bucketNameOf(dataBucket)}`, { 's3:prefix': 'backups/daily/web/' }), "denies(statements, 's3:ListBucket', `arn:aws:s3:::${bucketNameOf(dataBucket)}`, { 's3:prefix': 'backups/daily/web/' })");
  });
});

describe('shape', () => {
  test('no custom resources: everything is native CloudFormation', () => {
    const types = Object.values(template.Resources).map((r) => r.Type);
    assert.deepEqual(types.filter((t) => t.startsWith('Custom::') || t === 'AWS::CloudFormation::CustomResource'), []);
  });
});

describe('outputs', () => {
  test('bucket, topic, document, instance policies and a ready send-command line', () => {
    const outputs = template.Outputs ?? {};
    const [docId] = resourcesOfType(template, 'AWS::SSM::Document')[0];
    assert.deepEqual(outputs.DataBucketName.Value, { Ref: dataBucket });
    assert.ok(outputs.AlertTopicArn);
    assert.deepEqual(outputs.AgentDocumentName.Value, { Ref: docId });
    assert.ok(outputs.InstancePolicyArnDb && outputs.InstancePolicyArnWeb);
    const command = render(template, outputs.BackupCommandDb.Value) as string;
    assert.match(command, new RegExp(`^aws ssm send-command --region us-east-1 --document-name ${docId} --document-version '\\$LATEST' --targets Key=tag:coldseal-group,Values=db --parameters group=db `));
    assert.match(command, /--cloud-watch-output-config CloudWatchOutputEnabled=true,CloudWatchLogGroupName=/);
  });
});
