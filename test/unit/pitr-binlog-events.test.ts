import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
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

/**
 * No MySQL server here: a MySQL 8.0 file built by hand from the layouts MySQL documents
 * (Format_description with the checksum algorithm, Previous_gtids with exclusive interval ends,
 * Gtid, Query, Xid, Transaction_payload, Rotate; CRC32 on every event), to read the MySQL flavour's
 * GTID sets and transaction boundaries. It checks our reading against our reading of the docs, not
 * against a real server: the README says so.
 */
test('a MySQL 8.0 file (built from the documented layouts): GTID sets and transactions', () => {
  const A = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
  const B = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';
  const uuid = (u: string) => Buffer.from(u.replace(/-/g, ''), 'hex');
  const u64 = (n: number | bigint) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  const events: Buffer[] = [];
  let position = 4;
  const event = (type: number, time: number, body: Buffer) => {
    const length = 19 + body.length + 4;
    const header = Buffer.alloc(19);
    header.writeUInt32LE(time, 0);
    header.writeUInt8(type, 4);
    header.writeUInt32LE(7, 5);
    header.writeUInt32LE(length, 9);
    header.writeUInt32LE(position + length, 13);
    const withoutCrc = Buffer.concat([header, body]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32LE(crc32(withoutCrc) >>> 0);
    events.push(withoutCrc, crc);
    position += length;
  };
  const version = Buffer.alloc(50);
  version.write('8.0.36-log');
  const postHeaders = Buffer.alloc(41);
  postHeaders[2 - 1] = 13; // Query
  postHeaders[4 - 1] = 8; // Rotate
  const fde = Buffer.concat([Buffer.from([4, 0]), version, Buffer.from([0, 0, 0, 0, 19]), postHeaders, Buffer.from([1])]);
  const query = (sql: string) => Buffer.concat([Buffer.alloc(4), Buffer.alloc(4), Buffer.from([0]), Buffer.alloc(2), Buffer.from([0, 0]), Buffer.from([0]), Buffer.from(sql)]);
  const gtid = (u: string, gno: number) => Buffer.concat([Buffer.from([1]), uuid(u), u64(gno), Buffer.alloc(17)]);
  const t0 = 1_765_000_000;
  event(15, t0, fde);
  // A:1-5 and A:8-9 before this file (intervals stored with exclusive ends).
  event(35, t0, Buffer.concat([u64(1), uuid(A), u64(2), u64(1), u64(6), u64(8), u64(10)]));
  event(33, t0 + 1, gtid(A, 6));
  event(2, t0 + 1, query('BEGIN'));
  event(16, t0 + 2, u64(99));
  event(33, t0 + 3, gtid(A, 7));
  event(2, t0 + 3, query('CREATE TABLE x (id INT)'));
  event(33, t0 + 4, gtid(B, 1));
  event(40, t0 + 4, Buffer.alloc(30));
  event(4, t0 + 5, Buffer.concat([u64(4), Buffer.from('binlog.000008')]));
  const scanner = new BinlogScanner('binlog.000007');
  scanner.update(Buffer.concat([Buffer.from([0xfe, 0x62, 0x69, 0x6e]), ...events]));
  const facts = scanner.finish();
  assert.equal(facts.flavor, 'mysql');
  assert.equal(facts.serverVersion, '8.0.36-log');
  assert.equal(facts.serverId, 7);
  assert.equal(facts.checksum, 'crc32');
  assert.equal(facts.gtidStart, `${A}:1-5:8-9`);
  assert.equal(facts.gtidEnd, `${A}:1-9,${B}:1`);
  assert.equal(facts.transactions, 3);
  assert.equal(facts.firstCommitAt, new Date((t0 + 2) * 1000).toISOString());
  assert.equal(facts.lastCommitAt, new Date((t0 + 4) * 1000).toISOString());
  assert.equal(facts.closedAt, new Date((t0 + 5) * 1000).toISOString());
  assert.equal(facts.rotatesTo, 'binlog.000008');
});
