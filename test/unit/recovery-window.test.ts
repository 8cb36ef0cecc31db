import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { historiesWithAssumptions, recoveryWindow, windowContains, type ArchivedWalFile, type WindowBaseBackup } from '../../format/recovery-window';
import { formatLsn, historyFileName, parseLsn, segmentFileName, segmentStartLsn, walContinuity } from '../../format/wal';
import { fetchPlanSchema, fetchRangesFor, nextPlannedSegments, planPosition, restoreCommandLine, type FetchPlan } from '../../agent/src/pitr/fetch-plan';

const MB = 1 << 20;
const SEG = 16 * MB;

/** Segment files n..m of a timeline, archived one minute apart from a base time (minute = segno). */
function segments(timeline: number, from: number, to: number, segSize = SEG): ArchivedWalFile[] {
  const files: ArchivedWalFile[] = [];
  for (let n = from; n <= to; n++) files.push({ walFile: segmentFileName(timeline, BigInt(n), segSize), archivedAt: minute(n) });
  return files;
}
const minute = (n: number) => new Date(Date.UTC(2026, 11, 6, 8, 0, 0) + n * 60_000).toISOString();
const lsnIn = (segno: number, offset = 0x28, segSize = SEG) => formatLsn(segmentStartLsn(BigInt(segno), segSize) + BigInt(offset));

function base(id: string, startSeg: number, stopSeg: number, extra: Partial<WindowBaseBackup> = {}): WindowBaseBackup {
  return { id, systemIdentifier: '7000000000000000001', timeline: 1, startLsn: lsnIn(startSeg), stopLsn: lsnIn(stopSeg, 0x100), walSegmentSize: SEG, stoppedAt: minute(stopSeg), ...extra };
}

