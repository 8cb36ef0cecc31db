import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { walObjectKey, walPrefix } from '../../format/layout';
import {
  backupFileName,
  compareLsn,
  formatLsn,
  historyFileName,
  nextSegmentFileName,
  parseLsn,
  parseTimelineHistory,
  parseWalFileName,
  partialFileName,
  segmentEndLsn,
  segmentFileName,
  segmentFileNameOfLsn,
  segmentNumberOf,
  segmentOfLsn,
  segmentStartLsn,
  timelineOfLsn,
  walContinuity,
  type ContinuityInput,
} from '../../format/wal';
import { pgQuery } from '../../local-system/databases';

const MB = 1 << 20;

describe('LSNs', () => {
  for (const [text, value, canonical] of [
    ['0/0', 0n, '0/0'],
    ['0/1000028', 0x1000028n, '0/1000028'],
    ['16/B374D848', 0x16b374d848n, '16/B374D848'],
    ['16/b374d848', 0x16b374d848n, '16/B374D848'],
    ['00000001/00000000', 0x100000000n, '1/0'],
    ['FFFFFFFF/FFFFFFFF', 0xffffffffffffffffn, 'FFFFFFFF/FFFFFFFF'],
  ] as const) {
    test(`${text} is ${value} and prints as ${canonical}`, () => {
      assert.equal(parseLsn(text), value);
      assert.equal(formatLsn(value), canonical);
    });
  }
  for (const bad of ['', '1/', '/1', '123456789/0', '0/123456789', 'x/1', '1-2', '1/2/3', '-1/0']) {
    test(`"${bad}" is refused, naming it`, () => {
      assert.throws(() => parseLsn(bad), (e: Error) => e.message.includes(`"${bad}" is not a PostgreSQL LSN`));
    });
  }
  test('compareLsn orders by the 64-bit value, not by the text', () => {
    const sorted = ['1/0', '0/FFFFFFFF', 'A/0', '0/0', '9/FFFFFFFF'].map(parseLsn).sort(compareLsn).map(formatLsn);
    assert.deepEqual(sorted, ['0/0', '0/FFFFFFFF', '1/0', '9/FFFFFFFF', 'A/0']);
  });
});

