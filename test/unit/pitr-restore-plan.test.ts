import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '../../format/exit-codes';
import type { BaseBackup } from '../../format/manifest';
import { parseLsn } from '../../format/wal';
import { ColdsealError } from '../../agent/src/errors';
import { validatePitrOptions, type RestoreCommandOptions } from '../../agent/src/commands/restore';
import { confQuote, controlSettings, minimalPostgresqlConf, recoveryConfBlock, recoverySettings } from '../../agent/src/restore/pitr/config';
import { checkDataDir, spoolDirOf, type OsUser } from '../../agent/src/restore/pitr/data-dir';
import { planRecovery, reachableRanges, type ArchiveView, type BaseCandidate } from '../../agent/src/restore/pitr/plan';
import { drawTarget } from '../../agent/src/restore/pitr/drill';
import { readRecoveryLog } from '../../agent/src/restore/pitr/recovery-log';
import { formatMicros, parseRecoveryTarget, parseTargetTime, parseTargetTimeline } from '../../agent/src/restore/pitr/target';

const refused = (fn: () => unknown, code: number, pattern: RegExp) =>
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ColdsealError, String(error));
    assert.equal(error.exitCode, code, error.message);
    assert.match(`${error.message}. ${error.hint}`, pattern);
    return true;
  });

// ── Targets ─────────────────────────────────────────────────────────────────────────────────────

test('--to-time: the zone is required and applied; microseconds are kept; PostgreSQL gets UTC', () => {
  assert.equal(parseTargetTime('2026-12-06 10:15:00+01').text, '2026-12-06 09:15:00.000000+00');
  assert.equal(parseTargetTime('2026-12-06T09:15:00.123456Z').text, '2026-12-06 09:15:00.123456+00');
  assert.equal(parseTargetTime('2026-12-06 04:45 -04:30').text, '2026-12-06 09:15:00.000000+00');
  assert.equal(parseTargetTime('2026-12-06 09:15:00.5 UTC').micros, BigInt(Date.parse('2026-12-06T09:15:00.500Z')) * 1000n);
  assert.equal(parseTargetTime('2026-12-31 23:30:00-01').text, '2027-01-01 00:30:00.000000+00');
  assert.equal(formatMicros(parseTargetTime('2026-12-06 09:15:00.000001Z').micros), '2026-12-06 09:15:00.000001+00');
  refused(() => parseTargetTime('2026-12-06 10:15:00'), EXIT.USAGE, /not a time with a time zone/);
  refused(() => parseTargetTime('2026-02-30 10:15:00Z'), EXIT.USAGE, /not a real date/);
  refused(() => parseTargetTime('yesterday'), EXIT.USAGE, /time zone/);
});

test('exactly one target; --to-lsn checked; --target-timeline is latest or an ID', () => {
  assert.deepEqual(parseRecoveryTarget({ toLatest: true }), { target: { kind: 'latest' }, timeline: 'latest' });
  assert.deepEqual(parseRecoveryTarget({ toLsn: '16/b374d848', targetTimeline: '2' }), { target: { kind: 'lsn', lsn: parseLsn('16/B374D848') }, timeline: 2 });
  refused(() => parseRecoveryTarget({}), EXIT.USAGE, /needs a target/);
  refused(() => parseRecoveryTarget({ toLatest: true, toLsn: '0/1' }), EXIT.USAGE, /not --to-lsn and --to-latest/);
  refused(() => parseRecoveryTarget({ toLsn: '0/1/2' }), EXIT.USAGE, /--to-lsn/);
  assert.equal(parseTargetTimeline(undefined), 'latest');
  refused(() => parseTargetTimeline('0'), EXIT.USAGE, /timeline ID/);
  refused(() => parseTargetTimeline('current'), EXIT.USAGE, /timeline ID/);
});

