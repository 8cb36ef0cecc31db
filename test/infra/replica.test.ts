/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template as CdkTemplate } from 'aws-cdk-lib/assertions';
import { deploymentInfoSchema } from '../../format/parameters';
import { REPLICATION_FAILED_EVENT, REPLICATION_MISSED_THRESHOLD_EVENT, replicaBucketName, replicaListerRoleName } from '../../format/replica';
import { buildApp } from '../../infra/lib/build-app';
import { resolveContext } from '../../infra/lib/config';
import { ReplicaVault } from '../../infra/lib/replica-vault';
import { DEFAULT_RETENTION } from '../../infra/lib/settings';
import { ROOT, standInExecutables, twoGroupContext } from './fixtures';
import { PRIMARY, REPLICA, synthWithReplica } from './replica-fixtures';
import { render, resourcesOfType, type Template } from './template-tools';

let primary: Template;
let replica: Template;
let dependsOnReplica: boolean;
const replicaName = replicaBucketName('coldseal', REPLICA.account, REPLICA.region);

before(async () => {
  ({ primary, replica, dependsOnReplica } = await synthWithReplica({ replicationTimeControl: true, archiveAfterDays: { monthly: 1, yearly: 0 } }));
});

describe('replica stack', () => {
  test('the replica bucket: named, versioned, Object Lock, its own KMS key, TLS-only, no public access, access logs', () => {
    const t = CdkTemplate.fromJSON(replica);
    t.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: replicaName,
      ObjectLockEnabled: true,
      VersioningConfiguration: { Status: 'Enabled' },
      OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      BucketEncryption: { ServerSideEncryptionConfiguration: [{ BucketKeyEnabled: true, ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: Match.anyValue() } }] },
      LoggingConfiguration: { DestinationBucketName: Match.anyValue(), LogFilePrefix: 'replica-bucket/' },
    });
    t.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    t.hasResourceProperties('AWS::KMS::Alias', { AliasName: 'alias/coldseal-replica' });
    t.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
    });
    const [, bucket] = resourcesOfType(replica, 'AWS::S3::Bucket').find(([, r]) => r.Properties.ObjectLockEnabled)!;
    assert.equal(bucket.DeletionPolicy, 'Retain');
  });

  test('lifecycle per tier: the primary\'s expiry, archived sooner where archiveAfterDays says', () => {
    const [, bucket] = resourcesOfType(replica, 'AWS::S3::Bucket').find(([, r]) => r.Properties.ObjectLockEnabled)!;
    const rules = new Map<string, any>((bucket.Properties.LifecycleConfiguration.Rules as any[]).map((r) => [r.Id, r]));
    assert.equal(rules.get('tier-daily').ExpirationInDays, DEFAULT_RETENTION.daily.expireAfterDays);
    assert.equal(rules.get('tier-daily').Transitions, undefined);
    assert.deepEqual(rules.get('tier-monthly').Transitions, [{ StorageClass: 'GLACIER', TransitionInDays: 1 }]);
    assert.equal(rules.get('tier-monthly').ExpirationInDays, 400);
    assert.deepEqual(rules.get('tier-yearly').Transitions, [{ StorageClass: 'DEEP_ARCHIVE', TransitionInDays: 0 }]);
    assert.equal(rules.get('drill-receipts').Prefix, 'drills/');
    assert.ok(rules.has('cleanup'));
  });

  test('deployed in the replica\'s region and account, before the primary', async () => {
    const context = twoGroupContext();
    context.replica = { region: REPLICA.region, account: REPLICA.account };
    const built = await buildApp({ context, baseDir: ROOT, agentExecutables: standInExecutables(), appProps: { builtinCloudFormationValidation: false }, env: PRIMARY });
    assert.equal(built.replicaStack?.region, REPLICA.region);
    assert.equal(built.replicaStack?.account, REPLICA.account);
    assert.equal(built.stack.region, PRIMARY.region);
    assert.ok(dependsOnReplica);
  });
});

/**
 * Every principal a policy of the replica stack names, with where it is: what CloudFormation
 * hands S3, KMS or IAM when it creates that policy.
 */
