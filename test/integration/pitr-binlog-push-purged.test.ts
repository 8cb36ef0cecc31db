import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../format/exit-codes';
import { binlogObjectKey, binlogPrefix } from '../../format/layout';
import { openBinlogRecord } from '../../runtime/binlog-record';
import { readPublicKeys, type PublicKey } from '../../runtime/pgp';
import { startBinlogSource, type BinlogSource } from '../harness/binlog-source';

/**
 * Binary logs purged on the server (PURGE BINARY LOGS, or expiry) before binlog-push archived
 * them: the run archives the files that remain, then fails naming the lost files, times and
 * GTIDs, and alerts once; the next run is clean again.
 */
let src: BinlogSource;
let signingKeys: PublicKey[];

before(async () => {
  src = await startBinlogSource({ alerts: true });
  signingKeys = await readPublicKeys(src.sandbox.signing.publicKey, 'signing');
  src.sql('CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB');
});

after(() => src?.close());

const current = () => src.server.sql('SHOW MASTER STATUS').split('\t')[0]!;

async function recordOf(file: string) {
  const key = binlogObjectKey('testgroup', 'testhost', 'shop', file);
  const head = await src.sandbox.s3.send(new HeadObjectCommand({ Bucket: src.sandbox.bucket, Key: key }));
  return (await openBinlogRecord(head.Metadata, signingKeys, key)).record;
}

test('files purged before they were archived: the rest is archived, the run FAILs naming the lost range, one alert', async () => {
  src.sql('INSERT INTO t VALUES (1)');
  const first = await src.push();
  assert.equal(first.code, EXIT.OK, first.log);
  const lastArchived = src.server.sql('SHOW BINARY LOGS').split('\n').at(-2)!.split('\t')[0]!;
  const lastRecord = await recordOf(lastArchived);

  src.sql('INSERT INTO t VALUES (2)');
  const lostFirst = src.flush();
  src.sql('INSERT INTO t VALUES (3)');
  const lostLast = src.flush();
  src.sql('INSERT INTO t VALUES (4)');
  const survivor = current();
  // MariaDB keeps a file until InnoDB's redo log has its transactions on disk (its binlog
  // checkpoint; innodb_flush_log_at_trx_commit=2 here: about a second), so the purge is retried.
  for (let i = 0; i < 50 && src.server.sql('SHOW BINARY LOGS').split('\t')[0] !== survivor; i++) {
    src.server.sql(`PURGE BINARY LOGS TO '${survivor}'`);
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(src.server.sql('SHOW BINARY LOGS').split('\t')[0], survivor, 'the two files were purged');
  src.flush();
  src.sql('INSERT INTO t VALUES (5)');

  const purged = await src.push();
  assert.equal(purged.code, EXIT.INTEGRITY, purged.log);
  const survivorRecord = await recordOf(survivor);
  const expected = `binary log ${lostFirst}–${lostLast} are not in the archive: transactions committed between ${lastRecord.closedAt} and ${survivorRecord.openedAt} (GTID after ${lastRecord.gtidEnd} up to ${survivorRecord.gtidStart}) cannot be replayed (purged on the server before they were archived)`;
  assert.ok(purged.log.includes(expected), purged.log);
  assert.match(purged.log, /were archived; no point in the lost range can be restored\. Take a backup now/);

  // Everything still on the server was archived, from the survivor on.
  const closed = src.server.sql('SHOW BINARY LOGS').split('\n').slice(0, -1).map((l) => l.split('\t')[0]!);
  const keys = await src.sandbox.listKeys(binlogPrefix('testgroup', 'testhost', 'shop'));
  for (const f of closed) assert.ok(keys.includes(binlogObjectKey('testgroup', 'testhost', 'shop', f)), `${f} archived`);
  for (const f of [lostFirst, lostLast]) assert.ok(!keys.includes(binlogObjectKey('testgroup', 'testhost', 'shop', f)));
  assert.notEqual(survivorRecord.gtidStart, lastRecord.gtidEnd, 'two transactions are missing between them');

  const alerts = await src.inbox!.receive();
  assert.equal(alerts.length, 1, alerts.map((a) => a.subject).join(', '));
  assert.equal(alerts[0]!.subject, 'coldseal BINLOG LOST: testgroup/testhost/shop');
  assert.ok(alerts[0]!.message.includes(expected), alerts[0]!.message);
  assert.match(alerts[0]!.message, /take a backup now/);

  // The window goes on from the survivor: the next run is clean and does not alert again.
  src.sql('INSERT INTO t VALUES (6)');
  const next = await src.push();
  assert.equal(next.code, EXIT.OK, next.log);
  assert.deepEqual(await src.inbox!.receive(), []);
});

test('logs reset on the server (RESET MASTER): refused while the state knows better; without state, the archived files differ: INTEGRITY, nothing overwritten, alerted once', async () => {
  src.server.sql('RESET MASTER');
  src.sql('INSERT INTO t VALUES (100)');
  const withState = await src.push();
  assert.equal(withState.code, EXIT.INTEGRITY, withState.log);
  assert.match(withState.log, /the server's newest binary log is mariadb-bin\.000002, but mariadb-bin\.\d+ was archived already: the server's logs were reset \(RESET MASTER\)/);
  const planAlerts = await src.inbox!.receive();
  assert.equal(planAlerts.length, 1);
  assert.match(planAlerts[0]!.message, /were reset \(RESET MASTER\)/);

  const key = binlogObjectKey('testgroup', 'testhost', 'shop', 'mariadb-bin.000001');
  const etag = (await src.sandbox.s3.send(new HeadObjectCommand({ Bucket: src.sandbox.bucket, Key: key }))).ETag;
  rmSync(join(src.stateDir, 'binlog-state.json'));
  const stateless = await src.push();
  assert.equal(stateless.code, EXIT.INTEGRITY, stateless.log);
  assert.match(stateless.log, /mariadb-bin\.000001 is already in the archive \(s3:\/\/\S+, archived \S+ from server id 1\) with different content/);
  assert.equal((await src.sandbox.s3.send(new HeadObjectCommand({ Bucket: src.sandbox.bucket, Key: key }))).ETag, etag);
  const conflictAlerts = await src.inbox!.receive();
  // 000002 was purged before it was archived (the test above): only 000001 conflicts.
  assert.equal(conflictAlerts.length, 1, conflictAlerts.map((a) => a.message).join('\n---\n'));
  assert.equal(conflictAlerts[0]!.subject, 'coldseal BINLOG INTEGRITY: testgroup/testhost/shop');
  assert.match(conflictAlerts[0]!.message, /mariadb-bin\.000001 \(s3:.*\):\n.*different content/);
  assert.doesNotMatch(stateless.stderr, /non-retryable streaming request/);

  // The timer runs again: the same failure, not the same alerts.
  const again = await src.push();
  assert.equal(again.code, EXIT.INTEGRITY, again.log);
  assert.deepEqual(await src.inbox!.receive(), []);
});