test('restore options: a PITR restore needs a source, a --data-dir and a key, and none of a dump restore\'s destinations', () => {
  const options = (extra: Partial<RestoreCommandOptions>): RestoreCommandOptions => ({ at: 'latest', retrievalDays: '3', waitTimeout: '720', pollInterval: '60', source: 'pg', key: '/k.asc', dataDir: '/srv/restored', ...extra });
  const valid = validatePitrOptions(options({ toTime: '2026-12-06 10:15:00+01', port: '6543', targetTimeline: '3' }));
  assert.deepEqual({ kind: valid.target.kind, timeline: valid.timeline, port: valid.port, dataDir: valid.dataDir }, { kind: 'time', timeline: 3, port: 6543, dataDir: '/srv/restored' });
  refused(() => validatePitrOptions(options({ toLatest: true, dataDir: undefined })), EXIT.USAGE, /needs --data-dir/);
  refused(() => validatePitrOptions(options({ toLatest: true, source: undefined })), EXIT.USAGE, /--source is required/);
  refused(() => validatePitrOptions(options({ toLatest: true, key: undefined })), EXIT.USAGE, /private key is required/);
  refused(() => validatePitrOptions(options({ toLatest: true, target: 'postgres://u@h/db' })), EXIT.USAGE, /--target restore a dump/);
  refused(() => validatePitrOptions(options({ toLatest: true, at: '20261206T000000Z' })), EXIT.USAGE, /--at picks a dump/);
  refused(() => validatePitrOptions(options({ toLatest: true, port: '80' })), EXIT.USAGE, /not a TCP port/);
  refused(() => validatePitrOptions(options({ toTime: '2026-12-06 10:15:00+01', toLatest: true })), EXIT.USAGE, /one recovery target/);
  refused(() => validatePitrOptions(options({})), EXIT.USAGE, /needs a target/);
});

// ── Base selection and the window ───────────────────────────────────────────────────────────────

const MB16 = 16 * 1024 * 1024;
const seg = (tli: number, n: number) => `${tli.toString(16).toUpperCase().padStart(8, '0')}00000000${n.toString(16).toUpperCase().padStart(8, '0')}`;

function base(stamp: string, stoppedAt: string, startSeg: number, stopSeg: number, timeline = 1): BaseCandidate {
  const b: BaseBackup = {
    systemIdentifier: '7000000000000000001',
    timeline,
    startLsn: `0/${(startSeg * MB16 + 0x28).toString(16).toUpperCase()}`,
    stopLsn: `0/${(stopSeg * MB16 + 0x100).toString(16).toUpperCase()}`,
    startWalFile: seg(timeline, startSeg),
    stopWalFile: seg(timeline, stopSeg),
    walSegmentSize: MB16,
    stoppedAt,
    backupLabel: 'START WAL LOCATION: …',
    tablespaceMap: null,
    walArchived: true,
  };
  return { manifestKey: `backups/daily/g/h/pg/${stamp}.manifest.json`, stamp, artifact: 'cluster', baseBackup: b };
}

/** Segments 2..last of timeline 1, segment n archived at 10:0n. */
function archive(last: number, missing: number[] = []): ArchiveView {
  const files = [];
  for (let n = 2; n <= last; n++) if (!missing.includes(n)) files.push({ walFile: seg(1, n), archivedAt: `2026-12-06T10:${String(n).padStart(2, '0')}:00.000Z` });
  return { files, histories: new Map() };
}

const bases = [base('20261206T100100Z', '2026-12-06T10:02:30Z', 2, 2), base('20261206T100500Z', '2026-12-06T10:05:30Z', 5, 5)];

test('the newest base that ended before the target; WAL from its stop segment', () => {
  const t = (text: string) => parseRecoveryTarget({ toTime: text });
  let plan = planRecovery(bases, archive(9), t('2026-12-06 10:04:00Z').target, 'latest');
  assert.equal(plan.base.stamp, '20261206T100100Z');
  assert.equal(plan.firstSegment, seg(1, 2));
  plan = planRecovery(bases, archive(9), t('2026-12-06 10:06:00Z').target, 'latest');
  assert.equal(plan.base.stamp, '20261206T100500Z');
  assert.equal(plan.timeline, 1);
  plan = planRecovery(bases, archive(9), parseRecoveryTarget({ toLsn: `0/${(4 * MB16).toString(16)}` }).target, 'latest');
  assert.equal(plan.base.stamp, '20261206T100100Z');
  plan = planRecovery(bases, archive(9), { kind: 'latest' }, 'latest');
  assert.equal(plan.base.stamp, '20261206T100500Z');
  assert.equal(plan.reachableLsn, BigInt(10 * MB16));
});

