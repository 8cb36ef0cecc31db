import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { binlogWindow, dumpForTime, type WindowBinlog, type WindowDump } from '../../format/binlog-window';

/** Minute m of the test day, as records and manifests hold times. */
const t = (m: number) => new Date(Date.UTC(2026, 11, 6, 8, 0, 0) + m * 60_000).toISOString();

/**
 * A MariaDB archive: file n is open from minute 10(n-1) to 10n and holds two transactions of
 * domain 0 (seq 2n-1, 2n); `skip` leaves files out (purged before they were archived).
 */
function archive(last: number, skip: number[] = [], basename = 'mariadb-bin'): WindowBinlog[] {
  const files: WindowBinlog[] = [];
  for (let n = 1; n <= last; n++) {
    if (skip.includes(n)) continue;
    files.push({
      binlogFile: `${basename}.${String(n).padStart(6, '0')}`,
      flavor: 'mariadb',
      gtidStart: n === 1 ? '' : `0-1-${2 * (n - 1)}`,
      gtidEnd: `0-1-${2 * n}`,
      openedAt: t(10 * (n - 1)),
      closedAt: t(10 * n),
      endsWith: 'rotate',
      lastCommitAt: t(10 * n - 1),
    });
  }
  return files;
}

/** A dump read at minute `m` in file n (which holds it), after transaction seq 2n-1. */
function dump(id: string, n: number, m: number, database = 'shop'): WindowDump {
  return { id, database, position: { file: `mariadb-bin.${String(n).padStart(6, '0')}`, position: 4242, gtid: `0-1-${2 * n - 1}`, flavor: 'mariadb', readAt: t(m) } };
}

