import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BinlogPlanError, EMPTY_PUSH_STATE, nextPushState, planBinlogPush, type ArchivedBinlogMark, type BinlogPushState } from '../../agent/src/pitr/mysql/push-plan';

/** binlog-push's choice of files and its state, on listings as SHOW BINARY LOGS gives them. */
const f = (n: number) => `mysql-bin.${String(n).padStart(6, '0')}`;
const listed = (...ns: number[]) => ns.map((n) => ({ name: f(n), size: 1000 + n }));
const mark = (n: number): ArchivedBinlogMark => ({ file: f(n), flavor: 'mariadb', serverId: 1, gtidEnd: `0-1-${n * 10}`, closedAt: `2026-12-06T10:${String(n).padStart(2, '0')}:00.000Z` });
const state = (last: number | null, ahead: number[] = []): BinlogPushState => ({ formatVersion: 1, last: last === null ? null : mark(last), ahead: ahead.map(mark) });
const names = (files: ReadonlyArray<{ name: string }>) => files.map((x) => x.name);

test('the newest file is open; without state every closed file is archived', () => {
  const plan = planBinlogPush(listed(3, 1, 2, 4), EMPTY_PUSH_STATE);
  assert.equal(plan.open, f(4));
  assert.deepEqual(names(plan.toArchive), [f(1), f(2), f(3)]);
  assert.deepEqual(plan.purged, []);
  assert.deepEqual(names(planBinlogPush(listed(1), EMPTY_PUSH_STATE).toArchive), []);
});

test('with state: only files after the last archived one, not those archived ahead', () => {
  const plan = planBinlogPush(listed(1, 2, 3, 4, 5, 6), state(2, [4]));
  assert.deepEqual(names(plan.toArchive), [f(3), f(5)]);
  assert.deepEqual(plan.purged, []);
});

test('files between the last archived one and the oldest on the server were purged: named, first and last', () => {
  const two = planBinlogPush(listed(5, 6, 7), state(2));
  assert.deepEqual(two.purged, [f(3), f(4)]);
  assert.equal(two.firstAfterPurge, f(5));
  assert.deepEqual(names(two.toArchive), [f(5), f(6)]);
  assert.deepEqual(planBinlogPush(listed(4, 5), state(2)).purged, [f(3)]);
  // Everything after the last archived file purged, even the one now open.
  assert.deepEqual(planBinlogPush(listed(9), state(2)).purged, [f(3), f(8)]);
});

test('a server whose logs restart below the last archived file is refused', () => {
  assert.throws(() => planBinlogPush(listed(1, 2), state(7)), (e: unknown) => e instanceof BinlogPlanError && /newest binary log is mysql-bin\.000002, but mysql-bin\.000007 was archived already/.test(e.message));
  assert.throws(() => planBinlogPush([], EMPTY_PUSH_STATE), /binary logging is off/);
  assert.throws(() => planBinlogPush([{ name: 'a.000001', size: 1 }, { name: 'b.000002', size: 1 }], EMPTY_PUSH_STATE), /two basenames/);
});

test('the state moves along the unbroken run; files past a failure wait in "ahead"', () => {
  const plan = planBinlogPush(listed(1, 2, 3, 4, 5, 6), state(1));
  // 3 failed: 2 is the last of the unbroken run, 4 and 5 wait.
  const after = nextPushState(plan, state(1), new Map([2, 4, 5].map((n) => [f(n), mark(n)])));
  assert.equal(after.last?.file, f(2));
  assert.deepEqual(after.ahead.map((m) => m.file), [f(4), f(5)]);
  // The next run archives 3 (and the new 6): the run joins up.
  const plan2 = planBinlogPush(listed(1, 2, 3, 4, 5, 6, 7), after);
  assert.deepEqual(names(plan2.toArchive), [f(3), f(6)]);
  const joined = nextPushState(plan2, after, new Map([3, 6].map((n) => [f(n), mark(n)])));
  assert.deepEqual(joined.last, mark(6));
  assert.deepEqual(joined.ahead, []);
});

test('after a purge the run restarts at the oldest remaining file; without state at the oldest closed one', () => {
  const plan = planBinlogPush(listed(5, 6, 7), state(2));
  const after = nextPushState(plan, state(2), new Map([5, 6].map((n) => [f(n), mark(n)])));
  assert.equal(after.last?.file, f(6));
  // The oldest remaining file failed: the state keeps the old last (the purge is reported again).
  assert.equal(nextPushState(plan, state(2), new Map([[f(6), mark(6)]])).last?.file, f(2));

  const fresh = planBinlogPush(listed(3, 4, 5), EMPTY_PUSH_STATE);
  assert.equal(nextPushState(fresh, EMPTY_PUSH_STATE, new Map([3, 4].map((n) => [f(n), mark(n)]))).last?.file, f(4));
  const failedFirst = nextPushState(fresh, EMPTY_PUSH_STATE, new Map([[f(4), mark(4)]]));
  assert.equal(failedFirst.last, null);
  assert.deepEqual(failedFirst.ahead.map((m) => m.file), [f(4)]);
  assert.deepEqual(names(planBinlogPush(listed(3, 4, 5, 6), failedFirst).toArchive), [f(3), f(5)]);
});
