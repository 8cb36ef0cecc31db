/* eslint-disable @typescript-eslint/no-explicit-any -- synthesized templates are untyped JSON */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetParameterCommand, GetParametersByPathCommand, ListCommandsCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { loadConfigParameter } from '../../agent/src/config/load';
import { parseKey, type Tier } from '../../format/layout';
import { readPublicKeys, generateKeyPair } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { configPartsPath, deploymentParameter, groupParameters } from '../../format/parameters';
import { EXIT } from '../../format/exit-codes';
import { cachedExecutableName, type AgentArch, type AgentExecutable } from '../../format/agent-executables';
import { hostNameFrom } from '../../format/layout';
import { RUN_DOCUMENT_STEPS } from '../../format/run-document';
import { buildAgentExecutablesSync, buildAgentSync } from '../../scripts/build-agent';
import {
  copiedExecutables,
  deployToMoto,
  downloadDirectory,
  downloadSource,
  hostEnv,
  logicalIdOfType,
  MOTO_GAPS,
  readCommandDocument,
  runDocument as runDocumentIn,
  runProcess,
  type CommandDocument,
  type DeployedStack,
} from '../../local-system/moto-stack';
import { Deployment, DocumentRunHistory, HostInventory } from '../../local-system/flow';
import type { MonitorResult } from '../../lambdas/monitor/core/monitor';
import { newMotoAccount, uniqueName, type MotoAccount } from '../harness/aws';
import { createPgFixture, dropPgDatabase, uniqueDbName, PG } from '../../local-system/databases';
import { decompress, gpgDecrypt } from '../harness/gpg';
import { ROOT, sampleContext } from './fixtures';
import { STABLE_LINK } from '../../infra/lib/agent-script';

/**
 * The synthesized template deployed into moto_server's CloudFormation, then the deployed SSM
 * document run on this machine as the SSM Agent would run it (local-system/moto-stack.ts
 * runDocument): its download steps fetch both architectures' executables from the deployed
 * assets with the host's credentials, its script (parameters substituted as SSM does) picks this
 * host's, checks it and runs it, and the agent backs up the local PostgreSQL into the deployed
 * bucket using the deployed parameters. The host's PATH has no node, no aws and no zstd.
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
let executables: AgentExecutable[];
/** This machine's /usr/bin and /usr/sbin without node, the AWS CLI and zstd: what a database server has. */
let hostBin: string;

function run(command: string, args: string[], env: Record<string, string>) {
  return runProcess(command, args, { env, cwd: dir });
}

before(async () => {
  account = await newMotoAccount();
  s3 = new S3Client(account.clientConfig);
  ssm = new SSMClient(account.clientConfig);
  dir = mkdtempSync(join(tmpdir(), 'coldseal-deploy-'));

  // The real agent, copied away from dist/ so a concurrent build elsewhere cannot change it under
  // us: the bundle (the operator's laptop) and the executables' gzip copies (what the stack ships).
  const bundle = join(dir, 'coldseal-agent.js');
  copyFileSync(buildAgentSync(), bundle);
  executables = copiedExecutables(buildAgentExecutablesSync(), dir);
  hostBin = join(dir, 'host-bin');
  mkdirSync(hostBin);
  for (const from of ['/usr/bin', '/usr/sbin']) {
    for (const name of readdirSync(from)) {
      if (/^(node|nodejs|npm|npx|corepack|aws|aws_completer|zstd|zstdmt|unzstd|zstdcat)$/.test(name) || existsSync(join(hostBin, name))) continue;
      symlinkSync(join(from, name), join(hostBin, name));
    }
  }

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
  deployed = await deployToMoto({ target: account, context, baseDir: ROOT, agentExecutables: executables, stackName: uniqueName('ColdsealDeploy') });
  ({ template, physical, bucket } = deployed);
  document = await readCommandDocument(ssm, deployed.output('AgentDocumentName'));

  // The user's step after deploying: the signing private key into its SecureString, with the CLI.
  const publish = await run(process.execPath, [bundle, 'keys', 'publish', '--group', GROUP, '--signing-key', join(dir, 'signing.key.asc')], hostEnv(account, dir));
  assert.equal(publish.code, EXIT.OK, publish.stderr);
});

