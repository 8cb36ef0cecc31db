import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { appendFileSync, chownSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { walObjectKey } from '../../format/layout';
import { parseWalFileName, segmentFileNameOfLsn, parseLsn } from '../../format/wal';
import { restoreCommandLine, writeFetchPlan } from '../../agent/src/pitr/fetch-plan';
import { createAgentSandbox, type AgentSandbox } from '../harness/agent';
import { startPgCluster, type PgCluster } from '../harness/pg-cluster';
import { archiveWal } from '../harness/wal-archive';
import { freePort } from '../../local-system/services';

/**
 * A real PostgreSQL 15 recovers through `coldseal pitr wal-fetch` as its restore_command: from a
 * base backup it replays the archived WAL (written in the archive contract from what the server
 * archived) and promotes at the archive's end with every committed row; with a segment deleted
 * from the middle of the archive it stops with FATAL instead of promoting early.
 */
const ROOT = join(__dirname, '..', '..');
const SEG_MIB = 1;
let sandbox: AgentSandbox;
let cluster: PgCluster;
let work: string;
let baseDir: string;
let systemIdentifier: string;
let startWal: string;
const archived: string[] = [];
const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());

function asPostgres(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): string {
  return execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env, cwd: work }).toString();
}

before(async () => {
  sandbox = await createAgentSandbox();
  work = mkdtempSync(join(tmpdir(), 'coldseal-walrecovery-'));
  chownSync(work, uid, gid);
  const archiveDir = join(work, 'archive');
  mkdirSync(archiveDir);
  chownSync(archiveDir, uid, gid);
  cluster = await startPgCluster({ walSegmentSizeMiB: SEG_MIB, settings: { archive_mode: 'on', archive_command: `test ! -f ${archiveDir}/%f && cp %p ${archiveDir}/%f`, checkpoint_timeout: '1h' } });
  cluster.psql('postgres', 'create table t (n int primary key)');
  cluster.psql('postgres', 'insert into t values (1)');
  baseDir = join(work, 'base');
  asPostgres(`${cluster.bin}/pg_basebackup`, ['-h', cluster.socketDir, '-p', String(cluster.port), '-U', 'postgres', '-D', baseDir, '-X', 'none', '-c', 'fast']);
  startWal = segmentFileNameOfLsn(1, parseLsn(/START WAL LOCATION: (\S+)/.exec(readFileSync(join(baseDir, 'backup_label'), 'utf8'))![1]), SEG_MIB << 20);
  for (let n = 2; n <= 5; n++) cluster.psql('postgres', `insert into t values (${n}); select pg_switch_wal()`);
  systemIdentifier = cluster.psql('postgres', 'select system_identifier from pg_control_system()');
  const last = cluster.psql('postgres', 'select pg_walfile_name(pg_current_wal_lsn())');
  cluster.psql('postgres', 'select pg_switch_wal()');
  const deadline = Date.now() + 30_000;
  while (!existsSync(join(archiveDir, last))) {
    assert.ok(Date.now() < deadline, `the server did not archive ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const walFile of readdirSync(archiveDir).sort()) {
    await archiveWal(sandbox, { source: 'pg', walFile, plaintext: readFileSync(join(archiveDir, walFile)), walSegmentSize: SEG_MIB << 20, systemIdentifier });
    archived.push(walFile);
  }
  cluster.stop();
});

after(() => rmSync(work, { recursive: true, force: true }));

/** A new data directory from the base backup, recovering through wal-fetch; returns whether the server came up promoted. */
async function recover(name: string): Promise<{ up: boolean; log: string; dataDir: string; spool: string; psql: (sql: string) => string; stop: () => void }> {
  const dataDir = join(work, `${name}-data`);
  cpSync(baseDir, dataDir, { recursive: true });
  const spool = join(work, `${name}-spool`);
  mkdirSync(spool, { mode: 0o700 });
  // The server's user reads the key (restore puts a copy there the same way).
  const keyFile = join(spool, 'recipient.key.asc');
  copyFileSync(sandbox.recipient.privateFile, keyFile);
  const segments = archived.filter((f) => parseWalFileName(f).kind === 'segment' && f >= startWal);
  await writeFetchPlan(spool, {
    formatVersion: 1,
    group: 'testgroup',
    host: 'testhost',
    source: 'pg',
    storage: { bucket: sandbox.bucket, region: sandbox.account.clientConfig.region, endpoint: sandbox.account.clientConfig.endpoint },
    systemIdentifier,
    walSegmentSize: SEG_MIB << 20,
    trustedSigningKeys: sandbox.signing.publicKey,
    privateKey: { file: keyFile },
    ranges: [{ timeline: 1, firstSegment: startWal, lastSegment: segments.at(-1)! }],
    histories: [],
    prefetch: 2,
    concurrency: 2,
    createdAt: new Date().toISOString(),
  });
  for (const path of [dataDir, spool, keyFile]) execFileSync('chown', ['-R', `${uid}:${gid}`, path]);
  const command = restoreCommandLine({ spool, self: [process.execPath, '--import', pathToFileURL(require.resolve('tsx')).href, join(ROOT, 'agent', 'src', 'cli.ts')] });
  appendFileSync(join(dataDir, 'postgresql.auto.conf'), `restore_command = '${command.replace(/'/g, "''")}'\narchive_mode = off\nhot_standby = off\n`);
  appendFileSync(join(dataDir, 'recovery.signal'), '');
  execFileSync('chown', [`${uid}:${gid}`, join(dataDir, 'recovery.signal'), join(dataDir, 'postgresql.auto.conf')]);
  const port = await freePort();
  const logFile = join(work, `${name}.log`);
  const env = { ...process.env, ...sandbox.account.env, NODE_NO_WARNINGS: '1' };
  // hot_standby off: no connection is accepted until recovery ends (promoted), and pg_ctl -w already
  // returns while the server recovers; the server exits if recovery stops with FATAL.
  spawnSync('runuser', ['-u', 'postgres', '--', `${cluster.bin}/pg_ctl`, '-D', dataDir, '-W', '-l', logFile, '-o', `-p ${port} -k ${work} -c listen_addresses='' -c fsync=off`, 'start'], { env, cwd: work });
  const psql = (sql: string) => execFileSync('psql', ['-h', work, '-p', String(port), '-U', 'postgres', '-d', 'postgres', '-X', '-Atqc', sql], { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim();
  const stop = () => spawnSync('runuser', ['-u', 'postgres', '--', `${cluster.bin}/pg_ctl`, '-D', dataDir, '-w', '-m', 'immediate', 'stop'], { cwd: work });
  const deadline = Date.now() + 180_000;
  let up = false;
  await new Promise((resolve) => setTimeout(resolve, 500));
  while (Date.now() < deadline) {
    try {
      psql('select 1');
      up = true;
      break;
    } catch {
      // Not accepting connections yet; gone once the startup process failed.
      if (!existsSync(join(dataDir, 'postmaster.pid'))) break;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return { up, log: existsSync(logFile) ? readFileSync(logFile, 'utf8') : '', dataDir, spool, psql, stop };
}

test('PostgreSQL replays the whole archive through wal-fetch and promotes with every committed row', async () => {
  const run = await recover('whole');
  try {
    assert.ok(run.up, run.log);
    assert.equal(run.psql('select pg_is_in_recovery()'), 'f');
    assert.equal(run.psql('select string_agg(n::text, \',\' order by n) from t'), '1,2,3,4,5');
    assert.match(run.log, /archive recovery complete/);
    assert.match(run.log, /fetched [0-9A-F]{24} from the archive/);
  } finally {
    run.stop();
  }
});

test('a segment deleted from the middle of the archive: recovery stops with FATAL naming it, and the server does not promote', async () => {
  const middle = archived.filter((f) => parseWalFileName(f).kind === 'segment' && f > startWal)[1];
  await sandbox.s3.send(new DeleteObjectCommand({ Bucket: sandbox.bucket, Key: walObjectKey('testgroup', 'testhost', 'pg', middle) }));
  const run = await recover('hole');
  try {
    assert.ok(!run.up, 'the server must not come up');
    assert.match(run.log, new RegExp(`WAL ${middle} is missing from the archive although the restore planned it`));
    // PostgreSQL words exit status 126 as "command not executable" (wait_result_to_str) and stops.
    assert.match(run.log, new RegExp(`FATAL: {2}could not restore file "${middle}" from archive: command not executable`));
    assert.match(run.log, /shutting down due to startup process failure/);
    assert.doesNotMatch(run.log, /archive recovery complete|selected new timeline ID/);
    assert.ok(!existsSync(join(run.dataDir, 'pg_wal', '00000002.history')), 'no new timeline was started');
  } finally {
    run.stop();
  }
});
