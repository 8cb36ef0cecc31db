import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { groupSettingsSchema } from '../../format/lambda-settings';
import { recoveryPoint, type GoodBackup, type LogArchiveCoverage } from '../../lambdas/verifier/core/recovery-point';

const NOW = new Date('2026-12-06T12:00:00.000Z');
const group = groupSettingsSchema.parse({ name: 'clinic', sources: ['db'], rpoHours: 26 });

/** A backup finished `daysAgo` days (and hours) before NOW. */
function backup(daysAgo: number, hoursAgo = 0): GoodBackup {
  const t = new Date(NOW.getTime() - daysAgo * 86_400_000 - hoursAgo * 3_600_000);
  const stamp = t.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
  return { stamp, finishedAt: t.toISOString() };
}
/** A daily backup at 01:30 UTC (10.5 h before NOW each day) for the given days ago. */
const daily = (days: readonly number[]) => days.map((d) => backup(d, 10.5));
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const at = (daysAgo: number, hoursAgo = 0) => new Date(NOW.getTime() - daysAgo * 86_400_000 - hoursAgo * 3_600_000).toISOString();

interface Row {
  readonly name: string;
  readonly history: readonly GoodBackup[];
  readonly log?: LogArchiveCoverage;
  readonly current: { ageHours: number; by: 'backup' | 'log' } | null;
  readonly worstGapHours: number | null;
  /** Start and end of each miss. */
  readonly misses: readonly [string, string][];
}

const rows: Row[] = [
  { name: 'no backup at all: nothing to say but that', history: [], current: null, worstGapHours: null, misses: [] },
  { name: 'one backup: its age, no gap yet', history: daily([0]), current: { ageHours: 10.5, by: 'backup' }, worstGapHours: null, misses: [] },
  { name: 'a daily backup every day for 40 days: worst gap 24 h, no miss', history: daily(range(40)), current: { ageHours: 10.5, by: 'backup' }, worstGapHours: 24, misses: [] },
  {
    name: 'two days skipped 10 days ago: one miss of 72 h with its dates',
    history: daily(range(40).filter((d) => d !== 11 && d !== 12)),
    current: { ageHours: 10.5, by: 'backup' },
    worstGapHours: 72,
    misses: [[at(13, 10.5), at(10, 10.5)]],
  },
  {
    name: 'a gap that ended before the window is history: not counted',
    history: daily(range(45).filter((d) => d !== 35 && d !== 36)),
    current: { ageHours: 10.5, by: 'backup' },
    worstGapHours: 24,
    misses: [],
  },
  {
    name: 'a gap that began before the window and ends inside it counts, with its real length',
    history: daily(range(45).filter((d) => d < 29 || d > 31)),
    current: { ageHours: 10.5, by: 'backup' },
    worstGapHours: 96,
    misses: [[at(32, 10.5), at(28, 10.5)]],
  },
  {
    name: 'a late backup (27 h after the previous) is a miss against 26 h',
    history: [...daily(range(40).filter((d) => d !== 5)), backup(5, 7.5)],
    current: { ageHours: 10.5, by: 'backup' },
    worstGapHours: 27,
    misses: [[at(6, 10.5), at(5, 7.5)]],
  },
  {
    name: 'PITR: the log archive covers the skipped days, so no miss; current point is the log',
    history: daily(range(40).filter((d) => d !== 11 && d !== 12)),
    log: { kind: 'wal', ranges: [{ from: at(35), to: at(0, 0.1) }], newestArchivedAt: at(0, 0.1) },
    current: { ageHours: 0.1, by: 'log' },
    worstGapHours: null,
    misses: [],
  },
  {
    name: 'PITR: a hole in the log between two daily backups is bounded by the backups',
    history: daily(range(40)),
    log: { kind: 'binlog', ranges: [{ from: at(35), to: at(8, 20) }, { from: at(7, 20), to: at(0, 0.05) }], newestArchivedAt: at(0, 0.05) },
    current: { ageHours: 0.1, by: 'log' },
    worstGapHours: 14.5,
    misses: [],
  },
  {
    name: 'PITR: a hole in the log where backups also stopped is a miss from the log\'s end to the next point',
    history: daily(range(40).filter((d) => d < 8 || d > 12)),
    log: { kind: 'wal', ranges: [{ from: at(35), to: at(12, 2) }, { from: at(7, 10.5), to: at(0) }], newestArchivedAt: at(0) },
    current: { ageHours: 0, by: 'log' },
    worstGapHours: 111.5,
    misses: [[at(12, 2), at(7, 10.5)]],
  },
];

describe('recoveryPoint', () => {
  for (const row of rows) {
    test(row.name, () => {
      const { figures, findings } = recoveryPoint({ group, host: 'h1', source: 'db', bucket: 'vault', history: row.history, log: row.log, now: NOW });
      assert.deepEqual(figures.current && { ageHours: figures.current.ageHours, by: figures.current.by }, row.current);
      assert.equal(figures.worstGap?.hours ?? null, row.worstGapHours);
      assert.deepEqual(figures.misses.map((m) => [m.from.at, m.to.at]), row.misses);
      assert.equal(findings.length, row.misses.length);
      findings.forEach((f, i) => {
        assert.equal(f.check, 'rpo-missed');
        assert.equal(f.severity, 'warn');
        assert.equal(f.once, true);
        assert.equal(f.id, `rpo-missed:clinic/h1/db/${row.misses[i][0]}`);
        assert.ok(f.summary.includes(row.misses[i][0]) && f.summary.includes(row.misses[i][1]), f.summary);
        assert.ok(f.summary.includes('RPO is 26 h'));
      });
    });
  }

  test('the newest backup and the log are reported apart', () => {
    const log: LogArchiveCoverage = { kind: 'binlog', ranges: [{ from: at(3), to: at(0, 2) }], newestArchivedAt: at(0, 1) };
    const { figures } = recoveryPoint({ group, host: 'h1', source: 'db', bucket: 'vault', history: daily([0, 1, 2]), log, now: NOW });
    assert.deepEqual(figures.newestBackup, { stamp: daily([0])[0].stamp, finishedAt: at(0, 10.5), ageHours: 10.5 });
    assert.deepEqual(figures.log, { kind: 'binlog', reachableTo: at(0, 2), ageHours: 2, newestArchivedAt: at(0, 1) });
    assert.equal(figures.rpoHours, 26);
    assert.equal(figures.windowDays, 30);
  });

  test('the gap names what bounds it', () => {
    const { figures } = recoveryPoint({ group, host: 'h1', source: 'db', bucket: 'vault', history: daily([0, 3]), now: NOW });
    const [b3, b0] = [daily([3])[0], daily([0])[0]];
    assert.deepEqual(figures.worstGap, { from: { at: b3.finishedAt, what: `backup ${b3.stamp}` }, to: { at: b0.finishedAt, what: `backup ${b0.stamp}` }, hours: 72 });
  });

  test('a tighter RPO turns ordinary daily gaps into misses; a wider window reaches older gaps', () => {
    const tight = groupSettingsSchema.parse({ name: 'clinic', sources: ['db'], rpoHours: 12 });
    assert.equal(recoveryPoint({ group: tight, host: 'h1', source: 'db', bucket: 'vault', history: daily(range(5)), now: NOW }).findings.length, 4);
    const history = daily(range(45).filter((d) => d !== 35 && d !== 36));
    assert.equal(recoveryPoint({ group, host: 'h1', source: 'db', bucket: 'vault', history, now: NOW, windowDays: 40 }).figures.misses.length, 1);
  });
});
