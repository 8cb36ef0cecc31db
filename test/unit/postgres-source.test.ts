import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diagnosePostgres } from '../../agent/src/backup/sources/postgres';

test('diagnosePostgres: each known failure becomes a message and what to do; the rest is left to the caller', () => {
  const cases: [string, { message: string; hint: RegExp } | undefined][] = [
    ['pg_dump: error: connection to server on socket "/tmp/.s.PGSQL.5432" failed: FATAL:  database "shopp" does not exist', { message: 'database "shopp" does not exist', hint: /databases list/ }],
    // A refused login reads like an unreachable server; the role is the cause.
    ['pg_dump: error: connection to server at "db" (10.0.0.5), port 5432 failed: FATAL:  role "backup" does not exist', { message: 'the server has no role "backup"', hint: /create the role/ }],
    ['pg_dump: error: connection to server at "db", port 5432 failed: FATAL:  password authentication failed for user "b"', { message: 'authentication failed (connection to server at "db", port 5432 failed: FATAL:  password authentication failed for user "b")', hint: /password parameter/ }],
    ['pg_dump: error: connection to server at "db" (10.0.0.5), port 5432 failed: Connection refused\n\tIs the server running on that host?', { message: 'the database server is unreachable (connection to server at "db" (10.0.0.5), port 5432 failed: Connection refused)', hint: /PostgreSQL is running/ }],
    ['pg_dump: error: could not translate host name "nohost" to address', { message: 'the database server is unreachable (could not translate host name "nohost" to address)', hint: /host and port/ }],
    ['pg_dump: error: aborting because of server version mismatch\npg_dump: detail: server version: 17.0; pg_dump version: 15.4', { message: 'aborting because of server version mismatch', hint: /pg_dump at least as new as the server/ }],
    ['pg_dump: error: query failed: ERROR:  permission denied for table secrets', undefined],
  ];
  for (const [stderr, expected] of cases) {
    const diagnosis = diagnosePostgres(stderr);
    if (!expected) {
      assert.equal(diagnosis, undefined, stderr);
      continue;
    }
    assert.ok(diagnosis, stderr);
    assert.equal(diagnosis.message, expected.message);
    assert.match(diagnosis.hint, expected.hint);
  }
});