describe('binary log recovery window', () => {
  it('an unbroken archive: the oldest dump to the newest file, whose close is the recovery point', () => {
    const w = binlogWindow({ dumps: [dump('d2', 2, 15), dump('d4', 4, 35)], files: archive(6).reverse() });
    assert.equal(w.from?.time, t(15));
    assert.equal(w.from?.dump, 'd2');
    assert.equal(w.from?.position, 'mariadb-bin.000002:4242');
    assert.deepEqual({ ...w.to }, { time: t(60), position: 'mariadb-bin.000006', gtid: '0-1-12' });
    assert.equal(w.ranges.length, 1);
    assert.deepEqual(w.gaps, []);
    assert.equal(w.newest?.binlogFile, 'mariadb-bin.000006');
    assert.deepEqual(w.reaches.find((r) => r.dump === 'd4')?.files, ['mariadb-bin.000004', 'mariadb-bin.000005', 'mariadb-bin.000006']);
    assert.deepEqual(w.notes, []);
  });

  it('a file purged before it was archived: a gap naming it and the lost time, the window split at it', () => {
    const w = binlogWindow({ dumps: [dump('d1', 1, 5), dump('d5', 5, 45)], files: archive(7, [3]) });
    assert.equal(w.gaps.length, 1);
    const gap = w.gaps[0];
    assert.equal(gap.reason, 'missing-files');
    assert.deepEqual(gap.missing, ['mariadb-bin.000003']);
    assert.equal(gap.after, 'mariadb-bin.000002');
    assert.equal(gap.before, 'mariadb-bin.000004');
    assert.equal(gap.fromTime, t(20));
    assert.equal(gap.toTime, t(30));
    assert.match(gap.description, /binary log mariadb-bin\.000003 is not in the archive: transactions committed between 2026-12-06T08:20:00.000Z and 2026-12-06T08:30:00.000Z \(GTID after 0-1-4 up to 0-1-6\) cannot be replayed/);
    assert.deepEqual(w.ranges.map((r) => [r.from.time, r.to.time]), [[t(5), t(20)], [t(45), t(70)]]);
    assert.equal(w.from?.dump, 'd5', 'the window is the range that ends furthest');
    assert.equal(w.reaches.find((r) => r.dump === 'd1')?.brokenBy?.before, 'mariadb-bin.000004');
    // Restores: inside each range, the newest dump; inside the hole, refused naming the lost range.
    const inFirst = dumpForTime(w, t(12));
    assert.ok('reach' in inFirst && inFirst.reach.dump === 'd1');
    const inHole = dumpForTime(w, t(25));
    assert.ok('refusal' in inHole);
    assert.match(inHole.refusal, /^2026-12-06T08:25:00.000Z cannot be recovered: binary log mariadb-bin\.000003 is not in the archive/);
    assert.ok(inHole.refusal.endsWith(`Reachable: ${t(5)} – ${t(20)}, ${t(45)} – ${t(70)}`), inHole.refusal);
    // After the hole but before the next dump: no dump reaches it, because of the hole.
    const afterHole = dumpForTime(w, t(40));
    assert.ok('refusal' in afterHole);
    assert.match(afterHole.refusal, /cannot be recovered: binary log mariadb-bin\.000003 is not in the archive/);
  });

  it('several files missing name the first and last; every hole after the oldest dump is a gap, not only the first', () => {
    const w = binlogWindow({ dumps: [dump('d1', 1, 5)], files: archive(12, [3, 4, 5, 9]) });
    assert.deepEqual(w.gaps.map((g) => g.missing), [['mariadb-bin.000003', 'mariadb-bin.000005'], ['mariadb-bin.000009']]);
    assert.match(w.gaps[0].description, /mariadb-bin\.000003–mariadb-bin\.000005 are not in the archive/);
    assert.deepEqual(w.ranges.map((r) => [r.from.time, r.to.time]), [[t(5), t(20)]]);
  });

  it('a missing file whose neighbours share one GTID state (a quiet rotation) is still a gap, said to have lost no GTID transaction', () => {
    const files = archive(4).map((f) => (f.binlogFile === 'mariadb-bin.000003' ? { ...f, gtidStart: '0-1-4', gtidEnd: '0-1-4' } : f.binlogFile === 'mariadb-bin.000004' ? { ...f, gtidStart: '0-1-4' } : f));
    const w = binlogWindow({ dumps: [dump('d1', 1, 5)], files: files.filter((f) => f.binlogFile !== 'mariadb-bin.000003') });
    assert.equal(w.gaps.length, 1);
    assert.equal(w.gaps[0].reason, 'missing-files');
    assert.match(w.gaps[0].description, /^binary log mariadb-bin\.000003 is not in the archive: the GTID state is 0-1-4 on both sides, so no GTID transaction is lost, but what was logged between .* cannot be replayed or checked$/);
    assert.equal(w.to?.position, 'mariadb-bin.000002');
  });

  it('a file missing where a dump starts: that dump reaches nothing, and the hole is a gap', () => {
    const w = binlogWindow({ dumps: [dump('d3', 3, 25)], files: archive(5, [3]) });
    assert.equal(w.from, null);
    assert.equal(w.to, null);
    assert.match(w.reaches[0].problems[0], /mariadb-bin\.000003, where dump d3 \(shop\) starts, is not in the archive \(the archive goes on at mariadb-bin\.000004\)/);
    assert.deepEqual(w.gaps.map((g) => g.missing), [['mariadb-bin.000003']]);
  });

  it('consecutive names whose GTID states do not chain (a RESET MASTER, another server): a gtid-discontinuity gap', () => {
    const files = archive(4).map((f) => (f.binlogFile === 'mariadb-bin.000003' ? { ...f, gtidStart: '0-1-5' } : f));
    const w = binlogWindow({ dumps: [dump('d1', 1, 5)], files });
    assert.equal(w.gaps.length, 1);
    assert.equal(w.gaps[0].reason, 'gtid-discontinuity');
    assert.deepEqual(w.gaps[0].missing, []);
    assert.match(w.gaps[0].description, /mariadb-bin\.000003 does not continue mariadb-bin\.000002: its GTID state at the head is 0-1-5, the previous file ended at 0-1-4/);
    assert.equal(w.to?.position, 'mariadb-bin.000002');
  });

  it('the position file not archived yet, and a dump newer than the archive', () => {
    const notYet = binlogWindow({ dumps: [dump('d7', 7, 65)], files: archive(5) });
    assert.equal(notYet.from, null);
    assert.match(notYet.reaches[0].problems[0], /mariadb-bin\.000007, where dump d7 \(shop\) starts, is not archived yet/);
    const late = binlogWindow({ dumps: [dump('d5', 5, 55)], files: archive(4).concat({ ...archive(5)[4], closedAt: t(50) }) });
    assert.equal(late.from, null);
    assert.match(late.reaches[0].problems[0], /ends at 2026-12-06T08:50:00.000Z, before dump d5 \(shop\) read its position at 2026-12-06T08:55:00.000Z/);
  });

  it("a dump's GTID position its start file does not reach is a problem of that reach", () => {
    const d = dump('d2', 2, 15);
    const w = binlogWindow({ dumps: [{ ...d, position: { ...d.position, gtid: '0-1-9' } }], files: archive(4) });
    assert.match(w.reaches[0].problems[0], /records GTID position 0-1-9, which mariadb-bin\.000002 \(ending at 0-1-4\) does not reach/);
  });

  it('no dump, files of another basename, nothing archived: notes', () => {
    assert.deepEqual(binlogWindow({ dumps: [], files: archive(2) }).notes, ['no kept dump records a binary log position: nothing to replay from']);
    const other = binlogWindow({ dumps: [dump('d1', 1, 5)], files: archive(2, [], 'old-bin') });
    assert.ok(other.notes.some((n) => /archived binary logs named old-bin\.\* belong to no kept dump's position/.test(n)));
    assert.ok(other.notes.some((n) => /no binary log of mariadb-bin is archived yet/.test(n)));
    assert.equal(other.newest?.binlogFile, 'old-bin.000002');
  });

  it('restore targets: the newest dump that holds the time, per database; outside the window is refused as such', () => {
    const w = binlogWindow({ dumps: [dump('d1', 1, 5), dump('d3', 3, 25), dump('o3', 3, 26, 'other')], files: archive(6) });
    const at = (m: number, db?: string) => dumpForTime(w, t(m), db);
    const r30 = at(30, 'shop');
    assert.ok('reach' in r30 && r30.reach.dump === 'd3');
    const r20 = at(20, 'shop');
    assert.ok('reach' in r20 && r20.reach.dump === 'd1');
    const o10 = at(10, 'other');
    assert.ok('refusal' in o10);
    assert.match(o10.refusal, /outside the recovery window of database other/);
    const before = at(1);
    assert.ok('refusal' in before && /is outside the recovery window \(reachable: 2026-12-06T08:05:00.000Z – 2026-12-06T09:00:00.000Z\)/.test(before.refusal));
  });

  it('a time after the newest archived file is outside the window even when an old gap exists', () => {
    const w = binlogWindow({ dumps: [dump('d1', 1, 5), dump('d5', 5, 45)], files: archive(7, [3]) });
    const future = dumpForTime(w, t(200));
    assert.ok('refusal' in future);
    assert.match(future.refusal, /2026-12-06T11:20:00.000Z is outside the recovery window/);
    assert.doesNotMatch(future.refusal, /000003/);
  });

  it('MySQL GTID sets chain as text after canonicalisation', () => {
    const U = '3e11fa47-71ca-11e1-9e33-c80aa9429562';
    const files: WindowBinlog[] = [1, 2, 3].map((n) => ({
      binlogFile: `binlog.00000${n}`,
      flavor: 'mysql',
      gtidStart: n === 1 ? '' : `${U}:1-${n - 1}`,
      gtidEnd: `${U}:1-${n}`,
      openedAt: t(n - 1),
      closedAt: t(n),
      endsWith: 'rotate',
      lastCommitAt: t(n),
    }));
    const w = binlogWindow({ dumps: [{ id: 'd', database: 'shop', position: { file: 'binlog.000001', position: 157, gtid: '', flavor: 'mysql', readAt: t(0) } }], files });
    assert.equal(w.to?.position, 'binlog.000003');
    assert.deepEqual(w.gaps, []);
  });
});
