import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { calendarSchema } from '../../format/agent-config';
import { groupSettingsSchema } from '../../format/lambda-settings';
import type { Tier } from '../../format/layout';
import { tierFor } from '../../format/tier-calendar';
import { retentionCounts, type RetentionCopy } from '../../lambdas/verifier/core/retention-count';

/** Sunday 6 December 2026, noon UTC. */
const NOW = new Date('2026-12-06T12:00:00.000Z');
const DAY = 86_400_000;
/** The stack's default retention (infra/lib/settings.ts DEFAULT_RETENTION). */
const group = groupSettingsSchema.parse({ name: 'clinic', sources: ['db'], retentionDays: { daily: 35, weekly: 90, monthly: 400, yearly: 2557 } });
const utc = calendarSchema.parse({});

/** What the agent and the lifecycle leave: one dump a day at `time` from `first` to NOW, tiered by the calendar, expired after retention. */
function agentHistory(first: string, time = '01:30', calendar = utc, skip: (stamp: string) => boolean = () => false): RetentionCopy[] {
  const out: RetentionCopy[] = [];
  for (let t = Date.parse(`${first}T${time}:00.000Z`); t <= NOW.getTime(); t += DAY) {
    const date = new Date(t);
    const tier = tierFor(date, calendar);
    if (NOW.getTime() - t > group.retentionDays[tier]! * DAY) continue;
    const stamp = date.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
    if (!skip(stamp)) out.push({ stamp, tier, finishedAt: date.toISOString() });
  }
  return out;
}

type Counts = Partial<Record<Tier, [promised: number, inWindow: number, short: number]>>;

interface Row {
  readonly name: string;
  readonly history: readonly RetentionCopy[];
  readonly counts: Counts;
  readonly runsPerDay?: number;
  readonly calendar?: typeof utc;
  readonly since?: string;
}

const rows: Row[] = [
  // Daily window (1 Nov 12:00, 6 Dec]: 35 runs, less 5 Sundays and 1 December; weekly (7 Sep 12:00, 6 Dec]: 13 Sundays less 1 November; monthly: 1 Feb..1 Dec; yearly: 1 Jan.
  { name: 'a year of daily runs: every promise kept', history: agentHistory('2026-01-01'), counts: { daily: [29, 29, 0], weekly: [12, 12, 0], monthly: [11, 11, 0], yearly: [1, 1, 0] } },
  { name: 'five days old: only what those days promised', history: agentHistory('2026-12-01'), counts: { daily: [4, 4, 0], weekly: [1, 1, 0], monthly: [1, 1, 0], yearly: [0, 0, 0] } },
  {
    name: 'two missed runs and a lost monthly copy show as short',
    history: agentHistory('2026-01-01', '01:30', utc, (s) => ['20261203T013000Z', '20261204T013000Z', '20260601T013000Z'].includes(s)),
    counts: { daily: [29, 27, 2], weekly: [12, 12, 0], monthly: [11, 10, 1], yearly: [1, 1, 0] },
  },
  {
    name: 'a deployment date given from elsewhere: copies lost since then are promised still',
    history: agentHistory('2026-11-20'),
    since: '2026-11-10T01:30:00.000Z',
    // 10 Nov..6 Dec: 27 runs; Sundays 15, 22, 29 Nov and 6 Dec; 1 Dec monthly.
    counts: { daily: [22, 13, 9], weekly: [4, 3, 1], monthly: [1, 1, 0] },
  },
  { name: 'two runs a day promise twice the copies', history: agentHistory('2026-12-01'), runsPerDay: 2, counts: { daily: [8, 4, 4], weekly: [2, 1, 1] } },
  {
    name: 'a calendar without weekly copies promises none, and those days are daily',
    history: agentHistory('2026-11-20', '01:30', calendarSchema.parse({ weekly: null })),
    calendar: calendarSchema.parse({ weekly: null }),
    counts: { daily: [16, 16, 0], weekly: [0, 0, 0], monthly: [1, 1, 0] },
  },
  {
    // 23:30 UTC on Saturday is Sunday 12:30 in Auckland (UTC+13 in December): the weekly copy is that run.
    name: 'the calendar day is taken in the calendar\'s time zone',
    history: agentHistory('2026-11-20', '23:30', calendarSchema.parse({ timeZone: 'Pacific/Auckland' })),
    calendar: calendarSchema.parse({ timeZone: 'Pacific/Auckland' }),
    counts: { daily: [12, 12, 0], weekly: [3, 3, 0], monthly: [1, 1, 0] },
  },
];

