import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decrypt, encryptKey, readMessage } from 'openpgp';
import type { Manifest } from '../../format/manifest';
import { readPrivateKey, readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { silentLog } from '../../agent/src/log';
import { runRestore } from '../../agent/src/restore/restore';
import { parsePostgresUrl } from '../../agent/src/restore/targets/postgres';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import {
  createPgFixture,
  mysqlContentFingerprint,
  mysqlSource,
  mysqlUrl,
  pgContentFingerprint,
  pgQuery,
  pgSource,
  pgUrl,
  uniqueDbName,
} from '../../local-system/databases';
import { treeListing } from '../harness/tree';

/**
 * Restores through the real CLI from backups the real CLI made: PostgreSQL (whole, into an
 * existing database with its safety dump, one table, --list), MariaDB and files; the restored
 * data must equal the original, table by table and file by file.
 */
let rt: RoundTrip;
let sandbox: AgentSandbox;
let configFile: string;
let safetyDir: string;
const pgDb = uniqueDbName('cs_rpg');
const myDb = uniqueDbName('cs_rmy');
let filesRoot: string;
let pgManifest: Manifest;
let myManifest: Manifest;

async function manifestOf(source: string): Promise<Manifest> {
  const [key] = (await sandbox.listKeys(`backups/daily/testgroup/testhost/${source}/`)).filter((k) => k.endsWith('.manifest.json'));
  const { document } = await openManifest((await sandbox.getObject(key)).toString('utf8'), await readPublicKeys(sandbox.signing.publicKey, 'signing'));
  return document;
}

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  safetyDir = rt.tempDir('coldseal-safety-');
  await Promise.all([rt.pgFixture(pgDb, 5000), rt.mysqlFixture(myDb, 3000)]);
  filesRoot = rt.filesTree('coldseal restore files ', { 'run.sh': { content: '#!/bin/sh\n', mode: 0o755 } });
  configFile = await rt.backup(sandbox.config({ sources: [pgSource('pg', [pgDb]), mysqlSource('maria', [myDb]), { name: 'docs', type: 'files', paths: [filesRoot] }] }));
  [pgManifest, myManifest] = await Promise.all([manifestOf('pg'), manifestOf('maria')]);
});

after(() => rt?.cleanup());

function restore(args: string[], env: Record<string, string> = {}) {
  return sandbox.runCli(['restore', '--config', configFile, '--key', sandbox.recipient.privateFile, '--safety-dir', safetyDir, ...args], env);
}

/** Safety dumps are encrypted to the recipients by default: the key that restores backups reads them. */
async function decryptSafetyDump(path: string): Promise<Buffer> {
  const { data } = await decrypt({ message: await readMessage({ binaryMessage: readFileSync(path) }), decryptionKeys: await readPrivateKey(sandbox.recipient.privateKey, 'recipient'), format: 'binary' });
  return Buffer.from(data);
}