describe('segment arithmetic (XLByteToSeg, XLogFileName)', () => {
  // [segment size, LSN, timeline, file holding it, segment number]
  const table: [number, string, number, string, bigint][] = [
    [16 * MB, '0/0', 1, '000000010000000000000000', 0n],
    [16 * MB, '0/FFFFFFF', 1, '00000001000000000000000F', 15n],
    [16 * MB, '0/FF000000', 1, '0000000100000000000000FF', 255n],
    [16 * MB, '1/0', 1, '000000010000000100000000', 256n],
    [16 * MB, '16/B374D848', 3, '0000000300000016000000B3', 0x16b3n],
    [64 * MB, '0/FC000000', 1, '00000001000000000000003F', 63n],
    [64 * MB, '1/0', 1, '000000010000000100000000', 64n],
    [64 * MB, '1/4000000', 2, '000000020000000100000001', 65n],
    [64 * MB, '16/B374D848', 1, '00000001000000160000002C', 0x16n * 64n + 0x2cn],
    [1 * MB, '0/FFF00000', 1, '000000010000000000000FFF', 4095n],
    [1024 * MB, '0/C0000000', 1, '000000010000000000000003', 3n],
    [1024 * MB, '1/0', 1, '000000010000000100000000', 4n],
  ];
  for (const [size, lsn, tli, name, segno] of table) {
    test(`${size / MB} MB: ${lsn} on timeline ${tli} is in ${name} (segment ${segno})`, () => {
      assert.equal(segmentFileNameOfLsn(tli, parseLsn(lsn), size), name);
      assert.equal(segmentOfLsn(parseLsn(lsn), size), segno);
      assert.equal(segmentNumberOf(name, size), segno);
      assert.equal(segmentFileName(tli, segno, size), name);
      const start = segmentStartLsn(segno, size);
      assert.ok(start <= parseLsn(lsn) && parseLsn(lsn) < segmentEndLsn(segno, size));
      assert.equal(segmentEndLsn(segno, size) - start, BigInt(size));
    });
  }

  for (const [size, name, next] of [
    [64 * MB, '00000001000000000000003F', '000000010000000100000000'],
    [16 * MB, '00000001000000000000003F', '000000010000000000000040'],
    [16 * MB, '0000000100000000000000FF', '000000010000000100000000'],
    [1024 * MB, '000000050000000700000003', '000000050000000800000000'],
  ] as const) {
    test(`${size / MB} MB: the segment after ${name} is ${next}`, () => {
      assert.equal(nextSegmentFileName(name, size), next);
    });
  }

  test('64 MB: segment 3F ends at 1/0, where the next log id starts', () => {
    assert.equal(formatLsn(segmentStartLsn(63n, 64 * MB)), '0/FC000000');
    assert.equal(formatLsn(segmentEndLsn(63n, 64 * MB)), '1/0');
  });

  test('a segment part too large for the segment size is refused, naming the file and the size', () => {
    assert.throws(() => segmentNumberOf('000000010000000000000040', 64 * MB), /"000000010000000000000040".*does not exist with wal_segment_size 67108864 \(at most 0000003F\)/);
    assert.equal(segmentNumberOf('000000010000000000000040', 16 * MB), 64n);
  });

  for (const size of [0, 512 * 1024, 3 * MB, 2048 * MB, 16 * MB + 1, Number.NaN]) {
    test(`wal_segment_size ${size} is refused`, () => {
      assert.throws(() => segmentOfLsn(0n, size), new RegExp(`wal_segment_size ${size} is not a power of two between 1 MB and 1 GB`));
    });
  }
});

describe('WAL file names', () => {
  for (const [name, parsed] of [
    ['000000010000000000000003', { kind: 'segment', name: '000000010000000000000003', timeline: 1, log: 0, seg: 3 }],
    ['0000000A00000016000000B3', { kind: 'segment', name: '0000000A00000016000000B3', timeline: 10, log: 0x16, seg: 0xb3 }],
    ['00000002.history', { kind: 'history', name: '00000002.history', timeline: 2 }],
    ['000000010000000000000002.00000028.backup', { kind: 'backup', name: '000000010000000000000002.00000028.backup', timeline: 1, log: 0, seg: 2, offset: 0x28 }],
    ['000000010000000000000005.partial', { kind: 'partial', name: '000000010000000000000005.partial', timeline: 1, log: 0, seg: 5 }],
  ] as const) {
    test(`${name} is a ${parsed.kind}`, () => assert.deepEqual(parseWalFileName(name), parsed));
  }
  for (const bad of [
    'foo',
    '00000001000000000000000',
    '0000000100000000000000003',
    '00000001000000000000000a',
    '000000010000000000000001.gz',
    '000000010000000000000001.backup',
    '000000010000000000000001.00000028.backup.x',
    'pg_wal/000000010000000000000001',
    '1.history',
    'archive_status',
  ]) {
    test(`"${bad}" is refused, naming it`, () => {
      assert.throws(() => parseWalFileName(bad), (e: Error) => e.message.startsWith(`"${bad}" is not a WAL file name`));
    });
  }
  for (const bad of ['000000000000000000000001', '00000000.history']) {
    test(`timeline 0 in "${bad}" is refused`, () => assert.throws(() => parseWalFileName(bad), /timeline 0 is outside 1\.\.FFFFFFFF/));
  }
  test('builders spell the names PostgreSQL writes', () => {
    assert.equal(historyFileName(0x1b), '0000001B.history');
    assert.equal(backupFileName(1, parseLsn('0/2000028'), 16 * MB), '000000010000000000000002.00000028.backup');
    assert.equal(backupFileName(1, parseLsn('1/4000060'), 64 * MB), '000000010000000100000001.00000060.backup');
    assert.equal(partialFileName(2, 5n, 16 * MB), '000000020000000000000005.partial');
    assert.throws(() => nextSegmentFileName('00000002.history', 16 * MB), /"00000002.history" is a history file, not a segment/);
  });
});

