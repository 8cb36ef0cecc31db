import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { Readable } from 'node:stream';
import type { BinlogRecord } from '../../format/binlog-record';
import { binlogWindow } from '../../format/binlog-window';
import { ColdsealError } from '../../agent/src/errors';
import { EXIT } from '../../format/exit-codes';
import { drawBinlogTime } from '../../agent/src/restore/binlog/drill';
import { describePlan, planBinlogRestore, type ArchivedBinlog, type DumpCandidate } from '../../agent/src/restore/binlog/plan';
import { BinlogReplayStream, ReplayState } from '../../agent/src/restore/binlog/replay-stream';
import { describeBinlogTarget, parseBinlogTarget, stopDatetimeArgument, type BinlogTarget } from '../../agent/src/restore/binlog/target';

/** Minute m (and second s) of the test day. */
const t = (m: number, s = 0) => new Date(Date.UTC(2026, 11, 6, 8, 0, 0) + m * 60_000 + s * 1000).toISOString();
const name = (n: number) => `mariadb-bin.${String(n).padStart(6, '0')}`;

/** File n: open minutes 10(n-1)…10n, transactions 0-1-(2n-1) and 0-1-2n, 10 000 bytes. */
function archive(last: number, skip: number[] = []): ArchivedBinlog[] {
  const out: ArchivedBinlog[] = [];
  for (let n = 1; n <= last; n++) {
    if (skip.includes(n)) continue;
    const record = {
      binlogFile: name(n),
      flavor: 'mariadb',
      gtidStart: n === 1 ? '' : `0-1-${2 * (n - 1)}`,
      gtidEnd: `0-1-${2 * n}`,
      openedAt: t(10 * (n - 1)),
      closedAt: t(10 * n),
      endsWith: 'rotate',
      lastCommitAt: t(10 * n - 1),
      plaintextBytes: 10_000,
    } as unknown as BinlogRecord;
    out.push({ key: `wal/g/h/shop/binlog/${name(n)}.pgp`, record });
  }
  return out;
}

function dump(stamp: string, n: number, m: number, database = 'shop'): DumpCandidate {
  return { manifestKey: `backups/daily/g/h/shop/${stamp}.manifest.json`, stamp, database, position: { file: name(n), position: 4242, gtid: `0-1-${2 * n - 1}`, flavor: 'mariadb', readAt: t(m) } };
}

const time = (iso: string): BinlogTarget => parseBinlogTarget({ toTime: iso });
const refused = (fn: () => unknown, code: number, pattern: RegExp) =>
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ColdsealError, String(error));
    assert.equal(error.exitCode, code, error.message);
    assert.match(error.message, pattern);
    return true;
  });

describe('binary log restore targets', () => {
  it('--to-time is replayed to its whole second (events carry seconds), in UTC, and says so', () => {
    const whole = parseBinlogTarget({ toTime: '2026-12-06 09:15:07+01' });
    assert.deepEqual(whole, { kind: 'time', requested: '2026-12-06T08:15:07.000Z', stopAt: '2026-12-06T08:15:07.000Z' });
    const frac = parseBinlogTarget({ toTime: '2026-12-06T08:15:07.250Z' });
    assert.equal(frac.kind === 'time' && frac.stopAt, '2026-12-06T08:15:07.000Z');
    assert.match(describeBinlogTarget(frac), /every transaction committed before 2026-12-06T08:15:07\.000Z: the binary log stamps whole seconds, so commits stamped 08:15:07 are left out/);
    assert.equal(stopDatetimeArgument('2026-12-06T08:15:07.000Z'), '2026-12-06 08:15:07');
  });

  it('positions and GTIDs parse, one target only, a time without a zone refused', () => {
    assert.deepEqual(parseBinlogTarget({ toPosition: 'mariadb-bin.000042:1234' }), { kind: 'position', position: { file: 'mariadb-bin.000042', position: 1234 } });
    assert.deepEqual(parseBinlogTarget({ toGtid: '1-2-30,0-1-7' }), { kind: 'gtid', gtid: '0-1-7,1-2-30' });
    assert.throws(() => parseBinlogTarget({ toGtid: '0-1' }), /--to-gtid: "0-1" is not a MariaDB GTID/);
    assert.throws(() => parseBinlogTarget({ toPosition: '1234' }), /--to-position: "1234" is not a binary log position/);
    assert.throws(() => parseBinlogTarget({ toLatest: true, toGtid: '0-1-2' }), /give one recovery target, not --to-gtid and --to-latest/);
    assert.throws(() => parseBinlogTarget({ toTime: '2026-12-06 08:15:07' }), /is not a time with a time zone/);
  });
});

