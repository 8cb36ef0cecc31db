import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFailedStatus, isTerminalStatus, notDelivered } from '../../format/command-status';

test('command statuses: which are failures, which are final', () => {
  const cases: [string, boolean, boolean][] = [
    ['Success', false, true],
    ['Failed', true, true],
    ['TimedOut', true, true],
    ['Cancelled', true, true],
    ['InProgress', false, false],
    ['Pending', false, false],
    ['Delayed', false, false],
    ['Cancelling', false, false],
  ];
  for (const [status, failed, terminal] of cases) assert.deepEqual([isFailedStatus(status), isTerminalStatus(status)], [failed, terminal], status);
});

test('notDelivered: the API\'s spelling whatever the event\'s spacing and case; undefined when the host got it', () => {
  const cases: [string | undefined, string | undefined][] = [
    ['DeliveryTimedOut', 'DeliveryTimedOut'],
    ['Delivery Timed Out', 'DeliveryTimedOut'],
    ['undeliverable', 'Undeliverable'],
    ['ExecutionTimedOut', undefined],
    ['Failed', undefined],
    [undefined, undefined],
  ];
  for (const [details, expected] of cases) assert.equal(notDelivered(details), expected, String(details));
});
