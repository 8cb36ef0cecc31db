import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../format/exit-codes';
import { binlogObjectKey, binlogPrefix } from '../../format/layout';
import { openBinlogRecord } from '../../runtime/binlog-record';
import { readPublicKeys, type PublicKey } from '../../runtime/pgp';
import { startBinlogSource, type BinlogSource } from '../harness/binlog-source';
import { decompress, gpgDecrypt } from '../harness/gpg';

/**
 * `pitr binlog-push` against a scratch MariaDB (files mode): every closed binary log archived
 * once with a signed record whose facts match the file (checked against mariadb-binlog's own
 * reading), the open file never, a rerun with or without state archives nothing twice.
 */
let src: BinlogSource;
let signingKeys: PublicKey[];

before(async () => {
  src = await startBinlogSource();
  signingKeys = await readPublicKeys(src.sandbox.signing.publicKey, 'signing');
});

after(() => src?.close());

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

function serverLogs(): Array<{ name: string; size: number }> {
  return src.server
    .sql('SHOW BINARY LOGS')
    .split('\n')
    .map((l) => l.split('\t'))
    .map(([name, size]) => ({ name: name!, size: Number(size) }));
}

async function recordOf(file: string) {
  const key = binlogObjectKey('testgroup', 'testhost', 'shop', file);
  const head = await src.sandbox.s3.send(new HeadObjectCommand({ Bucket: src.sandbox.bucket, Key: key }));
  return { key, etag: head.ETag, lock: head.ObjectLockMode, record: (await openBinlogRecord(head.Metadata, signingKeys, key)).record };
}

/** GTIDs and commits as mariadb-binlog prints them: the oracle the records are checked against. */
function oracle(file: string): { gtids: string[]; gtidList: string } {
  const text = execFileSync('mariadb-binlog', ['--no-defaults', join(src.server.binlogDir, file)]).toString();
  const gtids = [...text.matchAll(/\tGTID (\d+-\d+-\d+)/g)].map((m) => m[1]!);
  const gtidList = /\tGtid list \[([^\]]*)\]/.exec(text)?.[1] ?? '';
  return { gtids, gtidList };
}

test('every closed binary log is archived once, signed, with facts that match the file; the open one never', async () => {
  src.sql('CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40)) ENGINE=InnoDB');
  src.sql("INSERT INTO t VALUES (1, 'one'), (2, 'two')");
  src.sql("BEGIN; INSERT INTO t VALUES (3, 'three'); UPDATE t SET v = 'uno' WHERE id = 1; COMMIT;");
  src.flush();
  // A temporary table that lives across a log switch, in one session.
  src.sql("CREATE TEMPORARY TABLE tmp (id INT, v VARCHAR(40)); INSERT INTO tmp VALUES (4, 'four'), (5, 'five'); FLUSH BINARY LOGS; INSERT INTO t SELECT * FROM tmp; DROP TEMPORARY TABLE tmp;");
  src.flush();
  src.flush(); // an empty file: a quiet interval
  src.sql("INSERT INTO t VALUES (6, 'six')");

  const result = await src.push();
  assert.equal(result.code, EXIT.OK, result.log);
  const logs = serverLogs();
  const closed = logs.slice(0, -1).map((l) => l.name);
  const open = logs[logs.length - 1]!.name;
  const keys = await src.sandbox.listKeys(binlogPrefix('testgroup', 'testhost', 'shop'));
  assert.deepEqual(keys, closed.map((f) => binlogObjectKey('testgroup', 'testhost', 'shop', f)).sort());
  assert.ok(!keys.some((k) => k.includes(open)), `the open file ${open} must not be archived`);

  const records = await Promise.all(closed.map(async (f) => (await recordOf(f)).record));
  let transactions = 0;
  for (const [i, r] of records.entries()) {
    const file = readFileSync(join(src.server.binlogDir, r.binlogFile));
    assert.equal(r.plaintextSha256, sha256(file));
    assert.equal(r.plaintextBytes, file.length);
    assert.equal(r.flavor, 'mariadb');
    assert.equal(r.serverId, src.server.serverId);
    assert.match(r.serverVersion, /MariaDB/);
    const { gtids, gtidList } = oracle(r.binlogFile);
    assert.equal(r.gtidStart, gtidList, `${r.binlogFile} gtidStart`);
    assert.equal(r.transactions, gtids.length, `${r.binlogFile} transactions`);
    if (gtids.length > 0) assert.equal(r.gtidEnd, gtids[gtids.length - 1], `${r.binlogFile} gtidEnd`);
    else assert.equal(r.gtidEnd, r.gtidStart);
    assert.equal(r.endsWith, 'rotate');
    assert.ok(r.openedAt <= r.closedAt, `${r.binlogFile}: opened ${r.openedAt} after closed ${r.closedAt}`);
    if (r.transactions > 0) assert.ok(r.openedAt <= r.firstCommitAt! && r.firstCommitAt! <= r.lastCommitAt! && r.lastCommitAt! <= r.closedAt);
    else assert.equal(r.firstCommitAt, null);
    if (i > 0) {
      assert.equal(r.gtidStart, records[i - 1]!.gtidEnd, `${r.binlogFile} starts where ${records[i - 1]!.binlogFile} ended`);
      assert.ok(records[i - 1]!.closedAt <= r.openedAt);
    }
    transactions += r.transactions;
  }
  // CREATE DATABASE, CREATE TABLE, the two-row INSERT, BEGIN…COMMIT, INSERT … SELECT FROM tmp, INSERT 6 (closed by the push's FLUSH), at least.
  assert.ok(transactions >= 6, `${transactions} transactions`);
  assert.equal(records[records.length - 1]!.gtidEnd, src.server.sql('SELECT @@gtid_binlog_pos'));

  // The object is the file, compressed and encrypted to the recipients.
  const first = await recordOf(closed[0]!);
  const plain = decompress(gpgDecrypt(await src.sandbox.getObject(first.key), src.sandbox.recipient.privateFile), first.record.compression);
  assert.equal(sha256(plain), first.record.plaintextSha256);
  assert.equal(first.record.ciphertextSha256, sha256(await src.sandbox.getObject(first.key)));
});

