import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  binlogFileName,
  canonicalGtidState,
  compareBinlogPositions,
  formatBinlogPosition,
  formatMysqlGtidSet,
  gtidStateCovers,
  isBinlogFileName,
  mariadbPositionOf,
  mariadbStateAfter,
  mysqlGtidSetContains,
  mysqlGtidSetUnion,
  parseBinlogFileName,
  parseBinlogPosition,
  parseMariadbGtid,
  parseMariadbGtidList,
  parseMysqlGtidSet,
} from '../../format/binlog';
import { binlogObjectKey, binlogPrefix, parseKey } from '../../format/layout';

const U1 = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
const U2 = '8a94f357-aab4-11df-86ab-c80aa9429562';

describe('binary log file names and positions', () => {
  it('parses names with a basename that holds dots and dashes, and 6 to 9 digits', () => {
    assert.deepEqual(parseBinlogFileName('mysql-bin.000042'), { basename: 'mysql-bin', sequence: 42, name: 'mysql-bin.000042' });
    assert.deepEqual(parseBinlogFileName('host.example-bin.1000000'), { basename: 'host.example-bin', sequence: 1_000_000, name: 'host.example-bin.1000000' });
    for (const bad of ['mysql-bin.42', 'mysql-bin.index', '.000001', 'mysql-bin.0000000001', 'a/b.000001', 'mysql-bin.000001.pgp', '']) {
      assert.equal(isBinlogFileName(bad), false, bad);
      assert.throws(() => parseBinlogFileName(bad), /is not a binary log file name \(expected <basename>\.<6\+ digits>/);
    }
  });

  it('names a sequence as the server does (6 digits, more when it needs them) and refuses what no server writes', () => {
    assert.equal(binlogFileName('mariadb-bin', 7), 'mariadb-bin.000007');
    assert.equal(binlogFileName('mariadb-bin', 1_234_567), 'mariadb-bin.1234567');
    assert.throws(() => binlogFileName('b', 0), /binary log sequence 0 is outside 1–999999999/);
    assert.throws(() => binlogFileName('b', 1.5), /outside/);
  });

  it('compares positions by sequence then offset, and refuses two basenames', () => {
    const p = (file: string, position: number) => ({ file, position });
    assert.ok(compareBinlogPositions(p('b.000002', 4), p('b.000010', 4)) < 0, 'numeric, not text, order');
    assert.ok(compareBinlogPositions(p('b.000002', 900), p('b.000002', 4)) > 0);
    assert.equal(compareBinlogPositions(p('b.000002', 4), p('b.000002', 4)), 0);
    assert.throws(() => compareBinlogPositions(p('a.000001', 4), p('b.000001', 4)), /two basenames \(a, b\) cannot be compared/);
  });

  it('reads and prints the file:offset form of --to-position', () => {
    assert.deepEqual(parseBinlogPosition(' mysql-bin.000042:1234 '), { file: 'mysql-bin.000042', position: 1234 });
    assert.equal(formatBinlogPosition({ file: 'mysql-bin.000042', position: 1234 }), 'mysql-bin.000042:1234');
    for (const bad of ['mysql-bin.000042', 'mysql-bin.000042:', 'mysql-bin.42:4', ':4', 'mysql-bin.000042:-1']) {
      assert.throws(() => parseBinlogPosition(bad), /is not a binary log position \(expected <file>:<offset>/, bad);
    }
  });

  it('keys binary logs under wal/<g>/<h>/<s>/binlog/ and parses them back, never as WAL', () => {
    assert.equal(binlogPrefix('db', 'h1', 'shop'), 'wal/db/h1/shop/binlog/');
    const key = binlogObjectKey('db', 'h1', 'shop', 'mariadb-bin.000003');
    assert.equal(key, 'wal/db/h1/shop/binlog/mariadb-bin.000003.pgp');
    assert.deepEqual(parseKey(key), { kind: 'binlog', group: 'db', host: 'h1', source: 'shop', binlogFile: 'mariadb-bin.000003' });
    assert.equal(parseKey('wal/db/h1/shop/binlog/mariadb-bin.index.pgp'), null);
    assert.equal(parseKey('wal/db/h1/shop/binlog/mariadb-bin.000003'), null);
    assert.throws(() => binlogObjectKey('db', 'h1', 'shop', 'mariadb-bin.3'), /is not a binary log file name/);
    assert.throws(() => binlogPrefix('db', '../x', 'shop'));
    // Names of one width sort in sequence: the monitor's StartAfter listing relies on it.
    const keys = [9, 10, 99_999, 100_000, 2].map((n) => binlogObjectKey('db', 'h1', 'shop', binlogFileName('b', n)));
    assert.deepEqual([...keys].sort(), [2, 9, 10, 99_999, 100_000].map((n) => binlogObjectKey('db', 'h1', 'shop', binlogFileName('b', n))));
  });
});

describe('MariaDB GTID states', () => {
  it('parses GTIDs with sequence numbers beyond 2^53', () => {
    assert.deepEqual(parseMariadbGtid('0-1-18446744073709551615'), { domain: 0, server: 1, seq: 18446744073709551615n });
    assert.throws(() => parseMariadbGtid('0-1'), /is not a MariaDB GTID \(expected domain-server-sequence/);
    assert.throws(() => parseMariadbGtid('a-1-2'), /not a MariaDB GTID/);
  });

  it('takes the empty list, refuses a (domain, server) named twice', () => {
    assert.deepEqual(parseMariadbGtidList('  '), []);
    assert.throws(() => parseMariadbGtidList('0-1-5,0-1-7'), /names domain 0 server 1 twice/);
    assert.equal(parseMariadbGtidList('0-1-5,0-2-7').length, 2);
  });

  it('canonical text sorts by domain then server, so that equal states compare equal as text', () => {
    assert.equal(canonicalGtidState('1-2-7, 0-2-3,0-1-42', 'mariadb'), '0-1-42,0-2-3,1-2-7');
    assert.equal(canonicalGtidState('', 'mariadb'), '');
    assert.throws(() => canonicalGtidState('0-1-x', 'mariadb'), /not a MariaDB GTID/);
  });

  it('a GTID replaces its (domain, server) entry; the position is the newest per domain', () => {
    const state = parseMariadbGtidList('0-1-10,0-2-12,1-1-3');
    const after = mariadbStateAfter(state, parseMariadbGtid('0-1-13'));
    assert.equal(canonicalGtidState(after.map((g) => `${g.domain}-${g.server}-${g.seq}`).join(','), 'mariadb'), '0-1-13,0-2-12,1-1-3');
    assert.deepEqual(mariadbPositionOf(after).map((g) => `${g.domain}-${g.server}-${g.seq}`), ['0-1-13', '1-1-3']);
  });

  it('covers a position when each of its domains has reached its sequence number', () => {
    assert.equal(gtidStateCovers('0-1-10,0-2-12,1-1-3', '0-2-12,1-1-3', 'mariadb'), true);
    assert.equal(gtidStateCovers('0-1-10,0-2-12,1-1-3', '0-1-11', 'mariadb'), true, 'server 2 logged 12 in domain 0 after server 1 logged 10');
    assert.equal(gtidStateCovers('0-1-10', '0-1-11', 'mariadb'), false);
    assert.equal(gtidStateCovers('0-1-10', '2-1-1', 'mariadb'), false, 'a domain the state never saw');
    assert.equal(gtidStateCovers('0-1-10', '', 'mariadb'), true);
  });
});

describe('MySQL GTID sets', () => {
  it('parses, merges adjacent and overlapping intervals, lower-cases UUIDs and ignores line breaks', () => {
    const set = parseMysqlGtidSet(`${U2.toUpperCase()}:1-5:6-8:20,\n${U1}:3:1-2:10-12:11`);
    assert.equal(formatMysqlGtidSet(set), `${U1}:1-3:10-12,${U2}:1-8:20`);
    assert.equal(canonicalGtidState(`${U2}:20:1-8,${U1}:1-3:10-12`, 'mysql'), `${U1}:1-3:10-12,${U2}:1-8:20`);
    assert.equal(canonicalGtidState('', 'mysql'), '');
  });

  it('refuses what is not a GTID set, naming the part', () => {
    assert.throws(() => parseMysqlGtidSet('not-a-uuid:1-5'), /"not-a-uuid:1-5" is not a MySQL GTID set member/);
    assert.throws(() => parseMysqlGtidSet(U1), /is not a MySQL GTID set member \(expected uuid:1-100/);
    assert.throws(() => parseMysqlGtidSet(`${U1}:5-3`), /interval 5-3 .* runs backwards/);
    assert.throws(() => parseMysqlGtidSet(`${U1}:x`), /"x" in .* is not a transaction interval/);
  });

  it('union and containment', () => {
    const union = mysqlGtidSetUnion(parseMysqlGtidSet(`${U1}:1-5`), parseMysqlGtidSet(`${U1}:6-9,${U2}:1`));
    assert.equal(formatMysqlGtidSet(union), `${U1}:1-9,${U2}:1`);
    assert.equal(mysqlGtidSetContains(union, parseMysqlGtidSet(`${U1}:2-9`)), true);
    assert.equal(mysqlGtidSetContains(union, parseMysqlGtidSet(`${U1}:2-10`)), false);
    assert.equal(mysqlGtidSetContains(parseMysqlGtidSet(`${U1}:1-3:5-9`), parseMysqlGtidSet(`${U1}:3-5`)), false, 'a hole at 4');
    assert.equal(gtidStateCovers(`${U1}:1-9,${U2}:1`, `${U2}:1`, 'mysql'), true);
    assert.equal(gtidStateCovers(`${U1}:1-9`, `${U2}:1`, 'mysql'), false);
  });
});
