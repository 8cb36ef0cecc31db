import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CopyObjectCommand, DeleteObjectCommand } from '@aws-sdk/client-s3';
import { EXIT } from '../../format/exit-codes';
import { walObjectKey } from '../../format/layout';
import { drillReceiptSchema } from '../../format/manifest';
import { parseLsn } from '../../format/wal';
import { startPitrSource, type PitrSource } from '../harness/pitr-source';

/**
 * Point-in-time restore when things are not simple: a copy promoted onto a new timeline (its
 * .history archived by the real archive-push) and restored along it, the drill to a random point,
 * and a WAL object swapped (found only when recovery fetches it) or deleted (found by the plan).
 */
let pitr: PitrSource;
/** The segment holding each row's commit (timeline 1). */
const segmentOf = new Map<number, string>();

before(async () => {
  pitr = await startPitrSource();
  for (const id of [1, 2, 3, 4]) {
    segmentOf.set(id, pitr.cluster.psql('postgres', 'select pg_walfile_name(pg_current_wal_lsn())'));
    pitr.writeRow(id);
  }
  await pitr.waitArchived();
});

after(() => pitr?.close());

const walKey = (file: string) => walObjectKey('testgroup', 'testhost', 'pg', file);

test('a promoted copy archives its new timeline; a point-in-time restore follows it (--target-timeline 2)', async () => {
  const promoted = await pitr.restore('promoted', '--to-latest', '--keep-archiving');
  assert.equal(promoted.result.code, EXIT.OK, promoted.result.log);
  assert.deepEqual(promoted.rows(), [1, 2, 3, 4]);
  assert.equal(promoted.server.psql('show archive_mode'), 'on');
  assert.equal(promoted.server.psql('select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)'), '00000002');
  pitr.writeRow(5, promoted.server);
  const between5And6 = await pitr.timeNow(promoted.server);
  pitr.writeRow(6, promoted.server);
  await pitr.waitArchived(promoted.server);
  assert.ok((await pitr.sandbox.listKeys('wal/testgroup/testhost/pg/00000002/')).includes(walKey('00000002.history')), 'the promotion\'s .history is archived');

  // Along timeline 1 the rows of the copy do not exist.
  const [onTimeline2, onTimeline1] = await Promise.all([pitr.restore('timeline-2', '--to-time', between5And6, '--target-timeline', '2'), pitr.restore('timeline-1', '--to-latest', '--target-timeline', '1')]);
  assert.equal(onTimeline2.result.code, EXIT.OK, onTimeline2.result.log);
  assert.deepEqual(onTimeline2.rows(), [1, 2, 3, 4, 5]);
  assert.match(onTimeline2.result.stdout, /timeline 3/);
  assert.equal(onTimeline1.result.code, EXIT.OK, onTimeline1.result.log);
  assert.deepEqual(onTimeline1.rows(), [1, 2, 3, 4]);
});

test('drill --pitr: a random point of the window, reached; the scratch cluster removed; target and point in the signed receipt', async () => {
  const drill = await pitr.cli(['drill', '--pitr', '--config', pitr.configPath, '--key', pitr.sandbox.recipient.privateFile, '--json']);
  assert.equal(drill.code, EXIT.OK, drill.log);
  const { receipt } = JSON.parse(drill.stdout) as { receipt: unknown };
  const parsed = drillReceiptSchema.parse(receipt);
  assert.equal(parsed.ok, true);
  assert.equal(parsed.results.length, 1);
  const result = parsed.results[0];
  assert.equal(result.artifact, 'pitr');
  const p = result.pitr!;
  assert.ok(p.reached, JSON.stringify(result));
  assert.ok(parseLsn(p.reached.redoLsn ?? p.reached.lsn) >= parseLsn(p.target.value), `${p.reached.redoLsn} >= ${p.target.value}`);
  assert.ok(parseLsn(p.target.value) >= parseLsn(p.window.fromLsn) && parseLsn(p.target.value) < parseLsn(p.window.toLsn), JSON.stringify(p));
  assert.deepEqual(result.checks.map((c) => [c.name, c.ok]), [['pitr-window', true], ['pitr-recovery', true], ['pitr-target-reached', true]]);
  assert.doesNotMatch(drill.log, /could not|failed/);
});

test('a swapped WAL object, found only when recovery fetches it: restore_command stops recovery, nothing promoted, the restore names the segment', async () => {
  const victim = segmentOf.get(3)!;
  await pitr.sandbox.s3.send(new CopyObjectCommand({ Bucket: pitr.sandbox.bucket, Key: walKey(victim), CopySource: `${pitr.sandbox.bucket}/${walKey(segmentOf.get(2)!)}`, MetadataDirective: 'COPY' }));
  const swapped = await pitr.restore('swapped', '--to-latest', '--target-timeline', '1');
  assert.equal(swapped.result.code, EXIT.INTEGRITY, swapped.result.log);
  assert.match(swapped.result.log, new RegExp(`restore_command could not deliver WAL file ${victim} .*PostgreSQL did not promote`));
  // restore_command's own reason, from the server's log.
  assert.match(swapped.result.log, new RegExp(`could not deliver WAL file ${victim} \\(exit status 126: .*copied or swapped`));
  assert.match(swapped.result.log, /Restore to a target before it .*coldseal verify/);
  assert.equal(existsSync(join(swapped.dataDir, 'postmaster.pid')), false);

  // Deleted: the plan sees the hole before anything is downloaded.
  await pitr.sandbox.s3.send(new DeleteObjectCommand({ Bucket: pitr.sandbox.bucket, Key: walKey(victim) }));
  const deleted = await pitr.restore('deleted', '--to-latest', '--target-timeline', '1');
  assert.equal(deleted.result.code, EXIT.INTEGRITY, deleted.result.log);
  assert.match(deleted.result.log, new RegExp(`WAL segment ${victim} is missing from the archive: recovery from base backup \\d{8}T\\d{6}Z cannot pass LSN`));
  assert.match(deleted.result.log, /earlier --to-time or --to-lsn.*coldseal verify/);
  assert.equal(existsSync(deleted.dataDir), false);
});
