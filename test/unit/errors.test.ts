import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ColdsealError, describeError, EXIT, exitCodeOf } from '../../agent/src/errors';

test('exitCodeOf: a ColdsealError carries its code; anything else is a plain failure', () => {
  const cases: [unknown, number][] = [
    [new ColdsealError(EXIT.USAGE, 'x'), EXIT.USAGE],
    [new ColdsealError(EXIT.INTEGRITY, 'x', 'y'), EXIT.INTEGRITY],
    [new ColdsealError(EXIT.NOT_FOUND, 'x'), EXIT.NOT_FOUND],
    [new Error('boom'), EXIT.FAILURE],
    [new TypeError('boom'), EXIT.FAILURE],
    ['a string', EXIT.FAILURE],
    [undefined, EXIT.FAILURE],
  ];
  for (const [error, code] of cases) assert.equal(exitCodeOf(error), code, String(error));
  // A failure is not success, and usage/integrity differ from the generic failure.
  assert.notEqual(EXIT.FAILURE, 0);
  assert.notEqual(EXIT.USAGE, EXIT.FAILURE);
});

test('describeError: the message, then the hint as its own sentence', () => {
  assert.equal(describeError(new ColdsealError(EXIT.USAGE, '--tier "x" is not a tier', 'Use one of: daily')), '--tier "x" is not a tier. Use one of: daily');
  assert.equal(describeError(new ColdsealError(EXIT.USAGE, 'no hint here')), 'no hint here');
  assert.equal(describeError(new Error('plain')), 'plain');
  assert.equal(describeError('thrown string'), 'thrown string');
  assert.equal(describeError(42), '42');
});

test('a ColdsealError is an Error named ColdsealError that keeps its cause', () => {
  const cause = new Error('underlying');
  const error = new ColdsealError(EXIT.STORAGE, 'reading failed', 'Check access', { cause });
  assert.ok(error instanceof Error);
  assert.equal(error.name, 'ColdsealError');
  assert.equal(error.cause, cause);
  assert.equal(error.hint, 'Check access');
});
