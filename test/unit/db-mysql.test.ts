import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mysqlCommand, sqlIdent, sqlString } from '../../agent/src/db/mysql';

test('sqlString: a MySQL string literal; quotes and backslashes cannot end it early', () => {
  const cases: [string, string][] = [
    ['plain', "'plain'"],
    ["it's", "'it\\'s'"],
    ['back\\slash', "'back\\\\slash'"],
    ["\\'; DROP DATABASE x; --", "'\\\\\\'; DROP DATABASE x; --'"],
    ['', "''"],
    ['naïve 名前', "'naïve 名前'"],
  ];
  for (const [value, literal] of cases) assert.equal(sqlString(value), literal, value);
});

test('sqlIdent: a backquoted identifier; backquotes are doubled', () => {
  const cases: [string, string][] = [
    ['shop', '`shop`'],
    ['my`db', '`my``db`'],
    ['``', '``````'],
    ['with space', '`with space`'],
  ];
  for (const [value, ident] of cases) assert.equal(sqlIdent(value), ident, value);
});

test('mysqlCommand: connection flags first, the tool from binDir, run as another user without a shell', () => {
  assert.deepEqual(mysqlCommand({ args: ['--host=db'] }, 'mysql', ['--batch']), { command: 'mysql', args: ['--host=db', '--batch'] });
  assert.deepEqual(mysqlCommand({ args: ['--user=u'], binDir: '/opt/mysql/bin' }, 'mysqldump', ['shop']), { command: '/opt/mysql/bin/mysqldump', args: ['--user=u', 'shop'] });
  assert.deepEqual(mysqlCommand({ args: [], runAs: 'mysql' }, 'mysql', ['-e']), { command: 'runuser', args: ['-u', 'mysql', '--', 'mysql', '-e'] });
});
