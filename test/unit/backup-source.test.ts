import { test } from 'node:test';
import assert from 'node:assert/strict';
import { firstLines, parseSizes, recordableArgs, toolVersion } from '../../agent/src/backup/sources/source';

test('recordableArgs: option-file paths and snapshot ids, which change every run, are not recorded', () => {
  assert.deepEqual(recordableArgs(['--defaults-extra-file=/tmp/coldseal-1234.cnf', '--single-transaction', '--snapshot=00000003-0000001B-1', '--format=custom', 'shop']), [
    '--defaults-extra-file=<0600 option file>',
    '--single-transaction',
    '--format=custom',
    'shop',
  ]);
  assert.deepEqual(recordableArgs([]), []);
});

test('parseSizes: name and bytes per line, as psql -At and mysql --batch print them', () => {
  assert.deepEqual([...parseSizes('shop|8192\npostgres|7000\n', '|')], [['shop', 8192], ['postgres', 7000]]);
  assert.deepEqual([...parseSizes('shop\t123\n\n', '\t')], [['shop', 123]]);
  assert.deepEqual([...parseSizes('', '|')], []);
});

test('toolVersion and firstLines: the first line; the first meaningful lines on one line', () => {
  assert.equal(toolVersion('pg_dump (PostgreSQL) 16.4\nmore\n'), 'pg_dump (PostgreSQL) 16.4');
  assert.equal(toolVersion('\n  mysqldump  Ver 10.19\n'), 'mysqldump  Ver 10.19');
  assert.equal(firstLines('\n  one \n\n two\nthree'), 'one / two');
  assert.equal(firstLines('a\nb\nc', 3), 'a / b / c');
});
