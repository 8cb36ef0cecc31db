/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates and simulator inputs are untyped JSON */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { runSimulation } from '@cloud-copilot/iam-simulate';
import { replicaBucketName, replicaListerRoleName, replicationRoleName } from '../../format/replica';
import { REPLICA_OBJECT_DESTRUCTIVE_ACTIONS } from '../../infra/lib/replica-vault';
import { PermissionModel } from './permissions';
import { concreteReplica, PRIMARY, REPLICA, synthWithReplica } from './replica-fixtures';
import { render, resourcesOfType, type Template } from './template-tools';

/**
 * The replication role and the replica's bucket and key policies, through a real IAM policy
 * engine (@cloud-copilot/iam-simulate): every call S3 replication makes with the role is allowed,
 * a restore with the replica account's credentials is allowed, and no principal of the primary
 * account (the role, or an administrator with every permission) can delete a replica, shorten or
 * lift its lock, or take the replica's key away.
 */

type Decision = 'Allowed' | 'ImplicitlyDenied' | 'ExplicitlyDenied';
interface Policies {
  identity: any[];
  resourcePolicy?: any;
}
interface Vaults {
  primary: Template;
  replica: Template;
  replicaAccount: string;
  dataBucket: string;
  dataKeyArn: string;
  roleArn: string;
  role: Policies['identity'];
  dataBucketPolicy: any;
  dataKeyPolicy: any;
  replicaBucket: string;
  replicaBucketPolicy: any;
  replicaKeyArn: string;
  replicaKeyPolicy: any;
}

const ADMIN_EVERYTHING = [{ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] }];

