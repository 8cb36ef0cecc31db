import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EXIT } from '../../format/exit-codes';
import type { AgentConfigInput } from '../../format/agent-config';
import type { BaseBackup } from '../../format/manifest';
import { readPublicKeys } from '../../runtime/pgp';
import { openManifest } from '../../runtime/signed-document';
import { buildAgent } from '../../scripts/build-agent';
import { createAgentSandbox, type AgentSandbox, type CliResult } from '../harness/agent';
import { startPgCluster, type PgCluster } from '../harness/pg-cluster';

/**
 * Point-in-time restore end to end: a scratch PostgreSQL 15 archiving through the real
 * archive-push (set up by `pitr setup`), a base backup by `backup`, rows committed in separate
 * transactions with a WAL switch after each, and `restore --to-time / --to-lsn / --to-latest` into
 * new data directories, each started on its own port with restore_command = the real
 * `pitr wal-fetch`. Every row committed before the target is there, none after.
 */
let sandbox: AgentSandbox;
let cluster: PgCluster;
let bundle: string;
let configPath: string;
let scratch: string;
const committed: { id: number; lsn: string }[] = [];
let timeBetween3And4: string;
let lsnAfter4: string;
let baseStoppedAt: string;
const started: { dataDir: string; stop: string }[] = [];

function writeRow(id: number): void {
  cluster.psql('postgres', `insert into t (id) values (${id})`);
  committed.push({ id, lsn: cluster.psql('postgres', 'select pg_current_wal_lsn()') });
  cluster.psql('postgres', 'select pg_switch_wal()');
}

async function waitArchived(): Promise<void> {
  // The segment in use now follows every switched one: wait until the one before it is archived.
  const current = cluster.psql('postgres', 'select pg_walfile_name(pg_current_wal_lsn())');
  for (let i = 0; i < 200; i++) {
    const last = cluster.psql('postgres', "select coalesce(last_archived_wal, '') from pg_stat_archiver");
    if (last.slice(8) >= (BigInt(`0x${current.slice(8)}`) - 1n).toString(16).toUpperCase().padStart(16, '0')) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`not archived: ${cluster.psql('postgres', 'select * from pg_stat_archiver')}\n${readFileSync(cluster.logFile, 'utf8').slice(-3000)}`);
}

/**
 * The agent as hosts run it (the bundle): PostgreSQL starts it for every WAL file it archives or
 * restores, and from source (tsx) each start costs seconds on this machine.
 */
function cli(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bundle, ...args], { cwd: tmpdir(), env: { ...process.env, ...sandbox.account.env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr, log: stderr.split('\n').map((line) => { try { return (JSON.parse(line) as { message?: string }).message ?? line; } catch { return line; } }).join('\n') }));
  });
}

