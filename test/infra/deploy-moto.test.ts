/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetParameterCommand, GetParametersByPathCommand, ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { loadConfigParameter } from '../../agent/src/config/load';
import { parseKey, type Tier } from '../../format/layout';
import { readPublicKeys, generateKeyPair } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { configPartsPath, deploymentParameter, groupParameters } from '../../format/parameters';
import { EXIT } from '../../format/exit-codes';
import { buildAgentSync } from '../../scripts/build-agent';
import { deployToMoto, documentScript, hostEnv, logicalIdOfType, MOTO_GAPS, readCommandDocument, runDocument as runDocumentIn, runProcess, type CommandDocument, type DeployedStack } from '../../local-system/moto-stack';
import { newMotoAccount, uniqueName, type MotoAccount } from '../harness/aws';
import { createPgFixture, dropPgDatabase, uniqueDbName, PG } from '../../local-system/databases';
import { decompress, gpgDecrypt } from '../harness/gpg';
import { ROOT, sampleContext } from './fixtures';

/**
 * The synthesized template deployed into moto_server's CloudFormation, then the SSM document's
 * own script (taken from the deployed document, parameters substituted as SSM does) run on this
 * machine with sh: it fetches the agent bundle from the deployed asset, and the agent backs up
 * the local PostgreSQL into the deployed bucket using the deployed parameters.
 *
 * moto's CloudFormation does not create every resource type nor apply every bucket property; what
 * it skips is listed (and asserted, so a change in moto is noticed) and the bucket settings the
 * backup depends on are applied from the template through the S3 API, as CloudFormation would
 * (local-system/moto-stack.ts).
 */
const GROUP = 'db';
const SOURCE = 'pg';

let account: MotoAccount;
let s3: S3Client;
let ssm: SSMClient;
let dir: string;
let database: string;
let deployed: DeployedStack;
let template: any;
let physical: ReadonlyMap<string, string>;
let bucket: string;
let recipientKeyFile: string;
let signingPublicKey: string;
let document: CommandDocument;

function run(command: string, args: string[], env: Record<string, string>) {
  return runProcess(command, args, { env, cwd: dir });
}

before(async () => {
  account = await newMotoAccount();
  s3 = new S3Client(account.clientConfig);
  ssm = new SSMClient(account.clientConfig);
  dir = mkdtempSync(join(tmpdir(), 'coldseal-deploy-'));

  // The real agent, copied away from dist/ so a concurrent build elsewhere cannot change it under us.
  const bundle = join(dir, 'coldseal-agent.js');
  copyFileSync(buildAgentSync(), bundle);

  // Fresh keys, as `coldseal keys generate` would make them: public halves go into the context.
  const recipient = await generateKeyPair({ name: 'deploy test recipient' });
  const signing = await generateKeyPair({ name: 'deploy test signing' }, undefined, { signOnly: true });
  recipientKeyFile = join(dir, 'recipient.key.asc');
  writeFileSync(recipientKeyFile, recipient.privateKey, { mode: 0o600 });
  writeFileSync(join(dir, 'signing.key.asc'), signing.privateKey, { mode: 0o600 });
  signingPublicKey = signing.publicKey;

  database = uniqueDbName('coldseal_deploy');
  await createPgFixture(database, 2_000);

  const context = sampleContext() as any;
  context.recipients = recipient.publicKey;
  context.groups = {
    [GROUP]: {
      schedule: 'cron(30 1 * * ? *)',
      signingPublicKeys: signing.publicKey,
      sources: [{ name: SOURCE, type: 'postgres', host: PG.host, port: PG.port, user: PG.user, databases: [database] }],
    },
  };
  deployed = await deployToMoto({ target: account, context, baseDir: ROOT, agentBundle: bundle, stackName: uniqueName('ColdsealDeploy') });
  ({ template, physical, bucket } = deployed);
  document = await readCommandDocument(ssm, deployed.output('AgentDocumentName'));

  // The user's step after deploying: the signing private key into its SecureString, with the CLI.
  const publish = await run(process.execPath, [bundle, 'keys', 'publish', '--group', GROUP, '--signing-key', join(dir, 'signing.key.asc')], hostEnv(account, dir));
  assert.equal(publish.code, EXIT.OK, publish.stderr);
});