describe('retentionCounts', () => {
  for (const row of rows) {
    test(row.name, () => {
      const { tiers } = retentionCounts({ group, history: row.history, now: NOW, calendar: row.calendar, runsPerDay: row.runsPerDay, since: row.since, replicaConfigured: false });
      for (const [tier, [promised, inWindow, short]] of Object.entries(row.counts) as [Tier, [number, number, number]][]) {
        const t = tiers.find((x) => x.tier === tier)!;
        assert.deepEqual({ tier, promised: t.promised, inWindow: t.inWindow, short: t.short }, { tier, promised, inWindow, short });
        assert.equal(t.replica, null);
      }
    });
  }

  test('the same 23:30 UTC runs judged on a UTC calendar promise the UTC Sundays instead', () => {
    const history = agentHistory('2026-11-20', '23:30', calendarSchema.parse({ timeZone: 'Pacific/Auckland' }));
    const weekly = retentionCounts({ group, history, now: NOW, replicaConfigured: false }).tiers.find((t) => t.tier === 'weekly')!;
    assert.deepEqual([weekly.promised, weekly.inWindow], [2, 3]);
  });

  test('oldest restorable point per tier and overall', () => {
    const { tiers, oldestRestorable } = retentionCounts({ group, history: agentHistory('2026-01-01'), now: NOW, replicaConfigured: false });
    assert.deepEqual(oldestRestorable, { stamp: '20260101T013000Z', finishedAt: '2026-01-01T01:30:00.000Z', tier: 'yearly' });
    assert.deepEqual(tiers.find((t) => t.tier === 'daily')!.oldest, { stamp: '20261102T013000Z', finishedAt: '2026-11-02T01:30:00.000Z' });
    assert.deepEqual(tiers.find((t) => t.tier === 'weekly')!.oldest, { stamp: '20260913T013000Z', finishedAt: '2026-09-13T01:30:00.000Z' });
    assert.deepEqual(tiers.find((t) => t.tier === 'monthly')!.newest, { stamp: '20261201T013000Z', finishedAt: '2026-12-01T01:30:00.000Z' });
  });

  test('copies the lifecycle has not expired yet are counted apart from the window', () => {
    const stale: RetentionCopy = { stamp: '20261025T013000Z', tier: 'daily', finishedAt: '2026-10-25T01:30:00.000Z' };
    const t = retentionCounts({ group, history: [stale, ...agentHistory('2026-11-01')], now: NOW, replicaConfigured: false }).tiers.find((x) => x.tier === 'daily')!;
    assert.deepEqual([t.exist, t.inWindow, t.promised], [30, 29, 29]);
  });

  test('a tier without retention settings promises nothing but still counts its copies', () => {
    const g = groupSettingsSchema.parse({ name: 'clinic', sources: ['db'], retentionDays: { daily: 35 } });
    const t = retentionCounts({ group: g, history: agentHistory('2026-11-20'), now: NOW, replicaConfigured: false }).tiers.find((x) => x.tier === 'weekly')!;
    assert.deepEqual([t.retentionDays, t.promised, t.exist, t.short], [null, null, 3, 0]);
  });

  test('no backup: nothing exists, nothing can be promised from a history that never began', () => {
    const { tiers, oldestRestorable } = retentionCounts({ group, history: [], now: NOW, replicaConfigured: true });
    assert.equal(oldestRestorable, null);
    assert.deepEqual(tiers.map((t) => [t.tier, t.promised, t.exist, t.replica?.holdsSame]), [['daily', 0, 0, true], ['weekly', 0, 0, true], ['monthly', 0, 0, true], ['yearly', 0, 0, true]]);
  });

  test('replica parity per tier', () => {
    const states: Record<string, RetentionCopy['replica']> = { '20261120T013000Z': 'missing', '20261121T013000Z': 'pending', '20261123T013000Z': undefined };
    const history = agentHistory('2026-11-20').map((c): RetentionCopy => ({ ...c, replica: c.stamp in states ? states[c.stamp] : 'replicated' }));
    const { tiers } = retentionCounts({ group, history, now: NOW, replicaConfigured: true });
    assert.deepEqual(tiers.find((t) => t.tier === 'daily')!.replica, { replicated: 10, pending: 1, missing: 1, unknown: 1, holdsSame: false });
    assert.deepEqual(tiers.find((t) => t.tier === 'weekly')!.replica, { replicated: 3, pending: 0, missing: 0, unknown: 0, holdsSame: true });
  });
});
