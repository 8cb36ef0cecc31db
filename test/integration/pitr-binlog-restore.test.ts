import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binlogWindow } from '../../format/binlog-window';
import { EXIT } from '../../format/exit-codes';
import { readPublicKeys } from '../../runtime/pgp';
import { readBinlogRecords, readDumps } from '../../agent/src/restore/binlog/catalog';
import { startBinlogSource, type BinlogSource } from '../harness/binlog-source';

/**
 * MySQL/MariaDB point-in-time restore end to end on a scratch MariaDB 10.11 (gtid_strict_mode on):
 * a dump with its binary log position, then transactions across FLUSH BINARY LOGS, one of them
 * through a temporary table that a statement-format session keeps across a log switch, a time T
 * between two transactions; the dump taken by `coldseal backup` (its binlogPosition in the signed
 * manifest) and the closed logs archived by `coldseal pitr binlog-push`. `restore --to-time T` under another name has everything committed
 * before T and nothing after: CHECKSUM TABLE of every table equals a reference taken at T; the
 * replayed row events went into the new name, not into the source (--rewrite-db). Then
 * --to-position, --to-gtid, --to-latest, and a same-name restore with its safety dump; after
 * restores on the source server itself, its own archive is still one unbroken GTID chain.
 */
let source: BinlogSource;
let T: string;
let afterFirst: string;
let gtidAfterSecond: string;
const tables = ['items', 'notes', 'audit'];
let reference: Map<string, string>;

const url = (database: string) => `mysql://root@localhost/${database}?socket=${encodeURIComponent(source.server.socket)}`;
const checksums = (database: string) =>
  new Map(
    source.server
      .sql(`CHECKSUM TABLE ${tables.map((t) => `\`${database}\`.\`${t}\``).join(', ')}`)
      .split('\n')
      .map((l) => l.split('\t'))
      .map(([name, sum]) => [name.split('.').pop()!, sum]),
  );
const rows = (database: string, table = 'items') => source.server.sql(`SELECT id, v FROM \`${database}\`.\`${table}\` ORDER BY id`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const restore = (...args: string[]) => source.cli(['restore', '--source', 'shop', '--key', source.sandbox.recipient.privateFile, ...args]);

before(async () => {
  source = await startBinlogSource({ server: { settings: { 'gtid-strict-mode': '1' } } });
  source.sql(`CREATE TABLE items (id int primary key, v varchar(40)) ENGINE=InnoDB;
    CREATE TABLE notes (id int auto_increment primary key, t text) ENGINE=InnoDB;
    CREATE TABLE audit (id int auto_increment primary key, what varchar(40)) ENGINE=InnoDB;
    INSERT INTO items VALUES (1, 'dumped'), (2, 'dumped');
    INSERT INTO notes (t) VALUES ('before the dump');`);
  const backup = await source.cli(['backup', '--tier', 'daily']);
  assert.equal(backup.code, EXIT.OK, backup.log);
  source.sql("INSERT INTO items VALUES (3, 'first'); INSERT INTO audit (what) VALUES ('first');");
  afterFirst = source.server.sql('SHOW MASTER STATUS').split('\t').slice(0, 2).join(':');
  source.flush();
  source.sql("BEGIN; UPDATE items SET v = 'second' WHERE id = 1; INSERT INTO notes (t) VALUES ('second'); COMMIT;");
  gtidAfterSecond = source.server.sql('SELECT @@gtid_binlog_pos');
  // One session: statement format logs the temporary table, which lives across the log switch.
  source.sql(`SET SESSION binlog_format = 'STATEMENT';
    CREATE TEMPORARY TABLE staged (id int, v varchar(40));
    INSERT INTO staged VALUES (4, 'via temporary'), (5, 'via temporary');
    FLUSH BINARY LOGS;
    INSERT INTO items SELECT id, v FROM staged;
    DROP TEMPORARY TABLE staged;`);
  await sleep(1100);
  T = source.serverTime();
  reference = checksums('shop');
  await sleep(1100);
  source.sql("INSERT INTO items VALUES (6, 'after T'); DELETE FROM notes WHERE id = 1; INSERT INTO audit (what) VALUES ('after T');");
  const push = await source.push();
  assert.equal(push.code, EXIT.OK, push.log);
});

after(() => source?.close());