test('a rerun archives nothing twice; without state, 412 answers say what is there', async () => {
  const before = await src.sandbox.listKeys(binlogPrefix('testgroup', 'testhost', 'shop'));
  const etags = await Promise.all(before.map(async (k) => (await src.sandbox.s3.send(new HeadObjectCommand({ Bucket: src.sandbox.bucket, Key: k }))).ETag));
  src.sql("INSERT INTO t VALUES (7, 'seven')");
  const again = await src.push();
  assert.equal(again.code, EXIT.OK, again.log);
  const after1 = await src.sandbox.listKeys(binlogPrefix('testgroup', 'testhost', 'shop'));
  // Only the file that was open before (with rows 6 and 7) is new.
  assert.equal(after1.length, before.length + 1);
  assert.doesNotMatch(again.log, /already archived/);

  rmSync(join(src.stateDir, 'binlog-state.json'));
  const stateless = await src.push();
  assert.equal(stateless.code, EXIT.OK, stateless.log);
  assert.equal((stateless.log.match(/already archived/g) ?? []).length, after1.length, stateless.log);
  const after2 = await src.sandbox.listKeys(binlogPrefix('testgroup', 'testhost', 'shop'));
  assert.equal(after2.length, after1.length + 1);
  const etagsAfter = await Promise.all(before.map(async (k) => (await src.sandbox.s3.send(new HeadObjectCommand({ Bucket: src.sandbox.bucket, Key: k }))).ETag));
  assert.deepEqual(etagsAfter, etags);
});

test('one run per source: a live runner\'s lock refuses a second run, which does nothing', async () => {
  const lock = join(src.stateDir, 'binlog-push.lock');
  writeFileSync(lock, `${process.pid}\n`);
  const files = src.server.sql('SHOW BINARY LOGS');
  const refused = await src.push();
  assert.equal(refused.code, EXIT.REFUSED, refused.log);
  assert.match(refused.log, new RegExp(`another binlog-push of source shop is running \\(pid ${process.pid}\\)`));
  assert.equal(src.server.sql('SHOW BINARY LOGS'), files, 'the refused run did not even flush');
  rmSync(lock);
  assert.equal((await src.push()).code, EXIT.OK);
});
