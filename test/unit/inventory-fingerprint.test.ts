import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Inventory } from '../../format/manifest';
import { compareInventories, fingerprintLines } from '../../agent/src/inventory/fingerprint';

test('fingerprintLines: SHA-256 hex, independent of the order lines were found in', () => {
  const a = fingerprintLines(['table public.a', 'column public.a id integer']);
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.equal(fingerprintLines(['column public.a id integer', 'table public.a']), a);
  assert.notEqual(fingerprintLines(['table public.a', 'column public.a id bigint']), a);
});

const fp = (s: string): string => fingerprintLines([s]);
const inventory = (tables: [string, string, number][], schema = 'v1', consistency: Inventory['consistency'] = 'snapshot'): Inventory => ({ consistency, tables: tables.map(([s, name, rows]) => ({ schema: s, name, rows })), schemaFingerprint: fp(schema) });

test('compareInventories: equal counts and schema are ok, with totals', () => {
  const recorded = inventory([['public', 'a', 2], ['public', 'b', 3]]);
  const result = compareInventories(recorded, inventory([['public', 'b', 3], ['public', 'a', 2]]));
  assert.deepEqual(result.rowCounts, { ok: true, detail: '2 tables, 5 rows, all as recorded' });
  assert.equal(result.schema.ok, true);
  assert.match(result.schema.detail, /^schema fingerprint [0-9a-f]{16}… matches$/);
});

test('compareInventories: missing, extra and differing tables are named; approximate counts say so', () => {
  const recorded = inventory([['public', 'a', 2], ['sales', 'b', 3], ['', 'c', 1]], 'v1', 'approximate');
  const restored = inventory([['public', 'a', 5], ['', 'c', 1], ['public', 'new', 0]], 'v2');
  const result = compareInventories(recorded, restored);
  assert.deepEqual(result.rowCounts, {
    ok: false,
    detail: "3 table(s) differ (counts recorded outside the dump's snapshot: approximate): public.a has 5 rows, expected 2; sales.b missing (expected 3 rows); public.new was not in the backup's inventory",
  });
  assert.equal(result.schema.ok, false);
  assert.equal(result.schema.detail, `schema fingerprint ${fp('v2').slice(0, 16)}… differs from the recorded ${fp('v1').slice(0, 16)}…`);
});

test('compareInventories: beyond five problems the list is cut', () => {
  const recorded = inventory(Array.from({ length: 7 }, (_, i) => ['s', `t${i}`, 1] as [string, string, number]));
  const detail = compareInventories(recorded, inventory([])).rowCounts.detail;
  assert.match(detail, /^7 table\(s\) differ: /);
  assert.equal(detail.split('; ').length, 6);
  assert.ok(detail.endsWith('; …'));
});
