import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Manifest } from '../../format/manifest';
import { peekManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { createMysqlFixture, createPgDatabase, mysqlContentFingerprint, mysqlSource, mysqlUrl, pgQuery, pgSource, pgUrl, uniqueDbName, mysqlQuery as myQuery } from '../../local-system/databases';
import { forgeArtifact } from '../harness/forge';
import { decompress, gpgDecrypt } from '../harness/gpg';
import { treeListing } from '../harness/tree';

/**
 * MySQL/MariaDB, files and pg_dumpall globals restore in one pass into a staging area that
 * replaces the target only after every check passed. Multi-part backups (5 MiB parts, 3 parts):
 * a flipped byte in part 3 of 3 is refused naming the part, and a restore that fails at the very
 * end (a dump without its trailer, a cut tar, a globals script that errors halfway) leaves an
 * existing target exactly as it was, a new one absent, and no staging database or directory.
 */
let rt: RoundTrip;
let sandbox: AgentSandbox;
let configFile: string;
let safetyDir: string;
let filesRoot: string;
let manifestKey: string;
let manifest: Manifest;
const plaintexts = new Map<string, Buffer>();
const myDb = uniqueDbName('cs_stsrc');
let pgDb: string;
const myExisting = uniqueDbName('cs_stold');
const roles = [`cs_strole_${randomBytes(3).toString('hex')}`, `cs_strole_${randomBytes(3).toString('hex')}`];
let existingPrint: Record<string, string>;

function restore(args: string[]) {
  return sandbox.runCli(['restore', '--config', configFile, '--host', 'staged', '--key', sandbox.recipient.privateFile, '--safety-dir', safetyDir, '--yes', ...args]);
}

/** Everything a MySQL restore may create and must remove: staging and holding databases. */
async function coldsealDatabases(): Promise<string[]> {
  const rows = await myQuery<{ d: string }>(`select schema_name d from information_schema.schemata where schema_name like '%\\_\\_coldseal\\_%'`);
  return rows.map((r) => r.d).filter((d) => d.startsWith('cs_st'));
}

/** Views and events are not in the harness fingerprint: the swap recreates them, so they are checked too. */
async function mysqlObjects(database: string): Promise<string> {
  const [row] = await myQuery<{ v: string | null; e: string | null }>(
    `select (select group_concat(table_name order by table_name) from information_schema.views where table_schema = '${database}') v,
            (select group_concat(event_name order by event_name) from information_schema.events where event_schema = '${database}') e`,
  );
  return `views ${row.v}; events ${row.e}`;
}


function newDir(): string {
  return rt.tempDir('coldseal-staged-out-');
}

/** An existing destination with a file the backup also has (other content) and one only it has. */
function existingDestination(): { dir: string; before: string[] } {
  const dir = newDir();
  mkdirSync(join(dir, filesRoot, 'sub'), { recursive: true });
  writeFileSync(join(dir, filesRoot, 'sub', 'b.txt'), 'old content of b\n');
  writeFileSync(join(dir, filesRoot, 'keep.txt'), 'only in the destination\n');
  writeFileSync(join(dir, 'top.txt'), 'top\n');
  return { dir, before: treeListing(dir) };
}

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  safetyDir = rt.tempDir('coldseal-staged-safety-');
  await rt.mysqlFixture(myDb, 200);
  // Random bytes do not compress: about 12 MB of ciphertext, three 5 MiB parts.
  await myQuery(`create table noise (id int primary key, data longblob); insert into noise select seq, random_bytes(1024) from seq_1_to_11500;
    create view big_noise as select id from noise where id > 10; create view on_a_view as select * from big_orders;
    create event nightly on schedule every 1 day disable do delete from audit where id < 0;`, myDb);
  await rt.mysqlFixture(myExisting, 10);
  await myQuery(`create table only_here (x int); insert into only_here values (42); create view only_here_view as select x from only_here`, myExisting);
  existingPrint = await mysqlContentFingerprint(myExisting);
  pgDb = rt.newPgDatabase('cs_stpg');
  await createPgDatabase(pgDb);
  filesRoot = rt.tempDir('coldseal-staged-files-');
  writeFileSync(join(filesRoot, 'big.bin'), randomBytes(12 * 1024 * 1024));
  writeFileSync(join(filesRoot, 'a.txt'), 'a\n', { mode: 0o640 });
  mkdirSync(join(filesRoot, 'sub'));
  writeFileSync(join(filesRoot, 'sub', 'b.txt'), 'b from the backup\n');
  configFile = await rt.backup(
    sandbox.config({
      host: 'staged',
      upload: { partSizeMiB: 5 },
      sources: [mysqlSource('maria', [myDb]), { name: 'docs', type: 'files', paths: [filesRoot] }, pgSource('pg', [pgDb], { globals: true })],
    }),
  );
  for (const source of ['maria', 'docs', 'pg']) {
    const [key] = (await sandbox.listKeys(`backups/daily/testgroup/staged/${source}/`)).filter((k) => k.endsWith('.manifest.json'));
    const m = peekManifest((await sandbox.getObject(key)).toString('utf8'));
    if (source === 'maria') [manifestKey, manifest] = [key, m];
    for (const artifact of m.artifacts) plaintexts.set(`${source}/${artifact.name}`, decompress(gpgDecrypt(await sandbox.getObject(artifact.key), sandbox.recipient.privateFile), 'zstd'));
  }
  assert.equal(manifest.artifacts[0].parts.sha256.length, 3, `a 3-part MySQL backup (${manifest.artifacts[0].ciphertextBytes} bytes)`);
});

