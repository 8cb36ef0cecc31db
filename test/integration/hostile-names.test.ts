import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { EXIT } from '../../format/exit-codes';
import type { AgentSandbox } from '../harness/agent';
import { createRoundTrip, type RoundTrip } from '../harness/round-trip';
import { MYSQL, mysqlContentFingerprint, mysqlSource, mysqlUrl, pgContentFingerprint, pgSource, pgUrl } from '../../local-system/databases';

/**
 * Database names are data, not options. With databases "all" the names come from SHOW DATABASES,
 * so any MySQL user who can create a database chooses them: one named "--result-file=FILE" must be
 * backed up and restored like any other, and FILE must stay untouched (by the backup's mysqldump
 * and by the restore's safety dump). PostgreSQL gets the same treatment with "--file=FILE".
 */
let rt: RoundTrip;
let sandbox: AgentSandbox;
let victims: string;
let myVictim: string;
let pgVictim: string;
let myHostile: string;
let pgHostile: string;
let configFile: string;
let safetyDir: string;
const VICTIM_CONTENT = 'precious content\n';

before(async () => {
  rt = await createRoundTrip();
  sandbox = rt.sandbox;
  victims = rt.tempDir('cs-hostile-');
  safetyDir = rt.tempDir('cs-hostile-safety-');
  myVictim = join(victims, 'my');
  pgVictim = join(victims, 'pg');
  for (const file of [myVictim, pgVictim]) writeFileSync(file, VICTIM_CONTENT);
  myHostile = `--result-file=${myVictim}`;
  pgHostile = `--file=${pgVictim}`;
  assert.ok(myHostile.length <= 64, 'a MariaDB database name has at most 64 characters');
  // Every database already on the shared server is excluded, so that other test files' databases
  // (created and dropped as they run) do not make this run fail; the names still come from SHOW DATABASES.
  const conn = await mysql.createConnection({ ...MYSQL });
  const [rows] = await conn.query<mysql.RowDataPacket[]>('show databases');
  await conn.end();
  const existing = rows.map((r) => String(Object.values(r)[0]));
  await Promise.all([rt.mysqlFixture(myHostile, 200), rt.pgFixture(pgHostile, 200)]);
  configFile = sandbox.writeConfig(sandbox.config({ sources: [mysqlSource('maria', 'all', { excludeDatabases: existing }), pgSource('pg', [pgHostile])] }));
});

after(() => rt?.cleanup());

describe('hostile database names', () => {
  test('a MariaDB database named "--result-file=FILE" (found by databases "all") is backed up, FILE untouched', async () => {
    const result = await sandbox.runCli(['backup', '--config', configFile, '--tier', 'daily']);
    assert.equal(result.code, EXIT.OK, result.log);
    assert.equal(readFileSync(myVictim, 'utf8'), VICTIM_CONTENT, 'mysqldump must not read the name as --result-file');
    assert.equal(readFileSync(pgVictim, 'utf8'), VICTIM_CONTENT, 'pg_dump must not read the name as --file');
    const keys = await sandbox.listKeys('backups/daily/testgroup/testhost/');
    assert.ok(keys.some((k) => k.includes(encodeURIComponent(myHostile).replace(/\./g, '%2E'))), `an artifact for ${myHostile} in ${keys.join(', ')}`);
    assert.ok(keys.some((k) => k.includes(encodeURIComponent(pgHostile).replace(/\./g, '%2E'))), `an artifact for ${pgHostile} in ${keys.join(', ')}`);
  });

  test('restoring over them takes safety dumps and restores the content, FILE still untouched', async () => {
    const [myBefore, pgBefore] = await Promise.all([mysqlContentFingerprint(myHostile), pgContentFingerprint(pgHostile)]);
    const restore = (args: string[]) => sandbox.runCli(['restore', '--config', configFile, '--key', sandbox.recipient.privateFile, '--safety-dir', safetyDir, '--yes', ...args]);
    const my = await restore(['--source', 'maria', `--artifact=${myHostile}`, '--target', mysqlUrl(encodeURIComponent(myHostile))]);
    assert.equal(my.code, EXIT.OK, my.log);
    const pg = await restore(['--source', 'pg', '--target', pgUrl(encodeURIComponent(pgHostile))]);
    assert.equal(pg.code, EXIT.OK, pg.log);
    assert.equal(readFileSync(myVictim, 'utf8'), VICTIM_CONTENT, 'the safety dump\'s mysqldump must not read the name as --result-file');
    assert.equal(readFileSync(pgVictim, 'utf8'), VICTIM_CONTENT);
    assert.equal(readdirSync(safetyDir).length, 2, `one safety dump per restore: ${readdirSync(safetyDir).join(', ')}`);
    assert.deepEqual(await mysqlContentFingerprint(myHostile), myBefore);
    assert.deepEqual(await pgContentFingerprint(pgHostile), pgBefore);
  });
});