function principalsOf(template: Template): { where: string; principal: unknown }[] {
  const found: { where: string; principal: unknown }[] = [];
  const walk = (value: unknown, where: string): void => {
    if (Array.isArray(value)) return value.forEach((v, i) => walk(v, `${where}[${i}]`));
    if (!value || typeof value !== 'object') return;
    for (const [key, inner] of Object.entries(value)) {
      if (key === 'Principal' || key === 'NotPrincipal') {
        if (typeof inner === 'string' || inner?.['Fn::GetAtt'] || inner?.['Fn::Join'] || inner?.Ref) found.push({ where: `${where}.${key}`, principal: inner });
        else for (const [kind, v] of Object.entries(inner as object)) for (const one of [v].flat()) found.push({ where: `${where}.${key}.${kind}`, principal: kind === 'AWS' ? one : { [kind]: one } });
      } else walk(inner, `${where}.${key}`);
    }
  };
  for (const [id, resource] of Object.entries(template.Resources)) walk(resource.Properties, `${id} (${resource.Type})`);
  return found;
}

describe('deploy order', () => {
  test('the replica stack\'s policies name no principal that only a later stack creates: account roots, services, "*" or its own resources', () => {
    // The replica stack deploys first (the primary's replication rule needs its bucket). A policy
    // that names a role of the primary stack is refused while that role does not exist: S3 answers
    // "Invalid principal in policy" (https://aws.amazon.com/premiumsupport/knowledge-center/s3-invalid-principal-in-policy-error/),
    // KMS MalformedPolicyDocumentException ("The principals in the key policy must exist",
    // https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateKey.html). And once saved, a
    // role principal is kept as the role's unique id, so a role recreated by a new primary stack
    // is no longer matched ("IAM role principals", https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html).
    const found = principalsOf(replica);
    assert.ok(found.length >= 4, `the replica stack names its principals: ${JSON.stringify(found)}`);
    const ownResource = (p: any) => Array.isArray(p?.['Fn::GetAtt']) && replica.Resources[p['Fn::GetAtt'][0]] !== undefined;
    const later = found.filter(({ principal }) => {
      if (ownResource(principal)) return false;
      if (principal && typeof principal === 'object' && 'Service' in principal) return false;
      const rendered = render(replica, principal);
      return !(rendered === '*' || /^\d{12}$/.test(rendered) || /^arn:aws:iam::\d{12}:root$/.test(rendered) || /^[a-z0-9.-]+\.amazonaws\.com$/.test(rendered));
    });
    assert.deepEqual(
      later.map(({ where, principal }) => `${where}: ${render(replica, principal)}`),
      [],
      'a principal the replica stack does not create itself and that is not an account (a role or user of the primary stack)',
    );
  });
});