after(async () => {
  if (database) await dropPgDatabase(database);
});

async function runDocument(values: Record<string, string>, env: Record<string, string> = {}) {
  return runDocumentIn(account, document, values, dir, env);
}

async function listBackups(prefix = 'backups/'): Promise<string[]> {
  const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (page.Contents ?? []).map((o) => o.Key!).sort();
}

describe('deployed into moto', () => {
  test('moto created the stack resources it supports; what it skipped or could not take is a known moto gap', () => {
    const { stack, pruned } = deployed;
    const types = new Set(Object.values(template.Resources as Record<string, any>).map((r) => r.Type as string));
    const created = new Set(Object.entries(template.Resources as Record<string, any>).filter(([id]) => physical.has(id)).map(([, r]) => r.Type as string));
    const skipped = [...types].filter((t) => !created.has(t) && t !== 'AWS::CDK::Metadata').sort();
    // Taken out before deploying only because they referred to something moto lacks: monitoring, not the backup path.
    const collateral = [...new Set([...pruned.values()].filter((t) => !MOTO_GAPS.includes(t)))];
    assert.deepEqual(collateral.filter((t) => !['AWS::CloudWatch::Dashboard', 'AWS::CloudWatch::CompositeAlarm'].includes(t)), [], `pruned ${collateral.join(', ')}`);
    assert.deepEqual(skipped.filter((t) => !MOTO_GAPS.includes(t) && !collateral.includes(t)), [], `moto skipped ${skipped.join(', ')}`);
    for (const t of ['AWS::S3::BucketPolicy', 'AWS::Scheduler::Schedule']) assert.ok(skipped.includes(t), `moto now deploys ${t}: test it for real`);
    for (const t of ['AWS::S3::Bucket', 'AWS::KMS::Key', 'AWS::SSM::Document', 'AWS::SSM::Parameter', 'AWS::SNS::Topic', 'AWS::IAM::ManagedPolicy', 'AWS::IAM::Role', 'AWS::Logs::LogGroup']) {
      assert.ok(created.has(t), `${t} deployed`);
    }
    assert.equal(document.schemaVersion, '2.2');
    for (const key of ['DataBucketName', 'AlertTopicArn', 'AgentDocumentName', 'InstancePolicyArnDb', 'BackupCommandDb']) {
      assert.ok(stack.Outputs!.some((o) => o.OutputKey === key && o.OutputValue), key);
    }
    assert.match(stack.Outputs!.find((o) => o.OutputKey === 'BackupCommandDb')!.OutputValue!, /^aws ssm send-command --region us-east-1 --document-name \S+ --document-version '\$LATEST' --targets Key=tag:coldseal-group,Values=db --parameters group=db /);
  });

  test('the deployed group configuration is what the agent accepts, pointing at the deployed bucket, key and topic', async () => {
    const names = groupParameters(GROUP);
    // As the agent reads it: the head and the parts that hold its sources (format/config-parameter.ts).
    const config = await loadConfigParameter(ssm, names.config);
    assert.deepEqual(config.sources.map((s) => s.name), [SOURCE]);
    assert.equal(config.bucket, bucket);
    assert.equal(config.alertTopicArn, deployed.output('AlertTopicArn'));
    const keyId = physical.get(logicalIdOfType(template, 'AWS::KMS::Key', (r) => /backups/.test(r.Properties.Description)))!;
    assert.equal(config.upload.kmsKeyId, `arn:aws:kms:us-east-1:${account.accountId}:key/${keyId}`);
    const recipients = (await ssm.send(new GetParameterCommand({ Name: names.recipients }))).Parameter!.Value!;
    assert.equal((await readPublicKeys(recipients, 'recipients')).length, 1);
    assert.equal((await ssm.send(new GetParameterCommand({ Name: names.signingPublicKeys }))).Parameter!.Value!.trim(), signingPublicKey.trim());
    // Nothing the stack wrote holds a private key; the one SecureString is the key `keys publish` stored.
    const all = (await ssm.send(new GetParametersByPathCommand({ Path: '/coldseal', Recursive: true, WithDecryption: false }))).Parameters ?? [];
    const parts = all.map((p) => p.Name!).filter((n) => n.startsWith(`${configPartsPath(names.config)}/`));
    assert.equal(parts.length, 1, 'one small group: its sources in one part');
    assert.deepEqual(all.map((p) => p.Name).sort(), [...Object.values(names), ...parts, deploymentParameter()].sort());
    for (const parameter of all.filter((p) => p.Type === 'String')) assert.doesNotMatch(parameter.Value ?? '', /PRIVATE KEY/, parameter.Name);
    assert.deepEqual(all.filter((p) => p.Type === 'SecureString').map((p) => p.Name), [names.signingKey]);
  });

  test("the document's script, run here with the deployed parameters, backs up the local PostgreSQL into the deployed bucket", async () => {
    const result = await runDocument({ group: GROUP });
    assert.equal(result.code, EXIT.OK, `exit ${result.code}\n${result.stderr}\n${result.stdout}`);
    const keys = await listBackups();
    const manifests = keys.map(parseKey).filter((k) => k?.kind === 'manifest');
    assert.equal(manifests.length, 1, keys.join('\n'));
    const manifestLoc = manifests[0]!;
    assert.equal(manifestLoc.kind === 'manifest' && manifestLoc.group, GROUP);
    assert.equal(manifestLoc.kind === 'manifest' && manifestLoc.source, SOURCE);

    const manifestKey = keys.find((k) => parseKey(k)?.kind === 'manifest')!;
    const manifestText = await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: manifestKey }))).Body!.transformToString();
    const { document: manifest } = await openManifest(manifestText, await readPublicKeys(signingPublicKey, 'signing key'));
    assert.equal(manifest.group, GROUP);
    const artifact = manifest.artifacts.find((a) => a.name === database);
    assert.ok(artifact, `no artifact for ${database}`);

    // The dump is really there: ciphertext decrypts with the recipient's private key to a pg_dump archive.
    const ciphertext = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: bucket, Key: artifact.key }))).Body!.transformToByteArray());
    const plain = decompress(gpgDecrypt(ciphertext, recipientKeyFile), manifest.compression.algorithm);
    assert.equal(plain.subarray(0, 5).toString('latin1'), 'PGDMP');

    // Written the way the stack configured it: its KMS key, the tier's Object Lock.
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: artifact.key }));
    assert.equal(head.ServerSideEncryption, 'aws:kms');
    const config = await loadConfigParameter(ssm, groupParameters(GROUP).config);
    assert.match(head.SSEKMSKeyId ?? '', new RegExp(config.upload.kmsKeyId!.split('/').pop()!));
    // (HeadObject, not GetObjectRetention, whose moto response the SDK cannot parse.)
    const lock = config.objectLock[manifest.tier as Tier]!;
    assert.equal(head.ObjectLockMode, lock.mode);
    const days = (head.ObjectLockRetainUntilDate!.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > lock.days - 1 && days <= lock.days + 1, `retained ${days} days, expected ${lock.days}`);
  });

  test('document parameters reach the agent: a forced tier and a source list, with the cached agent', async () => {
    const agentDir = join(dir, 'coldseal-home', 'agent');
    const cached = readdirSync(agentDir).filter((f) => f.endsWith('.js'));
    assert.equal(cached.length, 1);
    const before = statSync(join(agentDir, cached[0])).mtimeMs;
    const result = await runDocument({ group: GROUP, tier: 'monthly', sources: SOURCE });
    assert.equal(result.code, EXIT.OK, `exit ${result.code}\n${result.stderr}`);
    assert.equal(statSync(join(agentDir, cached[0])).mtimeMs, before, 'the checked agent is reused, not fetched again');
    // Beside the agent, its V8 code cache (the directory is private to root, as the script makes it).
    assert.deepEqual(readdirSync(agentDir).sort(), [cached[0], `${cached[0]}.v8cache`], 'no partial download left behind, and the code cache beside the agent');
    const monthly = (await listBackups('backups/monthly/')).filter((k) => parseKey(k)?.kind === 'manifest');
    assert.equal(monthly.length, 1);
  });

  test('a new agent replaces the earlier one and its code cache; nothing else in the directory is touched', async () => {
    const home = join(dir, 'updated-home');
    const agentDir = join(home, 'agent');
    mkdirSync(agentDir, { recursive: true, mode: 0o700 });
    const earlier = ['coldseal-agent-0123456789abcdef.js', 'coldseal-agent-0123456789abcdef.js.v8cache', 'coldseal-agent-fedcba9876543210.js'];
    for (const name of earlier) writeFileSync(join(agentDir, name), 'an earlier agent');
    writeFileSync(join(agentDir, 'operator-notes.txt'), 'not ours');
    const result = await runDocument({ group: GROUP }, { COLDSEAL_HOME: home });
    assert.equal(result.code, EXIT.OK, `exit ${result.code}\n${result.stderr}`);
    const current = readdirSync(agentDir).filter((f) => f.endsWith('.js'));
    assert.equal(current.length, 1, `one agent left: ${current.join(', ')}`);
    assert.ok(!earlier.includes(current[0]), 'the one left is the agent just fetched');
    assert.deepEqual(readdirSync(agentDir).sort(), [current[0], `${current[0]}.v8cache`, 'operator-notes.txt'].sort(), 'earlier agents and caches removed, other files kept');
  });

  test('the output send-command line and each schedule input are valid SendCommand requests for the AWS CLI', async () => {
    const documentName = deployed.output('AgentDocumentName');
    const line = deployed.output('BackupCommandDb');
    const manual = await run('/bin/sh', ['-c', `${line} --output json`], hostEnv(account, dir));
    assert.equal(manual.code, 0, manual.stderr);
    const sent = JSON.parse(manual.stdout).Command;
    assert.equal(sent.DocumentName, documentName);
    assert.deepEqual(sent.Parameters, { group: ['db'] });
    assert.deepEqual(sent.Targets, [{ Key: 'tag:coldseal-group', Values: ['db'] }]);

    // The Scheduler's universal target sends the Input as the SendCommand request: the CLI checks
    // it against the API model (an unknown or misspelled field is refused).
    const resolveRefs = (value: any): string =>
      typeof value === 'string' ? value : 'Ref' in value ? physical.get(value.Ref)! : (value['Fn::Join'][1] as unknown[]).map(resolveRefs).join(value['Fn::Join'][0]);
    const schedules = Object.values(template.Resources as Record<string, any>).filter((r) => r.Type === 'AWS::Scheduler::Schedule');
    assert.equal(schedules.length, 2);
    for (const schedule of schedules) {
      const input = resolveRefs(schedule.Properties.Target.Input);
      const file = join(dir, `schedule-${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(file, input);
      const result = await run('aws', ['ssm', 'send-command', '--cli-input-json', `file://${file}`, '--output', 'json'], hostEnv(account, dir));
      assert.equal(result.code, 0, result.stderr);
      const command = JSON.parse(result.stdout).Command;
      assert.equal(command.DocumentName, documentName);
      assert.deepEqual(command.Parameters.group, ['db']);
    }
  });

  test('coldseal trigger finds the deployed document and tag through the deployed deployment parameter', async () => {
    // The operator's CLI, with nothing but credentials and region: everything else comes from the stack.
    const args = ['--import', 'tsx', join(ROOT, 'agent', 'src', 'cli.ts'), '--json', 'trigger', '--group', GROUP, '--source', SOURCE];
    const result = await runProcess(process.execPath, args, { env: { ...hostEnv(account, dir), NODE_NO_WARNINGS: '1' }, cwd: ROOT });
    assert.equal(result.code, EXIT.OK, result.stderr);
    const { commandId } = JSON.parse(result.stdout) as { commandId: string };
    const sent = (await ssm.send(new ListCommandsCommand({ CommandId: commandId }))).Commands![0];
    assert.equal(sent.DocumentName, deployed.output('AgentDocumentName'));
    assert.deepEqual(sent.Targets, [{ Key: 'tag:coldseal-group', Values: [GROUP] }]);
    assert.deepEqual(sent.Parameters, { group: [GROUP], action: ['backup'], tier: ['auto'], sources: [SOURCE], executionTimeout: ['14400'] });
    assert.ok(result.stderr.includes(`output: CloudWatch log group ${deployed.output('CommandLogGroupName')}`), result.stderr);
  });

  test('a host with a Node older than the minimum (v18), or none, is refused with the install line for its distribution', async () => {
    const bin = join(dir, 'old-node-bin');
    mkdirSync(bin, { recursive: true });
    // A Node 18 as the script sees it: its --version (anything else it is asked would be a Node 18 running the agent).
    writeFileSync(join(bin, 'node'), '#!/bin/sh\nif [ "$1" = "--version" ]; then echo v18.20.4; exit 0; fi\nexit 1\n');
    chmodSync(join(bin, 'node'), 0o755);
    const osRelease = (name: string, text: string) => {
      const file = join(dir, `os-release-${name}`);
      writeFileSync(file, text);
      return file;
    };
    const distributions: [string, string, RegExp][] = [
      ['al2023', 'NAME="Amazon Linux"\nID="amzn"\nID_LIKE="fedora"\nVERSION_ID="2023"\n', /dnf install -y nodejs24 && sudo alternatives --set node \/usr\/bin\/node-24/],
      ['al2', 'NAME="Amazon Linux"\nID="amzn"\nID_LIKE="centos rhel fedora"\nVERSION_ID="2"\n', /Amazon Linux 2 cannot run Node\.js 20/],
      ['rocky9', 'NAME="Rocky Linux"\nID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.4"\n', /dnf module reset -y nodejs && sudo dnf module install -y nodejs:22/],
      ['rhel8', 'NAME="Red Hat Enterprise Linux"\nID="rhel"\nID_LIKE="fedora"\nVERSION_ID="8.10"\n', /dnf module reset -y nodejs && sudo dnf module install -y nodejs:22/],
      ['ubuntu', 'NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID="24.04"\n', /deb\.nodesource\.com\/setup_24\.x/],
    ];
    for (const [name, text, line] of distributions) {
      const result = await runDocument({ group: GROUP }, { PATH: `${bin}:${process.env.PATH}`, COLDSEAL_OS_RELEASE: osRelease(name, text) });
      assert.equal(result.code, EXIT.CONFIG, `${name}: ${result.stderr}`);
      assert.match(result.stderr, /Node\.js 20 or later is required; this host has v18\.20\.4/, name);
      assert.match(result.stderr, line, name);
      assert.doesNotMatch(result.stderr, /dnf install -y nodejs[ ;)]/, `${name}: plain "nodejs" is Node 18 on Amazon Linux 2023`);
    }
    const empty = join(dir, 'empty-bin');
    mkdirSync(empty, { recursive: true });
    const none = await runDocument({ group: GROUP }, { PATH: empty, COLDSEAL_OS_RELEASE: osRelease('al2023', distributions[0][1]) });
    assert.equal(none.code, EXIT.CONFIG);
    assert.match(none.stderr, /Node\.js 20 or later is required on this host and there is no 'node' on PATH/);
    assert.match(none.stderr, distributions[0][2]);
  });

  test('a tampered agent in the asset bucket is refused by its SHA-256', async () => {
    const script = documentScript(document, { group: GROUP });
    const url = /aws s3 cp --only-show-errors 's3:\/\/([^/]+)\/([^']+)'/.exec(script)!;
    const original = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: url[1], Key: url[2] }))).Body!.transformToByteArray());
    await s3.send(new PutObjectCommand({ Bucket: url[1], Key: url[2], Body: 'console.log("not the agent")' }));
    try {
      const result = await runDocument({ group: GROUP }, { COLDSEAL_HOME: join(dir, 'fresh-home') });
      assert.equal(result.code, EXIT.INTEGRITY);
      assert.match(result.stderr, /does not have the SHA-256 this document expects; refusing to run it/);
    } finally {
      await s3.send(new PutObjectCommand({ Bucket: url[1], Key: url[2], Body: original }));
    }
  });
});
