import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { EXIT } from '../../format/exit-codes';
import { walObjectKey } from '../../format/layout';
import type { Manifest } from '../../format/manifest';
import { createAlertInbox } from '../../local-system/alerts';
import { freePort } from '../../local-system/services';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { decompress, gpgDecrypt } from '../harness/gpg';
import { startPgCluster, type PgCluster } from '../harness/pg-cluster';
import { archiveToMoto, asPostgres } from '../harness/wal-archive-stub';

/**
 * A PITR source's physical base backup: pg_basebackup's tar, streamed, encrypted and signed beside
 * the logical dump, with the WAL range and the exact backup_label in the manifest, committed only
 * once its last WAL file is in the archive; and it restores: laid into a new data directory, the
 * server starts on it and has the rows. WAL is archived by the real thing: the archive_command
 * `coldseal pitr setup` installs (the agent's archive-push, as the postgres user, to moto).
 */
let sandbox: AgentSandbox;
let cluster: PgCluster;
let configPath: string;
const scratch: string[] = [];

before(async () => {
  sandbox = await createAgentSandbox();
  // archive_command runs as the server's user: it must reach the configuration and the signing key.
  chmodSync(sandbox.dir, 0o711);
  chownSync(sandbox.signing.privateFile, ...postgresIds());
  cluster = await startPgCluster({ env: { ...sandbox.account.env, NODE_NO_WARNINGS: '1' } });
  configPath = sandbox.writeConfig(sandbox.config({ sources: [pgSource()] }));
  const setup = await sandbox.runCli(['pitr', 'setup', '--source', 'pg', '--config', configPath, '--install-dir', join(sandbox.dir, 'bin'), '--state-dir', join(sandbox.dir, 'state'), '--apply']);
  assert.equal(setup.code, EXIT.OK, setup.log);
  cluster.restart();
  cluster.psql('postgres', 'create database shop');
  cluster.psql('shop', "create table items (id int primary key, name text); insert into items select g, 'item ' || g from generate_series(1, 5000) g");
});

