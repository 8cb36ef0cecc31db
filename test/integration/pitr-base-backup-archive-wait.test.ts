import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { EXIT } from '../../format/exit-codes';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { startPgCluster, type PgCluster } from '../harness/pg-cluster';
import { archiveToMoto, type WalArchiveStub } from '../harness/wal-archive-stub';

/**
 * "A base backup counts as complete only when the WAL it needs is archived": with archive_command
 * failing, the base backup waits pitr.waitForArchiveMinutes for its last WAL file, then fails the
 * whole run of the source (no manifest, uploads aborted) with a message naming the segment and what
 * to look at; once archiving works again, the next run commits.
 */
let sandbox: AgentSandbox;
let cluster: PgCluster;
let archive: WalArchiveStub;

before(async () => {
  sandbox = await createAgentSandbox();
  cluster = await startPgCluster();
  archive = archiveToMoto(cluster, sandbox, 'pg');
  cluster.psql('postgres', 'create database shop');
  cluster.psql('shop', 'create table items (id int); insert into items select generate_series(1, 100)');
});

after(() => cluster?.stop());

test('archiving broken: after waitForArchiveMinutes the run fails naming the segment, nothing is committed; repaired, the next run commits', async () => {
  const config = sandbox.writeConfig(
    sandbox.config({ sources: [{ name: 'pg', type: 'postgres', databases: ['shop'], host: cluster.socketDir, port: cluster.port, user: 'postgres', pitr: { enabled: true, waitForArchiveMinutes: 1 } }] }),
  );
  archive.break();
  const started = Date.now();
  const failed = await sandbox.runCli(['backup', '--config', config, '--tier', 'daily']);
  archive.repair();
  assert.equal(failed.code, EXIT.SOURCE, failed.log);
  assert.ok(Date.now() - started >= 60_000, 'it waited the minute it was given');
  const segment = /the base backup's last WAL file ([0-9A-F]{24}) did not reach the WAL archive/.exec(failed.log)?.[1];
  assert.ok(segment, failed.log);
  const waiting = failed.stderr.split('\n').map((line) => (line.startsWith('{') ? (JSON.parse(line) as { message: string; stopLsn?: string }) : undefined)).find((l) => l?.message.startsWith('base backup taken'));
  assert.equal(segment, cluster.psql('postgres', `select pg_walfile_name('${waiting!.stopLsn}')`), 'the segment holding the stop LSN');
  assert.match(failed.log, new RegExp(`\\(s3://${sandbox.bucket}/wal/testgroup/testhost/pg/00000001/${segment}\\.pgp: not there yet \\(404\\)\\) within 1 min, so the base backup is not complete and was not committed`));
  assert.match(failed.log, /pg_stat_archiver says \{"archived" : 0, "lastArchived" : null, "failed" : [1-9]\d*, "lastFailed" : "[0-9A-F]{24}"/);
  assert.match(failed.log, /Check archiving: select \* from pg_stat_archiver and the PostgreSQL log show why archive_command fails; coldseal pitr setup --source pg checks the settings/);
  assert.deepEqual(await sandbox.listKeys('backups/'), [], 'no manifest, and the dump and the tar were not kept either');
  assert.deepEqual(await sandbox.openMultipartUploads(), [], 'every upload was aborted');
  assert.equal(cluster.psql('postgres', 'select count(*) from pg_replication_slots'), '0', 'the temporary slot is gone');

  const ok = await sandbox.runCli(['backup', '--config', config, '--tier', 'daily']);
  assert.equal(ok.code, EXIT.OK, ok.log);
  const keys = await sandbox.listKeys('backups/');
  assert.equal(keys.filter((k) => k.endsWith('.manifest.json')).length, 1);
  assert.ok(keys.some((k) => k.endsWith('.cluster.tar.zst.pgp')));
});