describe('replication from the primary', () => {
  test('one rule per replicated prefix: delete markers stay home, KMS re-encryption, ownership to the replica account, RTC and metrics', () => {
    const [, data] = resourcesOfType(primary, 'AWS::S3::Bucket').find(([, r]) => r.Properties.ObjectLockEnabled)!;
    const config = render(primary, data.Properties.ReplicationConfiguration);
    assert.match(config.Role, /ColdsealReplicationRole/);
    assert.deepEqual(config.Rules.map((r: any) => r.Filter.Prefix), ['backups/', 'drills/']);
    for (const rule of config.Rules) {
      assert.equal(rule.Status, 'Enabled');
      assert.deepEqual(rule.DeleteMarkerReplication, { Status: 'Disabled' });
      assert.deepEqual(rule.SourceSelectionCriteria, { SseKmsEncryptedObjects: { Status: 'Enabled' } });
      assert.equal(rule.Destination.Bucket, `arn:aws:s3:::${replicaName}`);
      assert.equal(rule.Destination.Account, REPLICA.account);
      assert.deepEqual(rule.Destination.AccessControlTranslation, { Owner: 'Destination' });
      assert.equal(rule.Destination.EncryptionConfiguration.ReplicaKmsKeyID, `arn:aws:kms:${REPLICA.region}:${REPLICA.account}:alias/coldseal-replica`);
      assert.deepEqual(rule.Destination.ReplicationTime, { Status: 'Enabled', Time: { Minutes: 15 } });
      assert.deepEqual(rule.Destination.Metrics, { Status: 'Enabled', EventThreshold: { Minutes: 15 } });
    }
  });

  test('without RTC: metrics still on (they make S3 send failure events), no RTC; same account: no ownership override', async () => {
    const { primary: plain } = await synthWithReplica({}, true);
    const [, data] = resourcesOfType(plain, 'AWS::S3::Bucket').find(([, r]) => r.Properties.ObjectLockEnabled)!;
    const rule = render(plain, data.Properties.ReplicationConfiguration).Rules[0];
    assert.deepEqual(rule.Destination.Metrics, { Status: 'Enabled' });
    assert.equal(rule.Destination.ReplicationTime, undefined);
    assert.equal(rule.Destination.AccessControlTranslation, undefined);
    assert.equal(rule.Destination.Account, undefined);
    assert.equal(rule.Destination.Bucket, `arn:aws:s3:::${replicaBucketName('coldseal', PRIMARY.account, REPLICA.region)}`);
    const events = render(plain, data.Properties.NotificationConfiguration).TopicConfigurations.map((c: any) => c.Event);
    assert.deepEqual(events, [REPLICATION_FAILED_EVENT]);
  });

  test('replication failures reach the monitor: S3 notification to a topic S3 may publish to, the monitor subscribed', () => {
    const [dataId, data] = resourcesOfType(primary, 'AWS::S3::Bucket').find(([, r]) => r.Properties.ObjectLockEnabled)!;
    const notifications = data.Properties.NotificationConfiguration;
    assert.deepEqual(notifications.EventBridgeConfiguration, { EventBridgeEnabled: true }, 'the verifier\'s manifest events stay on');
    const topics = (notifications.TopicConfigurations as any[]).map((c) => [c.Event, c.Topic.Ref]);
    assert.deepEqual(topics.map(([e]) => e), [REPLICATION_FAILED_EVENT, REPLICATION_MISSED_THRESHOLD_EVENT]);
    const topicId = topics[0][1] as string;
    assert.equal(primary.Resources[topicId].Type, 'AWS::SNS::Topic');
    const [policyId] = resourcesOfType(primary, 'AWS::SNS::TopicPolicy').find(([, r]) => r.Properties.Topics.some((t: any) => t.Ref === topicId))!;
    assert.ok(((primary.Resources[dataId] as any).DependsOn as string[]).includes(policyId), 'S3 checks the topic policy when the notification is set');
    const [, subscription] = resourcesOfType(primary, 'AWS::SNS::Subscription').find(([, r]) => r.Properties.TopicArn.Ref === topicId)!;
    assert.equal(subscription.Properties.Protocol, 'lambda');
    const [monitorId] = resourcesOfType(primary, 'AWS::Lambda::Function').find(([, r]) => /failed backup commands/.test(r.Properties.Description))!;
    assert.equal(subscription.Properties.Endpoint['Fn::GetAtt'][0], monitorId);
  });

  test('the verifier knows the replica is expected, and the deployment parameter says where it is', () => {
    const [, verifier] = resourcesOfType(primary, 'AWS::Lambda::Function').find(([, r]) => /verif/i.test(r.Properties.Description))!;
    assert.equal(verifier.Properties.Environment.Variables.COLDSEAL_REPLICA_MAX_PENDING_HOURS, '24');
    const [, parameter] = resourcesOfType(primary, 'AWS::SSM::Parameter').find(([, r]) => /deployment/.test(JSON.stringify(r.Properties.Name)))!;
    const info = deploymentInfoSchema.parse(JSON.parse(render(primary, parameter.Properties.Value)));
    assert.deepEqual(info.replica, { bucket: replicaName, region: REPLICA.region, account: REPLICA.account });
  });

  test('the verifier lists the replica: its bucket and region in the settings, a named role with s3:ListBucket on it, and the replica\'s policy allowing that role by name', () => {
    const p = CdkTemplate.fromJSON(primary);
    p.hasResourceProperties('AWS::Lambda::Function', {
      Description: Match.stringLikeRegexp('verifies backups'),
      Environment: { Variables: Match.objectLike({ COLDSEAL_REPLICA_BUCKET: replicaName, COLDSEAL_REPLICA_REGION: REPLICA.region }) },
    });
    const roleName = replicaListerRoleName('coldseal', PRIMARY.region);
    p.hasResourceProperties('AWS::IAM::Role', { RoleName: roleName, Description: Match.stringLikeRegexp('^coldseal: verifies backups') });
    p.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: { Statement: Match.arrayWith([{ Sid: 'VerifierListsReplica', Effect: 'Allow', Action: 's3:ListBucket', Resource: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([`:s3:::${replicaName}`])] }) }]) },
    });
    CdkTemplate.fromJSON(replica).hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Sid: 'VerifierListsReplica',
            Effect: 'Allow',
            Action: 's3:ListBucket',
            Principal: { AWS: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([`:iam::${PRIMARY.account}:root`])] }) },
            Condition: { ArnEquals: { 'aws:PrincipalArn': Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([`:iam::${PRIMARY.account}:role/${roleName}`])] }) } },
          }),
        ]),
      },
    });
  });

  test('both templates pass cfn-lint', () => {
    const dir = mkdtempSync(join(tmpdir(), 'coldseal-replica-lint-'));
    const files = [['primary.json', primary], ['replica.json', replica]].map(([name, t]) => {
      const file = join(dir, name as string);
      writeFileSync(file, JSON.stringify(t));
      return file;
    });
    const lint = spawnSync('cfn-lint', ['--format', 'parseable', ...files], { encoding: 'utf8', timeout: 180_000 });
    assert.equal(lint.error, undefined, `cfn-lint could not run: ${String(lint.error)}`);
    assert.equal(lint.status, 0, `cfn-lint:\n${lint.stdout}${lint.stderr}`);
  });
});