before(async () => {
  sandbox = await createAgentSandbox();
  bundle = join(sandbox.dir, 'coldseal-agent.js');
  copyFileSync(await buildAgent(), bundle);
  // archive_command and restore_command run as the server's user: they reach the configuration and the keys.
  chmodSync(sandbox.dir, 0o711);
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
  chownSync(sandbox.signing.privateFile, uid, gid);
  cluster = await startPgCluster({ env: { ...sandbox.account.env, NODE_NO_WARNINGS: '1' }, settings: { checkpoint_timeout: '1h' } });
  const config: AgentConfigInput = sandbox.config({
    sources: [{ name: 'pg', type: 'postgres', databases: ['postgres'], host: cluster.socketDir, port: cluster.port, user: 'postgres', pitr: { enabled: true, archiveTimeoutSeconds: 60, waitForArchiveMinutes: 2 } }],
  });
  configPath = sandbox.writeConfig(config);
  const setup = await cli(['pitr', 'setup', '--source', 'pg', '--config', configPath, '--install-dir', join(sandbox.dir, 'bin'), '--state-dir', join(sandbox.dir, 'state'), '--apply']);
  assert.equal(setup.code, EXIT.OK, setup.log);
  cluster.restart();
  cluster.psql('postgres', 'create table t (id int primary key, at timestamptz not null default clock_timestamp())');
  const backup = await cli(['backup', '--config', configPath, '--tier', 'daily']);
  assert.equal(backup.code, EXIT.OK, backup.log);
  baseStoppedAt = (await baseBackup()).stoppedAt;

  for (const id of [1, 2, 3]) writeRow(id);
  await new Promise((r) => setTimeout(r, 50));
  timeBetween3And4 = cluster.psql('postgres', "select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
  await new Promise((r) => setTimeout(r, 50));
  writeRow(4);
  lsnAfter4 = committed.at(-1)!.lsn;
  for (const id of [5, 6]) writeRow(id);
  await waitArchived();
  scratch = mkdtempSync(join(tmpdir(), 'coldseal-pitr-restore-'));
  chmodSync(scratch, 0o711);
});

after(() => {
  for (const s of started) {
    try {
      execFileSync('/bin/sh', ['-c', s.stop], { stdio: 'ignore' });
    } catch {
      // already stopped
    }
  }
  cluster?.stop();
  if (scratch && !process.env.KEEP) rmSync(scratch, { recursive: true, force: true });
});

async function baseBackup(): Promise<BaseBackup> {
  const key = (await sandbox.listKeys('backups/daily/testgroup/testhost/pg/')).find((k) => k.endsWith('.manifest.json'))!;
  const { document } = await openManifest((await sandbox.getObject(key)).toString(), await readPublicKeys(sandbox.signing.publicKey, 'signing'));
  return document.artifacts.find((a) => a.kind === 'cluster')!.baseBackup!;
}

async function restore(name: string, ...target: string[]) {
  const dataDir = join(scratch, name);
  const result = await cli(['restore', '--config', configPath, '--source', 'pg', '--key', sandbox.recipient.privateFile, '--data-dir', dataDir, ...target]);
  const stop = /^stop: +(.*)$/m.exec(result.stdout)?.[1];
  if (stop) started.push({ dataDir, stop });
  const port = /running on port (\d+)/.exec(result.stdout)?.[1];
  const rows = () => execFileSync('psql', ['-h', `${dataDir}.coldseal-spool`, '-p', port!, '-U', 'postgres', '-d', 'postgres', '-X', '-Atqc', 'select id from t order by id']).toString().trim().split('\n').filter(Boolean).map(Number);
  return { result, dataDir, port, rows, stop };
}

test('--to-time T: every row committed before T, none after; --to-lsn: up to it; --to-latest: every row; each on its own port, promoted', async () => {
  // Three restores at once: each is its own data directory, spool, port and restore_command.
  const [time, lsn, latest] = await Promise.all([restore('to-time', '--to-time', timeBetween3And4), restore('to-lsn', '--to-lsn', lsnAfter4), restore('to-latest', '--to-latest')]);
  for (const r of [time, lsn, latest]) assert.equal(r.result.code, EXIT.OK, r.result.log);
  assert.deepEqual(time.rows(), [1, 2, 3]);
  assert.deepEqual(lsn.rows(), [1, 2, 3, 4]);
  assert.deepEqual(latest.rows(), [1, 2, 3, 4, 5, 6]);
  assert.equal(new Set([time.port, lsn.port, latest.port, String(cluster.port)]).size, 4);
  assert.match(time.result.stdout, /recovered to LSN [0-9A-F]+\/[0-9A-F]+ .*timeline 2, last transaction committed at /);
  assert.match(time.result.stdout, /recovery stopping before commit of transaction \d+, time /);
  assert.match(lsn.result.stdout, /recovery stopping after WAL location \(LSN\) "/);
  assert.match(time.result.stdout, /^connect: psql -h .*to-time\.coldseal-spool -p \d+/m);
  // The copy does not write into the source's archive, and restore_command's key copy is gone.
  assert.equal(execFileSync('psql', ['-h', `${time.dataDir}.coldseal-spool`, '-p', time.port!, '-U', 'postgres', '-d', 'postgres', '-X', '-Atqc', 'show archive_mode']).toString().trim(), 'off');
  assert.equal(existsSync(`${time.dataDir}.coldseal-spool/recipient.key.asc`), false);
  const auto = readFileSync(join(time.dataDir, 'postgresql.auto.conf'), 'utf8');
  assert.match(auto, new RegExp(`recovery_target_time = '${timeBetween3And4.slice(0, 19)}`));
  assert.match(auto, /restore_command = '.* pitr wal-fetch --spool .*to-time\.coldseal-spool %f %p'/);
  for (const r of [time, lsn, latest]) execFileSync('/bin/sh', ['-c', r.stop!]);
});

test('refused with nothing written: a target outside the window, a non-empty --data-dir, the running cluster\'s', async () => {
  const before = new Date(Date.parse(baseStoppedAt) - 60_000).toISOString();
  const early = await restore('early', '--to-time', before);
  assert.equal(early.result.code, EXIT.NOT_FOUND, early.result.log);
  assert.match(early.result.log, /before the end of the first base backup: the recovery window is from .* to about /);
  const late = await restore('late', '--to-time', new Date(Date.now() + 3_600_000).toISOString());
  assert.equal(late.result.code, EXIT.NOT_FOUND, late.result.log);
  assert.match(late.result.log, /after the newest archived WAL .*the recovery window is from/);
  for (const name of ['early', 'late']) {
    assert.equal(existsSync(join(scratch, name)), false);
    assert.equal(existsSync(join(scratch, `${name}.coldseal-spool`)), false);
  }
  // Nothing is downloaded for a refusal: only listings, manifests and (with timelines) histories are read.
  assert.doesNotMatch(early.result.log + late.result.log, /base backup \d{8}T\d{6}Z laid/);

  mkdirSync(join(scratch, 'full'));
  writeFileSync(join(scratch, 'full', 'keep.txt'), 'mine');
  const full = await restore('full', '--to-latest');
  assert.equal(full.result.code, EXIT.REFUSED, full.result.log);
  assert.match(full.result.log, /--data-dir .*full is not empty \(1 entries, e\.g\. keep\.txt\)/);
  assert.deepEqual(readdirSync(join(scratch, 'full')), ['keep.txt']);

  const running = await cli(['restore', '--config', configPath, '--source', 'pg', '--key', sandbox.recipient.privateFile, '--data-dir', cluster.dataDir, '--to-latest']);
  assert.equal(running.code, EXIT.REFUSED, running.log);
  assert.match(running.log, /is the data directory of the running server/);
  assert.equal(cluster.psql('postgres', 'select count(*) from t'), '6');
});

test('--prepare-only: the data directory and the exact pg_ctl line, nothing started', async () => {
  const r = await restore('prepared', '--to-latest', '--prepare-only', '--port', String(cluster.port + 1));
  assert.equal(r.result.code, EXIT.OK, r.result.log);
  const line = /^ {2}(runuser -u postgres -- \S+\/pg_ctl -D \S+ -l \S+ start)$/m.exec(r.result.stdout)?.[1];
  assert.ok(line, r.result.stdout);
  assert.equal(existsSync(join(r.dataDir, 'postmaster.pid')), false);
  assert.equal(existsSync(join(r.dataDir, 'recovery.signal')), true);
  assert.equal(readFileSync(join(r.dataDir, 'backup_label'), 'utf8'), (await baseBackup()).backupLabel);
});
