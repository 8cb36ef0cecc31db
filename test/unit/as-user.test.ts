import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asUser } from '../../agent/src/db/as-user';

test('asUser: runuser -u USER -- command args when a user is named; the command itself otherwise', () => {
  assert.deepEqual(asUser(undefined, 'pg_dump', ['-Fc', 'db']), { command: 'pg_dump', args: ['-Fc', 'db'] });
  assert.deepEqual(asUser('postgres', 'pg_dump', ['-Fc', 'db']), { command: 'runuser', args: ['-u', 'postgres', '--', 'pg_dump', '-Fc', 'db'] });
  // "--" ends runuser's own options: an argument that looks like an option goes to the tool.
  assert.deepEqual(asUser('postgres', 'psql', ['-c', 'x']).args.slice(0, 4), ['-u', 'postgres', '--', 'psql']);
  const input = ['a'];
  asUser(undefined, 'x', input).args.push('b');
  assert.deepEqual(input, ['a'], 'the caller\'s array is not shared');
});
