import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { BaseTarLeadReader, baseBackupFacts, parseBackupLabel, parseBasebackupMessages, stopWalFileOf } from '../../agent/src/backup/sources/pg-base-backup-output';
import { diagnoseBasebackup, waitForArchivedWal } from '../../agent/src/backup/sources/pg-base-backup';
import { ColdsealError } from '../../agent/src/errors';
import { silentLog } from '../../agent/src/log';
import { parseLsn } from '../../format/wal';

// What pg_basebackup 15 wrote in the integration test's run (test/integration/pitr-base-backup.test.ts).
const LABEL = `START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
CHECKPOINT LOCATION: 0/2000060
BACKUP METHOD: streamed
BACKUP FROM: primary
START TIME: 2026-12-06 07:56:35 UTC
LABEL: coldseal-20261206T075635Z
START TIMELINE: 1
`;
const STDERR = `pg_basebackup: initiating base backup, waiting for checkpoint to complete
pg_basebackup: checkpoint completed
pg_basebackup: write-ahead log start point: 0/2000028 on timeline 1
pg_basebackup: write-ahead log end point: 0/2000100
pg_basebackup: syncing data to disk ...
pg_basebackup: base backup completed
`;
const MIB16 = 16 * 1024 * 1024;

/** A tar made by GNU tar (not by us) of `files`, in that order. */
function tarOf(files: [string, string | Buffer][], format = 'ustar'): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'coldseal-tar-'));
  try {
    for (const [name, content] of files) writeFileSync(join(dir, name), content);
    return execFileSync('tar', [`--format=${format}`, '-cf', '-', '-C', dir, ...files.map(([name]) => name)], { maxBuffer: 64 * 1024 * 1024 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function feed(tar: Buffer, chunkSize: number): BaseTarLeadReader {
  const reader = new BaseTarLeadReader();
  for (let i = 0; i < tar.length; i += chunkSize) reader.push(tar.subarray(i, i + chunkSize));
  return reader;
}

test('the tar reader takes backup_label (and a non-empty tablespace_map) from the head of the stream, whatever the chunking', () => {
  const big = Buffer.alloc(300_000, 7);
  const tars = {
    labelOnly: tarOf([['backup_label', LABEL], ['PG_VERSION', '15\n'], ['big', big]]),
    emptyMap: tarOf([['backup_label', LABEL], ['tablespace_map', ''], ['big', big]]),
    withMap: tarOf([['backup_label', LABEL], ['tablespace_map', '16385 /srv/ts1\n'], ['big', big]]),
    gnu: tarOf([['backup_label', LABEL], ['big', big]], 'gnu'),
  };
  for (const chunk of [1, 7, 511, 512, 513, 65536, 1 << 20]) {
    assert.deepEqual(feed(tars.labelOnly, chunk).result(), { backupLabel: LABEL, tablespaceMap: null }, `chunks of ${chunk}`);
    assert.deepEqual(feed(tars.emptyMap, chunk).result(), { backupLabel: LABEL, tablespaceMap: null }, `chunks of ${chunk}`);
    assert.deepEqual(feed(tars.withMap, chunk).result(), { backupLabel: LABEL, tablespaceMap: '16385 /srv/ts1\n' }, `chunks of ${chunk}`);
    assert.deepEqual(feed(tars.gnu, chunk).result(), { backupLabel: LABEL, tablespaceMap: null }, `chunks of ${chunk}`);
  }
});

test('the tar reader keeps nothing once past the head: memory stays bounded at any size', () => {
  const reader = new BaseTarLeadReader();
  reader.push(tarOf([['backup_label', LABEL], ['x', 'y']]).subarray(0, 2048));
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < 64; i++) reader.push(chunk);
  assert.equal((reader as unknown as { buffer: Buffer }).buffer.length, 0);
  assert.deepEqual(reader.result(), { backupLabel: LABEL, tablespaceMap: null });
});

test('the tar reader refuses what is not pg_basebackup\'s tar: another first entry, a bad checksum, a stream cut inside the label, no tar at all', () => {
  const other = feed(tarOf([['PG_VERSION', '15\n'], ['backup_label', LABEL]]), 4096).result();
  assert.ok(other instanceof Error);
  assert.match(other.message, /does not begin with backup_label \(its first entry is "PG_VERSION"\)/);

  const damaged = Buffer.from(tarOf([['backup_label', LABEL]]));
  damaged[0] = 'c'.charCodeAt(0);
  const bad = feed(damaged, 4096).result();
  assert.ok(bad instanceof Error);
  assert.match(bad.message, /checksum does not match/);

  const cut = feed(tarOf([['backup_label', LABEL]]).subarray(0, 600), 100).result();
  assert.ok(cut instanceof Error);
  assert.match(cut.message, /ended before the end of its first entry, backup_label/);

  const notTar = feed(Buffer.from('pg_basebackup: error: could not connect\n'.repeat(20)), 100).result();
  assert.ok(notTar instanceof Error);
  assert.match(notTar.message, /not octal|checksum/);

  const empty = new BaseTarLeadReader().result();
  assert.ok(empty instanceof Error);
});

test('backup_label and pg_basebackup -v messages are read into LSNs, files and the timeline', () => {
  const label = parseBackupLabel(LABEL);
  assert.equal(label.startLsn, parseLsn('0/2000028'));
  assert.equal(label.startWalFile, '000000010000000000000002');
  assert.equal(label.checkpointLsn, parseLsn('0/2000060'));
  assert.equal(label.timeline, 1);
  assert.equal(label.label, 'coldseal-20261206T075635Z');
  assert.equal(label.backupFrom, 'primary');
  assert.throws(() => parseBackupLabel(LABEL.replace(/START TIMELINE.*\n/, '')), /no "START TIMELINE" line/);

  assert.deepEqual(parseBasebackupMessages(STDERR), { startLsn: parseLsn('0/2000028'), startTimeline: 1, endLsn: parseLsn('0/2000100') });
  assert.deepEqual(parseBasebackupMessages('pg_basebackup: error: connection refused\n'), {});

  assert.deepEqual(baseBackupFacts({ leading: { backupLabel: LABEL, tablespaceMap: null }, stderr: STDERR, segSize: MIB16 }), {
    label,
    timeline: 1,
    startLsn: '0/2000028',
    stopLsn: '0/2000100',
    startWalFile: '000000010000000000000002',
    stopWalFile: '000000010000000000000002',
  });
  assert.throws(() => baseBackupFacts({ leading: { backupLabel: LABEL, tablespaceMap: null }, stderr: STDERR.replace(/.*end point.*\n/, ''), segSize: MIB16 }), /did not print its "write-ahead log end point"/);
  assert.throws(() => baseBackupFacts({ leading: { backupLabel: LABEL, tablespaceMap: null }, stderr: STDERR.replace('0/2000028 on', '0/3000028 on'), segSize: MIB16 }), /differs from its backup_label's/);
  // With 64 MB segments 0/2000028 is in the first segment: a label that says otherwise was read with the wrong size.
  assert.throws(() => baseBackupFacts({ leading: { backupLabel: LABEL, tablespaceMap: null }, stderr: STDERR, segSize: 64 * 1024 * 1024 }), /that LSN is in 000000010000000000000000/);
});

test('the stop WAL file is the one holding the last byte before the stop LSN, as pg_walfile_name says', () => {
  assert.equal(stopWalFileOf(1, parseLsn('0/2000100'), MIB16), '000000010000000000000002');
  // Exactly on a boundary: the record ended at the end of the previous file.
  assert.equal(stopWalFileOf(1, parseLsn('0/3000000'), MIB16), '000000010000000000000002');
  assert.equal(stopWalFileOf(2, parseLsn('1/0'), MIB16), '0000000200000000000000FF');
  assert.equal(stopWalFileOf(1, parseLsn('0/8000000'), 64 * 1024 * 1024), '000000010000000000000001');
  assert.equal(stopWalFileOf(1, parseLsn('0/8000001'), 64 * 1024 * 1024), '000000010000000000000002');
});

test('diagnoseBasebackup: replication-specific refusals get their fix; others are left to the PostgreSQL diagnosis', () => {
  assert.match(diagnoseBasebackup('pg_basebackup: error: connection to server on socket "/run/postgresql/.s.PGSQL.5432" failed: FATAL:  no pg_hba.conf entry for replication connection from host "[local]", user "backup", no encryption')!.hint, /pg_hba\.conf/);
  assert.match(diagnoseBasebackup('pg_basebackup: error: FATAL:  must be superuser or replication role to start walsender')!.hint, /REPLICATION attribute/);
  assert.match(diagnoseBasebackup('pg_basebackup: error: FATAL:  number of requested standby connections exceeds max_wal_senders (currently 0)')!.hint, /max_wal_senders/);
  assert.match(diagnoseBasebackup('pg_basebackup: error: could not get COPY data stream: ERROR:  requested WAL segment 000000010000000000000003 has already been removed')!.hint, /max_slot_wal_keep_size/);
  assert.equal(diagnoseBasebackup('pg_basebackup: error: connection to server on socket "/tmp/.s.PGSQL.5432" failed: No such file or directory'), undefined);
});

function fakeS3(answers: ('404' | '403' | '200')[]): { s3: S3Client; heads: () => number } {
  let heads = 0;
  const s3 = {
    send: async () => {
      const answer = answers[Math.min(heads++, answers.length - 1)];
      if (answer === '200') return {};
      throw Object.assign(new Error('UnknownError'), { name: answer === '404' ? 'NotFound' : 'Unknown', $metadata: { httpStatusCode: Number(answer) } });
    },
  } as unknown as S3Client;
  return { s3, heads: () => heads };
}

test('the archive wait: one pg_switch_wal() when the server still writes into the stop file, none when it has moved on', async () => {
  for (const [insertLsn, switches] of [['0/2000200', 1], ['0/3000060', 0]] as const) {
    const { s3, heads } = fakeS3(['404', '403', '200']);
    const sql: string[] = [];
    const psql = async (statement: string) => {
      sql.push(statement);
      return statement.includes('pg_current_wal_insert_lsn') ? `${insertLsn}\n` : '0/3000000\n';
    };
    await waitForArchivedWal({ s3, bucket: 'b', key: 'wal/g/h/s/00000001/000000010000000000000002.pgp', walFile: '000000010000000000000002', timeline: 1, walSegmentSize: MIB16, minutes: 1, psql, log: silentLog, source: 's' });
    assert.equal(heads(), 3, 'asked until the object was there');
    assert.equal(sql.filter((s) => s === 'select pg_switch_wal()').length, switches, `insert position ${insertLsn}`);
  }
});

test('the archive wait gives up at its deadline with the segment, the key, S3\'s answer and pg_stat_archiver\'s figures', async () => {
  const { s3 } = fakeS3(['403']);
  const psql = async (statement: string) => {
    if (statement.includes('pg_stat_archiver')) return '{"archived" : 0, "failed" : 12, "lastFailed" : "000000010000000000000002"}\n';
    if (statement.includes('pg_switch_wal')) throw new ColdsealError(4, 'permission denied for function pg_switch_wal');
    return '0/2000200\n';
  };
  const started = Date.now();
  await assert.rejects(
    waitForArchivedWal({ s3, bucket: 'b', key: 'wal/g/h/s/00000001/000000010000000000000002.pgp', walFile: '000000010000000000000002', timeline: 1, walSegmentSize: MIB16, minutes: 0.02, psql, log: silentLog, source: 's' }),
    (error: ColdsealError) => {
      assert.equal(error.exitCode, 4);
      assert.match(error.message, /last WAL file 000000010000000000000002 did not reach the WAL archive \(s3:\/\/b\/wal\/g\/h\/s\/00000001\/000000010000000000000002\.pgp: S3 answers 403: not there yet, or this host may not read its group's wal\/ objects\)/);
      assert.match(error.message, /pg_stat_archiver says \{"archived" : 0, "failed" : 12/);
      assert.match(error.hint!, /coldseal pitr setup --source s/);
      return true;
    },
  );
  assert.ok(Date.now() - started >= 1200 - 50, 'it waited its time');
});
