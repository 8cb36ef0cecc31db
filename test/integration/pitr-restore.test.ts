import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EXIT } from '../../format/exit-codes';
import { startPitrSource, type PitrSource } from '../harness/pitr-source';

/**
 * Point-in-time restore end to end: a scratch PostgreSQL 15 archiving through the real
 * archive-push, a base backup by `backup`, rows committed in separate transactions with a WAL
 * switch after each, and `restore --to-time / --to-lsn / --to-latest` into new data directories,
 * each started on its own port with restore_command = the real `pitr wal-fetch`. Every row
 * committed before the target is there, none after.
 */
let pitr: PitrSource;
let timeBetween3And4: string;
let lsnAfter4: string;

before(async () => {
  pitr = await startPitrSource();
  for (const id of [1, 2, 3]) pitr.writeRow(id);
  timeBetween3And4 = await pitr.timeNow();
  lsnAfter4 = pitr.writeRow(4);
  for (const id of [5, 6]) pitr.writeRow(id);
  await pitr.waitArchived();
});

after(() => pitr?.close());

test('--to-time T: every row committed before T, none after; --to-lsn: up to it; --to-latest: every row; each on its own port, promoted', async () => {
  // Three restores at once: each is its own data directory, spool, port and restore_command.
  const [time, lsn, latest] = await Promise.all([pitr.restore('to-time', '--to-time', timeBetween3And4), pitr.restore('to-lsn', '--to-lsn', lsnAfter4), pitr.restore('to-latest', '--to-latest')]);
  for (const r of [time, lsn, latest]) assert.equal(r.result.code, EXIT.OK, r.result.log);
  assert.deepEqual(time.rows(), [1, 2, 3]);
  assert.deepEqual(lsn.rows(), [1, 2, 3, 4]);
  assert.deepEqual(latest.rows(), [1, 2, 3, 4, 5, 6]);
  assert.equal(new Set([time.port, lsn.port, latest.port, String(pitr.cluster.port)]).size, 4);
  assert.match(time.result.stdout, /recovered to LSN [0-9A-F]+\/[0-9A-F]+ .*timeline 2, last transaction committed at /);
  assert.match(time.result.stdout, /recovery stopping before commit of transaction \d+, time /);
  assert.match(lsn.result.stdout, /recovery stopping after WAL location \(LSN\) "/);
  assert.match(time.result.stdout, /^connect: psql -h .*to-time\.coldseal-spool -p \d+/m);
  // The copy does not write into the source's archive, and restore_command's key copy is gone.
  assert.equal(time.server.psql('show archive_mode'), 'off');
  assert.equal(existsSync(`${time.dataDir}.coldseal-spool/recipient.key.asc`), false);
  const auto = readFileSync(join(time.dataDir, 'postgresql.auto.conf'), 'utf8');
  assert.match(auto, new RegExp(`recovery_target_time = '${timeBetween3And4.slice(0, 19)}`));
  assert.match(auto, /restore_command = '.* pitr wal-fetch --spool .*to-time\.coldseal-spool %f %p'/);
});

test('refused with nothing written: a target outside the window, a non-empty --data-dir, the running cluster\'s', async () => {
  const before = new Date(Date.parse((await pitr.baseBackup()).stoppedAt) - 60_000).toISOString();
  const early = await pitr.restore('early', '--to-time', before);
  assert.equal(early.result.code, EXIT.NOT_FOUND, early.result.log);
  assert.match(early.result.log, /before the end of the first base backup: the recovery window is from .* to about /);
  const late = await pitr.restore('late', '--to-time', new Date(Date.now() + 3_600_000).toISOString());
  assert.equal(late.result.code, EXIT.NOT_FOUND, late.result.log);
  assert.match(late.result.log, /after the newest archived WAL .*the recovery window is from/);
  for (const name of ['early', 'late']) {
    assert.equal(existsSync(join(pitr.scratch, name)), false);
    assert.equal(existsSync(join(pitr.scratch, `${name}.coldseal-spool`)), false);
  }
  // Decided before any download: nothing was laid.
  assert.doesNotMatch(early.result.log + late.result.log, /laid into/);

  mkdirSync(join(pitr.scratch, 'full'));
  writeFileSync(join(pitr.scratch, 'full', 'keep.txt'), 'mine');
  const full = await pitr.restore('full', '--to-latest');
  assert.equal(full.result.code, EXIT.REFUSED, full.result.log);
  assert.match(full.result.log, /--data-dir .*full is not empty \(1 entries, e\.g\. keep\.txt\)/);
  assert.deepEqual(readdirSync(join(pitr.scratch, 'full')), ['keep.txt']);

  const running = await pitr.cli(['restore', '--config', pitr.configPath, '--source', 'pg', '--key', pitr.sandbox.recipient.privateFile, '--data-dir', pitr.cluster.dataDir, '--to-latest']);
  assert.equal(running.code, EXIT.REFUSED, running.log);
  assert.match(running.log, /is the data directory of the running server/);
  assert.equal(pitr.cluster.psql('postgres', 'select count(*) from t'), '6');
});

test('--prepare-only: the data directory and the exact pg_ctl line, nothing started', async () => {
  const r = await pitr.restore('prepared', '--to-latest', '--prepare-only', '--port', String(pitr.cluster.port + 1));
  assert.equal(r.result.code, EXIT.OK, r.result.log);
  assert.match(r.result.stdout, /^ {2}runuser -u postgres -- \S+\/pg_ctl -D \S+prepared -l \S+postgresql\.log start$/m);
  assert.equal(existsSync(join(r.dataDir, 'postmaster.pid')), false);
  assert.equal(existsSync(join(r.dataDir, 'recovery.signal')), true);
  assert.equal(readFileSync(join(r.dataDir, 'backup_label'), 'utf8'), (await pitr.baseBackup()).backupLabel);
  assert.match(readFileSync(join(r.dataDir, 'postgresql.auto.conf'), 'utf8'), new RegExp(`\nport = ${pitr.cluster.port + 1}\n`));
});