describe('cross-check with the local PostgreSQL 15 (16 MB segments)', () => {
  test('pg_walfile_name_offset agrees off boundaries; on a boundary it names the segment before (XLByteToPrevSeg)', async () => {
    const [{ size, tli }] = await pgQuery<{ size: string; tli: number }>('postgres', "select setting::bigint * (case unit when '8kB' then 8192 when 'MB' then 1048576 else 1 end) as size, (select timeline_id from pg_control_checkpoint()) as tli from pg_settings where name = 'wal_segment_size'");
    const segSize = Number(size);
    assert.equal(segSize, 16 * MB);
    const lsns = ['0/1', '0/1000028', '0/FFFFFF', '0/FFFFFFF', '1/0', '1/1', '16/B374D848', 'FF/FF000001', '0/3000000', 'A/0'];
    const values = lsns.map((l) => `('${l}'::pg_lsn)`).join(',');
    const rows = await pgQuery<{ lsn: string; file_name: string; file_offset: number }>('postgres', `select l::text as lsn, (pg_walfile_name_offset(l)).* from (values ${values}) v(l)`);
    assert.equal(rows.length, lsns.length);
    for (const row of rows) {
      const lsn = parseLsn(row.lsn);
      const onBoundary = lsn % BigInt(segSize) === 0n;
      const expected = segmentFileNameOfLsn(tli, onBoundary ? lsn - 1n : lsn, segSize);
      assert.equal(row.file_name, expected, `${row.lsn}`);
      assert.equal(BigInt(row.file_offset), lsn % BigInt(segSize), `${row.lsn}`);
      if (onBoundary) assert.notEqual(row.file_name, segmentFileNameOfLsn(tli, lsn, segSize), 'PostgreSQL 15 names the segment that ends at a boundary');
    }
  });
});

