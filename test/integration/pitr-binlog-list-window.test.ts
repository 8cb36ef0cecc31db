import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../format/exit-codes';
import { canonicalGtidState } from '../../format/binlog';
import type { BinlogRecord } from '../../format/binlog-record';
import { binlogObjectKey } from '../../format/layout';
import { generateKeyPair, readPrivateKey } from '../../runtime/pgp';
import { signBinlogRecord } from '../../runtime/binlog-record';
import { startBinlogSource, type BinlogSource } from '../harness/binlog-source';

/**
 * `coldseal list --source shop` for a MySQL/MariaDB PITR source: the binary log window from the
 * kept dump's binlogPosition (a real backup of the scratch server) and archived binlog objects
 * with signed records (put here as binlog-push would, one per real file of the server, with one
 * file missing and one signed by an unknown key): the window, the hole, and how few records it
 * opened. binlog-push itself is tested on its own branch; here only what list reads matters.
 */
let source: BinlogSource;
const files: { name: string; gtidStart: string; gtidEnd: string; openedAt: string; closedAt: string }[] = [];

before(async () => {
  source = await startBinlogSource();
  source.sql('CREATE TABLE t (id int primary key)');
  source.sql('INSERT INTO t VALUES (1)');
  // When each file was closed (the agent's clock, as the records' times are ISO text compared with readAt).
  const closed = [new Date(Date.now() - 60_000).toISOString()];
  source.flush();
  closed.push(new Date().toISOString());
  const backup = await source.cli(['backup', '--tier', 'daily']);
  assert.equal(backup.code, EXIT.OK, backup.log);
  for (let i = 2; i <= 13; i++) {
    source.sql(`INSERT INTO t VALUES (${i})`);
    await new Promise((r) => setTimeout(r, 5));
    source.flush();
    closed.push(new Date().toISOString());
  }
  // The state at the head of each file is the GTID position at its offset 4; a file ends where the next begins.
  const names = source.server.sql('SHOW BINARY LOGS').split('\n').map((l) => l.split('\t')[0]);
  const heads = names.map((n) => canonicalGtidState(source.server.sql(`SELECT BINLOG_GTID_POS('${n}', 4)`), 'mariadb'));
  for (let i = 0; i < names.length - 1; i++) {
    files.push({ name: names[i], gtidStart: heads[i], gtidEnd: heads[i + 1], openedAt: closed[i], closedAt: closed[i + 1] });
  }
  const signing = await readPrivateKey(source.sandbox.signing.privateKey, 'signing key');
  const stranger = await generateKeyPair({ name: 'not the group' }, undefined, { signOnly: true });
  const strangerKey = await readPrivateKey(stranger.privateKey, 'stranger key');
  for (const [i, f] of files.entries()) {
    if (f.name.endsWith('000009')) continue; // rotated and purged before it was archived
    const body = Buffer.from(`ciphertext of ${f.name}`);
    const sha = createHash('sha256').update(body).digest('hex');
    const record: BinlogRecord = {
      formatVersion: 1,
      kind: 'binlog',
      group: 'testgroup',
      host: 'testhost',
      source: 'shop',
      binlogFile: f.name,
      flavor: 'mariadb',
      serverVersion: '10.11.19-MariaDB',
      serverId: 1,
      gtidStart: f.gtidStart,
      gtidEnd: f.gtidEnd,
      openedAt: f.openedAt,
      closedAt: f.closedAt,
      endsWith: 'rotate',
      transactions: 1,
      firstCommitAt: f.openedAt,
      lastCommitAt: f.openedAt,
      plaintextBytes: body.length,
      plaintextSha256: sha,
      ciphertextBytes: body.length,
      ciphertextSha256: sha,
      compression: 'zstd',
      recipientKeyIds: ['0123456789abcdef'],
      signingKeyFingerprint: i === files.length - 1 ? stranger.fingerprint : source.sandbox.signing.fingerprint,
      archivedAt: f.closedAt,
      agentVersion: 'test',
    };
    const metadata = await signBinlogRecord(record, i === files.length - 1 ? strangerKey : signing);
    await source.sandbox.s3.send(new PutObjectCommand({ Bucket: source.sandbox.bucket, Key: binlogObjectKey('testgroup', 'testhost', 'shop', f.name), Body: body, Metadata: metadata }));
  }
});

after(async () => {
  await source?.close();
});

test('list shows the window from the dump to the file before the hole, the hole, and the files past it; it opens only the records it needs', async () => {
  assert.equal(files.length, 13, 'files 000001–000013 closed');
  const text = await source.cli(['list', '--source', 'shop']);
  assert.equal(text.code, EXIT.OK, text.log);
  const json = await source.cli(['list', '--source', 'shop', '--json']);
  const rows = JSON.parse(json.stdout) as { binlogWindow?: { from: { position: string; gtid: string; database: string } | null; to: { position: string; time: string } | null; gaps: { missing: string[]; description: string }[]; archivedFiles: number; recordsOpened: number; notes: string[]; newestArchivedBinlog: { file: string } } }[];
  const window = rows[0].binlogWindow!;
  assert.ok(window, 'the backup row carries the binary log window');
  assert.ok(window.from, text.stdout);
  assert.equal(window.from!.position.split(':')[0], 'mariadb-bin.000002', 'the dump was taken after the first flush');
  assert.equal(window.from!.database, 'shop');
  assert.equal(window.to!.position, 'mariadb-bin.000008');
  assert.equal(window.to!.time, files[7].closedAt);
  assert.deepEqual(window.gaps.map((g) => g.missing), [['mariadb-bin.000009']]);
  assert.equal(window.newestArchivedBinlog.file, 'mariadb-bin.000012', '000013 is signed by a stranger and left out');
  assert.equal(window.archivedFiles, 12);
  // The first (1), the dump's file (2), both sides of the hole (8, 10), the newest (13, rejected; then 12 is not opened again).
  assert.equal(window.recordsOpened, 4, 'four records opened of twelve listed');
  assert.ok(window.notes.some((n) => /mariadb-bin\.000013 is left out: its record does not verify/.test(n)), window.notes.join('\n'));
  assert.ok(window.notes.some((n) => /4 of 11 archived binary logs were opened/.test(n)), window.notes.join('\n'));

  assert.match(text.stdout, /^RECOVERY WINDOWS \(point-in-time recovery\)$/m);
  assert.match(text.stdout, /^testhost\/shop \(binary log\): from \S+ \(mariadb-bin\.000002:\d+, dump of shop, GTID 0-1-\d+\) to \S+ \(end of mariadb-bin\.000008, GTID 0-1-\d+\)$/m);
  assert.match(text.stdout, /^ {2}GAP .*: binary log mariadb-bin\.000009 is not in the archive/m);
  assert.match(text.stdout, /newer binary logs are archived \(mariadb-bin\.000012\) but no dump reaches them/);
});
