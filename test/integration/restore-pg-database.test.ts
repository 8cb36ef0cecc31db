import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { peekManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { decompress, gpgDecrypt } from '../harness/gpg';
import { pgQuery, pgSource, pgUrl, uniqueDbName, PG } from '../../local-system/databases';

/**
 * A new PostgreSQL database is made as the archive describes it (encoding, locale, owner, comment,
 * ALTER DATABASE … SET, ALTER ROLE … IN DATABASE … SET, grants), under the target's name. Its
 * database-level properties must come back byte for byte as `pg_restore --create` brings them
 * back from the same archive, also when the database is not UTF-8: a LATIN1 database commented
 * and configured from a UTF-8 session holds UTF-8 bytes in the shared catalogs, which pg_dump
 * writes as they are under `SET client_encoding = 'LATIN1'`; pg_restore --create applies them in
 * the new database with that client encoding, where no conversion happens.
 */
let rt: RoundTrip;
let sandbox: AgentSandbox;
let configFile: string;
const latin = uniqueDbName('cs_latin');
/** The original, renamed once backed up, so that pg_restore --create can bring back the original name. */
const originalRenamed = `${latin}_orig`;
const role = `cs_latin_role_${randomBytes(3).toString('hex')}`;
const comment = 'Kassenbuch — Ländle ½ ©';
const setting = 'Ländle — Kasse';

/** Database-level properties as raw bytes (hex), read from a UTF-8 database: shared catalogs are not converted. */
async function properties(database: string): Promise<Record<string, string>> {
  const [row] = await pgQuery<Record<string, string>>(
    'postgres',
    `select pg_encoding_to_char(d.encoding) encoding, d.datcollate collate, d.datctype ctype, pg_get_userbyid(d.datdba) owner,
            array_to_string(array(select a::text from unnest(d.datacl) a order by 1), ' ') acl,
            encode(convert_to(coalesce(shobj_description(d.oid, 'pg_database'), '(none)'), 'UTF8'), 'hex') comment,
            encode(convert_to(coalesce((select string_agg(coalesce(r.rolname, '*') || ': ' || array_to_string(s.setconfig, ', '), ' | ' order by r.rolname nulls first)
                                        from pg_db_role_setting s left join pg_roles r on r.oid = s.setrole where s.setdatabase = d.oid), '(none)'), 'UTF8'), 'hex') settings
     from pg_database d where d.datname = '${database}'`,
  );
  assert.ok(row, `database ${database} exists`);
  return row;
}

const utf8 = (hex: string) => Buffer.from(hex, 'hex').toString('utf8');

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  await pgQuery('postgres', `create role ${role}`);
  await pgQuery('postgres', `create database ${latin} template template0 encoding 'LATIN1' lc_collate 'C' lc_ctype 'C'`);
  // From a UTF-8 session (the node client's), as an operator would.
  await pgQuery('postgres', `comment on database ${latin} is '${comment}'`);
  await pgQuery('postgres', `alter database ${latin} set application_name = '${setting}'`);
  await pgQuery('postgres', `alter role ${role} in database ${latin} set work_mem = '5MB'`);
  await pgQuery('postgres', `grant connect, temporary on database ${latin} to ${role}`);
  await pgQuery(latin, `create table t (id int primary key, v text); insert into t values (1, 'Grüße')`);
  configFile = await rt.backup(sandbox.config({ sources: [pgSource('latin', [latin])] }));
});

after(async () => {
  await rt?.cleanup();
  for (const db of [latin, originalRenamed]) await pgQuery('postgres', `drop database if exists ${db} with (force)`);
  await pgQuery('postgres', `drop role if exists ${role}`);
});

test('a LATIN1 database restored under another name: comment, settings, grants byte for byte as pg_restore --create gives them', async () => {
  const original = await properties(latin);
  assert.equal(utf8(original.comment), comment);
  assert.equal(utf8(original.settings), `*: application_name=${setting} | ${role}: work_mem=5MB`);

  // What pg_restore --create makes of the same archive (the original's name must be free for it).
  const [key] = (await sandbox.listKeys('backups/daily/testgroup/testhost/latin/')).filter((k) => k.endsWith('.manifest.json'));
  const artifact = peekManifest((await sandbox.getObject(key)).toString('utf8')).artifacts.find((a) => a.name === latin)!;
  const archive = join(rt.tempDir('coldseal-latin-'), 'latin.pgdump');
  writeFileSync(archive, decompress(gpgDecrypt(await sandbox.getObject(artifact.key), sandbox.recipient.privateFile), 'zstd'));
  await pgQuery('postgres', `alter database ${latin} rename to ${originalRenamed}`);
  execFileSync('pg_restore', ['--create', '--exit-on-error', '-h', PG.host, '-p', String(PG.port), '-U', PG.user, '-d', 'postgres', archive], { stdio: ['ignore', 'pipe', 'pipe'] });
  const byPgRestore = await properties(latin);
  assert.deepEqual(byPgRestore, original, 'pg_restore --create keeps them byte for byte');

  const target = rt.newPgDatabase('cs_latin_copy');
  const result = await sandbox.runCli(['restore', '--config', configFile, '--source', 'latin', '--key', sandbox.recipient.privateFile, '--target', pgUrl(target)]);
  assert.equal(result.code, EXIT.OK, result.stderr);
  const restored = await properties(target);
  assert.equal(utf8(restored.comment), comment);
  assert.deepEqual(restored, byPgRestore);
  assert.deepEqual(await pgQuery(target, `select v from t`), [{ v: 'Grüße' }]);
});

test('under a name that is not ASCII, with --no-owner: the name is written in the archive\'s encoding; comment and database settings kept, role settings and grants left out', async () => {
  const target = rt.newPgDatabase('cs_latin_köpie');
  const result = await sandbox.runCli(['restore', '--config', configFile, '--source', 'latin', '--key', sandbox.recipient.privateFile, '--target', pgUrl(target), '--no-owner']);
  assert.equal(result.code, EXIT.OK, result.stderr + result.stdout);
  const restored = await properties(target);
  assert.equal(utf8(restored.comment), comment);
  assert.equal(utf8(restored.settings), `*: application_name=${setting}`);
  assert.equal(restored.acl, '');
  assert.equal(restored.encoding, 'LATIN1');
  assert.deepEqual(await pgQuery(target, `select v from t`), [{ v: 'Grüße' }]);
});