describe('validation names the field', () => {
  const withReplica = (replicaContext: Record<string, unknown>) => {
    const context = twoGroupContext();
    context.replica = replicaContext;
    return context;
  };

  test('a replica in the primary\'s own region and account is refused', async () => {
    await assert.rejects(
      buildApp({ context: withReplica({ region: PRIMARY.region }), baseDir: ROOT, agentExecutables: standInExecutables(), env: PRIMARY }),
      /coldseal\.replica\.region: the replica would be in the primary's own region \(us-east-1\) and account/,
    );
    await assert.rejects(
      buildApp({ context: withReplica({ region: PRIMARY.region, account: PRIMARY.account }), baseDir: ROOT, agentExecutables: standInExecutables(), env: PRIMARY }),
      /coldseal\.replica\.region: the replica would be in the primary's own region/,
    );
    // Same region, another account: allowed (it protects against losing the account).
    const ok = await buildApp({ context: withReplica({ region: PRIMARY.region, account: REPLICA.account }), baseDir: ROOT, agentExecutables: standInExecutables(), env: PRIMARY, nag: false });
    assert.equal(ok.replicaStack?.account, REPLICA.account);
  });

  test('bad fields are named in the context', async () => {
    await assert.rejects(resolveContext(withReplica({ region: 'Paris', account: '12' }), ROOT), (error: Error) => {
      assert.match(error.message, /coldseal\.replica\.region: "Paris" is not an AWS region/);
      assert.match(error.message, /coldseal\.replica\.account: "12" is not a 12-digit AWS account id/);
      return true;
    });
    await assert.rejects(
      resolveContext(withReplica({ region: REPLICA.region, archiveAfterDays: { daily: 0 } }), ROOT),
      /coldseal\.replica\.archiveAfterDays\.daily: in the replica, daily backups would stay 35 days in GLACIER, under its minimum storage duration of 90 days/,
    );
    await assert.rejects(resolveContext(withReplica({ region: REPLICA.region, archiveAfterDays: { hourly: 3 } }), ROOT), /coldseal\.replica\.archiveAfterDays\.hourly: unknown tier/);
    await assert.rejects(resolveContext(withReplica({ region: REPLICA.region, bucket: 'x' }), ROOT), /coldseal\.replica: Unrecognized key/);
  });

  test('without the primary\'s region the replica cannot be placed', async () => {
    await assert.rejects(
      buildApp({ context: withReplica({ region: REPLICA.region }), baseDir: ROOT, agentExecutables: standInExecutables(), env: {} }),
      /coldseal\.replica: the primary's region is not known/,
    );
  });

  test('the construct checks its props too', () => {
    const stack = new Stack(new App(), 'R', { env: { region: REPLICA.region, account: REPLICA.account } });
    assert.throws(() => new ReplicaVault(stack, 'V', { name: 'Bad_Name', primaryAccount: PRIMARY.account, primaryRegion: PRIMARY.region, retention: DEFAULT_RETENTION }), /ReplicaVault props\.name "Bad_Name"/);
    assert.throws(
      () => new ReplicaVault(stack, 'W', { name: 'ok', primaryAccount: PRIMARY.account, primaryRegion: PRIMARY.region, retention: DEFAULT_RETENTION, archiveAfterDays: { weekly: 10 } }),
      /ReplicaVault props: archiveAfterDays\.weekly: in the replica, weekly backups would stay 80 days in GLACIER/,
    );
    const agnostic = new Stack(new App(), 'A');
    assert.throws(() => new ReplicaVault(agnostic, 'V', { name: 'ok', primaryAccount: PRIMARY.account, primaryRegion: PRIMARY.region, retention: DEFAULT_RETENTION }), /explicit region/);
  });
});