after(() => {
  cluster?.stop();
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

function pgSource(extra: Record<string, unknown> = {}) {
  return { name: 'pg', type: 'postgres' as const, databases: ['shop'], host: cluster.socketDir, port: cluster.port, user: 'postgres', pitr: { enabled: true, waitForArchiveMinutes: 2 }, ...extra };
}

async function latestManifest(): Promise<Manifest> {
  const keys = (await sandbox.listKeys('backups/daily/testgroup/testhost/pg/')).filter((k) => k.endsWith('.manifest.json'));
  const { document } = await openManifest((await sandbox.getObject(keys.at(-1)!)).toString(), await readPublicKeys(sandbox.signing.publicKey, 'signing'));
  return document;
}

test('a base backup beside the dump: WAL range, label and system id in the signed manifest; the tar starts a server with the rows', async () => {
  const result = await sandbox.runCli(['backup', '--config', configPath, '--tier', 'daily']);
  assert.equal(result.code, EXIT.OK, result.log);
  assert.match(result.log, /base backup: holding a temporary replication slot/);
  assert.match(result.log, /base backup: its last WAL file is archived/);
  // The slot went with its session.
  assert.equal(cluster.psql('postgres', 'select count(*) from pg_replication_slots'), '0');

  const manifest = await latestManifest();
  assert.deepEqual(manifest.artifacts.map((a) => [a.name, a.kind, a.contentFormat]), [
    ['shop', 'database', 'pg-custom'],
    ['cluster', 'cluster', 'pg-base-tar'],
  ]);
  const cluster_ = manifest.artifacts[1];
  assert.equal(manifest.artifacts[0].baseBackup, undefined);
  assert.equal(cluster_.tool.name, 'pg_basebackup');
  assert.deepEqual(cluster_.tool.args, ['-Ft', '-D', '-', '-X', 'fetch', '-c', 'fast', '-v', '-w', '-l', `coldseal-${manifest.stamp}`]);
  assert.match(cluster_.key, new RegExp(`/${manifest.stamp}\\.cluster\\.tar\\.zst\\.pgp$`));
  const bb = cluster_.baseBackup!;
  assert.ok(bb, 'the cluster artifact carries baseBackup');

  // What PostgreSQL itself says about these LSNs and this cluster.
  const controldata = asPostgres(`${cluster.bin}/pg_controldata`, ['-D', cluster.dataDir]);
  assert.equal(bb.systemIdentifier, /Database system identifier:\s+(\d+)/.exec(controldata)![1]);
  assert.equal(bb.timeline, 1);
  assert.equal(bb.walSegmentSize, Number(cluster.psql('postgres', "select setting from pg_settings where name = 'wal_segment_size'")));
  assert.equal(bb.startWalFile, cluster.psql('postgres', `select pg_walfile_name('${bb.startLsn}')`));
  assert.equal(bb.stopWalFile, cluster.psql('postgres', `select pg_walfile_name('${bb.stopLsn}')`));
  assert.ok(cluster.psql('postgres', `select '${bb.stopLsn}'::pg_lsn > '${bb.startLsn}'::pg_lsn`) === 't');
  assert.equal(bb.walArchived, true);
  assert.equal(bb.tablespaceMap, null);
  assert.ok(new Date(bb.stoppedAt) >= new Date(cluster_.startedAt) && new Date(bb.stoppedAt) <= new Date(cluster_.finishedAt), `${bb.stoppedAt} within the artifact's run`);
  assert.ok((await sandbox.listKeys(walObjectKey('testgroup', 'testhost', 'pg', bb.stopWalFile))).length === 1, 'the stop segment is in the archive');
  assert.match(bb.backupLabel, new RegExp(`^START WAL LOCATION: ${bb.startLsn} \\(file ${bb.startWalFile}\\)\\n`));
  assert.match(bb.backupLabel, new RegExp(`\\nLABEL: coldseal-${manifest.stamp}\\n`));

  // What the restore side reads from it: coldseal list's recovery window starts at this backup's stop.
  const listed = await sandbox.runCli(['list', '--config', configPath, '--source', 'pg', '--json']);
  assert.equal(listed.code, EXIT.OK, listed.log);
  const window = (JSON.parse(listed.stdout) as { recoveryWindow?: { from: { lsn: string }; to: { segment: string } } }[])[0].recoveryWindow;
  assert.ok(window, listed.stdout);
  assert.equal(window.from.lsn, bb.stopLsn);
  assert.ok(window.to.segment >= bb.stopWalFile, `${window.to.segment} reaches ${bb.stopWalFile}`);

  // The artifact, decrypted as a user without coldseal would, is pg_basebackup's tar: its
  // backup_label is the manifest's, byte for byte, and it holds the WAL up to the stop (-X fetch).
  const tar = decompress(gpgDecrypt(await sandbox.getObject(cluster_.key), sandbox.recipient.privateFile), 'zstd');
  assert.equal(cluster_.uncompressedBytes, tar.length);
  const work = mkdtempSync(join(tmpdir(), 'coldseal-basebackup-'));
  scratch.push(work);
  chownSync(work, ...postgresIds());
  writeFileSync(join(work, 'base.tar'), tar);
  const entries = execFileSync('tar', ['-tf', join(work, 'base.tar')]).toString().split('\n');
  assert.equal(entries[0], 'backup_label', 'backup_label is the first entry');
  assert.ok(entries.includes(`pg_wal/${bb.stopWalFile}`), 'the stop segment is inside the tar');
  assert.equal(execFileSync('tar', ['-xOf', join(work, 'base.tar'), 'backup_label']).toString(), bb.backupLabel);

  // Laid into a new data directory and started on another port, it is the cluster at the backup.
  cluster.psql('shop', "insert into items values (999999, 'after the backup')");
  const data = join(work, 'data');
  mkdirSync(data, { mode: 0o700 });
  chownSync(data, ...postgresIds());
  asPostgres('tar', ['-xf', join(work, 'base.tar'), '-C', data]);
  const port = await freePort();
  // Its postgresql.auto.conf carries the source's archive_command: the copy must not archive into the source's WAL.
  asPostgres(`${cluster.bin}/pg_ctl`, ['-D', data, '-w', '-t', '60', '-l', join(work, 'log'), '-o', `-p ${port} -k ${work} -c listen_addresses='' -c archive_mode=off`, 'start']);
  try {
    const restored = execFileSync('psql', ['-h', work, '-p', String(port), '-U', 'postgres', '-d', 'shop', '-X', '-Atqc', 'select count(*), sum(id) from items']).toString().trim();
    assert.equal(restored, '5000|12502500');
    assert.equal(cluster.psql('shop', 'select count(*) from items'), '5001');
    const restoredId = execFileSync('psql', ['-h', work, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-X', '-Atqc', 'select system_identifier from pg_control_system()']).toString().trim();
    assert.equal(restoredId, bb.systemIdentifier);
  } finally {
    asPostgres(`${cluster.bin}/pg_ctl`, ['-D', data, '-w', '-m', 'immediate', 'stop']);
    if (process.env.COLDSEAL_TEST_KEEP !== '1') rmSync(work, { recursive: true, force: true });
  }
});

test('a cluster with a tablespace of its own: the base backup is refused with what to do, the dump is still committed', async () => {
  const location = join(cluster.socketDir, 'ts');
  mkdirSync(location);
  chownSync(location, ...postgresIds());
  cluster.psql('postgres', `create tablespace extra location '${location}'`);
  try {
    const inbox = await createAlertInbox(sandbox.account, { waitSeconds: 3 });
    const withAlerts = sandbox.writeConfig(sandbox.config({ sources: [pgSource()], alertTopicArn: inbox.topicArn }));
    const result = await sandbox.runCli(['backup', '--config', withAlerts, '--tier', 'daily']);
    assert.equal(result.code, EXIT.SOURCE, result.log);
    assert.match(result.log, new RegExp(`base backup refused: the cluster has tablespaces of its own \\(extra at ${location}\\)`));
    assert.match(result.log, /pg_basebackup can write a cluster to standard output.*only when it has none/);
    assert.match(result.log, /The logical dumps of the source were still taken\. To get base backups, move those tables/);
    assert.match(result.stdout, /FAILED {2}pg {2}source pg: base backup refused/);
    const manifest = await latestManifest();
    assert.deepEqual(manifest.artifacts.map((a) => a.name), ['shop'], 'the dump was committed, without a cluster artifact');
    assert.match(result.log, new RegExp(`the other artifacts were backed up: s3://${sandbox.bucket}/backups/daily/testgroup/testhost/pg/${manifest.stamp}\\.manifest\\.json`));
    const [alert] = await inbox.receive();
    assert.ok(alert, 'the refusal is alerted');
    assert.match(alert.message, /base backup refused: the cluster has tablespaces of its own/);
    assert.match(alert.message, /The other artifacts of these sources were committed/);
    assert.doesNotMatch(alert.message, /Nothing was committed/);
  } finally {
    cluster.psql('postgres', 'drop tablespace extra');
  }
});

test('64 MB WAL segments (initdb --wal-segsize=64), taken by a role with REPLICATION but no superuser: the manifest\'s files and size are the server\'s', async () => {
  const big = await startPgCluster({ walSegmentSizeMiB: 64 });
  try {
    archiveToMoto(big, sandbox, 'pg64');
    // No database of its own name either: the slot's session must name one.
    big.psql('postgres', 'create role backupper login replication; grant pg_read_all_data to backupper');
    const config = sandbox.writeConfig(sandbox.config({ sources: [{ name: 'pg64', type: 'postgres', databases: ['postgres'], host: big.socketDir, port: big.port, user: 'backupper', pitr: { enabled: true, waitForArchiveMinutes: 2 } }] }));
    const result = await sandbox.runCli(['backup', '--config', config, '--tier', 'daily']);
    assert.equal(result.code, EXIT.OK, result.log);
    const keys = (await sandbox.listKeys('backups/daily/testgroup/testhost/pg64/')).filter((k) => k.endsWith('.manifest.json'));
    const { document } = await openManifest((await sandbox.getObject(keys[0])).toString(), await readPublicKeys(sandbox.signing.publicKey, 'signing'));
    const bb = document.artifacts.find((a) => a.kind === 'cluster')!.baseBackup!;
    assert.equal(bb.walSegmentSize, 64 * 1024 * 1024);
    assert.equal(bb.startWalFile, big.psql('postgres', `select pg_walfile_name('${bb.startLsn}')`));
    assert.equal(bb.stopWalFile, big.psql('postgres', `select pg_walfile_name('${bb.stopLsn}')`));
    assert.equal((await sandbox.listKeys(walObjectKey('testgroup', 'testhost', 'pg64', bb.stopWalFile))).length, 1);
  } finally {
    big.stop();
  }
});

test('SIGTERM while the base backup waits for its WAL: interrupted at once, nothing committed, no upload left open', async () => {
  // Archiving broken: archive-push cannot read the signing key, exits 1 and PostgreSQL retries.
  chmodSync(sandbox.signing.privateFile, 0);
  try {
    const before = await sandbox.listKeys('backups/');
    // The newest backup history file (the backup's checkpoint may remove older ones, so no count).
    const newestBackupHistory = () => cluster.psql('postgres', "select coalesce(max(name), '') from pg_ls_waldir() where name like '%.backup'");
    const historyBefore = newestBackupHistory();
    const config = sandbox.config({ sources: [pgSource({ pitr: { enabled: true, waitForArchiveMinutes: 10 } })] });
    const started = Date.now();
    const result = await sandbox.runCli(['backup', '--config', sandbox.writeConfig(config), '--tier', 'daily'], {}, {
      name: 'SIGTERM',
      // The server ended the backup (its .backup history file is written) and the agent already
      // released its slot (which it does once pg_basebackup has exited): it is in its wait for the archive.
      when: async () => newestBackupHistory() !== historyBefore && cluster.psql('postgres', 'select count(*) from pg_replication_slots') === '0',
    });
    assert.equal(result.code, EXIT.INTERRUPTED, result.log);
    assert.ok(Date.now() - started < 30_000, 'it did not sit out the 10 minutes');
    assert.match(result.log, /waiting for its last WAL file to be archived/);
    assert.match(result.log, /source pg failed: backup interrupted by SIGTERM while dumping cluster\. Nothing of this run was committed/);
    assert.deepEqual(await sandbox.listKeys('backups/'), before, 'no manifest, no artifact');
    assert.deepEqual(await sandbox.openMultipartUploads(), []);
  } finally {
    chmodSync(sandbox.signing.privateFile, 0o600);
  }
});

function postgresIds(): [number, number] {
  return [Number(execFileSync('id', ['-u', 'postgres']).toString()), Number(execFileSync('id', ['-g', 'postgres']).toString())];
}