describe('binary log restore plan', () => {
  it('--to-time: the newest dump before it, its files up to the first that closes at or after it, --stop-datetime on the last only', () => {
    const plan = planBinlogRestore([dump('d2', 2, 15), dump('d4', 4, 35)], archive(6), time(t(47, 30)));
    assert.equal(plan.dump.stamp, 'd4');
    assert.deepEqual(plan.steps.map((s) => s.record.binlogFile), [name(4), name(5)]);
    assert.equal(plan.steps[0].startPosition, 4242);
    assert.equal(plan.steps[0].stopDatetime, undefined);
    assert.equal(plan.steps[1].stopDatetime, '2026-12-06 08:47:30');
    assert.equal(plan.steps[1].startPosition, undefined);
    assert.match(describePlan(plan), /^dump d4 of shop \(position mariadb-bin\.000004:4242, GTID 0-1-7\), then mariadb-bin\.000004 … mariadb-bin\.000005 \(2 files\), to 2026-12-06T08:47:30\.000Z/);
  });

  it('a time before the first dump, after the archive, or in a hole: refused naming the window or the lost range', () => {
    refused(() => planBinlogRestore([dump('d2', 2, 15)], archive(6), time(t(5))), EXIT.NOT_FOUND, /outside the recovery window of database shop .*The recovery window of shop is from 2026-12-06T08:15:00\.000Z \(dump d2, mariadb-bin\.000002:4242\) to 2026-12-06T09:00:00\.000Z/);
    refused(() => planBinlogRestore([dump('d2', 2, 15)], archive(6), time(t(75))), EXIT.NOT_FOUND, /outside the recovery window/);
    refused(() => planBinlogRestore([dump('d1', 1, 5)], archive(6, [3]), time(t(25))), EXIT.INTEGRITY, /cannot be recovered: binary log mariadb-bin\.000003 is not in the archive: transactions committed between 2026-12-06T08:20:00\.000Z and 2026-12-06T08:30:00\.000Z/);
  });

  it('--to-position: the newest dump at or before it whose chain holds its file; past the file\'s end or before every dump refused', () => {
    const plan = planBinlogRestore([dump('d2', 2, 15), dump('d4', 4, 35)], archive(6), parseBinlogTarget({ toPosition: `${name(3)}:500` }));
    assert.equal(plan.dump.stamp, 'd2');
    assert.deepEqual(plan.steps.map((s) => [s.record.binlogFile, s.startPosition, s.stopPosition]), [[name(2), 4242, undefined], [name(3), undefined, '500']]);
    const same = planBinlogRestore([dump('d4', 4, 35)], archive(6), parseBinlogTarget({ toPosition: `${name(4)}:5000` }));
    assert.deepEqual(same.steps.map((s) => [s.startPosition, s.stopPosition]), [[4242, '5000']]);
    refused(() => planBinlogRestore([dump('d4', 4, 35)], archive(6), parseBinlogTarget({ toPosition: `${name(4)}:100` })), EXIT.NOT_FOUND, /outside the recovery window/);
    refused(() => planBinlogRestore([dump('d4', 4, 35)], archive(6), parseBinlogTarget({ toPosition: `${name(5)}:20000` })), EXIT.NOT_FOUND, /past the end of mariadb-bin\.000005 \(10000 bytes\)/);
    refused(() => planBinlogRestore([dump('d1', 1, 5)], archive(6, [3]), parseBinlogTarget({ toPosition: `${name(3)}:500` })), EXIT.INTEGRITY, /mariadb-bin\.000003 is not in the archive/);
  });

  it('--to-gtid: the newest dump the GTID covers, up to the file that holds it; a dump exactly there replays nothing', () => {
    const plan = planBinlogRestore([dump('d2', 2, 15), dump('d4', 4, 35)], archive(6), parseBinlogTarget({ toGtid: '0-1-9' }));
    assert.equal(plan.dump.stamp, 'd4');
    assert.deepEqual(plan.steps.map((s) => [s.record.binlogFile, s.stopPosition]), [[name(4), undefined], [name(5), '0-1-9']]);
    const older = planBinlogRestore([dump('d2', 2, 15), dump('d4', 4, 35)], archive(6), parseBinlogTarget({ toGtid: '0-1-5' }));
    assert.equal(older.dump.stamp, 'd2');
    assert.deepEqual(older.steps.map((s) => s.record.binlogFile), [name(2), name(3)]);
    assert.deepEqual(planBinlogRestore([dump('d4', 4, 35)], archive(6), parseBinlogTarget({ toGtid: '0-1-7' })).steps, []);
    refused(() => planBinlogRestore([dump('d4', 4, 35)], archive(6), parseBinlogTarget({ toGtid: '0-1-99' })), EXIT.NOT_FOUND, /GTID 0-1-99 is outside the recovery window .*up to GTID 0-1-12/);
  });

  it('--to-latest: the newest reach; a hole that ends it early is refused naming it', () => {
    const plan = planBinlogRestore([dump('d2', 2, 15), dump('d4', 4, 35)], archive(6), { kind: 'latest' });
    assert.equal(plan.dump.stamp, 'd4');
    assert.deepEqual(plan.steps.map((s) => s.record.binlogFile), [name(4), name(5), name(6)]);
    assert.ok(plan.steps.every((s) => s.stopDatetime === undefined && s.stopPosition === undefined));
    refused(() => planBinlogRestore([dump('d1', 1, 5)], archive(6, [4]), { kind: 'latest' }), EXIT.INTEGRITY, /the archive goes on to mariadb-bin\.000006 .*replay from any dump stops at mariadb-bin\.000003 .*mariadb-bin\.000004 is not in the archive/);
  });

  it('a file closed in the second the dump read its position (whole seconds against milliseconds) still serves it', () => {
    const files = archive(2);
    const d = { ...dump('d', 1, 0), position: { ...dump('d', 1, 0).position, readAt: t(10, 0.4) } };
    const plan = planBinlogRestore([d], files, parseBinlogTarget({ toPosition: `${name(1)}:5000` }));
    assert.deepEqual(plan.steps.map((s) => s.record.binlogFile), [name(1)]);
  });

  it('several databases: --artifact says which; an unknown one is refused naming those there', () => {
    refused(() => planBinlogRestore([dump('a', 2, 15, 'shop'), dump('b', 2, 15, 'crm')], archive(6), { kind: 'latest' }), EXIT.USAGE, /several databases \(crm, shop\)/);
    assert.equal(planBinlogRestore([dump('a', 2, 15, 'shop'), dump('b', 2, 15, 'crm')], archive(6), { kind: 'latest' }, 'crm').dump.stamp, 'b');
    refused(() => planBinlogRestore([dump('a', 2, 15)], archive(6), { kind: 'latest' }, 'nope'), EXIT.NOT_FOUND, /no kept dump of database "nope" .*\(the dumps hold: shop\)/);
  });

  it('the drill draws whole seconds inside the window', () => {
    const w = binlogWindow({ dumps: [{ id: 'd', database: 'shop', position: { ...dump('d', 2, 15).position, readAt: t(15, 0.4) } }], files: archive(3).map((f) => f.record) });
    for (const r of [0, 0.0001, 0.5, 0.9999]) {
      const { time: drawn } = drawBinlogTime(w.ranges, () => r);
      assert.match(drawn, /:\d{2}\.000Z$/);
      assert.ok(drawn >= t(15, 1) && drawn <= t(30), `${r} → ${drawn}`);
    }
  });
});

