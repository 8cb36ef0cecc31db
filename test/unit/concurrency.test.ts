import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mapLimit } from '../../runtime/concurrency';

test('mapLimit: results in input order, never more than the limit in flight', async () => {
  let inFlight = 0;
  let most = 0;
  const delays = [30, 5, 20, 1, 10, 2, 15];
  const results = await mapLimit(delays, 3, async (ms, index) => {
    inFlight++;
    most = Math.max(most, inFlight);
    await new Promise((resolve) => setTimeout(resolve, ms));
    inFlight--;
    return `${index}:${ms}`;
  });
  assert.deepEqual(results, delays.map((ms, i) => `${i}:${ms}`));
  assert.equal(most, 3);
});

test('mapLimit: an empty list, a limit above the count, and a failure that rejects the whole', async () => {
  assert.deepEqual(await mapLimit([], 4, async () => 1), []);
  let most = 0;
  let inFlight = 0;
  await mapLimit([1, 2], 10, async () => {
    most = Math.max(most, ++inFlight);
    await Promise.resolve();
    inFlight--;
  });
  assert.equal(most, 2);
  await assert.rejects(mapLimit([1, 2, 3], 2, async (n) => {
    if (n === 2) throw new Error('item 2 failed');
    return n;
  }), /item 2 failed/);
});
