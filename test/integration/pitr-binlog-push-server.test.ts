import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../format/exit-codes';
import { binlogObjectKey, binlogPrefix } from '../../format/layout';
import { openBinlogRecord } from '../../runtime/binlog-record';
import { readPublicKeys, type PublicKey } from '../../runtime/pgp';
import { startBinlogSource, type BinlogSource } from '../harness/binlog-source';

/**
 * `"read": "server"`: binlog-push copies closed binary logs over the client protocol
 * (mariadb-binlog --read-from-remote-server --raw), as an account with only the replication
 * privileges and a password from a file, with no access to the binlog directory (a binlogDir
 * that does not exist). The copies are the server's files byte for byte, and leave no spool.
 */
let src: BinlogSource;
let signingKeys: PublicKey[];

before(async () => {
  const secrets = mkdtempSync(join(tmpdir(), 'coldseal-binlog-secret-'));
  const passwordFile = join(secrets, 'password');
  writeFileSync(passwordFile, 'arch\'iv"er pw', { mode: 0o600 });
  src = await startBinlogSource({
    pitr: { read: 'server', binlogDir: '/nonexistent/binlogs', concurrency: 2 },
    source: { user: 'archiver', password: { file: passwordFile } },
  });
  // MariaDB 10.11: FLUSH BINARY LOGS needs RELOAD, SHOW BINARY LOGS BINLOG MONITOR, the copy REPLICATION SLAVE.
  src.server.sql("CREATE USER archiver@localhost IDENTIFIED BY 'arch\\'iv\"er pw'; GRANT RELOAD, BINLOG MONITOR, REPLICATION SLAVE ON *.* TO archiver@localhost");
  signingKeys = await readPublicKeys(src.sandbox.signing.publicKey, 'signing');
});

after(() => src?.close());

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

test('closed binary logs copied from the server are archived as the files themselves', async () => {
  src.sql('CREATE TABLE t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB');
  src.sql("INSERT INTO t SELECT seq, REPEAT('x', 1000) FROM seq_1_to_2000");
  src.flush();
  src.sql("BEGIN; INSERT INTO t VALUES (5000, 'a'); INSERT INTO t VALUES (5001, 'b'); COMMIT;");
  src.flush();
  src.sql("INSERT INTO t VALUES (6000, 'open')");

  const result = await src.push();
  assert.equal(result.code, EXIT.OK, result.log);
  const closed = src.server
    .sql('SHOW BINARY LOGS')
    .split('\n')
    .slice(0, -1)
    .map((l) => l.split('\t')[0]!);
  const keys = await src.sandbox.listKeys(binlogPrefix('testgroup', 'testhost', 'shop'));
  assert.deepEqual(keys, closed.map((f) => binlogObjectKey('testgroup', 'testhost', 'shop', f)).sort());
  let previous: string | undefined;
  for (const file of closed) {
    const key = binlogObjectKey('testgroup', 'testhost', 'shop', file);
    const head = await src.sandbox.s3.send(new HeadObjectCommand({ Bucket: src.sandbox.bucket, Key: key }));
    const { record } = await openBinlogRecord(head.Metadata, signingKeys, key);
    const bytes = readFileSync(join(src.server.binlogDir, file));
    assert.equal(record.plaintextSha256, sha256(bytes), file);
    assert.equal(record.plaintextBytes, bytes.length);
    if (previous !== undefined) assert.equal(record.gtidStart, previous);
    previous = record.gtidEnd;
  }
  assert.equal(previous, src.server.sql('SELECT @@gtid_binlog_pos'));
  assert.deepEqual(readdirSync(join(src.stateDir, 'spool')), []);
  assert.doesNotMatch(result.stderr, /arch'iv"er pw/);
});

test('without REPLICATION SLAVE the copy fails, naming the privilege to grant', async () => {
  src.server.sql('REVOKE REPLICATION SLAVE ON *.* FROM archiver@localhost');
  src.sql("INSERT INTO t VALUES (7000, 'x')");
  const result = await src.push();
  assert.equal(result.code, EXIT.SOURCE, result.log);
  assert.match(result.log, /mariadb-binlog --read-from-remote-server could not copy mariadb-bin\.\d+/);
  assert.match(result.log, /Grant the source's user REPLICATION SLAVE/);
});
