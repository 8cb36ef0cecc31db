import { test } from 'node:test';
import assert from 'node:assert/strict';
import { calendarSchema } from '../../format/agent-config';
import { tierFor } from '../../agent/src/backup/tier-calendar';

const utc = calendarSchema.parse({});

test('the calendar promotes one daily dump: yearly > monthly > weekly > daily', () => {
  assert.equal(tierFor(new Date('2027-01-01T02:00:00Z'), utc), 'yearly');
  assert.equal(tierFor(new Date('2026-12-01T02:00:00Z'), utc), 'monthly');
  assert.equal(tierFor(new Date('2026-11-22T02:00:00Z'), utc), 'weekly'); // a Sunday
  assert.equal(tierFor(new Date('2026-11-23T02:00:00Z'), utc), 'daily');
});

test('the day is the one in the configured time zone', () => {
  const paris = calendarSchema.parse({ timeZone: 'Europe/Paris' });
  // 23:30 UTC on Nov 30 is already Dec 1 in Paris.
  assert.equal(tierFor(new Date('2026-11-30T23:30:00Z'), paris), 'monthly');
  assert.equal(tierFor(new Date('2026-11-30T23:30:00Z'), utc), 'daily');
});

test('tiers can be switched off or moved', () => {
  const custom = calendarSchema.parse({ yearly: null, monthly: { day: 15 }, weekly: { weekday: 'friday' } });
  assert.equal(tierFor(new Date('2027-01-01T02:00:00Z'), custom), 'weekly'); // a Friday, no yearly tier
  assert.equal(tierFor(new Date('2026-12-15T02:00:00Z'), custom), 'monthly');
});

test('a bad time zone is refused naming the field', () => {
  const result = calendarSchema.safeParse({ timeZone: 'Mars/Olympus' });
  assert.equal(result.success, false);
  assert.deepEqual(result.error!.issues[0].path, ['timeZone']);
  assert.match(result.error!.issues[0].message, /"Mars\/Olympus" is not an IANA time zone/);
});