after(async () => {
  await rt?.cleanup();
  for (const role of roles) await pgQuery('postgres', `drop role if exists ${role}`);
});

describe('staged restores: the target changes only after every check', () => {
  test('MySQL into a new database: tables, routines, triggers, views (also on a view) and events equal; no staging database left', async () => {
    const target = rt.newMysqlDatabase('cs_stnew');
    const result = await restore(['--source', 'maria', '--target', mysqlUrl(target)]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    assert.match(result.log, /checks passed: every part's SHA-256, the whole SHA-256 .*completion trailer, size/);
    assert.deepEqual(await mysqlContentFingerprint(target), await mysqlContentFingerprint(myDb));
    assert.equal(await mysqlObjects(target), 'views big_noise,big_orders,on_a_view; events nightly');
    assert.equal(await mysqlObjects(target), await mysqlObjects(myDb));
    // The trigger fires in the target, and the views read the target's own tables.
    await myQuery(`insert into orders (customer_id, amount, note) values (1, 500, 'after restore')`, target);
    assert.equal((await myQuery<{ n: number }>(`select count(*) n from audit where what like 'order %'`, target))[0].n, (await myQuery<{ n: number }>(`select count(*) n from audit`, myDb))[0].n + 1);
    assert.ok((await myQuery<{ n: number }>(`select count(*) n from on_a_view where note = 'after restore'`, target))[0].n === 1);
    assert.deepEqual(await coldsealDatabases(), []);
  });

  test('MySQL into an existing database: replaced by the backup (its own extra table and view are gone), safety dump first', async () => {
    const target = rt.newMysqlDatabase('cs_stexist');
    await createMysqlFixture(target, 10);
    await myQuery(`create table only_here (x int); create view only_here_view as select x from only_here`, target);
    const result = await restore(['--source', 'maria', '--target', mysqlUrl(target)]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    assert.match(result.stdout, /safety dump of the previous content: /);
    assert.deepEqual(await mysqlContentFingerprint(target), await mysqlContentFingerprint(myDb));
    assert.equal(await mysqlObjects(target), await mysqlObjects(myDb));
    assert.deepEqual(await coldsealDatabases(), []);
  });

  test('files into a new directory: the tree as backed up, no staging directory beside it', async () => {
    const parent = newDir();
    const dir = join(parent, 'restored');
    const result = await restore(['--source', 'docs', '--directory', dir]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    assert.deepEqual(treeListing(join(dir, filesRoot)), treeListing(filesRoot));
    assert.deepEqual(readdirSync(parent), ['restored']);
    // Not the staging area's 0700: what mkdir would have made.
    assert.equal(statSync(dir).mode & 0o777, 0o777 & ~process.umask());
  });

  test('files into an existing directory: same paths replaced, other files left alone', async () => {
    const { dir } = existingDestination();
    const result = await restore(['--source', 'docs', '--directory', dir]);
    assert.equal(result.code, EXIT.OK, result.stderr);
    assert.equal(readFileSync(join(dir, filesRoot, 'sub', 'b.txt'), 'utf8'), 'b from the backup\n');
    assert.equal(readFileSync(join(dir, filesRoot, 'keep.txt'), 'utf8'), 'only in the destination\n');
    assert.equal(readFileSync(join(dir, 'top.txt'), 'utf8'), 'top\n');
    assert.deepEqual(treeListing(join(dir, filesRoot)).filter((l) => !l.startsWith('keep.txt')), treeListing(filesRoot));
    assert.deepEqual(readdirSync(dir).filter((n) => n.includes('coldseal')), []);
  });

  describe('a flipped byte in part 3 of 3', () => {
    before(async () => {
      for (const source of ['maria', 'docs']) {
        const [key] = (await sandbox.listKeys(`backups/daily/testgroup/staged/${source}/`)).filter((k) => k.endsWith('.manifest.json'));
        const artifact = peekManifest((await sandbox.getObject(key)).toString('utf8')).artifacts[0];
        assert.equal(artifact.parts.sha256.length, 3, `${source}: 3 parts`);
        const data = await sandbox.getObject(artifact.key);
        data[2 * artifact.parts.size + 100] ^= 0x01;
        await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: artifact.key, Body: data }));
      }
    });
    const refused = (stderr: string) => assert.match(stderr, /checksum check failed: SHA-256 of part 3 of 3 \(bytes 10485760-\d+\) of s3:\/\/\S+ is [0-9a-f]{64}, the signed manifest says [0-9a-f]{64}/);

    test('MySQL, existing database: refused, unchanged; new database: refused, absent; no staging database left', async () => {
      const existing = await restore(['--source', 'maria', '--target', mysqlUrl(myExisting)]);
      assert.equal(existing.code, EXIT.INTEGRITY, existing.stderr);
      refused(existing.stderr);
      assert.deepEqual(await mysqlContentFingerprint(myExisting), existingPrint);
      assert.equal(await mysqlObjects(myExisting), 'views big_orders,only_here_view; events null');
      const target = rt.newMysqlDatabase('cs_stbad');
      const fresh = await restore(['--source', 'maria', '--target', mysqlUrl(target)]);
      assert.equal(fresh.code, EXIT.INTEGRITY, fresh.stderr);
      refused(fresh.stderr);
      assert.deepEqual(await myQuery(`select 1 from information_schema.schemata where schema_name = '${target}'`), []);
      assert.deepEqual(await coldsealDatabases(), []);
    });

    test('files, existing directory: refused and exactly as it was; new directory: refused, absent', async () => {
      const { dir, before: was } = existingDestination();
      const result = await restore(['--source', 'docs', '--directory', dir]);
      assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
      refused(result.stderr);
      assert.deepEqual(treeListing(dir), was);
      const parent = newDir();
      const fresh = await restore(['--source', 'docs', '--directory', join(parent, 'never')]);
      assert.equal(fresh.code, EXIT.INTEGRITY, fresh.stderr);
      assert.deepEqual(readdirSync(parent), []);
    });
  });

  describe('failing at the very end, after every byte went into the staging area', () => {
    test('a MySQL dump without its completion trailer (signed and checksummed as if complete): the existing database is unchanged', async () => {
      const dump = plaintexts.get(`maria/${myDb}`)!.toString('utf8');
      const cut = dump.slice(0, dump.lastIndexOf('-- Dump completed'));
      await forgeArtifact(sandbox, manifestKey, myDb, Buffer.from(cut, 'utf8'));
      const result = await restore(['--source', 'maria', '--target', mysqlUrl(myExisting)]);
      assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
      assert.match(result.stderr, /completion check failed: the decrypted \S+ does not end with .{1,2}-- Dump completed/);
      assert.deepEqual(await mysqlContentFingerprint(myExisting), existingPrint);
      assert.equal(await mysqlObjects(myExisting), 'views big_orders,only_here_view; events null');
      assert.deepEqual(await coldsealDatabases(), []);
    });

    test('a tar cut in the middle of a file: the existing directory is exactly as it was', async () => {
      const [key] = (await sandbox.listKeys('backups/daily/testgroup/staged/docs/')).filter((k) => k.endsWith('.manifest.json'));
      const name = peekManifest((await sandbox.getObject(key)).toString('utf8')).artifacts[0].name;
      const tar = plaintexts.get(`docs/${name}`)!;
      await forgeArtifact(sandbox, key, name, tar.subarray(0, Math.floor(tar.length * 0.7)));
      const { dir, before: was } = existingDestination();
      const result = await restore(['--source', 'docs', '--directory', dir]);
      assert.notEqual(result.code, EXIT.OK, result.stderr);
      assert.match(result.stderr, /tar into .* failed/);
      assert.deepEqual(treeListing(dir), was);
    });
  });

  describe('pg_dumpall globals: applied in one transaction after every check', () => {
    let globalsManifestKey: string;
    let trailer: string;
    const script = (body: string) => Buffer.from(`--\n-- PostgreSQL database cluster dump\n--\n\nSET default_transaction_read_only = off;\n${body}\n--\n-- ${trailer}\n--\n\n`, 'utf8');
    const exists = async (role: string) => (await pgQuery('postgres', `select 1 from pg_roles where rolname = '${role}'`)).length === 1;

    before(async () => {
      [globalsManifestKey] = (await sandbox.listKeys('backups/daily/testgroup/staged/pg/')).filter((k) => k.endsWith('.manifest.json'));
      const globals = peekManifest((await sandbox.getObject(globalsManifestKey)).toString('utf8')).artifacts.find((a) => a.name === 'globals')!;
      trailer = /trailer "-- (.*)" present/.exec(globals.completion.detail)![1];
      assert.match(plaintexts.get('pg/globals')!.toString('utf8'), /CREATE ROLE postgres;/);
    });

    test('roles come back with their attributes; CREATE ROLE of an existing role is skipped, its ALTER ROLE applied', async () => {
      await forgeArtifact(sandbox, globalsManifestKey, 'globals', script(`CREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS;\nCREATE ROLE ${roles[0]};\nALTER ROLE ${roles[0]} WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3;`));
      const result = await restore(['--source', 'pg', '--artifact', 'globals', '--target', pgUrl(pgDb)]);
      assert.equal(result.code, EXIT.OK, result.stderr);
      assert.deepEqual(await pgQuery('postgres', `select rolcanlogin, rolconnlimit from pg_roles where rolname = '${roles[0]}'`), [{ rolcanlogin: false, rolconnlimit: 3 }]);
    });

    test('a script that fails halfway changes no role (one transaction)', async () => {
      await forgeArtifact(sandbox, globalsManifestKey, 'globals', script(`CREATE ROLE ${roles[1]};\nALTER ROLE ${roles[0]} WITH CONNECTION LIMIT 7;\nALTER ROLE cs_no_such_role_${randomBytes(3).toString('hex')} WITH LOGIN;`));
      const result = await restore(['--source', 'pg', '--artifact', 'globals', '--target', pgUrl(pgDb)]);
      assert.equal(result.code, EXIT.FAILURE, result.stderr);
      assert.match(result.stderr, /applying the roles .* failed .*does not exist/);
      assert.equal(await exists(roles[1]), false);
      assert.deepEqual(await pgQuery('postgres', `select rolconnlimit from pg_roles where rolname = '${roles[0]}'`), [{ rolconnlimit: 3 }]);
    });

    test('a script that creates a tablespace is refused, nothing applied', async () => {
      await forgeArtifact(sandbox, globalsManifestKey, 'globals', script(`CREATE ROLE ${roles[1]};\nCREATE TABLESPACE cs_never OWNER postgres LOCATION '/nonexistent';`));
      const result = await restore(['--source', 'pg', '--artifact', 'globals', '--target', pgUrl(pgDb)]);
      assert.equal(result.code, EXIT.USAGE, result.stderr);
      assert.match(result.stderr, /create tablespaces \(cs_never\).*--output FILE/);
      assert.equal(await exists(roles[1]), false);
    });

    test('a flipped byte: refused, no role created, no globals file left behind', async () => {
      const manifestNow = peekManifest((await sandbox.getObject(globalsManifestKey)).toString('utf8'));
      const artifact = manifestNow.artifacts.find((a) => a.name === 'globals')!;
      const data = await sandbox.getObject(artifact.key);
      data[data.length - 30] ^= 0x01;
      await sandbox.s3.send(new PutObjectCommand({ Bucket: sandbox.bucket, Key: artifact.key, Body: data }));
      const before = readdirSync(tmpdir()).filter((n) => n.startsWith('coldseal-globals-')).length;
      const result = await restore(['--source', 'pg', '--artifact', 'globals', '--target', pgUrl(pgDb)]);
      assert.equal(result.code, EXIT.INTEGRITY, result.stderr);
      assert.match(result.stderr, /checksum check failed: SHA-256 of part 1 of 1/);
      assert.equal(await exists(roles[1]), false);
      assert.equal(readdirSync(tmpdir()).filter((n) => n.startsWith('coldseal-globals-')).length, before);
    });
  });
});
