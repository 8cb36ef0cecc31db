import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLsn, historyFileName, segmentFileName, segmentStartLsn } from '../../format/wal';
import { recoveryWindow, type KeptBaseBackup } from '../../lambdas/verifier/core/wal-window';

/** The verifier's recovery window from WAL object names and kept base backups (no .history content). */

const MB = 1024 * 1024;
const SEG = 16 * MB;

function base(stamp: string, timeline: number, startSeg: number, stoppedAt: string, segSize = SEG): KeptBaseBackup {
  const start = segmentStartLsn(BigInt(startSeg), segSize) + 0x28n;
  return { stamp, manifestKey: `m/${stamp}`, timeline, startLsn: formatLsn(start), stopLsn: formatLsn(start + 0x100n), stopWalFile: segmentFileName(timeline, BigInt(startSeg), segSize), stoppedAt, systemIdentifier: '1', walSegmentSize: segSize };
}

function files(...spec: [timeline: number, from: number, to: number][]): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const [tl, from, to] of spec) for (let s = from; s <= to; s++) out.set(segmentFileName(tl, BigInt(s), SEG), `2026-12-06T00:${String(s).padStart(2, '0')}:00.000Z`);
  return out;
}

test('one hole seen from two base backups (one starting inside it) is one gap naming both; none restores after it', () => {
  const result = recoveryWindow({ files: files([1, 1, 3], [1, 7, 9]), bases: [base('B1', 1, 2, '2026-12-06T00:02:30.000Z'), base('B2', 1, 5, '2026-12-06T00:05:30.000Z')] });
  assert.deepEqual(result.gaps.map((g) => [g.from, g.to, g.segments, g.brokenBases.join(), g.nextBase, g.lastBefore?.segment]), [[segmentFileName(1, 4n, SEG), segmentFileName(1, 6n, SEG), 3, 'B1,B2', null, segmentFileName(1, 3n, SEG)]]);
  assert.equal(result.gaps[0].breaksAt, '0/4000000');
  assert.equal(result.window!.from.baseBackup, 'B1');
  // B2's own WAL (in its tar) takes it to its stop; the archive after the hole is unreachable.
  assert.equal(result.window!.to.lsn, base('B2', 1, 5, '').stopLsn);
});

test('a base backup after the hole restores again: it is the gap\'s next base, and the window reaches the newest WAL', () => {
  const result = recoveryWindow({ files: files([1, 2, 3], [1, 5, 9]), bases: [base('B1', 1, 2, 't1'), base('B2', 1, 6, 't2')] });
  assert.deepEqual(result.gaps.map((g) => [g.from, g.brokenBases.join(), g.nextBase?.stamp]), [[segmentFileName(1, 4n, SEG), 'B1', 'B2']]);
  assert.equal(result.window!.to.segment, segmentFileName(1, 9n, SEG));
  assert.equal(result.window!.to.time, '2026-12-06T00:09:00.000Z');
});

test('timelines by name: the newest one with a .history and a segment is followed; its parent is the newest older timeline with WAL before its first segment', () => {
  // Timeline 2 promoted at segment 6; timeline 3 branched off timeline 1 at segment 4 (a PITR restore of an older point).
  const names = files([1, 1, 7], [2, 6, 8], [3, 4, 5]);
  names.set(historyFileName(2), null);
  names.set(historyFileName(3), null);
  const result = recoveryWindow({ files: names, bases: [base('B1', 1, 2, 't1')] });
  assert.deepEqual(result.gaps, []);
  assert.deepEqual(result.timelines, [1, 2, 3]);
  assert.equal(result.window!.to.segment, segmentFileName(3, 5n, SEG));
  // A base on timeline 2 after timeline 3's branch point cannot follow timeline 3: it stays on 2.
  const onTwo = recoveryWindow({ files: names, bases: [base('B2', 2, 7, 't2')] });
  assert.equal(onTwo.window!.to.segment, segmentFileName(2, 8n, SEG));
  assert.deepEqual(onTwo.unusableBases, []);
});

test('a timeline with segments but no .history is reported and not followed; a .history without segments yet is ignored', () => {
  const names = files([1, 1, 5], [2, 4, 6]);
  names.set(historyFileName(3), null);
  const result = recoveryWindow({ files: names, bases: [base('B1', 1, 2, 't1')] });
  assert.deepEqual(result.missingHistories, [{ timeline: 2, firstSegment: segmentFileName(2, 4n, SEG), segments: 3 }]);
  assert.equal(result.window!.to.segment, segmentFileName(1, 5n, SEG));
  // A base on that timeline cannot be carried forward at all.
  const stranded = recoveryWindow({ files: names, bases: [base('B2', 2, 5, 't2')] });
  assert.equal(stranded.unusableBases.length, 1);
  assert.match(stranded.unusableBases[0].problem, /00000002\.history/);
});

test('64 MB segments: names roll over after 0000003F, and the hole is counted in the cluster\'s segments', () => {
  const seg = 64 * MB;
  const names = new Map<string, string | null>();
  for (const s of [0x3en, 0x3fn, 0x41n]) names.set(segmentFileName(1, s, seg), null);
  const result = recoveryWindow({ files: names, bases: [base('B1', 1, 0x3e, 't1', seg)] });
  assert.deepEqual(result.gaps.map((g) => [g.from, g.to, g.segments]), [['000000010000000100000000', '000000010000000100000000', 1]]);
  assert.equal(result.gaps[0].breaksAt, '1/0');
});
