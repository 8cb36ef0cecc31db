import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ColdsealError, EXIT } from '../../agent/src/errors';
import { parseMysqlUrl } from '../../agent/src/restore/targets/mysql';
import { parsePostgresUrl, pgSelectedSchemas, pgSelectionArgs } from '../../agent/src/restore/targets/postgres';
import { pgDbname, pgIdent } from '../../agent/src/db/postgres';

function refused(run: () => unknown, message: RegExp, hint?: RegExp): void {
  assert.throws(run, (e: unknown) => {
    assert.ok(e instanceof ColdsealError);
    assert.equal(e.exitCode, EXIT.USAGE);
    assert.match(e.message, message);
    if (hint) assert.match(e.hint!, hint);
    return true;
  });
}

test('parsePostgresUrl: host, port, user and libpq parameters go to the environment; the path is the database', () => {
  const cases: [string, Record<string, string>, string | undefined][] = [
    ['postgres://alice@db.example:5433/shop', { PGHOST: 'db.example', PGPORT: '5433', PGUSER: 'alice' }, 'shop'],
    ['postgresql://db/', { PGHOST: 'db' }, undefined],
    ['postgres://u%40corp@h/my%20db', { PGHOST: 'h', PGUSER: 'u@corp' }, 'my db'],
    ['postgres:///shop?host=/var/run/postgresql&sslmode=require&user=backup', { PGHOST: '/var/run/postgresql', PGSSLMODE: 'require', PGUSER: 'backup' }, 'shop'],
  ];
  for (const [url, env, database] of cases) assert.deepEqual(parsePostgresUrl(url), { conn: { env }, database }, url);
});

test('parsePostgresUrl: a password anywhere in the URL is refused, saying where it goes instead', () => {
  refused(() => parsePostgresUrl('postgres://alice:secret@h/db'), /holds a password/, /PGPASSWORD .* ~\/\.pgpass/);
  refused(() => parsePostgresUrl('postgres://alice@h/db?password=secret'), /holds a password/, /PGPASSWORD/);
});

test('parsePostgresUrl: not a URL, another scheme, an unknown parameter: each named', () => {
  refused(() => parsePostgresUrl('db.example:5432'), /"db\.example:5432" is not a URL|is not a PostgreSQL URL/, /postgres:\/\/user@host:5432\/database/);
  refused(() => parsePostgresUrl('not a url'), /"not a url" is not a URL/);
  refused(() => parsePostgresUrl('mysql://h/db'), /"mysql:" is not a PostgreSQL URL/);
  refused(() => parsePostgresUrl('postgres://h/db?application_name=x'), /URL parameter "application_name" is not supported/, /Supported: host, port, user, sslmode/);
});

test('parseMysqlUrl: connection flags (never a password); socket is the one parameter', () => {
  const cases: [string, string[], string | undefined][] = [
    ['mysql://root@127.0.0.1:3306/shop', ['--host=127.0.0.1', '--port=3306', '--user=root'], 'shop'],
    ['mariadb://h', ['--host=h'], undefined],
    ['mysql://u@localhost/db?socket=/run/mysqld/mysqld.sock', ['--host=localhost', '--user=u', '--socket=/run/mysqld/mysqld.sock'], 'db'],
  ];
  for (const [url, args, database] of cases) assert.deepEqual(parseMysqlUrl(url), { conn: { args }, database }, url);
  refused(() => parseMysqlUrl('mysql://root:pw@h/db'), /holds a password/, /MYSQL_PWD .* option file/);
  refused(() => parseMysqlUrl('postgres://h/db'), /"postgres:" is not a MySQL URL/);
  refused(() => parseMysqlUrl('mysql://h/db?ssl=1'), /URL parameter "ssl" is not supported/, /Supported: socket/);
  refused(() => parseMysqlUrl('::'), /is not a URL/, /mysql:\/\/user@host:3306\/database/);
});

test('pgIdent and pgDbname quote so that a name cannot break out', () => {
  const idents: [string, string][] = [
    ['shop', '"shop"'],
    ['we"ird', '"we""ird"'],
    ['"; drop table x; --', '"""; drop table x; --"'],
  ];
  for (const [name, quoted] of idents) assert.equal(pgIdent(name), quoted);
  const dbnames: [string, string][] = [
    ['shop', "dbname='shop'"],
    ["o'neil", "dbname='o\\'neil'"],
    ['a\\b', "dbname='a\\\\b'"],
    ['x host=evil', "dbname='x host=evil'"],
  ];
  for (const [name, conninfo] of dbnames) assert.equal(pgDbname(name), conninfo);
});

test('pgSelectionArgs: bare and schema-qualified tables, schemas once each; tables of two schemas are refused', () => {
  assert.deepEqual(pgSelectionArgs(), []);
  assert.deepEqual(pgSelectionArgs(['orders']), ['--table=orders']);
  assert.deepEqual(pgSelectionArgs(['sales.orders', 'sales.items']), ['--table=orders', '--table=items', '--schema=sales']);
  assert.deepEqual(pgSelectionArgs(['sales.orders'], ['sales', 'audit']), ['--table=orders', '--schema=sales', '--schema=audit']);
  assert.deepEqual(pgSelectionArgs([], ['audit']), ['--schema=audit']);
  // A leading dot is not a schema separator.
  assert.deepEqual(pgSelectionArgs(['.hidden']), ['--table=.hidden']);
  refused(() => pgSelectionArgs(['sales.orders', 'audit.log']), /several schemas \(sales, audit\)/, /one schema's tables at a time/);
});

test('pgSelectedSchemas: the named schemas and those of qualified tables, without repeats', () => {
  assert.deepEqual(pgSelectedSchemas(), []);
  assert.deepEqual(pgSelectedSchemas(['orders']), []);
  assert.deepEqual(pgSelectedSchemas(['sales.orders', 'sales.items'], ['audit', 'sales']), ['audit', 'sales']);
});
