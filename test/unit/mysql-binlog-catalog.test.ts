import { test } from 'node:test';
import assert from 'node:assert/strict';
import { binlogWindow, type WindowBinlog } from '../../format/binlog-window';
import { filesToOpen, windowFiles, type ArchivedBinlog } from '../../agent/src/pitr/mysql/binlog-catalog';
import { formatBinlogWindows, summarizeBinlogWindow } from '../../agent/src/catalog/binlog-window-rows';

const name = (n: number) => `mariadb-bin.${String(n).padStart(6, '0')}`;
const at = (minute: number) => new Date(Date.UTC(2026, 11, 6, 10, minute)).toISOString();

function listed(numbers: number[]): ArchivedBinlog[] {
  return numbers.map((n) => ({ key: `wal/g/h/shop/binlog/${name(n)}.pgp`, size: 1000, storageClass: 'STANDARD', lastModified: new Date(at(n * 5 + 1)), binlogFile: name(n) }));
}

/** The record of file n: GTID 0-1-<n*10> at its head, 0-1-<n*10+10> after it; opened at n*5 min, closed at n*5+5. */
function record(n: number): WindowBinlog {
  return { binlogFile: name(n), flavor: 'mariadb', gtidStart: `0-1-${n * 10}`, gtidEnd: `0-1-${n * 10 + 10}`, openedAt: at(n * 5), closedAt: at(n * 5 + 5), endsWith: 'rotate', lastCommitAt: at(n * 5 + 4) };
}

test('filesToOpen: the first and newest, each dump start, both sides of a hole; not the run between', () => {
  const names = [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12].map(name);
  assert.deepEqual([...filesToOpen(names, [name(3), name(7)])].sort(), [name(1), name(12), name(6), name(8), name(3)].sort(), 'file 7 (a dump start) is not archived: nothing to open');
  assert.equal(filesToOpen(Array.from({ length: 2000 }, (_, i) => name(i + 1)), [name(100)]).size, 3, 'a long unbroken archive costs three HEADs');
});

test('windowFiles: the files between opened ones continue the chain, so the window reaches the newest opened file; a hole stays a hole', () => {
  const files = listed([1, 2, 3, 4, 5, 6, 8, 9]);
  const open = filesToOpen(files.map((f) => f.binlogFile), [name(2)]);
  const opened = new Map([...open].map((f) => [f, record(Number(f.slice(-6)))]));
  const entries = windowFiles(files, opened);
  assert.equal(entries.length, 8);
  const dump = { id: 'backups/daily/g/h/shop/20261206T101000Z.manifest.json', database: 'shop', position: { file: name(2), position: 4, gtid: '0-1-25', flavor: 'mariadb' as const, readAt: at(11) } };
  const window = binlogWindow({ dumps: [dump], files: entries });
  assert.equal(window.gaps.length, 1);
  assert.equal(window.gaps[0].reason, 'missing-files', 'the assumed files make no false GTID discontinuity');
  assert.deepEqual(window.gaps[0].missing, [name(7)]);
  assert.equal(window.to?.time, at(6 * 5 + 5), 'the window ends at the opened file before the hole, with its real close time');
  assert.deepEqual(window.reaches[0].files, [2, 3, 4, 5, 6].map(name));

  const text = formatBinlogWindows([summarizeBinlogWindow({ group: 'g', host: 'h', source: 'shop' }, window, { listed: 8, opened: open.size })], true);
  assert.match(text, /^h\/shop \(binary log\): from 2026-12-06T10:11:00Z \(mariadb-bin\.000002:4, dump of shop, GTID 0-1-25\) to 2026-12-06T10:35:00Z \(end of mariadb-bin\.000006, GTID 0-1-70\)$/m);
  assert.match(text, /^ {2}GAP 2026-12-06T10:35:00\.000Z\.\.2026-12-06T10:40:00\.000Z: binary log mariadb-bin\.000007 is not in the archive/m);
  assert.match(text, /newer binary logs are archived \(mariadb-bin\.000009\) but no dump reaches them/);
});

test('windowFiles: a file whose record did not verify (left out) is a hole; nothing after a hole is assumed without an opened file', () => {
  const files = listed([1, 2, 3, 4]);
  const opened = new Map([[name(1), record(1)], [name(4), record(4)]]);
  // 2 left out as unverifiable: 3 has no predecessor, so it is not assumed either.
  const entries = windowFiles(files.filter((f) => f.binlogFile !== name(2)), opened);
  assert.deepEqual(entries.map((e) => e.binlogFile), [name(1), name(4)]);
});

test('a month of 5-minute files (8640): three records opened, the chain assumed between them, in well under a second', () => {
  const count = 8640;
  const files = listed(Array.from({ length: count }, (_, i) => i + 1));
  const started = Date.now();
  const open = filesToOpen(files.map((f) => f.binlogFile), [name(100)]);
  assert.equal(open.size, 3);
  const opened = new Map([...open].map((f) => [f, record(Number(f.slice(-6)))]));
  const entries = windowFiles(files, opened);
  const window = binlogWindow({ dumps: [{ id: 'm', database: 'shop', position: { file: name(100), position: 4, gtid: '0-1-1001', flavor: 'mariadb', readAt: at(100 * 5 + 1) } }], files: entries });
  assert.equal(window.gaps.length, 0);
  assert.equal(window.to?.position, name(count));
  assert.equal(window.to?.time, record(count).closedAt);
  assert.ok(Date.now() - started < 1000, `${Date.now() - started} ms`);
});
