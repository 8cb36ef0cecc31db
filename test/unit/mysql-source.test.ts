import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diagnoseMysql } from '../../agent/src/backup/sources/mysql';
import { mysqldumpArgs } from '../../agent/src/db/mysql';

test('mysqldumpArgs: connection options first, the database after "--" so a name cannot be an option', () => {
  const args = mysqldumpArgs(['--defaults-extra-file=/tmp/x.cnf'], '--result-file=/etc/passwd');
  assert.equal(args[0], '--defaults-extra-file=/tmp/x.cnf');
  assert.deepEqual(args.slice(-2), ['--', '--result-file=/etc/passwd']);
  for (const flag of ['--single-transaction', '--routines', '--triggers', '--events', '--hex-blob', '--databases']) assert.ok(args.includes(flag), flag);
  assert.ok(args.indexOf('--databases') < args.indexOf('--'));
});

test('diagnoseMysql: login, reachability and unknown database become a message and what to do', () => {
  const cases: [string, string | undefined, RegExp | undefined][] = [
    ["mysqldump: Got error: 1045: Access denied for user 'b'@'localhost' (using password: YES) when trying to connect\n", "authentication failed (Got error: 1045: Access denied for user 'b'@'localhost' (using password: YES) when trying to connect)", /password parameter/],
    ["mariadb-dump: Got error: 2002: Can't connect to local server through socket '/run/mysqld.sock' (2)", "the database server is unreachable (Got error: 2002: Can't connect to local server through socket '/run/mysqld.sock' (2))", /is running/],
    ["mysqldump: Got error: 2005: Unknown MySQL server host 'nohost' (-2) when trying to connect", undefined, /host, port or socket/],
    ["mysqldump: Got error: 1049: Unknown database 'shopp' when selecting the database", "Got error: 1049: Unknown database 'shopp' when selecting the database", /databases list/],
    ['mysqldump: Error: some other trouble', undefined, undefined],
    ['', undefined, undefined],
  ];
  for (const [stderr, message, hint] of cases) {
    const diagnosis = diagnoseMysql(stderr);
    if (!hint) {
      assert.equal(diagnosis, undefined, stderr);
      continue;
    }
    assert.ok(diagnosis, stderr);
    if (message) assert.equal(diagnosis.message, message);
    assert.match(diagnosis.hint, hint);
  }
  assert.ok(diagnoseMysql(`mysqldump: Access denied ${'x'.repeat(1000)}`)!.message.length < 330, 'the quoted line is cut');
});
