import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Manifest } from '../../format/manifest';
import { peekManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { dropPgDatabase, pgContentFingerprint, pgQuery, pgSource, pgUrl, uniqueDbName } from '../../local-system/databases';
import { decompress, gpgDecrypt } from '../harness/gpg';

/**
 * One-pass restore from a multi-part object (5 MiB parts, ~12 MB incompressible): through gpg and
 * through openpgp.js, to a file and into a new PostgreSQL database that comes back with its
 * encoding, locale, settings, comment and privileges; a flipped byte in part 2 of 3 is refused
 * naming the part, and every kind of target is left as it was.
 */
let rt: RoundTrip;
let sandbox: AgentSandbox;
let configFile: string;
let safetyDir: string;
let outDir: string;
let sourceDb: string;
const existingDb = uniqueDbName('cs_1old');
let manifest: Manifest;
let manifestKey: string;
let original: Buffer;

function restore(args: string[], env?: Record<string, string>) {
  return sandbox.runCli(['restore', '--config', configFile, '--source', 'pg', '--host', 'onepass', '--key', sandbox.recipient.privateFile, '--safety-dir', safetyDir, '--yes', ...args], env);
}

async function databaseLevel(db: string): Promise<Record<string, unknown>> {
  const [row] = await pgQuery<Record<string, unknown>>(
    'postgres',
    `select pg_encoding_to_char(d.encoding) as encoding, d.datcollate, d.datctype, shobj_description(d.oid, 'pg_database') as comment,
            array_to_string(array(select unnest(s.setconfig) order by 1), ';') as settings,
            has_database_privilege('public', d.datname, 'CONNECT') as public_connect
       from pg_database d left join pg_db_role_setting s on s.setdatabase = d.oid and s.setrole = 0 where d.datname = '${db}'`,
  );
  return row;
}

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  safetyDir = rt.tempDir('coldseal-1pass-safety-');
  outDir = rt.tempDir('coldseal-1pass-out-');
  sourceDb = rt.newPgDatabase('cs_1src');
  await dropPgDatabase(sourceDb);
  await pgQuery('postgres', `create database ${sourceDb} encoding 'LATIN1' lc_collate 'C' lc_ctype 'C' template template0`);
  await pgQuery('postgres', `alter database ${sourceDb} set search_path = app, public`);
  await pgQuery('postgres', `alter database ${sourceDb} set timezone = 'Europe/Berlin'`);
  await pgQuery('postgres', `comment on database ${sourceDb} is 'the app database'`);
  await pgQuery('postgres', `revoke all on database ${sourceDb} from public`);
  await pgQuery(sourceDb, `create schema app; create table app.items (id int primary key, name text);
    insert into app.items select g, 'item ' || g from generate_series(1, 2000) g;
    create table app.blobs (id int primary key, data bytea);
    insert into app.blobs select g, (select string_agg(decode(md5(random()::text || g || i), 'hex'), ''::bytea) from generate_series(1, 256) i) from generate_series(1, 3000) g;`);
  await rt.pgFixture(existingDb, 10);
  configFile = await rt.backup(sandbox.config({ host: 'onepass', sources: [pgSource('pg', [sourceDb])], upload: { partSizeMiB: 5 } }));
  [manifestKey] = (await sandbox.listKeys('backups/daily/testgroup/onepass/pg/')).filter((k) => k.endsWith('.manifest.json'));
  manifest = peekManifest((await sandbox.getObject(manifestKey)).toString('utf8'));
  const artifact = manifest.artifacts[0];
  assert.equal(artifact.parts.sha256.length, 3, `a multi-part object (${artifact.ciphertextBytes} bytes)`);
  original = decompress(gpgDecrypt(await sandbox.getObject(artifact.key), sandbox.recipient.privateFile), 'zstd');
});

after(() => rt?.cleanup());

describe('one-pass restore of a multi-part backup', () => {
  for (const engine of ['gpg', 'openpgp.js']) {
    test(`--output through ${engine}: the exact dump, no partial file left`, async () => {
      const file = join(outDir, `dump-${engine}.pgdump`);
      const result = await restore(['--output', file], { COLDSEAL_DECRYPT: engine });
      assert.equal(result.code, EXIT.OK, result.stderr);
      assert.ok(readFileSync(file).equals(original), 'restored bytes equal the dump');
      assert.deepEqual(readdirSync(outDir).filter((f) => f.includes('partial')), []);
      assert.match(result.log, /every part's SHA-256/);
    });
  }

  test('into a new database: data, encoding, locale, settings, comment and privileges as they were', async () => {
    const target = rt.newPgDatabase('cs_1new');
    const result = await restore(['--target', pgUrl(target)]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    assert.deepEqual(await pgContentFingerprint(target), await pgContentFingerprint(sourceDb));
    const restored = await databaseLevel(target);
    assert.deepEqual(restored, await databaseLevel(sourceDb));
    assert.equal(restored.encoding, 'LATIN1');
    assert.equal(restored.comment, 'the app database');
    assert.equal(restored.settings, 'TimeZone=Europe/Berlin;search_path=app, public');
    assert.equal(restored.public_connect, false);
    // An application relying on the search_path finds its tables unqualified.
    assert.equal((await pgQuery<{ n: string }>(target, 'select count(*)::text as n from items'))[0].n, '2000');
  });

  describe('a flipped byte in part 2 of 3', () => {
    before(async () => {
      const artifact = manifest.artifacts[0];
      const data = await sandbox.getObject(artifact.key);
      data[artifact.parts.size + 1000] ^= 0x01;
      await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: artifact.key, Body: data }));
    });

    const refused = (stderr: string) => assert.match(stderr, /checksum check failed: SHA-256 of part 2 of 3 \(bytes 5242880-10485759\) of s3:\/\/\S+ is [0-9a-f]{64}, the signed manifest says [0-9a-f]{64}/);

    test('--output: refused, no file and no partial file', async () => {
      const file = join(outDir, 'damaged.pgdump');
      const result = await restore(['--output', file]);
      assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
      refused(result.stderr);
      assert.equal(existsSync(file), false);
      assert.deepEqual(readdirSync(outDir).filter((f) => f.includes('damaged')), []);
    });

    test('a new database: refused, and the database does not exist afterwards', async () => {
      const target = rt.newPgDatabase('cs_1bad');
      const result = await restore(['--target', pgUrl(target)]);
      assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
      refused(result.stderr);
      assert.deepEqual(await pgQuery('postgres', `select 1 from pg_database where datname = '${target}'`), []);
    });

    test('an existing database: refused, and its content is unchanged (single transaction)', async () => {
      const before = await pgContentFingerprint(existingDb);
      const result = await restore(['--target', pgUrl(existingDb)]);
      assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
      refused(result.stderr);
      assert.deepEqual(await pgContentFingerprint(existingDb), before);
    });
  });
});