test('a target before the first base or after the newest archived WAL is refused, naming the window', () => {
  const t = (text: string) => parseRecoveryTarget({ toTime: text }).target;
  refused(() => planRecovery(bases, archive(9), t('2026-12-06 10:02:00Z'), 'latest'), EXIT.NOT_FOUND, /before the end of the first base backup: the recovery window is from 2026-12-06T10:02:30Z .* to about 2026-12-06T10:09:00.000Z/);
  refused(() => planRecovery(bases, archive(9), t('2026-12-06 10:09:01Z'), 'latest'), EXIT.NOT_FOUND, /after the newest archived WAL .*recovery window is from/);
  refused(() => planRecovery(bases, archive(9), { kind: 'lsn', lsn: BigInt(10 * MB16) }, 'latest'), EXIT.NOT_FOUND, /after the newest archived WAL \(LSN 0\/A000000\)/);
  refused(() => planRecovery([], archive(9), { kind: 'latest' }, 'latest'), EXIT.NOT_FOUND, /no base backup/);
});

test('a hole between the base and the target: refused naming the missing segment and what to do', () => {
  const t = (text: string) => parseRecoveryTarget({ toTime: text }).target;
  // Segment 7 deleted: from the 10:05 base, 10:06 is reachable, 10:08 is not; --to-latest neither.
  assert.equal(planRecovery(bases, archive(9, [7]), t('2026-12-06 10:06:00Z'), 'latest').base.stamp, '20261206T100500Z');
  refused(() => planRecovery(bases, archive(9, [7]), t('2026-12-06 10:08:00Z'), 'latest'), EXIT.INTEGRITY, new RegExp(`WAL segment ${seg(1, 7)} is missing .*cannot pass LSN 0/7000000.*earlier --to-time or --to-lsn.*coldseal verify`));
  refused(() => planRecovery(bases, archive(9, [7]), { kind: 'latest' }, 'latest'), EXIT.INTEGRITY, new RegExp(seg(1, 7)));
  // The base's own stop segment missing.
  refused(() => planRecovery(bases, archive(9, [5]), t('2026-12-06 10:06:00Z'), 'latest'), EXIT.INTEGRITY, new RegExp(`${seg(1, 5)}, which recovery from base backup 20261206T100500Z needs first`));
});

test('timelines: a base on the target timeline\'s history; a base after the fork is not on the old timeline', () => {
  // Timeline 2 forked at segment 6 (promotion); base 3 was taken on timeline 2.
  const view: ArchiveView = {
    files: [...archive(6).files, ...[6, 7, 8].map((n) => ({ walFile: seg(2, n), archivedAt: `2026-12-06T10:${String(n + 10).padStart(2, '0')}:00.000Z` })), { walFile: '00000002.history', archivedAt: '2026-12-06T10:15:00.000Z' }],
    histories: new Map([['00000002.history', '1\t0/6000000\tno recovery target specified\n']]),
  };
  const b3 = base('20261206T101600Z', '2026-12-06T10:16:30Z', 7, 7, 2);
  const all = [...bases, b3];
  let plan = planRecovery(all, view, { kind: 'latest' }, 'latest');
  assert.equal(plan.base.stamp, '20261206T101600Z');
  assert.equal(plan.timeline, 2);
  plan = planRecovery(all, view, parseRecoveryTarget({ toTime: '2026-12-06 10:17:00Z' }).target, 2);
  assert.equal(plan.base.stamp, '20261206T101600Z');
  // On timeline 1 the newest eligible base is the 10:05 one (the timeline-2 base is skipped).
  plan = planRecovery(all, view, parseRecoveryTarget({ toLsn: '0/5800000' }).target, 1);
  assert.equal(plan.base.stamp, '20261206T100500Z');
  assert.equal(plan.timeline, 1);
  // The 10:05 base replays across the switch onto timeline 2.
  plan = planRecovery(bases, view, { kind: 'lsn', lsn: BigInt(7 * MB16) }, 'latest');
  assert.equal(plan.timeline, 2);
});

