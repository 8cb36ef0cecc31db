import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DescribeParametersCommand, GetParameterCommand, PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { readPrivateKey, readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { deploymentParameter, groupParameters } from '../../format/parameters';
import { EXIT } from '../../format/exit-codes';
import { createAgentSandbox } from '../harness/agent';

test('keys generate writes usable pairs, private files 0600, and never overwrites silently', async () => {
  const sandbox = await createAgentSandbox();
  const out = join(sandbox.dir, 'keys');
  const first = await sandbox.runCli(['keys', 'generate', '--out', out, '--group', 'prod']);
  assert.equal(first.code, EXIT.OK, first.log);
  assert.match(first.stdout, /PRIVATE {2}.*recipient\.key\.asc {2}[0-9a-f]{40}/);
  assert.match(first.stdout, /Move recipient\.key\.asc off this machine/);
  for (const file of ['recipient.key.asc', 'prod-signing.key.asc']) assert.equal(statSync(join(out, file)).mode & 0o777, 0o600, file);
  const recipient = await readPublicKeys(readFileSync(join(out, 'recipient.pub.asc'), 'utf8'), 'recipient');
  const recipientPrivate = await readPrivateKey(readFileSync(join(out, 'recipient.key.asc'), 'utf8'), 'recipient');
  assert.equal(recipient[0].getFingerprint(), recipientPrivate.getFingerprint());
  assert.doesNotMatch(readFileSync(join(out, 'recipient.pub.asc'), 'utf8'), /PRIVATE/);

  const again = await sandbox.runCli(['keys', 'generate', '--out', out, '--group', 'prod']);
  assert.equal(again.code, EXIT.REFUSED);
  assert.match(again.log, /recipient\.key\.asc already exists; a key is never overwritten silently/);
  // The refused run left the first key intact.
  assert.equal((await readPrivateKey(readFileSync(join(out, 'recipient.key.asc'), 'utf8'), 'recipient')).getFingerprint(), recipientPrivate.getFingerprint());

  const noGroup = await sandbox.runCli(['keys', 'generate', '--out', join(sandbox.dir, 'k2')]);
  assert.equal(noGroup.code, EXIT.USAGE);
  assert.match(noGroup.log, /a signing key belongs to a host group: --group is required/);
});

test('a passphrase-protected recipient key needs its passphrase', async () => {
  const sandbox = await createAgentSandbox();
  const out = join(sandbox.dir, 'keys');
  const passFile = join(sandbox.dir, 'pass');
  writeFileSync(passFile, 'correct horse\n', { mode: 0o600 });
  const result = await sandbox.runCli(['keys', 'generate', '--out', out, '--only', 'recipient', '--passphrase-file', passFile]);
  assert.equal(result.code, EXIT.OK, result.log);
  const armored = readFileSync(join(out, 'recipient.key.asc'), 'utf8');
  await assert.rejects(readPrivateKey(armored, 'recipient'), /protected by a passphrase/);
  await assert.rejects(readPrivateKey(armored, 'recipient', 'wrong'), /the passphrase does not unlock this key/);
  assert.ok((await readPrivateKey(armored, 'recipient', 'correct horse')).isDecrypted());
});

test('keys publish stores the signing key as a SecureString that a backup then signs with', async () => {
  const sandbox = await createAgentSandbox();
  const out = join(sandbox.dir, 'keys');
  assert.equal((await sandbox.runCli(['keys', 'generate', '--out', out, '--group', 'prod', '--only', 'signing'])).code, EXIT.OK);
  const env = { AWS_ENDPOINT_URL: sandbox.account.clientConfig.endpoint };
  const names = groupParameters('prod');
  const ssm = new SSMClient(sandbox.account.clientConfig);
  // No stack deployed and no --kms-key-id: aws/ssm would let every host read it, so it is refused.
  const noKey = await sandbox.runCli(['keys', 'publish', '--group', 'prod', '--signing-key', join(out, 'prod-signing.key.asc')], env);
  assert.equal(noKey.code, EXIT.CONFIG, noKey.log);
  assert.match(noKey.log, /no KMS key for the signing key of group prod: \/coldseal\/deployment does not exist/);
  assert.match(noKey.log, /aws\/ssm is refused/);
  assert.equal((await ssm.send(new DescribeParametersCommand({ ParameterFilters: [{ Key: 'Name', Values: [names.signingKey] }] }))).Parameters?.length, 0, 'nothing was written');
  // With the deployed stack's record of the group's key, publish uses it without being told.
  const groupKey = `arn:aws:kms:us-east-1:${sandbox.account.accountId}:key/0a1b2c3d-prod-signing`;
  await ssm.send(new PutParameterCommand({ Name: deploymentParameter(), Type: 'String', Value: JSON.stringify({ formatVersion: 1, documentName: 'd', region: 'us-east-1', hostTagKey: 'coldseal-group', groups: ['prod'], executionTimeoutSeconds: 3600, maxConcurrency: '10', maxErrors: '100%', signingKeys: { prod: groupKey } }) }));
  const published = await sandbox.runCli(['keys', 'publish', '--group', 'prod', '--signing-key', join(out, 'prod-signing.key.asc'), '--with-public'], env);
  assert.equal(published.code, EXIT.OK, published.log);
  assert.match(published.stdout, new RegExp(`stored in ${names.signingKey} \\(SecureString\\)`));
  const stored = await ssm.send(new GetParameterCommand({ Name: names.signingKey }));
  assert.equal(stored.Parameter?.Type, 'SecureString');
  const described = await ssm.send(new DescribeParametersCommand({ ParameterFilters: [{ Key: 'Name', Values: [names.signingKey] }] }));
  assert.equal(described.Parameters?.[0]?.KeyId, groupKey, 'encrypted with the group key, not aws/ssm');
  const publicHalf = (await ssm.send(new GetParameterCommand({ Name: names.signingPublicKeys }))).Parameter!.Value!;
  assert.doesNotMatch(publicHalf, /PRIVATE/);

  const twice = await sandbox.runCli(['keys', 'publish', '--group', 'prod', '--signing-key', join(out, 'prod-signing.key.asc')], env);
  assert.equal(twice.code, EXIT.REFUSED);
  assert.match(twice.log, /already holds a signing key. Pass --overwrite to rotate it/);

  const notAKey = await sandbox.runCli(['keys', 'publish', '--group', 'prod', '--signing-key', join(out, 'prod-signing.pub.asc')], env);
  assert.equal(notAKey.code, EXIT.KEYS);

  const config = sandbox.config({ group: 'prod', signingKey: { parameter: names.signingKey }, sources: [{ name: 'etc', type: 'files', paths: [out] }] });
  const backup = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily']);
  assert.equal(backup.code, EXIT.OK, backup.log);
  const manifestKey = (await sandbox.listKeys('backups/daily/prod/')).find((k) => k.endsWith('.manifest.json'))!;
  const opened = await openManifest((await sandbox.getObject(manifestKey)).toString(), await readPublicKeys(publicHalf, 'signing'));
  const signingPublic = await readPublicKeys(readFileSync(join(out, 'prod-signing.pub.asc'), 'utf8'), 'signing');
  assert.equal(opened.signerFingerprint, signingPublic[0].getFingerprint());
});
