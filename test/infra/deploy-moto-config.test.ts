/* eslint-disable @typescript-eslint/no-explicit-any -- contexts are untyped JSON */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { SSMClient } from '@aws-sdk/client-ssm';
import { loadConfigParameter } from '../../agent/src/config/load';
import { sourceSchema } from '../../format/agent-config';
import { readPublicKeys, generateKeyPair } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { parseKey } from '../../format/layout';
import { groupParameters } from '../../format/parameters';
import { EXIT } from '../../format/exit-codes';
import { buildAgentExecutablesSync, buildAgentSync } from '../../scripts/build-agent';
import { copiedExecutables, deployToMoto, downloadDirectory, hostEnv, readCommandDocument, runDocument, runProcess, type CommandDocument, type DeployedStack } from '../../local-system/moto-stack';
import { newMotoAccount, uniqueName, type MotoAccount } from '../harness/aws';
import { createPgFixture, dropPgDatabase, uniqueDbName, PG } from '../../local-system/databases';
import { longExcludes, manySources, ROOT, sampleContext } from './fixtures';

/**
 * Groups whose configuration is larger than any SSM parameter (40 sources; a source with a long
 * exclude list), deployed into moto (which, unlike PutParameter, takes any size: local-system/moto-stack.ts
 * checks each parameter against its tier as AWS would), then read by the real agent: its config
 * loader, the executable run by the SSM document (as the SSM Agent runs it), and `coldseal trigger` on an operator's laptop.
 */
const MANY = 'many';
const EXCLUDES = 'excludes';

let account: MotoAccount;
let ssm: SSMClient;
let s3: S3Client;
let dir: string;
let database: string;
let deployed: DeployedStack;
let document: CommandDocument;
let signingPublicKey: string;
let sources: Record<string, Record<string, unknown>[]>;

before(async () => {
  account = await newMotoAccount();
  ssm = new SSMClient(account.clientConfig);
  s3 = new S3Client(account.clientConfig);
  dir = mkdtempSync(join(tmpdir(), 'coldseal-deploy-config-'));
  const bundle = join(dir, 'coldseal-agent.js');
  copyFileSync(buildAgentSync(), bundle);
  const executables = copiedExecutables(buildAgentExecutablesSync(), dir);

  const recipient = await generateKeyPair({ name: 'config size recipient' });
  const signing = await generateKeyPair({ name: 'config size signing' }, undefined, { signOnly: true });
  writeFileSync(join(dir, 'signing.key.asc'), signing.privateKey, { mode: 0o600 });
  signingPublicKey = signing.publicKey;

  database = uniqueDbName('coldseal_cfgsize');
  await createPgFixture(database, 200);
  const real = { name: 'pg', type: 'postgres', host: PG.host, port: PG.port, user: PG.user, databases: [database] };
  sources = {
    [MANY]: [real, ...manySources(39)],
    // The real database, with 600 exclude patterns that match nothing in it.
    [EXCLUDES]: [{ ...longExcludes('pg', 600), host: PG.host, port: PG.port, user: PG.user, databases: [database] }, ...manySources(2)],
  };

  const context = sampleContext() as any;
  context.recipients = recipient.publicKey;
  delete context.drill;
  context.groups = Object.fromEntries(Object.entries(sources).map(([group, list]) => [group, { schedule: 'cron(30 1 * * ? *)', signingPublicKeys: signing.publicKey, sources: list }]));
  deployed = await deployToMoto({ target: account, context, baseDir: ROOT, agentExecutables: executables, stackName: uniqueName('ColdsealConfigSize') });
  document = await readCommandDocument(ssm, deployed.output('AgentDocumentName'));
  for (const group of Object.keys(sources)) {
    const publish = await runProcess(process.execPath, [bundle, 'keys', 'publish', '--group', group, '--signing-key', join(dir, 'signing.key.asc')], { env: hostEnv(account, dir), cwd: dir });
    assert.equal(publish.code, EXIT.OK, publish.stderr);
  }
});

after(async () => {
  if (database) await dropPgDatabase(database);
});

describe('a group configuration larger than an SSM parameter, deployed into moto', () => {
  test('the configurations are over 8 KB, and every parameter the stack wrote fits its tier (the deploy checks it as PutParameter would)', () => {
    for (const list of Object.values(sources)) assert.ok(Buffer.byteLength(JSON.stringify(list.map((s) => sourceSchema.parse(s)))) > 8192);
    assert.equal(deployed.stack.StackStatus, 'CREATE_COMPLETE');
  });

  test("the agent's config loader reads each group's whole configuration back", async () => {
    for (const [group, list] of Object.entries(sources)) {
      const config = await loadConfigParameter(ssm, groupParameters(group).config);
      assert.equal(config.group, group);
      assert.equal(config.bucket, deployed.bucket);
      assert.deepEqual(config.sources, list.map((s) => sourceSchema.parse(s)));
    }
  });

  test("the document's script runs the real agent, which reads the configuration and backs up one of the 40 sources", async () => {
    for (const group of [MANY, EXCLUDES]) {
      // As the SSM Agent runs it; its absolute download paths under dir/host-root, and the script told so.
      const hostRoot = join(dir, 'host-root');
      const result = await runDocument(account, document, { group, sources: 'pg' }, dir, { COLDSEAL_DOWNLOADS: join(hostRoot, downloadDirectory(document)) }, { hostRoot });
      assert.equal(result.code, EXIT.OK, `${group}: exit ${result.code}\n${result.stderr}`);
      const keys = ((await s3.send(new ListObjectsV2Command({ Bucket: deployed.bucket, Prefix: 'backups/' }))).Contents ?? []).map((o) => o.Key!);
      const manifestKey = keys.find((k) => { const p = parseKey(k); return p?.kind === 'manifest' && p.group === group; });
      assert.ok(manifestKey, `${group}: a manifest among ${keys.join(', ')}`);
      const text = await (await s3.send(new GetObjectCommand({ Bucket: deployed.bucket, Key: manifestKey }))).Body!.transformToString();
      const { document: manifest } = await openManifest(text, await readPublicKeys(signingPublicKey, 'signing key'));
      assert.equal(manifest.source, 'pg');
      assert.ok(manifest.artifacts.some((a) => a.name === database));
    }
  });

  test('coldseal trigger on an operator laptop reads the split configuration: an unknown source is refused, naming the 40 it has', async () => {
    const args = ['--import', 'tsx', join(ROOT, 'agent', 'src', 'cli.ts'), 'trigger', '--group', MANY, '--source', 'nope'];
    const result = await runProcess(process.execPath, args, { env: { ...hostEnv(account, dir), NODE_NO_WARNINGS: '1' }, cwd: ROOT });
    assert.equal(result.code, EXIT.USAGE, result.stderr);
    // Not a terminal: the error comes as a JSON log line.
    const messages = result.stderr.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { message: string }).message);
    assert.ok(messages.some((m) => /^group many has no source named "nope" \(its sources: pg, app-01, .*app-39\)/.test(m)), result.stderr);
  });
});