describe('timeline history', () => {
  const three = '# written by the test\n1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tat restore point "before-drop"\n';
  test('a history gives each ancestor its end, the timeline itself open-ended', () => {
    const history = parseTimelineHistory(3, three);
    assert.deepEqual(history, [
      { timeline: 1, begin: 0n, end: 0x3000158n },
      { timeline: 2, begin: 0x3000158n, end: 0x5000000n },
      { timeline: 3, begin: 0x5000000n, end: null },
    ]);
    for (const [lsn, tli] of [['0/0', 1], ['0/3000157', 1], ['0/3000158', 2], ['0/4FFFFFF', 2], ['0/5000000', 3], ['FF/0', 3]] as const) {
      assert.equal(timelineOfLsn(history, parseLsn(lsn)), tli, lsn);
    }
  });
  test('timeline 1 has no file and spans everything', () => {
    assert.deepEqual(parseTimelineHistory(1, ''), [{ timeline: 1, begin: 0n, end: null }]);
  });
  for (const [tli, content, message] of [
    [3, '2\t0/5000000\tx\n1\t0/3000000\ty\n', /00000003.history line 2: timeline IDs must be in increasing sequence \(1 after 2\)/],
    [3, '1\t0/5000000\tx\n2\t0/3000000\ty\n', /00000003.history line 2: switch point 0\/3000000 is before the previous one 0\/5000000/],
    [2, '2\t0/5000000\tx\n', /00000002.history line 1: timeline IDs must be less than the child timeline's ID 2/],
    [2, '1 0/zz\tx\n', /00000002.history line 1 "1 0\/zz\tx" is not "parentTLI<TAB>switchpoint<TAB>reason"/],
    [2, '# only a comment\n', /00000002.history lists no parent timeline/],
  ] as const) {
    test(`a damaged history is refused: ${message.source.slice(0, 60)}`, () => assert.throws(() => parseTimelineHistory(tli, content), message));
  }
});

describe('walContinuity', () => {
  const seg = (tli: number, n: number, size = 16 * MB) => segmentFileName(tli, BigInt(n), size);
  const segs = (tli: number, ns: number[], size = 16 * MB) => ns.map((n) => seg(tli, n, size));
  const h2 = '1\t0/3000158\tno recovery target specified\n';
  const histories = new Map([['00000002.history', h2]]);
  const base = (files: string[], extra: Partial<ContinuityInput> = {}): ContinuityInput => ({
    files,
    histories,
    segSize: 16 * MB,
    start: { timeline: 1, lsn: parseLsn('0/1000028') },
    ...extra,
  });
  const summary = (input: ContinuityInput) => {
    const r = walContinuity(input);
    return {
      target: r.targetTimeline,
      covered: r.covered && `${r.covered.from.segment}@${formatLsn(r.covered.from.lsn)}..${r.covered.to.segment}@${formatLsn(r.covered.to.lsn)}`,
      gaps: r.gaps.map((g) => `${g.timeline}:${g.from}..${g.to} breaks ${formatLsn(g.breaksAt)} resumes ${formatLsn(g.resumesAt)}`),
    };
  };

  const cases: [string, ContinuityInput, ReturnType<typeof summary>][] = [
    ['one timeline, no hole', base(segs(1, [1, 2, 3, 4, 5])), { target: 1, covered: '000000010000000000000001@0/1000028..000000010000000000000005@0/6000000', gaps: [] }],
    ['one timeline, segments before the start are ignored', base(segs(1, [0, 1, 2])), { target: 1, covered: '000000010000000000000001@0/1000028..000000010000000000000002@0/3000000', gaps: [] }],
    ['one hole', base(segs(1, [1, 2, 4, 5])), {
      target: 1,
      covered: '000000010000000000000001@0/1000028..000000010000000000000002@0/3000000',
      gaps: ['1:000000010000000000000003..000000010000000000000003 breaks 0/3000000 resumes 0/4000000'],
    }],
    ['the start segment missing', base(segs(1, [2, 3])), {
      target: 1,
      covered: null,
      gaps: ['1:000000010000000000000001..000000010000000000000001 breaks 0/1000028 resumes 0/2000000'],
    }],
    ['nothing archived', base([]), { target: 1, covered: null, gaps: [] }],
    ['a switch: the segment holding the switch point comes from the child; the parent\'s .partial and later segments are not read', base([
      ...segs(1, [1, 2, 4]), partialFileName(1, 3n, 16 * MB), '00000002.history', ...segs(2, [3, 4, 5]), backupFileName(1, parseLsn('0/1000028'), 16 * MB),
    ]), { target: 2, covered: '000000010000000000000001@0/1000028..000000020000000000000005@0/6000000', gaps: [] }],
    ['a switch with a hole on the child', base([...segs(1, [1, 2]), '00000002.history', ...segs(2, [3, 5])]), {
      target: 2,
      covered: '000000010000000000000001@0/1000028..000000020000000000000003@0/4000000',
      gaps: ['2:000000020000000000000004..000000020000000000000004 breaks 0/4000000 resumes 0/5000000'],
    }],
    ['a hole across the switch is reported per timeline', base([...segs(1, [1]), '00000002.history', ...segs(2, [4])]), {
      target: 2,
      covered: '000000010000000000000001@0/1000028..000000010000000000000001@0/2000000',
      gaps: [
        '1:000000010000000000000002..000000010000000000000002 breaks 0/2000000 resumes 0/3000000',
        '2:000000020000000000000003..000000020000000000000003 breaks 0/3000000 resumes 0/4000000',
      ],
    }],
    ['target timeline 1 although 2 exists: the parent\'s later segments count', base([...segs(1, [1, 2, 3, 4]), '00000002.history', ...segs(2, [3, 4, 5])], { targetTimeline: 1 }), {
      target: 1,
      covered: '000000010000000000000001@0/1000028..000000010000000000000004@0/5000000',
      gaps: [],
    }],
    ['starting on the child timeline', base([...segs(1, [1, 2]), '00000002.history', ...segs(2, [3, 4, 5])], { start: { timeline: 2, lsn: parseLsn('0/4000100') } }), {
      target: 2,
      covered: '000000020000000000000004@0/4000100..000000020000000000000005@0/6000000',
      gaps: [],
    }],
    ['64 MB: 3F rolls over to 000000010000000100000000', base(['00000001000000000000003E', '00000001000000000000003F', '000000010000000100000000'], { segSize: 64 * MB, start: { timeline: 1, lsn: parseLsn('0/F8000028') } }), {
      target: 1,
      covered: '00000001000000000000003E@0/F8000028..000000010000000100000000@1/4000000',
      gaps: [],
    }],
    ['the same names at 16 MB leave 40..FF missing', base(['00000001000000000000003E', '00000001000000000000003F', '000000010000000100000000'], { start: { timeline: 1, lsn: parseLsn('0/3E000028') } }), {
      target: 1,
      covered: '00000001000000000000003E@0/3E000028..00000001000000000000003F@0/40000000',
      gaps: ['1:000000010000000000000040..0000000100000000000000FF breaks 0/40000000 resumes 1/0'],
    }],
  ];
  for (const [name, input, expected] of cases) {
    test(name, () => assert.deepEqual(summary(input), expected));
  }

  const h3 = '1\t0/3000158\tx\n';
  for (const [name, input, message] of [
    ['a target timeline without its history file', base(segs(1, [1]), { targetTimeline: 2, files: segs(1, [1]) }), /the archive has no 00000002.history for target timeline 2/],
    ['a target that is not a child of the start timeline', base(['00000003.history', ...segs(3, [4])], { histories: new Map([['00000003.history', h3]]), start: { timeline: 2, lsn: parseLsn('0/4000000') }, targetTimeline: 3 }), /target timeline 3 is not a child of the start's timeline 2 \(its history: 1, 3\)/],
    ['a start after the target forked off', base(['00000002.history'], { start: { timeline: 1, lsn: parseLsn('0/3000158') } }), /target timeline 2 forked off timeline 1 at 0\/3000158, before the start 0\/3000158/],
    ['a stray file in the listing', base([...segs(1, [1]), 'notes.txt']), /"notes.txt" is not a WAL file name/],
    ['a segment impossible for the segment size', base(['000000010000000000000040'], { segSize: 64 * MB }), /"000000010000000000000040".*does not exist with wal_segment_size 67108864/],
  ] as const) {
    test(`refused: ${name}`, () => assert.throws(() => walContinuity(input), message));
  }
});

describe('WAL layout', () => {
  test('WAL objects sit under wal/<group>/<host>/<source>/<timeline>/', () => {
    assert.equal(walPrefix('prod', 'db-1', 'main', 2), 'wal/prod/db-1/main/00000002/');
    assert.equal(walObjectKey('prod', 'db-1', 'main', '0000000A00000016000000B3'), 'wal/prod/db-1/main/0000000A/0000000A00000016000000B3.pgp');
    assert.equal(walObjectKey('prod', 'db-1', 'main', '00000003.history'), 'wal/prod/db-1/main/00000003/00000003.history.pgp');
    assert.equal(walObjectKey('prod', 'db-1', 'main', '000000010000000000000002.00000028.backup'), 'wal/prod/db-1/main/00000001/000000010000000000000002.00000028.backup.pgp');
  });
  test('bad names and timelines are refused', () => {
    assert.throws(() => walPrefix('prod', 'db 1', 'main', 1), /host "db 1" is not a valid name/);
    assert.throws(() => walPrefix('prod', 'db-1', 'main', 0), /timeline 0 is outside/);
    assert.throws(() => walObjectKey('prod', 'db-1', 'main', '../00000001.history'), /"..\/00000001.history" is not a WAL file name/);
  });
});
