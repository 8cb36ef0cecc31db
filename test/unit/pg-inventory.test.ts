import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fingerprintLines } from '../../agent/src/inventory/fingerprint';
import { inventoryFromLines, pgPatternMatcher } from '../../agent/src/inventory/postgres';

test('pgPatternMatcher follows psql\'s pattern rules, as pg_dump --exclude-table does', () => {
  const cases: [string, [string, string], boolean][] = [
    ['audit_log', ['public', 'audit_log'], true],
    ['audit_log', ['other', 'audit_log'], false], // unqualified: the search path, taken as public
    ['AUDIT_LOG', ['public', 'audit_log'], true], // unquoted is folded to lower case
    ['"AUDIT_LOG"', ['public', 'audit_log'], false], // quoted is literal
    ['"AUDIT_LOG"', ['public', 'AUDIT_LOG'], true],
    ['log_*', ['public', 'log_2026'], true],
    ['log_*', ['public', 'log_'], true], // * matches nothing too
    ['log_?', ['public', 'log_1'], true],
    ['log_?', ['public', 'log_12'], false],
    ['sales.*', ['sales', 'orders'], true],
    ['sales.*', ['public', 'orders'], false],
    ['*.tmp', ['any', 'tmp'], true],
    ['"a.b"', ['public', 'a.b'], true], // a quoted dot is part of the name
    ['"a.b"', ['a', 'b'], false],
    ['"say ""hi"""', ['public', 'say "hi"'], true],
    ['a+b', ['public', 'a+b'], true], // regex characters are literal
    ['a+b', ['public', 'aab'], false],
  ];
  for (const [pattern, [schema, table], expected] of cases) assert.equal(pgPatternMatcher([pattern])(schema, table), expected, `${pattern} vs ${schema}.${table}`);
  assert.equal(pgPatternMatcher([])('public', 'x'), false);
  assert.equal(pgPatternMatcher(['x', 'y'])('public', 'y'), true);
});

test('inventoryFromLines: counts per table and a fingerprint, both without excluded tables', () => {
  const counts = ['["public","orders",10]', '["public","audit_log",999]', '["sales","items","7"]'];
  const schema = ['["table","public","orders"]', '["column","public","orders","id","integer"]', '["column","public","audit_log","at","timestamptz"]'];
  const all = inventoryFromLines(counts, schema, 'snapshot');
  assert.deepEqual(all.tables, [{ schema: 'public', name: 'orders', rows: 10 }, { schema: 'public', name: 'audit_log', rows: 999 }, { schema: 'sales', name: 'items', rows: 7 }]);
  assert.equal(all.consistency, 'snapshot');
  const kept = inventoryFromLines(counts, schema, 'approximate', pgPatternMatcher(['audit_*']));
  assert.deepEqual(kept.tables.map((t) => t.name), ['orders', 'items']);
  assert.equal(kept.consistency, 'approximate');
  assert.equal(kept.schemaFingerprint, fingerprintLines([schema[0], schema[1]]));
  assert.notEqual(kept.schemaFingerprint, all.schemaFingerprint);
  // The fingerprint is over canonical JSON: spacing in psql's output does not change it.
  assert.equal(inventoryFromLines([], ['[ "table", "public", "orders" ]'], 'snapshot').schemaFingerprint, fingerprintLines([schema[0]]));
});
