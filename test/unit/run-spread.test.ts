import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_MAX_HOSTS, runSpread } from '../../format/run-document';

/**
 * One SendCommand for a whole group expires at send + delivery timeout + execution timeout; hosts
 * queued behind the first waves must still be inside that window, at worst (every run as long as
 * its limit). Figures for the stack's defaults: 10 at once, runs of up to 4 h, an hour of grace.
 */
const H = 3600;

describe('runSpread: the delivery timeout covers every wave', () => {
  test('1, 10, 50 and 500 hosts, 10 at a time, runs of up to 4 h', () => {
    const plan = (hosts: number) => runSpread({ hosts, maxConcurrency: '10', executionTimeoutSeconds: 4 * H });
    assert.deepEqual(plan(1), { concurrency: 1, waves: 1, lastStartSeconds: 0, deliveryTimeoutSeconds: H, expiresAfterSeconds: 5 * H });
    assert.deepEqual(plan(10), { concurrency: 10, waves: 1, lastStartSeconds: 0, deliveryTimeoutSeconds: H, expiresAfterSeconds: 5 * H });
    // The 41st to 50th hosts start after four waves of 4 h at worst.
    assert.deepEqual(plan(50), { concurrency: 10, waves: 5, lastStartSeconds: 16 * H, deliveryTimeoutSeconds: 17 * H, expiresAfterSeconds: 21 * H });
    assert.deepEqual(plan(500), { concurrency: 10, waves: 50, lastStartSeconds: 196 * H, deliveryTimeoutSeconds: 197 * H, expiresAfterSeconds: 201 * H });
    // What SSM's old one-hour default meant: the command expired 5 h after the send, before the second wave could end.
    assert.ok(plan(11).expiresAfterSeconds > 2 * 4 * H);
  });

  test('the default bound keeps the delivery timeout under a day at the default spread and run limit', () => {
    assert.ok(runSpread({ hosts: DEFAULT_MAX_HOSTS, maxConcurrency: '10', executionTimeoutSeconds: 4 * H }).deliveryTimeoutSeconds < 24 * H);
  });

  test('a percentage spreads over the planned hosts, rounded down, at least one', () => {
    assert.equal(runSpread({ hosts: 500, maxConcurrency: '10%', executionTimeoutSeconds: 4 * H }).waves, 10);
    assert.equal(runSpread({ hosts: 1, maxConcurrency: '10%', executionTimeoutSeconds: 4 * H }).waves, 1);
    assert.equal(runSpread({ hosts: 15, maxConcurrency: '10%', executionTimeoutSeconds: 4 * H }).waves, 15);
    assert.equal(runSpread({ hosts: 50, maxConcurrency: '25%', executionTimeoutSeconds: H, offlineGraceSeconds: 600 }).deliveryTimeoutSeconds, 4 * H + 600);
  });

  test('a spread SSM cannot wait for is refused with what to change; bad inputs are named', () => {
    assert.throws(() => runSpread({ hosts: 500, maxConcurrency: '10', executionTimeoutSeconds: 48 * H }), /500 hosts, 10 at a time, take 50 waves of up to 48 h: the last host may start 2352 h after the send, beyond the 30 days SSM waits.*Raise maxConcurrency/);
    assert.throws(() => runSpread({ hosts: 0, maxConcurrency: '10', executionTimeoutSeconds: H }), /hosts must be a whole number of at least 1/);
    assert.throws(() => runSpread({ hosts: 5, maxConcurrency: 'ten', executionTimeoutSeconds: H }), /maxConcurrency "ten" is neither/);
  });
});