test('drill --pitr: the window of each base; the random LSN lies in it, below the newest segment', () => {
  const ranges = reachableRanges(bases, archive(9));
  assert.deepEqual(ranges.map((r) => [r.base.stamp, r.from, r.to]), [
    ['20261206T100100Z', parseLsn('0/2000100'), BigInt(10 * MB16)],
    ['20261206T100500Z', parseLsn('0/5000100'), BigInt(10 * MB16)],
  ]);
  // A hole at 7 cuts both ranges; a base whose stop segment is gone has none.
  assert.deepEqual(reachableRanges(bases, archive(9, [7])).map((r) => r.to), [BigInt(7 * MB16), BigInt(7 * MB16)]);
  assert.deepEqual(reachableRanges(bases, archive(9, [2])).map((r) => r.base.stamp), ['20261206T100500Z']);
  for (const random of [0, 0.25, 0.5, 0.999999]) {
    const { range, lsn } = drawTarget(ranges, () => random);
    assert.ok(lsn >= range.from && lsn < range.to - BigInt(MB16), `${random}: ${lsn}`);
  }
  assert.equal(drawTarget(ranges, () => 0).lsn, parseLsn('0/2000100'));
  assert.equal(drawTarget(ranges, () => 0.999999).range.base.stamp, '20261206T100500Z');
});

// ── What goes into the data directory ───────────────────────────────────────────────────────────