describe('recoveryWindow', () => {
  test('one base, a contiguous archive: from the base\'s stop to the end of the newest segment, at its archive time', () => {
    const w = recoveryWindow({ files: segments(1, 1, 10), histories: new Map(), bases: [base('b1', 3, 4)] });
    assert.deepEqual(w.from, { lsn: lsnIn(4, 0x100), time: minute(4), timeline: 1, base: 'b1' });
    assert.deepEqual(w.to, { lsn: formatLsn(segmentStartLsn(11n, SEG)), time: minute(10), timeline: 1, segment: segmentFileName(1, 10n, SEG) });
    assert.deepEqual(w.gaps, []);
    assert.equal(w.ranges.length, 1);
    assert.equal(w.newestSegment?.walFile, segmentFileName(1, 10n, SEG));
    assert.deepEqual(w.notes, []);
  });

  test('WAL archived before the first base backup makes no window before it', () => {
    const w = recoveryWindow({ files: segments(1, 1, 10), histories: new Map(), bases: [base('b1', 6, 7)] });
    assert.equal(w.from?.lsn, lsnIn(7, 0x100));
    assert.ok(!windowContains(w, parseLsn(lsnIn(5))), 'a point before the first base backup is outside');
    assert.ok(windowContains(w, parseLsn(lsnIn(8))));
  });

  test('no base backup: no window, but the newest archived WAL is known', () => {
    const w = recoveryWindow({ files: segments(1, 1, 3), histories: new Map(), bases: [] });
    assert.equal(w.from, null);
    assert.equal(w.to, null);
    assert.equal(w.newestSegment?.walFile, segmentFileName(1, 3n, SEG));
    assert.match(w.notes.join(), /no base backup/);
  });

  test('a gap cuts the older base\'s range; the window runs from the newest base after the gap', () => {
    const files = [...segments(1, 1, 5), ...segments(1, 8, 12)];
    const w = recoveryWindow({ files, histories: new Map(), bases: [base('old', 1, 2), base('new', 9, 9)] });
    assert.equal(w.ranges.length, 2);
    assert.equal(w.ranges[0].from.base, 'old');
    assert.equal(w.ranges[0].to.segment, segmentFileName(1, 5n, SEG));
    assert.equal(w.from?.base, 'new');
    assert.equal(w.to?.segment, segmentFileName(1, 12n, SEG));
    assert.equal(w.gaps.length, 1);
    assert.deepEqual({ ...w.gaps[0] }, {
      timeline: 1,
      from: segmentFileName(1, 6n, SEG),
      to: segmentFileName(1, 7n, SEG),
      breaksAt: formatLsn(segmentStartLsn(6n, SEG)),
      resumesAt: formatLsn(segmentStartLsn(8n, SEG)),
      breaks: ['old'],
    });
    assert.ok(!windowContains(w, parseLsn(lsnIn(6))), 'a target inside the hole is outside the window');
  });

  test('a gap with no base after it: the window ends before it and the newer WAL is unreachable', () => {
    const w = recoveryWindow({ files: [...segments(1, 1, 5), ...segments(1, 7, 9)], histories: new Map(), bases: [base('b', 1, 2)] });
    assert.equal(w.to?.segment, segmentFileName(1, 5n, SEG));
    assert.equal(w.newestSegment?.walFile, segmentFileName(1, 9n, SEG));
    assert.equal(w.gaps[0].from, segmentFileName(1, 6n, SEG));
  });

  test('overlapping ranges of two bases merge: the window starts at the earliest base', () => {
    const w = recoveryWindow({ files: segments(1, 1, 9), histories: new Map(), bases: [base('b1', 1, 2), base('b2', 5, 6)] });
    assert.equal(w.ranges.length, 1);
    assert.equal(w.from?.base, 'b1');
    assert.equal(w.bases.length, 2);
    assert.ok(w.bases.every((b) => b.range !== null));
  });

  test('a base whose own WAL is missing reaches nothing and says why', () => {
    const w = recoveryWindow({ files: [...segments(1, 1, 2), ...segments(1, 5, 9)], histories: new Map(), bases: [base('b', 2, 3)] });
    assert.equal(w.from, null);
    assert.equal(w.bases[0].range, null);
    assert.match(w.bases[0].problem ?? '', /not all archived/);
    assert.deepEqual(w.gaps[0].breaks, ['b']);
  });

  test('timelines from real history content: the window follows the switch onto timeline 2', () => {
    const history = `1\t${formatLsn(segmentStartLsn(6n, SEG) + 0x500n)}\tno recovery target specified\n`;
    const files = [...segments(1, 1, 5), { walFile: historyFileName(2), archivedAt: minute(6) }, ...segments(2, 6, 9)];
    const w = recoveryWindow({ files, histories: new Map([[historyFileName(2), history]]), bases: [base('b', 2, 3)] });
    assert.equal(w.to?.segment, segmentFileName(2, 9n, SEG));
    assert.equal(w.to?.timeline, 2);
    assert.equal(w.bases[0].targetTimeline, 2);
    assert.deepEqual(w.gaps, []);
    assert.deepEqual(w.notes, []);
  });

  test('timelines without history content (a keyless reader): the switch is assumed at the new timeline\'s first segment, and said', () => {
    const files = [...segments(1, 1, 5), { walFile: historyFileName(2), archivedAt: minute(6) }, ...segments(2, 6, 9)];
    const w = recoveryWindow({ files, histories: new Map(), bases: [base('b', 2, 3)] });
    assert.equal(w.to?.segment, segmentFileName(2, 9n, SEG));
    assert.match(w.notes.join('\n'), /timeline 2: .*assumed to fork off timeline 1 at its first archived segment \(0\/6000000\)/);
  });

  test('a hole across a timeline switch is reported on the timeline that misses it', () => {
    // Timeline 2 forks in segment 6; segment 7 of timeline 2 is missing.
    const history = `1\t${formatLsn(segmentStartLsn(6n, SEG) + 0x500n)}\tpromoted\n`;
    const files = [...segments(1, 1, 5), { walFile: historyFileName(2), archivedAt: minute(6) }, ...segments(2, 6, 6), ...segments(2, 8, 9)];
    const w = recoveryWindow({ files, histories: new Map([[historyFileName(2), history]]), bases: [base('b', 2, 3)] });
    assert.equal(w.to?.segment, segmentFileName(2, 6n, SEG));
    assert.equal(w.gaps.length, 1);
    assert.equal(w.gaps[0].timeline, 2);
    assert.equal(w.gaps[0].from, segmentFileName(2, 7n, SEG));
  });

  test('a just-promoted timeline with no segment yet is assumed to start after its parent\'s newest segment', () => {
    const { histories, notes } = historiesWithAssumptions([...segments(1, 1, 5), { walFile: historyFileName(2), archivedAt: minute(6) }], new Map(), SEG);
    assert.equal(histories.get(historyFileName(2)), `1\t${formatLsn(segmentStartLsn(6n, SEG))}\tassumed by coldseal (history file not read)\n`);
    assert.equal(notes.length, 1);
  });

  test('base backups of another cluster are left out and named', () => {
    const w = recoveryWindow({ files: segments(1, 1, 9), histories: new Map(), bases: [base('other', 1, 2, { systemIdentifier: '42', stoppedAt: minute(1) }), base('b', 4, 5)] });
    assert.equal(w.from?.base, 'b');
    assert.match(w.notes.join(), /another cluster .*42.*other/);
  });

  test('64 MB segments: the names roll over at 3F', () => {
    const seg64 = 64 * MB;
    const files = segments(1, 0x3e, 0x42, seg64);
    assert.equal(files[2].walFile, '000000010000000100000000');
    const w = recoveryWindow({ files, histories: new Map(), bases: [{ ...base('b', 0, 0), startLsn: lsnIn(0x3e, 0x28, seg64), stopLsn: lsnIn(0x3e, 0x900, seg64), walSegmentSize: seg64 }] });
    assert.equal(w.to?.segment, '000000010000000100000002');
    assert.deepEqual(w.gaps, []);
  });
});