async function decide(principal: string, action: string, resource: string, resourceAccount: string, policies: Policies, context: Record<string, string | string[]> = {}): Promise<Decision> {
  const principalAccount = /^arn:aws:iam::(\d{12}):/.exec(principal)?.[1];
  const result = await runSimulation(
    {
      request: {
        principal,
        action,
        resource: { resource, accountId: resourceAccount },
        contextVariables: {
          'aws:SecureTransport': 'true',
          ...(principalAccount ? { 'aws:PrincipalAccount': principalAccount, 'aws:PrincipalArn': principal } : {}),
          ...context,
        },
      },
      identityPolicies: policies.identity.map((policy, index) => ({ name: `identity-${index}`, policy })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: policies.resourcePolicy,
    } as any,
    {},
  );
  const ignored = result.resultType === 'single' ? (result.result.ignoredContextKeys ?? []) : [];
  assert.deepEqual(ignored, [], `the simulator ignored context keys for ${action}: the request would not be modelled`);
  if (result.resultType === 'error') throw new Error(`simulation of ${action} on ${resource} could not run: ${JSON.stringify(result.errors)}`);
  return result.overallResult as Decision;
}

function policyOf(template: Template, type: string, property: string, refersTo: string): any {
  const found = resourcesOfType(template, type).find(([, r]) => JSON.stringify(r.Properties).includes(`"${refersTo}"`));
  assert.ok(found, `no ${type} refers to ${refersTo}`);
  return render(template, found[1].Properties[property]);
}

async function load(sameAccount: boolean): Promise<Vaults> {
  const synth = await synthWithReplica({}, sameAccount);
  const replicaAccount = sameAccount ? PRIMARY.account : REPLICA.account;
  const primary = synth.primary;
  const replica = concreteReplica(synth.replica, replicaAccount);
  const [dataId, data] = resourcesOfType(primary, 'AWS::S3::Bucket').find(([, r]) => r.Properties.ObjectLockEnabled)!;
  const dataKeyId = data.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.KMSMasterKeyID['Fn::GetAtt'][0] as string;
  const [roleId] = resourcesOfType(primary, 'AWS::IAM::Role').find(([id]) => id.startsWith('ColdsealReplicationRole'))!;
  const rolePolicies = resourcesOfType(primary, 'AWS::IAM::Policy')
    .filter(([, r]) => (r.Properties.Roles as any[]).some((x) => x.Ref === roleId))
    .map(([, r]) => render(primary, r.Properties.PolicyDocument));
  const replicaKeyId = resourcesOfType(replica, 'AWS::KMS::Key')[0][0];
  return {
    primary,
    replica,
    replicaAccount,
    dataBucket: render(primary, { Ref: dataId }),
    dataKeyArn: render(primary, { 'Fn::GetAtt': [dataKeyId, 'Arn'] }),
    roleArn: `arn:aws:iam::${PRIMARY.account}:role/${replicationRoleName('coldseal', PRIMARY.region)}`,
    role: rolePolicies,
    dataBucketPolicy: policyOf(primary, 'AWS::S3::BucketPolicy', 'PolicyDocument', dataId),
    dataKeyPolicy: render(primary, primary.Resources[dataKeyId].Properties!.KeyPolicy),
    replicaBucket: replicaBucketName('coldseal', replicaAccount, REPLICA.region),
    replicaBucketPolicy: render(replica, resourcesOfType(replica, 'AWS::S3::BucketPolicy').map(([, r]) => r).find((r) => JSON.stringify(r.Properties.PolicyDocument).includes('ReplicateFromPrimary'))!.Properties.PolicyDocument),
    replicaKeyArn: `arn:aws:kms:${REPLICA.region}:${replicaAccount}:key/${replicaKeyId}`,
    replicaKeyPolicy: render(replica, replica.Resources[replicaKeyId].Properties!.KeyPolicy),
  };
}

/** What S3 replication does with the role for one backup object (the documented permission list). */
function replicationCalls(v: Vaults, key: string) {
  const source = `arn:aws:s3:::${v.dataBucket}`;
  const target = `arn:aws:s3:::${v.replicaBucket}`;
  return [
    { action: 's3:GetReplicationConfiguration', resource: source, account: PRIMARY.account, policy: v.dataBucketPolicy },
    { action: 's3:ListBucket', resource: source, account: PRIMARY.account, policy: v.dataBucketPolicy },
    ...['s3:GetObjectVersionForReplication', 's3:GetObjectVersionAcl', 's3:GetObjectVersionTagging', 's3:GetObjectRetention', 's3:GetObjectLegalHold'].map((action) => ({
      action,
      resource: `${source}/${key}`,
      account: PRIMARY.account,
      policy: v.dataBucketPolicy,
    })),
    { action: 'kms:Decrypt', resource: v.dataKeyArn, account: PRIMARY.account, policy: v.dataKeyPolicy, context: { 'kms:ViaService': `s3.${PRIMARY.region}.amazonaws.com` } },
    { action: 's3:ReplicateObject', resource: `${target}/${key}`, account: v.replicaAccount, policy: v.replicaBucketPolicy },
    { action: 's3:ReplicateTags', resource: `${target}/${key}`, account: v.replicaAccount, policy: v.replicaBucketPolicy },
    ...['kms:Encrypt', 'kms:GenerateDataKey'].map((action) => ({
      action,
      resource: v.replicaKeyArn,
      account: v.replicaAccount,
      policy: v.replicaKeyPolicy,
      context: { 'kms:ResourceAliases': ['alias/coldseal-replica'], 'kms:ViaService': `s3.${REPLICA.region}.amazonaws.com` },
    })),
  ];
}

for (const sameAccount of [false, true]) {
  describe(sameAccount ? 'replica in another region, same account' : 'replica in another account and region', () => {
    let v: Vaults;
    before(async () => {
      v = await load(sameAccount);
    });

    test('S3 may assume the replication role for this account\'s buckets only', async () => {
      const trust = render(v.primary, resourcesOfType(v.primary, 'AWS::IAM::Role').find(([id]) => id.startsWith('ColdsealReplicationRole'))![1].Properties.AssumeRolePolicyDocument);
      const assume = (account: string) => decide('s3.amazonaws.com', 'sts:AssumeRole', v.roleArn, PRIMARY.account, { identity: [], resourcePolicy: trust }, { 'aws:SourceAccount': account });
      assert.equal(await assume(PRIMARY.account), 'Allowed');
      assert.notEqual(await assume('999988887777'), 'Allowed');
    });

    test('every call replication makes for a backup and a drill receipt is allowed', async () => {
      for (const key of ['backups/daily/db/host1/postgres/20261122T013000Z.app.dump.zst.pgp', 'drills/db/host1/20261122T060000Z.drill.json']) {
        for (const call of replicationCalls(v, key)) {
          const decision = await decide(v.roleArn, call.action, call.resource, call.account, { identity: v.role, resourcePolicy: call.policy }, call.context);
          assert.equal(decision, 'Allowed', `${call.action} on ${call.resource}`);
        }
      }
      if (!sameAccount) {
        const ownership = await decide(v.roleArn, 's3:ObjectOwnerOverrideToBucketOwner', `arn:aws:s3:::${v.replicaBucket}/backups/x`, v.replicaAccount, { identity: v.role, resourcePolicy: v.replicaBucketPolicy });
        assert.equal(ownership, 'Allowed');
      }
    });

    test('the role replicates nothing else: no deletes, no reports or state, no other key, no reading', async () => {
      const target = `arn:aws:s3:::${v.replicaBucket}`;
      const source = `arn:aws:s3:::${v.dataBucket}`;
      const denied = [
        { action: 's3:ReplicateDelete', resource: `${target}/backups/daily/db/h/s/x.pgp`, account: v.replicaAccount, policy: v.replicaBucketPolicy },
        { action: 's3:ReplicateObject', resource: `${target}/reports/2026-11-22/verification.json`, account: v.replicaAccount, policy: v.replicaBucketPolicy },
        { action: 's3:ReplicateObject', resource: `${target}/state/alerts/x`, account: v.replicaAccount, policy: v.replicaBucketPolicy },
        { action: 's3:GetObject', resource: `${target}/backups/daily/db/h/s/x.pgp`, account: v.replicaAccount, policy: v.replicaBucketPolicy },
        { action: 's3:GetObject', resource: `${source}/backups/daily/db/h/s/x.pgp`, account: PRIMARY.account, policy: v.dataBucketPolicy },
        { action: 's3:GetObjectVersionForReplication', resource: `${source}/reports/2026-11-22/verification.json`, account: PRIMARY.account, policy: v.dataBucketPolicy },
        { action: 's3:PutObject', resource: `${source}/backups/daily/db/h/s/x.pgp`, account: PRIMARY.account, policy: v.dataBucketPolicy },
        ...REPLICA_OBJECT_DESTRUCTIVE_ACTIONS.map((action) => ({ action, resource: `${target}/backups/daily/db/h/s/x.pgp`, account: v.replicaAccount, policy: v.replicaBucketPolicy })),
        {
          action: 'kms:GenerateDataKey',
          resource: `arn:aws:kms:${REPLICA.region}:${v.replicaAccount}:key/another`,
          account: v.replicaAccount,
          // Another key of the replica account, with the default key policy (IAM decides).
          policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${v.replicaAccount}:root` }, Action: 'kms:*', Resource: '*' }] },
          context: { 'kms:ResourceAliases': ['alias/something-else'], 'kms:ViaService': `s3.${REPLICA.region}.amazonaws.com` },
        },
        {
          action: 'kms:GenerateDataKey',
          resource: v.replicaKeyArn,
          account: v.replicaAccount,
          policy: v.replicaKeyPolicy,
          context: { 'kms:ResourceAliases': ['alias/coldseal-replica'], 'kms:ViaService': 'ec2.eu-west-3.amazonaws.com' },
        },
        { action: 'kms:Decrypt', resource: v.replicaKeyArn, account: v.replicaAccount, policy: v.replicaKeyPolicy, context: { 'kms:ViaService': `s3.${REPLICA.region}.amazonaws.com` } },
      ];
      for (const call of denied) {
        const decision = await decide(v.roleArn, call.action, call.resource, call.account, { identity: v.role, resourcePolicy: call.policy }, (call as { context?: Record<string, string | string[]> }).context);
        assert.notEqual(decision, 'Allowed', `${call.action} on ${call.resource}`);
      }
    });

    test('an administrator of the primary account (Allow *:*) cannot delete a replica, shorten or lift its lock, or remove its key', async () => {
      const admin = `arn:aws:iam::${PRIMARY.account}:role/Administrator`;
      const replicaObject = `arn:aws:s3:::${v.replicaBucket}/backups/yearly/db/h/s/20260101T013000Z.app.dump.zst.pgp`;
      for (const action of REPLICA_OBJECT_DESTRUCTIVE_ACTIONS) {
        const decision = await decide(admin, action, replicaObject, v.replicaAccount, { identity: ADMIN_EVERYTHING, resourcePolicy: v.replicaBucketPolicy });
        assert.equal(decision, 'ExplicitlyDenied', `${action}: the replica's own policy must say no, whatever the primary account grants itself`);
      }
      for (const action of ['kms:ScheduleKeyDeletion', 'kms:DisableKey']) {
        assert.equal(await decide(admin, action, v.replicaKeyArn, v.replicaAccount, { identity: ADMIN_EVERYTHING, resourcePolicy: v.replicaKeyPolicy }), 'ExplicitlyDenied', action);
      }
      if (!sameAccount) {
        for (const action of ['s3:PutLifecycleConfiguration', 's3:PutBucketPolicy', 's3:DeleteBucketPolicy']) {
          assert.equal(await decide(admin, action, `arn:aws:s3:::${v.replicaBucket}`, v.replicaAccount, { identity: ADMIN_EVERYTHING, resourcePolicy: v.replicaBucketPolicy }), 'ExplicitlyDenied', action);
        }
        for (const action of ['kms:PutKeyPolicy', 'kms:Decrypt']) {
          assert.equal(await decide(admin, action, v.replicaKeyArn, v.replicaAccount, { identity: ADMIN_EVERYTHING, resourcePolicy: v.replicaKeyPolicy }), 'ExplicitlyDenied', action);
        }
      }
    });

    test('only the primary\'s replication role may replicate: not its hosts, drill host, Lambdas, scheduler, a copy of the role, or an administrator', async () => {
      const model = new PermissionModel(v.primary);
      assert.ok(model.identities.size >= 5, 'the primary\'s roles are modelled');
      const others: { name: string; arn: string; identity: Policies['identity']; ofTheStack: boolean }[] = [
        ...[...model.identities].map(([name, identity]) => ({ name, arn: identity.arn, identity: identity.policies, ofTheStack: true })),
        // Same permissions as the replication role, another name: only the policies' naming of the role keeps it out.
        { name: 'a copy of the replication role', arn: `arn:aws:iam::${PRIMARY.account}:role/${replicationRoleName('coldseal', PRIMARY.region)}-copy`, identity: v.role, ofTheStack: false },
        { name: 'an administrator (Allow *:*)', arn: `arn:aws:iam::${PRIMARY.account}:user/admin`, identity: ADMIN_EVERYTHING, ofTheStack: false },
      ];
      const target = `arn:aws:s3:::${v.replicaBucket}`;
      const object = `${target}/backups/daily/db/host1/postgres/20261122T013000Z.app.dump.zst.pgp`;
      // Writes into the replica: refused to every other principal of the primary account, in either topology.
      const writes = ['s3:ReplicateObject', 's3:ReplicateTags', 's3:ObjectOwnerOverrideToBucketOwner'];
      // What else the replica's policies give the role: in another account nobody else gets it; in
      // the same account, that account's own IAM decides for what it makes itself (an administrator
      // may read its buckets' settings and use its keys), and the roles the stack makes have none of it.
      const checks = [
        ...['s3:GetBucketVersioning', 's3:GetBucketObjectLockConfiguration', 's3:ListBucket'].map((action) => ({ action, resource: target, policy: v.replicaBucketPolicy, context: {} })),
        ...['kms:Encrypt', 'kms:GenerateDataKey'].map((action) => ({
          action,
          resource: v.replicaKeyArn,
          policy: v.replicaKeyPolicy,
          context: { 'kms:ResourceAliases': ['alias/coldseal-replica'], 'kms:ViaService': `s3.${REPLICA.region}.amazonaws.com` },
        })),
      ];
      // (The ownership override is asked for across accounts only.)
      for (const action of sameAccount ? writes.slice(0, 2) : writes) {
        assert.equal(await decide(v.roleArn, action, object, v.replicaAccount, { identity: v.role, resourcePolicy: v.replicaBucketPolicy }), 'Allowed', `the role: ${action}`);
      }
      for (const check of checks.filter((c) => c.action.startsWith('kms:'))) {
        assert.equal(await decide(v.roleArn, check.action, check.resource, v.replicaAccount, { identity: v.role, resourcePolicy: check.policy }, check.context), 'Allowed', `the role: ${check.action}`);
      }
      for (const { name, arn, identity, ofTheStack } of others) {
        for (const action of writes) {
          assert.notEqual(await decide(arn, action, object, v.replicaAccount, { identity, resourcePolicy: v.replicaBucketPolicy }), 'Allowed', `${name}: ${action} into the replica`);
        }
        // The verifier lists the replica (its own test below): every other check holds for it too.
        for (const check of (sameAccount && !ofTheStack ? [] : checks).filter((c) => !(name === 'verifier' && c.action === 's3:ListBucket'))) {
          assert.notEqual(await decide(arn, check.action, check.resource, v.replicaAccount, { identity, resourcePolicy: check.policy }, check.context), 'Allowed', `${name}: ${check.action} on ${check.resource}`);
        }
      }
    });

    test('the primary\'s verifier may list the replica bucket, by its role\'s name, and nothing more there', async () => {
      const model = new PermissionModel(v.primary);
      const verifier = model.identities.get('verifier')!;
      // The role's fixed name, as S3 sees a session of it (the model names roles by logical id).
      const arn = `arn:aws:iam::${PRIMARY.account}:role/${replicaListerRoleName('coldseal', PRIMARY.region)}`;
      const onReplica = { identity: verifier.policies, resourcePolicy: v.replicaBucketPolicy };
      const bucket = `arn:aws:s3:::${v.replicaBucket}`;
      // One paged ListObjectsV2 of the whole bucket (lambdas/verifier/core/storage-report.ts).
      assert.equal(await decide(arn, 's3:ListBucket', bucket, v.replicaAccount, onReplica, { 's3:prefix': '' }), 'Allowed');
      const object = `${bucket}/backups/daily/db/h/s/20261122T013000Z.app.dump.zst.pgp`;
      for (const [action, resource] of [
        ['s3:GetObject', object],
        ['s3:GetObjectVersion', object],
        ['s3:PutObject', object],
        ['s3:DeleteObject', object],
        ['s3:RestoreObject', object],
        ['s3:ListBucketVersions', bucket],
        ['s3:GetBucketPolicy', bucket],
        ['s3:PutBucketPolicy', bucket],
        ['s3:GetBucketVersioning', bucket],
        ['s3:GetObject', `${bucket}/drills/db/h/20261122T060000Z.drill.json`],
      ] as const) {
        assert.notEqual(await decide(arn, action, resource, v.replicaAccount, onReplica), 'Allowed', `verifier: ${action} on ${resource}`);
      }
      assert.notEqual(await decide(arn, 'kms:Decrypt', v.replicaKeyArn, v.replicaAccount, { identity: verifier.policies, resourcePolicy: v.replicaKeyPolicy }, { 'kms:ViaService': `s3.${REPLICA.region}.amazonaws.com` }), 'Allowed', 'verifier: kms:Decrypt with the replica key');
      // Another role with the verifier's permissions but not its name: the replica's policy names the role.
      if (!sameAccount) {
        assert.notEqual(await decide(`${arn}-copy`, 's3:ListBucket', bucket, v.replicaAccount, onReplica, { 's3:prefix': '' }), 'Allowed', 'a role of another name');
        assert.notEqual(await decide(`arn:aws:iam::${PRIMARY.account}:user/admin`, 's3:ListBucket', bucket, v.replicaAccount, { identity: ADMIN_EVERYTHING, resourcePolicy: v.replicaBucketPolicy }, { 's3:prefix': '' }), 'Allowed', 'an administrator of the primary account');
      }
    });

    test('a restore with the replica account\'s reader policy reads and decrypts the replica, and the primary refuses it', async () => {
      const [, managed] = resourcesOfType(v.replica, 'AWS::IAM::ManagedPolicy').find(([, r]) => /restore from the offsite replica/.test(r.Properties.Description)) ?? [];
      assert.ok(managed, 'the replica stack has the reader\'s managed policy');
      const reader = [render(v.replica, managed.Properties.PolicyDocument)];
      const restorer = `arn:aws:iam::${v.replicaAccount}:role/Restorer`;
      const replicaObject = (key: string) => `arn:aws:s3:::${v.replicaBucket}/${key}`;
      const manifest = 'backups/daily/db/h/s/20261122T013000Z.manifest.json';
      const ciphertext = 'backups/monthly/db/h/s/20261101T013000Z.app.dump.zst.pgp';
      const onReplica = { identity: reader, resourcePolicy: v.replicaBucketPolicy };
      // What list, status, verify, restore and drill --replica send (test/integration/restore-replica.test.ts records them).
      assert.equal(await decide(restorer, 's3:ListBucket', `arn:aws:s3:::${v.replicaBucket}`, v.replicaAccount, onReplica, { 's3:prefix': 'backups/' }), 'Allowed');
      assert.equal(await decide(restorer, 's3:GetObject', replicaObject(manifest), v.replicaAccount, onReplica), 'Allowed');
      assert.equal(await decide(restorer, 's3:GetObject', replicaObject('drills/db/h/20261122T060000Z.drill.json'), v.replicaAccount, onReplica), 'Allowed');
      // Every part read after the first is pinned to the version first read (runtime/s3-part-fetcher.ts).
      assert.equal(await decide(restorer, 's3:GetObjectVersion', replicaObject(ciphertext), v.replicaAccount, onReplica), 'Allowed');
      // The replica may archive a tier sooner than the primary (archiveAfterDays): restore asks for a copy back.
      assert.equal(await decide(restorer, 's3:RestoreObject', replicaObject(ciphertext), v.replicaAccount, onReplica), 'Allowed');
      const viaReplicaS3 = { 'kms:ViaService': `s3.${REPLICA.region}.amazonaws.com` };
      assert.equal(await decide(restorer, 'kms:Decrypt', v.replicaKeyArn, v.replicaAccount, { identity: reader, resourcePolicy: v.replicaKeyPolicy }, viaReplicaS3), 'Allowed');
      assert.notEqual(await decide(restorer, 'kms:Decrypt', v.replicaKeyArn, v.replicaAccount, { identity: reader, resourcePolicy: v.replicaKeyPolicy }), 'Allowed', 'the key decrypts only through S3');
      assert.notEqual(await decide(restorer, 's3:PutObject', replicaObject(manifest), v.replicaAccount, onReplica), 'Allowed', 'the reader writes nothing');
      assert.notEqual(await decide(restorer, 's3:GetObject', replicaObject('reports/2026-11-22/verification.json'), v.replicaAccount, onReplica), 'Allowed', 'nothing but backups/ and drills/');

      // The same reads of the primary, judged by the primary's own bucket and key policies. In the
      // same account only the reader's policy keeps it out; in another, the primary grants nothing too.
      const primaryObject = (key: string) => `arn:aws:s3:::${v.dataBucket}/${key}`;
      const onPrimary = { identity: reader, resourcePolicy: v.dataBucketPolicy };
      for (const [action, resource, context] of [
        ['s3:ListBucket', `arn:aws:s3:::${v.dataBucket}`, { 's3:prefix': 'backups/' }],
        ['s3:GetObject', primaryObject(manifest), {}],
        ['s3:GetObjectVersion', primaryObject(ciphertext), {}],
        ['s3:RestoreObject', primaryObject(ciphertext), {}],
        ['s3:GetObject', primaryObject('drills/db/h/20261122T060000Z.drill.json'), {}],
      ] as const) {
        assert.notEqual(await decide(restorer, action, resource, PRIMARY.account, onPrimary, context), 'Allowed', `${action} on the primary ${resource}`);
      }
      assert.notEqual(
        await decide(restorer, 'kms:Decrypt', v.dataKeyArn, PRIMARY.account, { identity: reader, resourcePolicy: v.dataKeyPolicy }, { 'kms:ViaService': `s3.${PRIMARY.region}.amazonaws.com` }),
        'Allowed',
        'kms:Decrypt with the primary\'s key',
      );
    });
  });
}