test('recovery settings: restore_command quoted for the configuration file, the target, promote, local-only listening', () => {
  assert.equal(confQuote(`/opt/x/node '/a b/cli.js' --spool /s %f %p`), `'/opt/x/node ''/a b/cli.js'' --spool /s %f %p'`);
  assert.equal(confQuote('C:\\x'), `'C:\\\\x'`);
  assert.throws(() => confQuote('a\nb'));
  const common = { restoreCommand: 'coldseal pitr wal-fetch --spool /s %f %p', port: 5433, socketDir: '/d.coldseal-spool', keepArchiving: false, comment: 'test' };
  const time = recoverySettings({ ...common, target: parseRecoveryTarget({ toTime: '2026-12-06 10:15:00+01' }).target, timeline: 'latest' });
  assert.deepEqual(Object.fromEntries(time), {
    restore_command: "'coldseal pitr wal-fetch --spool /s %f %p'",
    recovery_target_time: "'2026-12-06 09:15:00.000000+00'",
    recovery_target_timeline: "'latest'",
    recovery_target_action: "'promote'",
    port: '5433',
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: "'/d.coldseal-spool'",
    logging_collector: 'off',
    log_destination: "'stderr'",
    lc_messages: "'C'",
    hot_standby: 'off',
    archive_mode: 'off',
  });
  const latest = Object.fromEntries(recoverySettings({ ...common, keepArchiving: true, target: { kind: 'latest' }, timeline: 2 }));
  assert.equal(latest.recovery_target_timeline, "'2'");
  assert.equal(latest.recovery_target_action, undefined);
  assert.equal(latest.archive_mode, undefined);
  assert.equal(Object.fromEntries(recoverySettings({ ...common, target: { kind: 'lsn', lsn: parseLsn('0/3000060') }, timeline: 'latest' })).recovery_target_lsn, "'0/3000060'");
  assert.match(recoveryConfBlock({ ...common, target: { kind: 'latest' }, timeline: 'latest' }), /^\n# test\n# coldseal restore: .*\nrestore_command = /);
});

test('a minimal postgresql.conf keeps the settings pg_control requires of a hot standby', () => {
  const control = controlSettings('max_connections setting:              150\nmax_worker_processes setting:         8\nmax_wal_senders setting:              10\nmax_prepared_xacts setting:           0\nmax_locks_per_xact setting:           64\n');
  assert.deepEqual(control, [['max_connections', '150'], ['max_worker_processes', '8'], ['max_wal_senders', '10'], ['max_prepared_transactions', '0'], ['max_locks_per_transaction', '64']]);
  assert.match(minimalPostgresqlConf(control), /\nmax_connections = 150\n/);
});

test('the server log: how recovery ended', () => {
  const ok = readRecoveryLog(
    [
      '2026-12-06 08:02:56.606 UTC [1] LOG:  restored log file "000000010000000000000002" from archive',
      '2026-12-06 08:02:56.754 UTC [2] FATAL:  the database system is not yet accepting connections',
      '2026-12-06 08:02:57.198 UTC [1] LOG:  restored log file "000000010000000000000007" from archive',
      '2026-12-06 08:02:57.234 UTC [1] LOG:  consistent recovery state reached at 0/2000100',
      '2026-12-06 08:02:57.234 UTC [1] LOG:  recovery stopping before commit of transaction 728, time 2026-12-06 08:02:38.882576+00',
      '2026-12-06 08:02:57.234 UTC [1] LOG:  redo done at 0/6000070 system usage: CPU: user: 0.00 s',
      '2026-12-06 08:02:57.234 UTC [1] LOG:  last completed transaction was at log time 2026-12-06 08:02:38.223215+00',
      '2026-12-06 08:02:57.443 UTC [1] LOG:  selected new timeline ID: 2',
      '2026-12-06 08:02:57.592 UTC [1] LOG:  archive recovery complete',
    ].join('\n'),
  );
  assert.equal(ok.restoredCount, 2);
  assert.equal(ok.lastRestored, '000000010000000000000007');
  assert.equal(ok.redoDoneAt, parseLsn('0/6000070'));
  assert.equal(ok.stopping?.time, '2026-12-06 08:02:38.882576+00');
  assert.equal(ok.lastTransactionTime, '2026-12-06 08:02:38.223215+00');
  assert.equal(ok.newTimeline, 2);
  assert.equal(ok.promoted, true);
  assert.equal(ok.fatal, undefined);
  const aborted = readRecoveryLog(
    [
      '{"time":"2026-12-06T09:05:07.734Z","level":"error","message":"WAL 000000010000000000000004: the record is for …03.pgp (object copied or swapped): recovery stops here (exit 126)","walFile":"000000010000000000000004"}',
      '2026-12-06 08:03:15.443 UTC [9] FATAL:  could not restore file "000000010000000000000004" from archive: command not executable',
    ].join('\n'),
  );
  assert.deepEqual(aborted.restoreFailure, { file: '000000010000000000000004', why: 'exit status 126', detail: 'WAL 000000010000000000000004: the record is for …03.pgp (object copied or swapped): recovery stops here (exit 126)' });
  assert.equal(readRecoveryLog('x FATAL:  recovery ended before configured recovery target was reached').targetNotReached, true);
  const paused = readRecoveryLog('x WARNING:  hot standby is not possible because of insufficient parameter settings\nx DETAIL:  max_connections = 100 is a lower setting than on the primary server, where its value was 150.\nx LOG:  recovery has paused\n');
  assert.equal(paused.paused, 'max_connections = 100 is a lower setting than on the primary server, where its value was 150.');
});

test('the data directory: new or empty, no cluster, never the running one; the spool beside it', async () => {
  const root = mkdtempSync(join(tmpdir(), 'coldseal-pitr-unit-'));
  const owner: OsUser = { name: 'postgres', uid: 0, gid: 0 };
  const fresh = await checkDataDir(join(root, 'new'), { port: 5433, owner });
  assert.deepEqual({ existed: fresh.existed, spool: fresh.spoolDir }, { existed: false, spool: `${join(root, 'new')}.coldseal-spool` });
  mkdirSync(join(root, 'empty'));
  assert.equal((await checkDataDir(join(root, 'empty'), { port: 5433, owner })).existed, true);
  mkdirSync(join(root, 'cluster'));
  writeFileSync(join(root, 'cluster', 'PG_VERSION'), '15\n');
  await assert.rejects(checkDataDir(join(root, 'cluster'), { port: 5433, owner }), /holds a PostgreSQL cluster \(PG_VERSION\)/);
  mkdirSync(join(root, 'full'));
  writeFileSync(join(root, 'full', 'notes.txt'), 'x');
  await assert.rejects(checkDataDir(join(root, 'full'), { port: 5433, owner }), /is not empty \(1 entries, e\.g\. notes\.txt\)/);
  await assert.rejects(checkDataDir(join(root, 'empty'), { port: 5433, owner, runningDataDir: join(root, 'empty') }), /is the data directory of the running server/);
  await assert.rejects(checkDataDir(join(root, 'running', 'sub'), { port: 5433, owner, runningDataDir: join(root, 'running') }), /is inside the data directory of the running server/);
  mkdirSync(spoolDirOf(join(root, 'empty2')), { recursive: true });
  writeFileSync(join(spoolDirOf(join(root, 'empty2')), 'postgresql.log'), '');
  await assert.rejects(checkDataDir(join(root, 'empty2'), { port: 5433, owner }), /spool directory .* is not empty/);
  await assert.rejects(checkDataDir(join(root, 'x'.repeat(120)), { port: 5433, owner }), /longer than 107 bytes/);
});