describe('replay stream', () => {
  const output = (lines: string[]) => `${lines.join('\n')}\n`;
  const run = async (text: string, chunk = 7, db = 'shop') => {
    const state = new ReplayState('0-1-2');
    const stream = new BinlogReplayStream(db, 'mariadb-bin.000002', state);
    const parts: Buffer[] = [];
    stream.on('data', (d: Buffer) => parts.push(d));
    const input = Buffer.from(text);
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += chunk) chunks.push(input.subarray(i, i + chunk));
    await new Promise<void>((resolve, reject) => Readable.from(chunks).pipe(stream).on('finish', resolve).on('error', reject));
    await new Promise((r) => setImmediate(r));
    return { out: Buffer.concat(parts).toString(), state };
  };
  const sample = output([
    '# at 344',
    '#261206 10:55:39 server id 1  end_log_pos 386 CRC32 0x760d51b4 \tGTID 0-1-3 trans',
    '/*M!100101 SET @@session.skip_parallel_replication=0*//*!*/;',
    '/*M!100001 SET @@session.gtid_domain_id=0*//*!*/;',
    '/*M!100001 SET @@session.server_id=1*//*!*/;',
    '/*M!100001 SET @@session.gtid_seq_no=3*//*!*/;',
    'START TRANSACTION',
    '/*!*/;',
    '#261206 10:55:39 server id 1  end_log_pos 819 CRC32 0x131d95cd \tWrite_rows: table id 18 flags: STMT_END_F',
    "BINLOG '",
    'Kz8VaxMBAAAAMwAAAAsDAAAAABIAAAAAAAEABHNob3AABWl0ZW1zAAIDDwIUAAJF3TpO',
    "'/*!*/;",
    '#261206 10:55:40 server id 1  end_log_pos 850 CRC32 0xc3934b95 \tXid = 11',
    'COMMIT/*!*/;',
    '#261206 10:55:41 server id 1  end_log_pos 892 CRC32 0x41c103e8 \tGTID 0-1-4 ddl',
    '/*M!100001 SET @@session.gtid_seq_no=4*//*!*/;',
    '#261206 10:55:41 server id 1  end_log_pos 1002 CRC32 0xb72e0306 \tQuery\tthread_id=11\texec_time=0\terror_code=0\txid=24',
    'SET TIMESTAMP=1796554541/*!*/;',
    'ALTER TABLE items ADD COLUMN c int',
    '/*!*/;',
    '#261206 10:55:42 server id 1  end_log_pos 1040 CRC32 0x41c103e8 \tGTID 0-1-5 trans',
    'START TRANSACTION',
    '/*!*/;',
    'DELIMITER ;',
    'ROLLBACK /* added by mysqlbinlog */;',
  ]);

  it('drops the source\'s GTID sequence numbers and server_id, keeps the rest byte for byte, whatever the chunking', async () => {
    for (const chunk of [1, 7, 64, 100_000]) {
      const { out, state } = await run(sample, chunk);
      assert.equal(out, sample.split('\n').filter((l) => !/SET @@session\.(gtid_seq_no|server_id)=/.test(l)).join('\n'));
      assert.deepEqual({ ...state.progress }, { transactions: 2, position: 'mariadb-bin.000002:1002', lastGtid: '0-1-4', lastCommitAt: '2026-12-06T10:55:41.000Z' });
      assert.equal(state.gtidPosition(), '0-1-4');
    }
  });

  it('refuses a statement that names the source database qualified (not rewritten by --rewrite-db)', async () => {
    const bad = sample.replace('ALTER TABLE items ADD COLUMN c int', 'ALTER TABLE `shop`.items ADD COLUMN c int');
    await assert.rejects(run(bad), /names the source database qualified/);
    await assert.rejects(run(sample.replace('ALTER TABLE items ADD COLUMN c int', 'DROP DATABASE shop')), /database-level statement .*DROP DATABASE shop/);
    const literal = sample.replace('ALTER TABLE items ADD COLUMN c int', "ALTER TABLE items COMMENT 'shop.items'");
    assert.equal((await run(literal)).state.progress.transactions, 2);
  });
});