test('--to-time T under another name: every transaction before T, none after; checksums equal the reference at T; the source untouched', async () => {
  const sourceBefore = checksums('shop');
  const result = await restore('--to-time', T, '--target', url('shop_t'));
  assert.equal(result.code, EXIT.OK, result.log);
  assert.equal(rows('shop_t'), ['1\tsecond', '2\tdumped', '3\tfirst', '4\tvia temporary', '5\tvia temporary'].join('\n'));
  assert.deepEqual(checksums('shop_t'), reference);
  // The replayed row events went into shop_t only (--rewrite-db holds for Table_map events).
  assert.deepEqual(checksums('shop'), sourceBefore);
  assert.match(result.stdout, /restored testhost\/shop\/shop to .* into MySQL database "shop_t", every check passed/);
  assert.match(result.stdout, /then 3 binary log file\(s\), 7 transaction\(s\) replayed/);
  assert.match(result.stdout, /reached: position mariadb-bin\.000003:\d+, GTID 0-1-\d+, last commit at 20\d\d-/);
  assert.match(result.log, /every transaction committed before/);
  assert.equal(source.server.sql("SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE '%coldseal%'"), '0');
});

test('--to-position, --to-gtid, --to-latest', async () => {
  // Three restores at once: each has its own staging database and spool.
  const [position, gtid, latest] = await Promise.all([
    restore('--to-position', afterFirst, '--target', url('shop_p')),
    restore('--to-gtid', gtidAfterSecond, '--target', url('shop_g')),
    restore('--to-latest', '--target', url('shop_l')),
  ]);
  assert.equal(position.code, EXIT.OK, position.log);
  assert.equal(rows('shop_p'), ['1\tdumped', '2\tdumped', '3\tfirst'].join('\n'));
  assert.equal(source.server.sql('SELECT what FROM shop_p.audit'), 'first');
  assert.equal(gtid.code, EXIT.OK, gtid.log);
  assert.equal(rows('shop_g'), ['1\tsecond', '2\tdumped', '3\tfirst'].join('\n'));
  assert.match(gtid.stdout, new RegExp(`GTID ${gtidAfterSecond}\\b`));
  assert.equal(latest.code, EXIT.OK, latest.log);
  assert.equal(rows('shop_l'), ['1\tsecond', '2\tdumped', '3\tfirst', '4\tvia temporary', '5\tvia temporary', '6\tafter T'].join('\n'));
  assert.deepEqual(checksums('shop_l'), checksums('shop'));
});

test('same name: the safety dump first, then shop is as it was at T; the source\'s own archive stays one GTID chain', async () => {
  const safetyDir = mkdtempSync(join(tmpdir(), 'coldseal-safety-'));
  const result = await restore('--to-time', T, '--target', url('shop'), '--yes', '--safety-dir', safetyDir, '--no-encrypt-safety-dump');
  assert.equal(result.code, EXIT.OK, result.log);
  assert.match(result.stdout, /safety dump of the previous content: /);
  const dump = /safety dump of the previous content: (\S+)/.exec(result.stdout)![1];
  assert.ok(existsSync(dump));
  assert.match(execFileSync('grep', ['-c', 'after T', dump]).toString(), /^[1-9]/);
  assert.deepEqual(checksums('shop'), reference);
  // Writes after the restores; every restore above was logged under new GTIDs of the server's own.
  source.sql("INSERT INTO items VALUES (7, 'after the restores')");
  const push = await source.push();
  assert.equal(push.code, EXIT.OK, push.log);
  const trusted = await readPublicKeys(source.sandbox.signing.publicKey, 'signing');
  const where = { group: 'testgroup', host: 'testhost', source: 'shop' };
  const { dumps } = await readDumps(source.sandbox.s3, source.sandbox.bucket, trusted, where);
  const { files, failures } = await readBinlogRecords(source.sandbox.s3, source.sandbox.bucket, trusted, where, { fromSequence: 1 });
  assert.deepEqual(failures, []);
  const records = files.map((f) => f.record);
  const window = binlogWindow({ dumps: dumps.map((d) => ({ id: d.stamp, database: d.database, position: d.position })), files: records });
  assert.deepEqual(window.gaps, []);
  assert.equal(window.to?.position, records.at(-1)!.binlogFile);
  // Continuous: each file's head state is the previous file's end state.
  for (let i = 1; i < records.length; i++) assert.equal(records[i].gtidStart, records[i - 1].gtidEnd, records[i].binlogFile);
  assert.equal(source.server.sql('SELECT @@gtid_binlog_pos'), records.at(-1)!.gtidEnd);
  assert.match(source.server.sql('SELECT @@gtid_strict_mode'), /^1$/);
});
