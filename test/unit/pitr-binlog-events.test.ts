import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BinlogFormatError, BinlogScanner, scanBinlogFile } from '../../agent/src/pitr/mysql/binlog-events';
import { startMariadbServer, type MariadbServer } from '../harness/mariadb-server';

/**
 * The binary log reader on real files of a scratch MariaDB 10.11: with and without event
 * checksums, fed in any chunking, checked against mariadb-binlog's own reading; corrupt,
 * truncated and still-open files refused with a message naming the file and the offset.
 */
let server: MariadbServer;
let work: string;
let files: string[];

before(async () => {
  server = await startMariadbServer();
  work = mkdtempSync(join(tmpdir(), 'coldseal-binlog-events-'));
  server.sql('CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY, v TEXT) ENGINE=InnoDB; CREATE TABLE shop.m (id INT) ENGINE=MyISAM');
  server.sql("INSERT INTO shop.t VALUES (1, REPEAT('a', 5000)), (2, 'b')");
  server.sql("BEGIN; INSERT INTO shop.t VALUES (3, 'c'); UPDATE shop.t SET v = 'x' WHERE id = 2; COMMIT");
  server.sql('INSERT INTO shop.m VALUES (1)');
  server.sql('FLUSH BINARY LOGS');
  server.sql("SET GLOBAL binlog_checksum = NONE; INSERT INTO shop.t VALUES (4, 'd')");
  server.sql('FLUSH BINARY LOGS');
  server.sql("SET GLOBAL binlog_checksum = CRC32; INSERT INTO shop.t VALUES (5, 'e')");
  files = server.sql('SHOW BINARY LOGS').split('\n').map((l) => l.split('\t')[0]!);
});

after(() => server?.stop());

const path = (file: string) => join(server.binlogDir, file);

function oracle(file: string): { gtids: string[]; gtidList: string; checksum: boolean } {
  const text = execFileSync('mariadb-binlog', ['--no-defaults', path(file)]).toString();
  return {
    gtids: [...text.matchAll(/\tGTID (\d+-\d+-\d+)/g)].map((m) => m[1]!),
    gtidList: /\tGtid list \[([^\]]*)\]/.exec(text)?.[1] ?? '',
    checksum: /CRC32 0x/.test(text),
  };
}

test('closed files, with CRC32 and without checksums: facts as mariadb-binlog reads them', async () => {
  const closed = files.slice(0, -1);
  assert.ok(closed.length >= 3);
  let previousEnd: string | undefined;
  for (const file of closed) {
    const facts = await scanBinlogFile(path(file), file);
    const o = oracle(file);
    assert.equal(facts.checksum, o.checksum ? 'crc32' : 'none', file);
    assert.equal(facts.flavor, 'mariadb');
    assert.equal(facts.serverId, server.serverId);
    assert.equal(facts.endsWith, 'rotate');
    assert.equal(facts.gtidStart, o.gtidList);
    assert.equal(facts.transactions, o.gtids.length, file);
    assert.equal(facts.gtidEnd, o.gtids.length ? o.gtids[o.gtids.length - 1] : o.gtidList);
    if (previousEnd !== undefined) assert.equal(facts.gtidStart, previousEnd);
    previousEnd = facts.gtidEnd;
    const bytes = readFileSync(path(file));
    assert.equal(facts.bytes, bytes.length);
    assert.equal(facts.sha256, createHash('sha256').update(bytes).digest('hex'));
  }
  // SET GLOBAL binlog_checksum rotates the log: files of both kinds are among the closed ones.
  const kinds = new Set((await Promise.all(closed.map((f) => scanBinlogFile(path(f), f)))).map((f) => f.checksum));
  assert.deepEqual([...kinds].sort(), ['crc32', 'none']);
});

test('any chunking gives the same facts (events split across reads)', async () => {
  const file = files[0]!;
  const bytes = readFileSync(path(file));
  const whole = await scanBinlogFile(path(file), file);
  for (const size of [1, 7, 19, 4096]) {
    const scanner = new BinlogScanner(file);
    for (let at = 0; at < bytes.length; at += size) scanner.update(bytes.subarray(at, at + size));
    assert.deepEqual(scanner.finish(), whole, `chunks of ${size}`);
  }
});

async function refusal(bytes: Buffer, name: string): Promise<BinlogFormatError> {
  const copy = join(work, name);
  writeFileSync(copy, bytes);
  try {
    await scanBinlogFile(copy, name);
  } catch (error) {
    assert.ok(error instanceof BinlogFormatError, String(error));
    return error;
  }
  assert.fail(`${name} was not refused`);
}

test('a flipped byte fails the event checksum; a bad length breaks the framing; truncation and the open file are refused', async () => {
  const file = files[0]!;
  const bytes = readFileSync(path(file));
  // The 5000-byte value of row 1 is inside a Write_rows event in the middle of the file.
  const at = bytes.indexOf(Buffer.from('a'.repeat(100)));
  assert.ok(at > 0);
  const flipped = Buffer.from(bytes);
  flipped[at + 50] ^= 0x01;
  const crc = await refusal(flipped, file);
  assert.match(crc.message, new RegExp(`^${file.replace('.', '\\.')}: event of type \\d+ fails its CRC32 checksum .*the file is corrupt \\(at byte \\d+\\)$`));

  const badLength = Buffer.from(bytes);
  badLength.writeUInt32LE(bytes.readUInt32LE(4 + 9) + 1, 4 + 9); // the Format_description's event_length
  assert.match((await refusal(badLength, file)).message, /says it ends at \d+, not \d+: the file is corrupt \(at byte 4\)/);

  const truncated = await refusal(bytes.subarray(0, bytes.length - 10), file);
  assert.match(truncated.message, /ends in the middle of an event \(\d+ of \d+ bytes\): it is truncated/);

  const open = files[files.length - 1]!;
  assert.match((await refusal(readFileSync(path(open)), open)).message, /does not end with a Rotate or Stop event .*still says "in use".*not archived/);

  assert.match((await refusal(readFileSync(join(server.binlogDir, 'mariadb-bin.index')), 'mariadb-bin.index')).message, /does not start with the binary log magic/);
  assert.match((await refusal(Buffer.alloc(0), 'empty.000001')).message, /the file is empty/);
});