describe('restore round trips', () => {
  test('backup recorded an exact inventory in the dump\'s snapshot (PostgreSQL) and an approximate one (MariaDB)', async () => {
    const inventory = pgManifest.artifacts.find((a) => a.name === pgDb)?.inventory;
    assert.ok(inventory, 'postgres artifact has an inventory');
    assert.equal(inventory.consistency, 'snapshot');
    const rows = Object.fromEntries(inventory.tables.map((t) => [`${t.schema}.${t.name}`, t.rows]));
    assert.equal(rows['public.bulk'], 5000);
    assert.equal(rows['sales.orders'], 3000);
    assert.equal(rows['odd schema.Mixed Case Table'], 3);
    assert.equal(rows['sales.audit'], 3000, 'the trigger filled the audit table');
    assert.match(inventory.schemaFingerprint, /^[0-9a-f]{64}$/);
    const my = myManifest.artifacts[0].inventory;
    assert.ok(my);
    assert.equal(my.consistency, 'approximate');
    assert.deepEqual(Object.fromEntries(my.tables.map((t) => [t.name, t.rows])), { audit: 2000, bulk: 3000, customers: 300, orders: 2000 });
  });

  test('PostgreSQL into a new database: schemas, bytea, jsonb, arrays, unicode, large objects, sequences, views, functions equal', async () => {
    const target = rt.newPgDatabase('cs_rnew');
    const result = await restore(['--source', 'pg', '--target', pgUrl(target)]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    assert.match(result.stdout, new RegExp(`restored testhost/pg/${pgDb} from backup \\d{8}T\\d{6}Z \\(daily\\) into PostgreSQL database "${target}"`));
    assert.match(result.stderr, /checks passed: every part's SHA-256, the whole SHA-256/);
    assert.deepEqual(await pgContentFingerprint(target), await pgContentFingerprint(pgDb));
    const [seq] = await pgQuery<{ v: string }>(target, `select last_value::text v from public.invoice_seq`);
    assert.equal(seq.v, '4242');
    assert.equal(readdirSync(safetyDir).length, 0, 'a new database needs no safety dump');
  });

  test('PostgreSQL into an existing database with --yes: safety dump first, then the backup\'s objects replace the old ones', async () => {
    const target = rt.newPgDatabase('cs_rexist');
    await createPgFixture(target, 10);
    await pgQuery(target, `delete from sales.audit; create table public.only_here (x int); insert into public.only_here values (42)`);
    const result = await restore(['--source', 'pg', '--target', pgUrl(target), '--yes']);
    assert.equal(result.code, EXIT.OK, result.stderr);
    const safety = /safety dump of the previous content: (.+)/.exec(result.stdout)?.[1];
    assert.ok(safety && existsSync(safety), `safety dump path printed and present: ${result.stdout}`);
    // Encrypted to the recipients by default: the key that restores backups reads it.
    assert.equal((await decryptSafetyDump(safety)).subarray(0, 5).toString(), 'PGDMP');
    assert.ok(statSync(safety).size > 1000);
    const original = await pgContentFingerprint(pgDb);
    const restored = await pgContentFingerprint(target);
    for (const [table, print] of Object.entries(original)) {
      // The fixture's own large object (another OID) is not in the backup: it stays, next to the restored one.
      if (table === 'large objects') continue;
      assert.equal(restored[table], print, table);
    }
    // Objects that are not in the backup are left alone (and are in the safety dump).
    assert.deepEqual(await pgQuery(target, 'select x from public.only_here'), [{ x: 42 }]);
  });

  test('existing PostgreSQL database without --yes and without a terminal: refused, untouched, no safety dump', async () => {
    const target = rt.newPgDatabase('cs_rrefuse');
    await createPgFixture(target, 10);
    const before = await pgContentFingerprint(target);
    const files = readdirSync(safetyDir).length;
    const result = await restore(['--source', 'pg', '--target', pgUrl(target)]);
    assert.equal(result.code, EXIT.REFUSED, result.stderr);
    assert.match(result.stderr, new RegExp(`PostgreSQL database .{1,2}${target}.{1,2} exists.*no terminal to confirm on.*--yes`, 's'));
    assert.deepEqual(await pgContentFingerprint(target), before);
    assert.equal(readdirSync(safetyDir).length, files);
  });

  test('the question is asked for an existing database: "no" changes nothing, "yes" takes the safety dump and restores', async () => {
    const target = rt.newPgDatabase('cs_rask');
    await createPgFixture(target, 10);
    const before = await pgContentFingerprint(target);
    const clients = { s3: new S3Client(sandbox.account.clientConfig), ssm: new SSMClient(sandbox.account.clientConfig), sns: new SNSClient(sandbox.account.clientConfig) };
    const key = await readPrivateKey(sandbox.recipient.privateKey, 'recipient');
    const trusted = await readPublicKeys(sandbox.signing.publicKey, 'signing');
    const questions: string[] = [];
    const request = (answer: boolean) => ({
      clients,
      bucket: sandbox.bucket,
      log: silentLog,
      selector: { group: 'testgroup', source: 'pg', at: 'latest' },
      key,
      trusted,
      target: { kind: 'postgres' as const, target: parsePostgresUrl(pgUrl(target)) },
      yes: false,
      confirm: async (question: string) => {
        questions.push(question);
        return answer;
      },
      safety: { dir: join(safetyDir, 'asked') },
      archive: { days: 1, wait: false, waitTimeoutMs: 0, pollIntervalMs: 1000, rerun: 'coldseal restore …' },
    });
    await assert.rejects(runRestore(request(false)), (error: unknown) => error instanceof ColdsealError && error.exitCode === EXIT.REFUSED && /not confirmed/.test(error.message));
    assert.equal(questions.length, 1);
    assert.match(questions[0], new RegExp(`"${target}" exists: its objects will be dropped and replaced by backup \\d{8}T\\d{6}Z of testhost/pg/${pgDb}\\. A safety dump is taken first\\. Continue\\? \\[y/N\\]`));
    assert.deepEqual(await pgContentFingerprint(target), before);
    assert.ok(!existsSync(join(safetyDir, 'asked')) || readdirSync(join(safetyDir, 'asked')).length === 0);

    const result = await runRestore(request(true));
    assert.equal(questions.length, 2);
    assert.ok(result.safetyDump && existsSync(result.safetyDump.path));
    assert.equal(result.safetyDump.encrypted, false, 'no recipients given to runRestore: plaintext');
    assert.equal((await pgContentFingerprint(target))['public.bulk'], (await pgContentFingerprint(pgDb))['public.bulk']);
  });

  test('PostgreSQL --table restores one table only; --list shows what the dump holds', async () => {
    const target = rt.newPgDatabase('cs_rtable');
    const result = await restore(['--source', 'pg', '--target', pgUrl(target), '--table', 'sales.customers']);
    assert.equal(result.code, EXIT.OK, result.stderr);
    const tables = await pgQuery<{ t: string }>(target, `select table_schema || '.' || table_name t from information_schema.tables where table_schema not in ('pg_catalog', 'information_schema') order by 1`);
    assert.deepEqual(tables.map((t) => t.t), ['sales.customers']);
    assert.equal((await pgContentFingerprint(target))['sales.customers'], (await pgContentFingerprint(pgDb))['sales.customers']);

    const list = await restore(['--source', 'pg', '--list']);
    assert.equal(list.code, EXIT.OK, list.stderr);
    assert.match(list.stdout, /TABLE DATA sales orders/);
    assert.match(list.stdout, /SEQUENCE SET public invoice_seq/);
    assert.match(list.stdout, /BLOB/);
  });

  test('--output writes the decrypted dump; a protected key takes its passphrase from a file or the environment; a URL with a password is refused', async () => {
    const dir = rt.tempDir('coldseal-out-');
    const file = join(dir, 'dump.pgdump');
    const result = await restore(['--source', 'pg', '--output', file]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    const artifact = pgManifest.artifacts.find((a) => a.name === pgDb)!;
    assert.equal(statSync(file).size, artifact.uncompressedBytes);
    assert.equal(readFileSync(file).subarray(0, 5).toString(), 'PGDMP');
    assert.ok(!existsSync(`${file}.coldseal-partial`));

    // A passphrase-protected copy of the recipient key: the passphrase comes from a file or the environment, never argv.
    const protectedKey = await encryptKey({ privateKey: await readPrivateKey(sandbox.recipient.privateKey, 'recipient'), passphrase: 'correct horse' });
    const keyFile = join(dir, 'protected.key.asc');
    writeFileSync(keyFile, protectedKey.armor(), { mode: 0o600 });
    writeFileSync(join(dir, 'pass'), 'correct horse\n', { mode: 0o600 });
    const base = ['restore', '--config', configFile, '--source', 'pg', '--key', keyFile];
    const noPass = await sandbox.runCli([...base, '--output', join(dir, 'nopass.pgdump')]);
    assert.equal(noPass.code, EXIT.KEYS);
    assert.match(noPass.stderr, /protected by a passphrase; give it \(COLDSEAL_KEY_PASSPHRASE or --passphrase-file\)/);
    const byFile = await sandbox.runCli([...base, '--passphrase-file', join(dir, 'pass'), '--output', join(dir, 'byfile.pgdump')]);
    assert.equal(byFile.code, EXIT.OK, byFile.stderr);
    const byEnv = await sandbox.runCli([...base, '--output', join(dir, 'byenv.pgdump')], { COLDSEAL_KEY_PASSPHRASE: 'correct horse' });
    assert.equal(byEnv.code, EXIT.OK, byEnv.stderr);
    assert.deepEqual(readFileSync(join(dir, 'byenv.pgdump')), readFileSync(file));

    const leaked = await restore(['--source', 'pg', '--target', `postgres://postgres:hunter2@127.0.0.1:5432/${uniqueDbName('never')}`]);
    assert.equal(leaked.code, EXIT.USAGE);
    assert.match(leaked.stderr, /holds a password.*PGPASSWORD.*~\/\.pgpass/s);
    assert.doesNotMatch(leaked.stderr, /hunter2/);
  });

  test('MariaDB: blobs, 4-byte unicode, triggers and routines come back equal under another name; existing target gets a safety dump', async () => {
    const target = rt.newMysqlDatabase('cs_rmyt');
    const result = await restore(['--source', 'maria', '--target', mysqlUrl(target)]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    const original = await mysqlContentFingerprint(myDb);
    assert.deepEqual(await mysqlContentFingerprint(target), original);

    const again = await restore(['--source', 'maria', '--target', mysqlUrl(target), '--yes']);
    assert.equal(again.code, EXIT.OK, again.stderr);
    const safety = /safety dump of the previous content: (.+)/.exec(again.stdout)?.[1];
    assert.ok(safety && existsSync(safety));
    assert.match((await decryptSafetyDump(safety)).toString('utf8'), /-- Dump completed/);
    assert.deepEqual(await mysqlContentFingerprint(target), original);
    // The original database was never touched by the renamed restore.
    assert.deepEqual(await mysqlContentFingerprint(myDb), original);
  });

  test('files: permissions, symlinks, empty directories, names with spaces and unicode; a non-empty directory needs --yes', async () => {
    const dir = rt.tempDir('coldseal-restore-dir-');
    const result = await restore(['--source', 'docs', '--directory', dir]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    assert.deepEqual(treeListing(join(dir, filesRoot)), treeListing(filesRoot));

    const again = await restore(['--source', 'docs', '--directory', dir]);
    assert.equal(again.code, EXIT.REFUSED);
    assert.match(again.stderr, /is not empty.*--yes/s);
    const forced = await restore(['--source', 'docs', '--directory', dir, '--yes']);
    assert.equal(forced.code, EXIT.OK, forced.stderr);
  });
});