describe('fetch plan', () => {
  const plan = (ranges: FetchPlan['ranges'], histories: string[] = []): FetchPlan =>
    fetchPlanSchema.parse({
      formatVersion: 1,
      group: 'g',
      host: 'h',
      source: 'pg',
      storage: { bucket: 'a-bucket', region: 'us-east-1' },
      systemIdentifier: '7000000000000000001',
      walSegmentSize: SEG,
      trustedSigningKeys: '-----BEGIN PGP PUBLIC KEY BLOCK-----…',
      privateKey: { file: '/keys/recipient.key.asc' },
      ranges,
      histories,
      prefetch: 4,
      concurrency: 2,
      createdAt: new Date().toISOString(),
    });
  const s = (t: number, n: number) => segmentFileName(t, BigInt(n), SEG);

  test('ranges from a continuity along a timeline switch, up to the target', () => {
    const history = `1\t${formatLsn(segmentStartLsn(6n, SEG) + 0x500n)}\tpromoted\n`;
    const names = [...segments(1, 1, 5), ...segments(2, 6, 12), { walFile: historyFileName(2), archivedAt: '' }].map((f) => f.walFile);
    const continuity = walContinuity({ files: names, histories: new Map([[historyFileName(2), history]]), segSize: SEG, start: { timeline: 1, lsn: parseLsn(lsnIn(2)) } });
    assert.deepEqual(fetchRangesFor(continuity, parseLsn(lsnIn(9)), SEG), [
      { timeline: 1, firstSegment: s(1, 2), lastSegment: s(1, 5) },
      { timeline: 2, firstSegment: s(2, 6), lastSegment: s(2, 9) },
    ]);
    assert.deepEqual(fetchRangesFor(continuity, null, SEG).at(-1), { timeline: 2, firstSegment: s(2, 6), lastSegment: s(2, 12) });
    assert.throws(() => fetchRangesFor(continuity, parseLsn(lsnIn(13)), SEG), /only up to/);
  });

  test('the position of a requested file: planned, beyond the end, or not planned', () => {
    const p = plan([{ timeline: 1, firstSegment: s(1, 2), lastSegment: s(1, 5) }, { timeline: 2, firstSegment: s(2, 6), lastSegment: s(2, 9) }], [historyFileName(2)]);
    assert.equal(planPosition(p, s(1, 3)), 'planned');
    assert.equal(planPosition(p, s(2, 9)), 'planned');
    assert.equal(planPosition(p, s(2, 10)), 'beyond');
    assert.equal(planPosition(p, s(1, 6)), 'beyond');
    assert.equal(planPosition(p, s(2, 5)), 'unplanned', 'PostgreSQL probes the newer timeline before its switch');
    assert.equal(planPosition(p, s(3, 7)), 'unplanned');
    assert.equal(planPosition(p, historyFileName(2)), 'planned');
    assert.equal(planPosition(p, historyFileName(3)), 'beyond');
    assert.equal(planPosition(p, `${s(1, 5)}.partial`), 'unplanned');
  });

  test('the next planned segments follow the switch and stop at the plan\'s end', () => {
    const p = plan([{ timeline: 1, firstSegment: s(1, 2), lastSegment: s(1, 5) }, { timeline: 2, firstSegment: s(2, 6), lastSegment: s(2, 8) }]);
    assert.deepEqual(nextPlannedSegments(p, s(1, 4), 3), [s(1, 5), s(2, 6), s(2, 7)]);
    assert.deepEqual(nextPlannedSegments(p, s(2, 7), 5), [s(2, 8)]);
    assert.deepEqual(nextPlannedSegments(p, s(2, 8), 5), []);
    assert.deepEqual(nextPlannedSegments(p, historyFileName(2), 5), []);
  });

  test('a plan whose segments are not on their timeline is refused', () => {
    assert.throws(() => plan([{ timeline: 2, firstSegment: s(1, 2), lastSegment: s(2, 5) }]), /not on timeline 2/);
  });

  test('restoreCommandLine: a queued file by the shell alone, else the agent again; quoted for the shell, %f %p raw, our own % doubled', () => {
    const line = restoreCommandLine({ spool: '/var/lib/coldseal/spool 1', self: ['/usr/bin/node', '/opt/coldseal/agent.js'] });
    assert.ok(line.startsWith(`if [ -f '/var/lib/coldseal/spool 1/queue'/%f ]; then`), line);
    assert.ok(line.endsWith(`exec /usr/bin/node /opt/coldseal/agent.js pitr wal-fetch --spool '/var/lib/coldseal/spool 1' %f %p`), line);
    const percent = restoreCommandLine({ spool: '/tmp/50%', self: ['/n', '/a.js'] });
    assert.ok(percent.endsWith('/n /a.js pitr wal-fetch --spool /tmp/50%% %f %p'), percent);
    assert.ok(!percent.replace(/%[%fp]/g, '').includes('%'), 'every "%" is a placeholder or doubled');
    assert.throws(() => restoreCommandLine({ spool: 'relative' }), /absolute/);
  });

  test('restoreCommandLine run by /bin/sh as PostgreSQL does: served from the queue without the agent; otherwise the agent\'s status; a queued file that cannot be moved is 126', () => {
    const root = mkdtempSync(join(tmpdir(), 'coldseal-restore-command-'));
    try {
      const spool = join(root, 'spool 1');
      const data = join(root, 'data');
      mkdirSync(join(spool, 'queue'), { recursive: true });
      mkdirSync(join(data, 'pg_wal'), { recursive: true });
      const line = restoreCommandLine({ spool, self: ['/bin/sh', '-c', 'echo agent "$@"; exit 7', 'sh'] });
      // PostgreSQL's substitution (BuildRestoreCommand): %f, %p, and %% for a literal %.
      const run = (walFile: string, path: string) => spawnSync('/bin/sh', ['-c', line.replace(/%([fp%])/g, (_m, c: string) => (c === 'f' ? walFile : c === 'p' ? path : '%'))], { cwd: data, encoding: 'utf8' });
      const name = s(1, 7);
      writeFileSync(join(spool, 'queue', name), 'verified');
      const served = run(name, 'pg_wal/RECOVERYXLOG');
      assert.equal(served.status, 0, served.stderr);
      assert.equal(served.stdout, '', 'the agent was not started');
      assert.equal(readFileSync(join(data, 'pg_wal', 'RECOVERYXLOG'), 'utf8'), 'verified');
      assert.equal(readFileSync(join(spool, 'last-served'), 'utf8').trim(), name);
      assert.deepEqual(readdirSync(join(spool, 'queue')), []);
      const asked = run(s(1, 8), 'pg_wal/RECOVERYXLOG');
      assert.equal(asked.status, 7);
      assert.equal(asked.stdout.trim(), `agent pitr wal-fetch --spool ${spool} ${s(1, 8)} pg_wal/RECOVERYXLOG`);
      writeFileSync(join(spool, 'queue', s(1, 9)), 'verified');
      const stuck = run(s(1, 9), 'no-such-dir/RECOVERYXLOG');
      assert.equal(stuck.status, 126, 'never 1: that would end recovery early');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