after(async () => {
  if (database) await dropPgDatabase(database);
});

/** This host's file system root for the document's absolute download paths (runDocument's hostRoot). */
const hostRoot = () => join(dir, 'host-root');
const downloads = () => join(hostRoot(), downloadDirectory(document));

/** The deployed document run as the SSM Agent runs it, with a host's PATH; the script told where the downloads are. */
async function runDocument(values: Record<string, string>, env: Record<string, string> = {}) {
  return runDocumentIn(account, document, values, dir, { PATH: hostBin, COLDSEAL_DOWNLOADS: downloads(), ...env }, { hostRoot: hostRoot() });
}

/** A bin directory whose `name` prints `output` (a host that says something else), put first on the host's PATH. */
function fakeTool(name: string, script: string): string {
  const bin = join(dir, `fake-${name}-${Math.random().toString(36).slice(2)}`);
  mkdirSync(bin);
  writeFileSync(join(bin, name), `#!/bin/sh\n${script}\n`);
  chmodSync(join(bin, name), 0o755);
  return `${bin}:${hostBin}`;
}

function executableOf(arch: AgentArch): AgentExecutable {
  return executables.find((e) => e.arch === arch)!;
}

/** The asset object a download step of the document fetches. */
function assetOf(arch: AgentArch) {
  const step = document.mainSteps.find((s) => s.action === 'aws:downloadContent' && String(s.inputs.destinationPath).endsWith(`-${arch}.gz`));
  assert.ok(step, `no download step for ${arch}`);
  return downloadSource(String(step.inputs.sourceInfo));
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

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

  test('the document, run here as the SSM Agent runs it, downloads both executables, runs the x86_64 one, and it backs up the local PostgreSQL into the deployed bucket', async () => {
    assert.deepEqual(
      document.mainSteps.map((s) => `${s.action} ${s.name}`),
      ['aws:downloadContent downloadAgentX64', 'aws:downloadContent downloadAgentArm64', 'aws:runShellScript runColdsealAgent'],
    );
    // The names the monitor asks SSM for, step by step (lambdas/shared/aws.ts SsmCommandHistory).
    assert.deepEqual(document.mainSteps.map((s) => s.name), RUN_DOCUMENT_STEPS);
    const result = await runDocument({ group: GROUP });
    assert.equal(result.code, EXIT.OK, `exit ${result.code}\n${result.stderr}\n${result.stdout}`);
    assert.deepEqual(result.steps.map((s) => `${s.name} ${s.status}`), ['downloadAgentX64 Success', 'downloadAgentArm64 Success', 'runColdsealAgent Success']);
    // The script removes what the download steps wrote (and the agent's ETag files beside them).
    assert.deepEqual(readdirSync(downloads()), []);
    // This host's executable, from the x64 asset: its SHA-256 is the build's.
    const cached = join(dir, 'coldseal-home', 'agent', cachedExecutableName(executableOf('x64').sha256));
    assert.equal(sha256(readFileSync(cached)), executableOf('x64').sha256);
    assert.equal(statSync(cached).mode & 0o777, 0o700);
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
    // No zstd on the host's PATH: the executable's own Node compressed it, in zstd still.
    assert.equal(manifest.compression.algorithm, 'zstd');
    assert.doesNotMatch(manifest.compression.implementation, /zstd-cli/);
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

  test('document parameters reach the agent: a forced tier and a source list, with the cached agent (not decompressed again)', async () => {
    const agentDir = join(dir, 'coldseal-home', 'agent');
    const name = cachedExecutableName(executableOf('x64').sha256);
    const before = statSync(join(agentDir, name)).mtimeMs;
    const result = await runDocument({ group: GROUP, tier: 'monthly', sources: SOURCE });
    assert.equal(result.code, EXIT.OK, `exit ${result.code}\n${result.stderr}`);
    assert.equal(statSync(join(agentDir, name)).mtimeMs, before, 'the checked agent is reused, not installed again');
    // Beside the agent, its V8 code cache (the directory is private to root, as the script makes it).
    assert.deepEqual(readdirSync(agentDir).sort(), [STABLE_LINK, name, `${name}.v8cache`].sort(), 'no partial download left behind, the code cache beside the agent, the stable link to it');
    assert.equal(statSync(agentDir).mode & 0o777, 0o700);
    const monthly = (await listBackups('backups/monthly/')).filter((k) => parseKey(k)?.kind === 'manifest');
    assert.equal(monthly.length, 1);
  });

  test('a new agent replaces the earlier ones and their code caches; nothing else in the directory is touched', async () => {
    const home = join(dir, 'updated-home');
    const agentDir = join(home, 'agent');
    mkdirSync(agentDir, { recursive: true, mode: 0o700 });
    // An earlier executable and its cache, and a bundle-era agent (Node.js script) and its cache.
    const earlier = ['coldseal-agent-0123456789abcdef', 'coldseal-agent-0123456789abcdef.v8cache', 'coldseal-agent-fedcba9876543210.js', 'coldseal-agent-fedcba9876543210.js.v8cache'];
    for (const name of earlier) writeFileSync(join(agentDir, name), 'an earlier agent');
    writeFileSync(join(agentDir, 'operator-notes.txt'), 'not ours');
    const result = await runDocument({ group: GROUP }, { COLDSEAL_HOME: home });
    assert.equal(result.code, EXIT.OK, `exit ${result.code}\n${result.stderr}`);
    const current = cachedExecutableName(executableOf('x64').sha256);
    assert.deepEqual(readdirSync(agentDir).sort(), [STABLE_LINK, current, `${current}.v8cache`, 'operator-notes.txt'].sort(), 'earlier agents and caches removed, other files kept');
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

  test('an aarch64 host gets the arm64 executable, checked by its SHA-256; here it cannot start (no binfmt for aarch64), and the script says so', async () => {
    const home = join(dir, 'aarch64-home');
    const arm64 = executableOf('arm64');
    const result = await runDocument({ group: GROUP }, { COLDSEAL_HOME: home, PATH: fakeTool('uname', 'echo aarch64') });
    assert.equal(result.code, EXIT.CONFIG, `exit ${result.code}\n${result.stderr}`);
    // Named by the arm64 executable's SHA-256: the script took the arm64 download, whose
    // compressed and decompressed SHA-256s it checked, and ran that file's --version.
    assert.match(result.stderr, new RegExp(`the agent for aarch64 \\(SHA-256 ${arm64.sha256}\\) does not start on this host: .*(Exec format error|cannot execute)`));
    assert.deepEqual(readdirSync(join(home, 'agent')), [], 'the executable that cannot start is not kept');
    assert.deepEqual(readdirSync(downloads()), []);
  });

  test('a tampered executable in the asset bucket is refused by its SHA-256; a host with the checked copy cached does not read the download', async () => {
    const asset = assetOf('x64');
    const original = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: asset.bucket, Key: asset.key }))).Body!.transformToByteArray());
    assert.equal(sha256(original), executableOf('x64').compressedSha256, 'the deployed asset is the build');
    const tampered = Buffer.from(original);
    tampered[tampered.length >> 1] ^= 0xff;
    await s3.send(new PutObjectCommand({ Bucket: asset.bucket, Key: asset.key, Body: tampered }));
    try {
      const fresh = join(dir, 'fresh-home');
      const refused = await runDocument({ group: GROUP }, { COLDSEAL_HOME: fresh });
      assert.equal(refused.code, EXIT.INTEGRITY, `exit ${refused.code}\n${refused.stderr}`);
      assert.match(refused.stderr, /does not have the SHA-256 this document expects; refusing to run it/);
      assert.deepEqual(readdirSync(join(fresh, 'agent')), [], 'nothing installed');
      assert.deepEqual(readdirSync(downloads()), [], 'the tampered download removed');
      const cached = await runDocument({ group: GROUP, tier: 'daily' });
      assert.equal(cached.code, EXIT.OK, `exit ${cached.code}\n${cached.stderr}`);
    } finally {
      await s3.send(new PutObjectCommand({ Bucket: asset.bucket, Key: asset.key, Body: original }));
    }
  });

  test('a download step that fails (the asset object gone) fails the command there (onFailure exit): the script does not run', async () => {
    const asset = assetOf('arm64');
    const original = Buffer.from(await (await s3.send(new GetObjectCommand({ Bucket: asset.bucket, Key: asset.key }))).Body!.transformToByteArray());
    await s3.send(new DeleteObjectCommand({ Bucket: asset.bucket, Key: asset.key }));
    try {
      const result = await runDocument({ group: GROUP });
      assert.equal(result.status, 'Failed');
      assert.deepEqual(result.steps.map((s) => `${s.name} ${s.status}`), ['downloadAgentX64 Success', 'downloadAgentArm64 Failed']);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /NoSuchKey|does not exist/);
    } finally {
      await s3.send(new PutObjectCommand({ Bucket: asset.bucket, Key: asset.key, Body: original }));
    }
  });

  test('a host of another architecture, or without glibc, fails with what it is and what the agent needs; the monitor alerts with that output', async () => {
    const s390x = await runDocument({ group: GROUP }, { COLDSEAL_HOME: join(dir, 's390x-home'), PATH: fakeTool('uname', 'echo s390x') });
    assert.equal(s390x.code, EXIT.CONFIG, s390x.stderr);
    assert.match(s390x.stderr, /coldseal: this host is s390x; the agent runs on x86_64 and aarch64 Linux/);
    const musl = await runDocument({ group: GROUP }, { COLDSEAL_HOME: join(dir, 'musl-home'), PATH: fakeTool('getconf', 'exit 1') });
    assert.equal(musl.code, EXIT.CONFIG, musl.stderr);
    assert.match(musl.stderr, /not glibc.*musl \(Alpine Linux\)/);
    const oldGlibc = await runDocument({ group: GROUP }, { COLDSEAL_HOME: join(dir, 'old-glibc-home'), PATH: fakeTool('getconf', 'echo glibc 2.17') });
    assert.equal(oldGlibc.code, EXIT.CONFIG, oldGlibc.stderr);
    assert.match(oldGlibc.stderr, /this host has glibc 2\.17; the agent needs glibc 2\.28 or later/);

    // The failed run reaches the monitor as SSM reports it: the command-status event through the
    // deployed rule, and the invocation (exit code and output) SSM would hold for the run.
    const deployment = await Deployment.read(account, deployed, join(dir, 'monitor-home'));
    await deployment.subscribeToAlerts();
    const started = new Date();
    const sent = await ssm.send(new SendCommandCommand({ DocumentName: deployed.output('AgentDocumentName'), Targets: [{ Key: 'tag:coldseal-group', Values: [GROUP] }], Parameters: { group: [GROUP] } }));
    const commandId = sent.Command!.CommandId!;
    const instanceId = 'i-0s390x0s390x0s390';
    const history = new DocumentRunHistory(ssm);
    history.record(commandId, instanceId, s390x, started);
    const event = await deployment.commandStatusEvent({
      'command-id': commandId,
      'document-name': deployed.output('AgentDocumentName'),
      'instance-id': instanceId,
      'requested-date-time': started.toISOString(),
      status: 'Failed',
    });
    const inventory = new HostInventory([{ instanceId, computerName: hostname(), pingStatus: 'Online', lastPingAt: new Date(), group: GROUP }]);
    const result = (await deployment.invokeMonitor(event, inventory, history)) as MonitorResult;
    assert.deepEqual(result.findings.map((f) => `${f.check} ${f.group}/${f.host}`), [`command-failed ${GROUP}/${hostNameFrom(hostname())}`]);
    const alerts = await deployment.receiveAlerts();
    assert.equal(alerts.length, 1, alerts.map((a) => a.subject).join('\n'));
    assert.match(alerts[0].subject, /FAIL/);
    assert.match(alerts[0].message, new RegExp(`exit code ${EXIT.CONFIG}`));
    assert.match(alerts[0].message, /this host is s390x; the agent runs on x86_64 and aarch64 Linux/);
    assert.match(alerts[0].message, new RegExp(`coldseal trigger --group ${GROUP}`));
  });
});
